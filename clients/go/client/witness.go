package client

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
)

// Witnessing, the client side (spec/e2ee.md §6.4 "Witnesses",
// spec/federation.md §12.6): other homeservers co-sign the trees of this
// homeserver's key directory after checking that each extends every head
// they saw before; a homeserver that shows two heads that cannot both be
// true is caught by its witnesses, which keep the evidence.

// Cosignature is one witness's co-signature of the homeserver's directory
// as this client checked it.
type Cosignature struct {
	Witness     privateline.ServerName
	Key         ed25519.PublicKey // the witness key the homeserver named
	WitnessedAt time.Time
	Head        keylog.TreeHead // the head of the homeserver it co-signed
	// Current: the co-signature is of the tree of the head verified now.
	Current bool
	// Verified: Key is the directory key this client pinned for the
	// witness (a look-up of one of its users pinned it) and the signature
	// verifies under it. Only a verified co-signature vouches for the
	// head; Err says why one is not.
	Verified bool
	Err      error
}

// Witnessed is the homeserver's current directory head, verified like
// KeysHead's, with its co-signatures.
type Witnessed struct {
	Head         keylog.TreeHead
	Cosignatures []Cosignature
}

// Vouching returns the witnesses whose verified co-signature is of the
// current head: the other servers that vouch for it.
func (w *Witnessed) Vouching() []privateline.ServerName {
	var out []privateline.ServerName
	for _, c := range w.Cosignatures {
		if c.Verified && c.Current {
			out = append(out, c.Witness)
		}
	}
	return out
}

// Cosignatures fetches the homeserver's directory head with its
// co-signatures (GET /api/keys/cosignatures), verifies the head as
// KeysHead does (it becomes the last head seen), and checks each
// co-signature: that its head is one of this server's, signed by the
// pinned directory key, and whether the witness's signature verifies
// under the key this client pinned for the witness's own directory.
func (c *Client) Cosignatures(ctx context.Context) (*Witnessed, error) {
	const op = "client.Cosignatures"
	server, err := c.ServerName(ctx)
	if err != nil {
		return nil, err
	}
	r, err := c.do(ctx, op, &request{method: http.MethodGet, path: "/api/keys/cosignatures"})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, err
	}
	ans, err := keylog.ParseCosignaturesAnswer(r.body)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if err := c.dir.VerifyHead(ctx, server, &ans.HeadAnswer); err != nil {
		return nil, privateline.E(op, err)
	}
	out := &Witnessed{Head: ans.Head}
	for _, cs := range ans.Cosignatures {
		v := Cosignature{Witness: cs.Witness, Key: cs.WitnessKey, WitnessedAt: time.UnixMilli(cs.WitnessedAt), Head: cs.Head, Current: cs.Covers(&ans.Head)}
		v.Err = c.checkCosignature(server, ans.ServerKey, cs)
		v.Verified = v.Err == nil
		out.Cosignatures = append(out.Cosignatures, v)
	}
	return out, nil
}

func (c *Client) checkCosignature(server privateline.ServerName, serverKey ed25519.PublicKey, cs *keylog.Cosignature) error {
	const op = "client.Cosignatures"
	if cs.Head.Server != server {
		return keybundle.Refuse(op, keybundle.ErrBadProof, "a co-signature of another server's head")
	}
	if err := cs.Head.Verify(serverKey); err != nil {
		return err
	}
	if cs.Witness == server {
		return keybundle.Refuse(op, keybundle.ErrBadProof, "the server co-signed itself")
	}
	st, err := c.store.Load(cs.Witness)
	if err != nil {
		return privateline.E(op, privateline.Unavailable, err)
	}
	if st == nil || len(st.Key) == 0 {
		return privateline.E(op, privateline.NotExist, fmt.Sprintf("no key is pinned for %s: look up one of its users first", cs.Witness))
	}
	if !st.Key.Equal(cs.WitnessKey) {
		return keybundle.Refuse(op, keybundle.ErrServerKeyChanged, fmt.Sprintf("%s co-signed with another key than the one pinned for it", cs.Witness))
	}
	return cs.Verify(st.Key)
}

