package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/keylog"
)

var b64 = base64.StdEncoding

// ServerName returns the homeserver's name: Options.ServerName, the name
// learned from an earlier answer, or else the name in the key directory's
// signed tree head, which is then verified (pinning the directory's key
// on first use) like any head.
func (c *Client) ServerName(ctx context.Context) (privateline.ServerName, error) {
	if s := c.knownServer(); s != "" {
		return s, nil
	}
	const op = "client.ServerName"
	a, err := c.fetchHead(ctx, op)
	if err != nil {
		return "", err
	}
	if err := c.dir.VerifyHead(ctx, a.Head.Server, a); err != nil {
		return "", privateline.E(op, err)
	}
	if err := c.adoptServer(op, a.Head.Server); err != nil {
		return "", err
	}
	return a.Head.Server, nil
}

func (c *Client) fetchHead(ctx context.Context, op string) (*keylog.HeadAnswer, error) {
	r, err := c.do(ctx, op, &request{method: http.MethodGet, path: "/api/keys/head"})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, err
	}
	a, err := keylog.ParseHeadAnswer(r.body)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return a, nil
}

// KeysHead fetches the key directory's signed tree head (GET
// /api/keys/head) and verifies it: the directory key against the one
// pinned for the server, the signature, and that it extends the last head
// this client saw (by a consistency proof), which it then becomes. A
// forked or rolled-back directory is refused (log_fork, log_rollback).
func (c *Client) KeysHead(ctx context.Context) (*keylog.TreeHead, error) {
	const op = "client.KeysHead"
	server, err := c.ServerName(ctx)
	if err != nil {
		return nil, err
	}
	a, err := c.fetchHead(ctx, op)
	if err != nil {
		return nil, err
	}
	if err := c.dir.VerifyHead(ctx, server, a); err != nil {
		return nil, privateline.E(op, err)
	}
	return &a.Head, nil
}

// LastHead returns the last tree head of the server's directory this
// client verified, or nil.
func (c *Client) LastHead() (*keylog.TreeHead, error) {
	s := c.knownServer()
	if s == "" {
		return nil, nil
	}
	return c.dir.LastHead(s)
}

// Consistency fetches the proof that the directory's log at from entries
// is a prefix of the log at to entries (GET /api/keys/consistency). The
// proof is checked against tree heads, by KeysHead and PublicKey.
func (c *Client) Consistency(ctx context.Context, from, to uint64) (*keylog.Consistency, error) {
	const op = "client.Consistency"
	q := url.Values{"from": {strconv.FormatUint(from, 10)}, "to": {strconv.FormatUint(to, 10)}}
	r, err := c.do(ctx, op, &request{method: http.MethodGet, path: "/api/keys/consistency", query: q})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, err
	}
	p, err := keylog.ParseConsistency(r.body)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return p, nil
}

// fetchConsistency is the directory verifier's source of proofs.
func (c *Client) fetchConsistency(ctx context.Context, server privateline.ServerName, from, to uint64) (*keylog.Consistency, error) {
	if s := c.knownServer(); s != server {
		return nil, privateline.E("client.fetchConsistency", privateline.Invalid, "no route to the directory of "+string(server))
	}
	return c.Consistency(ctx, from, to)
}

// AddressOf returns the address of a user of this session's server.
func (s *Session) AddressOf(username string) (privateline.Address, error) {
	name, err := privateline.ParseUsername(username)
	if err != nil {
		return "", err
	}
	_, server, _ := s.address.Split()
	return privateline.MakeAddress(name, server), nil
}

