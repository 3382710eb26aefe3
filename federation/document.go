package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation/transport"
	"github.com/privateline/privateline/keylog"
)

// LabelServer is the signature label of the server document (spec §2.1).
const LabelServer = keylog.LabelServerDocument

// DocumentPath is where a homeserver serves its server document.
const DocumentPath = "/.well-known/privateline/server"

// maxDocument bounds a fetched server document.
const maxDocument = 64 << 10

var std64 = base64.StdEncoding.Strict()

// Document is a verified server document (spec §2.1).
type Document struct {
	Server     privateline.ServerName
	Federation string // host:port of its QUIC listener
	Key        ed25519.PublicKey
	KeyChanges []transport.KeyChange // oldest first
	CreatedAt  time.Time
	Raw        []byte // the document as served (ForkServerDocument passes it on)
}

// Document returns this server's signed server document: canonical JSON,
// signed by the identity key when built (at Start, or at the first call
// when AdvertiseAddr is set), with a created_at that never decreases.
func (s *Service) Document() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.documentLocked()
}

func (s *Service) documentLocked() ([]byte, error) {
	const op = "federation.Document"
	if s.doc != nil {
		return bytes.Clone(s.doc), nil
	}
	addr := s.cfg.AdvertiseAddr
	if addr == "" {
		if s.ln == nil {
			return nil, privateline.E(op, privateline.Unavailable, "the listener is not started and no advertised address is configured")
		}
		addr = s.ln.Addr().String()
	}
	ms := max(s.now().UnixMilli(), s.docAt)
	raw, err := keylog.SignServerDocument(keylog.ServerDocument{Server: s.cfg.Name, Federation: addr, KeyChanges: s.cfg.KeyChanges, CreatedAt: time.UnixMilli(ms)}, s.cfg.Key)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	s.doc, s.docAt = raw, ms
	return bytes.Clone(raw), nil
}

// VerifyDocument checks a server document fetched for name (spec §2.1):
// what keylog.VerifyServerDocument checks (canonical JSON with exactly the
// members of §2.1, v = 1, server = name, a "federation" host:port, the
// signature under "key", "key_changes" (if any) a valid chain for name
// ending at "key"), and, when known (a configured or pinned key) is not
// nil, "key" equal to it or reached from it by the chain.
func VerifyDocument(raw []byte, name privateline.ServerName, known ed25519.PublicKey) (*Document, error) {
	const op = "federation.VerifyDocument"
	v, err := keylog.VerifyServerDocument(raw, name)
	if err != nil {
		return nil, privateline.E(op, privateline.Invalid, err)
	}
	if known != nil {
		if err := keylog.FollowServerKeyChain(name, known, v.Key, v.KeyChanges); err != nil {
			return nil, privateline.E(op, privateline.Invalid, fmt.Sprintf("the server document of %s: its key is not the one known for it, and no key change leads from that one", name), err)
		}
	}
	return &Document{Server: v.Server, Federation: v.Federation, Key: v.Key, KeyChanges: v.KeyChanges, CreatedAt: v.CreatedAt, Raw: bytes.Clone(raw)}, nil
}

// documentURL is where name's server document is: https, or http for a
// localhost or loopback name (development).
func documentURL(name privateline.ServerName) string {
	host := string(name)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	scheme := "https"
	if ip := net.ParseIP(host); host == "localhost" || strings.HasSuffix(host, ".localhost") || (ip != nil && ip.IsLoopback()) {
		scheme = "http"
	}
	return scheme + "://" + string(name) + DocumentPath
}

// fetchDocument fetches and verifies name's server document, against the
// key configured or pinned for it if there is one.
func (s *Service) fetchDocument(ctx context.Context, name privateline.ServerName) (*Document, error) {
	known := s.configuredKey(name)
	if known == nil {
		k, err := s.store.PeerPin(name)
		if err != nil {
			return nil, fmt.Errorf("reading the pin of %s: %w", name, err)
		}
		known = k
	}
	return s.getDocument(ctx, name, known)
}

// getDocument fetches and verifies name's server document, against known
// if not nil (VerifyDocument).
func (s *Service) getDocument(ctx context.Context, name privateline.ServerName, known ed25519.PublicKey) (*Document, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, documentURL(name), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		if noSuchHost(err) {
			return nil, fmt.Errorf("fetching the server document of %s: %w: %w", name, ErrUnknownServer, err)
		}
		return nil, fmt.Errorf("fetching the server document of %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("fetching the server document of %s: %w: HTTP 404", name, ErrUnknownServer)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the server document of %s: HTTP %d", name, resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return nil, fmt.Errorf("fetching the server document of %s: %w", name, err)
	}
	if len(raw) > maxDocument {
		return nil, fmt.Errorf("the server document of %s is over %d bytes", name, maxDocument)
	}
	return VerifyDocument(raw, name, known)
}

// configuredKey returns the key configured for name, or nil.
func (s *Service) configuredKey(name privateline.ServerName) ed25519.PublicKey {
	for _, p := range s.cfg.Peers {
		if p.Name == name && p.Key != nil {
			return p.Key
		}
	}
	return nil
}

// ErrUnknownServer marks a server name that leads to no server: DNS says
// the name does not exist (NXDOMAIN, or no address for it), or the host
// answers that it has no server document (HTTP 404). A failure that may
// pass — a DNS server failure or timeout, a refused or dropped
// connection, another HTTP status — is not this (the server may exist
// and be unreachable for now). Only names with no configured or gossiped
// address are resolved, so a known peer is never called unknown.
var ErrUnknownServer = errors.New("federation: there is no server of that name")

// knownServer reports whether name is a configured peer or one whose key
// was pinned (it was reached before): a name that stops resolving is then
// taken as unreachable, not unknown, and kept answers still serve.
func (s *Service) knownServer(name privateline.ServerName) bool {
	for _, p := range s.cfg.Peers {
		if p.Name == name {
			return true
		}
	}
	pin, err := s.store.PeerPin(name)
	return err != nil || pin != nil
}

// noSuchHost reports whether err says the name does not resolve, for good:
// the resolver's definite "not found", not a temporary failure.
func noSuchHost(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound && !de.IsTimeout && !de.IsTemporary
}