// Fork is fork evidence a homeserver keeps about another server's
// directory, as this client checked it.
type Fork struct {
	Evidence *keylog.ForkEvidence
	// Verified: both heads verify under keys this client takes as
	// Evidence.Server's (Basis says which), and they conflict as
	// Evidence.Kind says. Err says why not (no pin: the evidence is
	// unchecked, not false; heads signed by a key neither followed by this
	// client nor named by the pinned key as an earlier one: unchecked too,
	// as it cannot tell that key was the server's).
	Verified bool
	Basis    ForkBasis
	Err      error
}

// ForkBasis says under which keys fork evidence verified.
type ForkBasis int

const (
	// ForkUnverified: it did not (Fork.Err says why).
	ForkUnverified ForkBasis = iota
	// ForkUnderPin: both heads under the key this client pinned.
	ForkUnderPin
	// ForkUnderFollowed: a head under a key this client pinned before and
	// followed to its pin through the server's key-change statements
	// (directory.State.Earlier).
	ForkUnderFollowed
	// ForkUnderVouched: a head under a key the server held before, as its
	// current key — the one pinned — names it in the server document it
	// signed (keylog.EarlierKeysFromDocument), the head dated no later
	// than the key was replaced. A client that only ever pinned the new
	// key verifies evidence made before a rotation so.
	ForkUnderVouched
)

// String says it in words, for people.
func (b ForkBasis) String() string {
	switch b {
	case ForkUnderPin:
		return "signed with the key pinned for the server"
	case ForkUnderFollowed:
		return "signed with a key the server had before its current one, which this client followed to the current one"
	case ForkUnderVouched:
		return "signed with a key the server had before its current one, which its current key names as its own in the server document it signed"
	}
	return "not verified"
}

// DirectoryForks fetches the fork evidence the homeserver keeps as a
// witness (GET /api/keys/forks) and checks what it can. Evidence whose
// heads no key this client pinned or followed signed is checked under the
// earlier keys the server's current key names in its server document
// (GET /api/keys/forks/document, verified under the pin): never under
// statements that come with the evidence or from the homeserver alone.
func (c *Client) DirectoryForks(ctx context.Context) ([]Fork, error) {
	const op = "client.DirectoryForks"
	r, err := c.do(ctx, op, &request{method: http.MethodGet, path: "/api/keys/forks"})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, err
	}
	ans, err := keylog.ParseForksAnswer(r.body)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	type vouched struct {
		keys []keylog.EarlierServerKey
		err  error
	}
	docs := map[privateline.ServerName]vouched{} // per server, fetched once per call
	out := make([]Fork, 0, len(ans.Forks))
	for _, f := range ans.Forks {
		v := Fork{Evidence: f}
		st, err := c.store.Load(f.Server)
		switch {
		case err != nil:
			v.Err = privateline.E(op, privateline.Unavailable, err)
		case st == nil || len(st.Key) == 0:
			v.Err = privateline.E(op, privateline.NotExist, fmt.Sprintf("no key is pinned for %s", f.Server))
		case f.Verify(st.Key) == nil:
			v.Basis = ForkUnderPin
		default:
			keys := append([]ed25519.PublicKey{st.Key}, st.Earlier...)
			if v.Err = f.VerifyUnder(keys); v.Err == nil {
				v.Basis = ForkUnderFollowed
				break
			}
			if keybundle.ReasonOf(v.Err) != keybundle.ErrBadSignature {
				break
			}
			d, ok := docs[f.Server]
			if !ok {
				d.keys, d.err = c.forkEarlierKeys(ctx, f.Server, st.Key)
				docs[f.Server] = d
			}
			if d.err != nil {
				v.Err = fmt.Errorf("%w; and %s's current key names no earlier key it could be: %w", v.Err, f.Server, d.err)
				break
			}
			if v.Err = f.VerifyVouched(keys, d.keys); v.Err == nil {
				v.Basis = ForkUnderVouched
			}
		}
		v.Verified = v.Err == nil
		out = append(out, v)
	}
	return out, nil
}

// forkEarlierKeys fetches, through the homeserver, the server document of
// server (GET /api/keys/forks/document) and returns the earlier keys it
// names, if pinned signed it.
func (c *Client) forkEarlierKeys(ctx context.Context, server privateline.ServerName, pinned ed25519.PublicKey) ([]keylog.EarlierServerKey, error) {
	const op = "client.forkEarlierKeys"
	r, err := c.do(ctx, op, &request{method: http.MethodGet, path: "/api/keys/forks/document", query: url.Values{"server": {string(server)}}})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, err
	}
	return keylog.EarlierKeysFromDocument(r.body, server, pinned)
}