// PublicKey returns the key bundle of address, on this session's server or
// another one (the homeserver fetches it over federation), after verifying
// the directory's answer (GET /api/public_key/{address}?since=): see
// directory.Verifier; the answer of a remote server is checked against what
// is pinned for that server. Pinning the contact's identity key is the
// caller's next step (e2ee.Pins.Observe).
func (s *Session) PublicKey(ctx context.Context, address privateline.Address) (*e2ee.KeyBundle, error) {
	const op = "client.PublicKey"
	_, server, err := address.Split()
	if err != nil {
		return nil, privateline.E(op, err)
	}
	var since uint64
	if h, err := s.c.dir.LastHead(server); err != nil {
		return nil, privateline.E(op, privateline.Unavailable, err)
	} else if h != nil {
		since = h.TreeSize
	}
	rq := &request{method: http.MethodGet, path: "/api/public_key/" + string(address)}
	if since > 0 {
		rq.query = url.Values{"since": {strconv.FormatUint(since, 10)}}
	}
	r, err := s.do(ctx, op, rq)
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		if privateline.Is(privateline.NotExist, err) {
			return nil, privateline.E(op, privateline.NotExist, "no such user: "+string(address), err)
		}
		return nil, err
	}
	return s.verifyLookup(ctx, op, address, r.body, since)
}

func (s *Session) verifyLookup(ctx context.Context, op string, address privateline.Address, body []byte, since uint64) (*e2ee.KeyBundle, error) {
	l, err := keylog.ParseLookup(body, since)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	b, err := s.c.dir.VerifyLookup(ctx, address, l)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return b, nil
}

// ChangeKeys replaces the account's keys (PUT /api/keys, spec/e2ee.md
// §6.3): next (nil: freshly generated ones, which takes a second or so
// for RSA-4096) get a bundle created now (later than the current one),
// the current identity key signs the change, and next's private keys are
// wrapped under the session's KEK. The server's answer, the account's new
// directory entry, is verified like a lookup and must hold the new
// bundle. The session then uses next (also when that check fails: the
// bundle is returned with the error). The session must be unlocked.
// Another device that changed the keys first makes this a conflict
// (Exist): log in again to get the current keys.
func (s *Session) ChangeKeys(ctx context.Context, next *e2ee.PrivateKeys) (*e2ee.KeyBundle, error) {
	const op = "client.ChangeKeys"
	keys, kek, err := s.unlocked(op)
	if err != nil {
		return nil, err
	}
	old := s.Bundle()
	if next == nil {
		if next, err = e2ee.GenerateKeys(s.address); err != nil {
			return nil, privateline.E(op, err)
		}
	} else if next.Address() != s.address {
		return nil, privateline.E(op, privateline.Invalid, "the new keys are for another address")
	}
	created := s.c.now()
	if after := old.CreatedAt.Add(time.Millisecond); created.Before(after) {
		created = after
	}
	nb, err := e2ee.NewKeyBundle(next, created)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	sig, err := e2ee.SignKeyChange(keys, old, nb)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	w, err := e2ee.WrapPrivateKeys(nil, kek, next)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	body, err := jsonBody(op, map[string]any{
		"key_bundle":            json.RawMessage(nb.JSON()),
		"encrypted_private_key": b64.EncodeToString(w.Ciphertext),
		"nonce":                 b64.EncodeToString(w.Nonce),
		"old_key_signature":     b64.EncodeToString(sig),
	})
	if err != nil {
		return nil, err
	}
	r, err := s.do(ctx, op, &request{method: http.MethodPut, path: "/api/keys", body: body})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		if r.status == http.StatusConflict {
			return nil, privateline.E(op, privateline.Exist, "the keys were changed meanwhile (by another device?); log in again", err)
		}
		return nil, err
	}
	// The server holds the new keys now, whatever its directory says.
	s.mu.Lock()
	s.keys, s.bundle = next, nb
	s.wrapped.Nonce, s.wrapped.EncryptedPrivateKey = w.Nonce, w.Ciphertext
	s.mu.Unlock()
	s.changed()
	got, err := s.verifyLookup(ctx, op, s.address, r.body, 0)
	if err != nil {
		return nb, privateline.E(op, "the keys were changed, but the directory's answer does not verify", err)
	}
	if !got.Equal(nb) {
		return nb, privateline.E(op, privateline.Forbidden, "the keys were changed, but the directory does not show the new key bundle")
	}
	return nb, nil
}
