package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/federation"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keydir"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/storage"
)

// Directory is what the client API needs from the key directory
// (*keydir.Directory): verified registrations, key changes and account
// deletions that are logged in the same write, lookups with proofs, signed
// tree heads and consistency proofs, and the pinned-keys blobs.
type Directory interface {
	VerifyBundle(raw json.RawMessage, username privateline.Username) (*keybundle.KeyBundle, error)
	Register(u *storage.User, b *keybundle.KeyBundle) error
	ChangeKeys(id storage.ID, c keydir.KeyChange) (*keylog.Lookup, error)
	DeleteUser(id storage.ID) error
	Lookup(name privateline.Username) (*keylog.Lookup, error)
	HeadAnswer() (*keylog.HeadAnswer, error)
	Consistency(from, to uint64) (*keylog.Consistency, error)
	PinnedKeys(id storage.ID) (blob []byte, version uint64, err error)
	PutPinnedKeys(id storage.ID, blob []byte, ifVersion uint64) (uint64, error)
}

// noDirectory stands in when Deps has no Directory: everything that needs
// the directory, registration and account deletion included, is
// unavailable rather than done without the log.
type noDirectory struct{}

var errNoDirectory = privateline.E("clientapi", privateline.Unavailable, "the key directory is not available")

func (noDirectory) VerifyBundle(json.RawMessage, privateline.Username) (*keybundle.KeyBundle, error) {
	return nil, errNoDirectory
}
func (noDirectory) Register(*storage.User, *keybundle.KeyBundle) error { return errNoDirectory }
func (noDirectory) ChangeKeys(storage.ID, keydir.KeyChange) (*keylog.Lookup, error) {
	return nil, errNoDirectory
}
func (noDirectory) DeleteUser(storage.ID) error                         { return errNoDirectory }
func (noDirectory) Lookup(privateline.Username) (*keylog.Lookup, error) { return nil, errNoDirectory }
func (noDirectory) HeadAnswer() (*keylog.HeadAnswer, error)             { return nil, errNoDirectory }
func (noDirectory) Consistency(uint64, uint64) (*keylog.Consistency, error) {
	return nil, errNoDirectory
}
func (noDirectory) PinnedKeys(storage.ID) ([]byte, uint64, error) { return nil, 0, errNoDirectory }
func (noDirectory) PutPinnedKeys(storage.ID, []byte, uint64) (uint64, error) {
	return 0, errNoDirectory
}

// Sizes of the key routes' inputs.
const (
	maxPinnedKeys = keydir.MaxPinnedKeys
	// maxPinnedBody caps PUT /api/pinned_keys: the base64 of a 256 KiB
	// blob is 349,528 characters.
	maxPinnedBody = 360 << 10
)

// bodyLimit is the request-body cap for r: MaxBodyBytes, except for the
// pinned-keys blob.
func (a *API) bodyLimit(r *http.Request) int64 {
	if r.Method == http.MethodPut && r.URL.Path == "/api/pinned_keys" {
		return maxPinnedBody
	}
	if r.Method == http.MethodPost && r.URL.Path == "/api/messages" {
		return envelope.MaxSize
	}
	if r.Method == http.MethodPost && r.URL.Path == fileUploadPath {
		return a.cfg.MaxFileSize // counted again while streaming (files.go)
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/api/groups/"); ok && strings.Count(rest, "/") == 1 {
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(rest, "/messages"):
			return envelope.MaxSize
		case r.Method == http.MethodPut && strings.HasSuffix(rest, "/key"):
			return envelope.MaxGroupKeySize
		}
	}
	return a.cfg.MaxBodyBytes
}

// RemoteKeys looks up users of other servers over federation
// (spec/federation.md §12.5); the homeserver passes *federation.Service.
type RemoteKeys interface {
	// LookupRemote returns the other server's verified answer for address,
	// with the consistency proof from since when since > 0. An unknown user
	// is a NotExist error; an unreachable or refused server Unavailable; a
	// server name that leads to no server wraps federation.ErrUnknownServer.
	LookupRemote(ctx context.Context, address privateline.Address, since uint64) (*keylog.Lookup, error)
}

// getPublicKey answers an account's bundle with the directory's proofs:
// the parameter is a username of this server or an address of any server
// (another server's answer is fetched over federation and passed on as
// that server signed it). ?since=m adds the consistency proof from tree
// size m to the answer's head (spec/e2ee.md §6.4).
func (a *API) getPublicKey(w http.ResponseWriter, r *http.Request, c *call) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return invalid("malformed query string")
	}
	var since uint64
	for k := range q {
		if k != "since" {
			return invalid("unknown query parameter " + strconv.Quote(k))
		}
		if since, err = treeSizeParam(q, "since"); err != nil {
			return err
		}
		if since == 0 {
			return invalid(`query parameter "since" must be a tree size of at least 1`)
		}
	}
	param := c.params.ByName("username")
	if strings.Contains(param, "@") {
		addr := privateline.Address(param)
		name, server, err := addr.Split()
		if err != nil {
			return invalid(privateline.MessageOf(err))
		}
		if server != a.cfg.ServerName {
			return a.remotePublicKey(w, r, addr, since)
		}
		param = string(name)
	}
	name, err := privateline.ParseUsername(param)
	if err != nil {
		return invalid(privateline.MessageOf(err))
	}
	l, err := a.dir.Lookup(name)
	if err != nil {
		return err
	}
	if since > 0 {
		if since > l.Head.TreeSize {
			return invalid(fmt.Sprintf(`"since" (%d) is beyond the directory's log, which has %d entries`, since, l.Head.TreeSize))
		}
		cons, err := a.dir.Consistency(since, l.Head.TreeSize)
		if err != nil {
			return err
		}
		l.Since, l.Consistency = since, cons.Proof
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

// remotePublicKey answers a lookup of another server's user.
func (a *API) remotePublicKey(w http.ResponseWriter, r *http.Request, addr privateline.Address, since uint64) error {
	if a.remote == nil {
		return invalid(string(addr) + " is on another server, and this server does not federate")
	}
	l, err := a.remote.LookupRemote(r.Context(), addr, since)
	if errors.Is(err, federation.ErrUnknownServer) {
		_, server, _ := addr.Split()
		return &statusError{http.StatusNotFound, "unknown_server", "there is no server " + string(server) + ": the name does not exist or serves no PrivateLine server document"}
	}
	if errors.Is(err, federation.ErrSupersededAnswer) { // unreachable since its key rotation: say so
		return &statusError{http.StatusServiceUnavailable, "unavailable", privateline.MessageOf(err)}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

// getKeysHead answers the directory's current signed tree head and key.
func (a *API) getKeysHead(w http.ResponseWriter, r *http.Request, _ *call) error {
	h, err := a.dir.HeadAnswer()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

// getKeysConsistency answers a consistency proof between two tree sizes.
func (a *API) getKeysConsistency(w http.ResponseWriter, r *http.Request, _ *call) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return invalid("malformed query string")
	}
	for k := range q {
		if k != "from" && k != "to" {
			return invalid("unknown query parameter " + strconv.Quote(k))
		}
	}
	from, err := treeSizeParam(q, "from")
	if err != nil {
		return err
	}
	to, err := treeSizeParam(q, "to")
	if err != nil {
		return err
	}
	p, err := a.dir.Consistency(from, to)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func treeSizeParam(q url.Values, name string) (uint64, error) {
	vs := q[name]
	if len(vs) != 1 {
		return 0, invalid("query parameter " + strconv.Quote(name) + " is required once")
	}
	s := vs[0]
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > cjson.MaxSafeInt || strconv.FormatUint(n, 10) != s {
		return 0, invalid("query parameter " + strconv.Quote(name) + " must be a tree size in decimal")
	}
	return n, nil
}

type keysReq struct {
	KeyBundle           json.RawMessage `json:"key_bundle"`
	EncryptedPrivateKey string          `json:"encrypted_private_key"`
	Nonce               string          `json:"nonce"`
	OldKeySignature     string          `json:"old_key_signature"`
	AuthKey             string          `json:"auth_key"`
}

// putKeys replaces the caller's key bundle and wrapped private keys and
// logs the new bundle. The change is authorised by the current identity
// key (old_key_signature, spec/e2ee.md §6.3) or by the password (auth_key,
// as for a password change). Every contact gets a key_changed event in
// the same write (storage.UpdateUserKeys), live over the WebSocket; the
// directory's log is what lets them check the new key independently.
func (a *API) putKeys(w http.ResponseWriter, r *http.Request, c *call) error {
	var req keysReq
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	raw, err := keydir.CheckBundleShape(req.KeyBundle)
	if err != nil {
		return invalid(privateline.MessageOf(err))
	}
	wrapped, err := decodeB64("encrypted_private_key", req.EncryptedPrivateKey, 1, maxWrappedKeys)
	if err != nil {
		return err
	}
	nonce, err := decodeB64("nonce", req.Nonce, nonceLen, nonceLen)
	if err != nil {
		return err
	}
	var sig, authKey []byte
	switch {
	case req.OldKeySignature != "" && req.AuthKey != "":
		return invalid(`give either "old_key_signature" or "auth_key", not both`)
	case req.OldKeySignature != "":
		if sig, err = decodeB64("old_key_signature", req.OldKeySignature, keybundle.SignatureSize, keybundle.SignatureSize); err != nil {
			return err
		}
	case req.AuthKey != "":
		if authKey, err = decodeB64("auth_key", req.AuthKey, authKeyLen, authKeyLen); err != nil {
			return err
		}
	default:
		return invalid(`a key change needs "old_key_signature" (by the current identity key) or "auth_key"`)
	}
	u, err := a.caller(c)
	if err != nil {
		return err
	}
	b, err := a.dir.VerifyBundle(raw, u.Username)
	if err != nil {
		return err
	}
	if authKey != nil {
		if err := a.verifyCurrent(r, u, authKey); err != nil {
			return err
		}
	}
	l, err := a.dir.ChangeKeys(u.ID, keydir.KeyChange{
		Bundle:              b,
		OldKeySignature:     sig,
		FreshAuth:           authKey != nil,
		EncryptedPrivateKey: wrapped,
		Nonce:               nonce,
	})
	if err != nil {
		return goneIsUnauthenticated(err)
	}
	a.log.Info("key bundle changed", "user_id", u.ID.String(), "log_index", l.Entry.Leaf.Index)
	writeJSON(w, http.StatusOK, l)
	return nil
}

type pinnedKeysResp struct {
	Version uint64 `json:"version"`
	Blob    []byte `json:"blob"`
}

type pinnedKeysVersion struct {
	Version uint64 `json:"version"`
}

type pinnedKeysReq struct {
	Blob string `json:"blob"`
}

func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

// getPinnedKeys answers the caller's pinned-keys blob with its version as
// the ETag.
func (a *API) getPinnedKeys(w http.ResponseWriter, r *http.Request, c *call) error {
	blob, v, err := a.dir.PinnedKeys(c.auth.UserID)
	if err != nil {
		return goneIsUnauthenticated(err)
	}
	if blob == nil {
		blob = []byte{}
	}
	w.Header().Set("ETag", etag(v))
	writeJSON(w, http.StatusOK, pinnedKeysResp{Version: v, Blob: blob})
	return nil
}

// putPinnedKeys replaces the caller's blob if If-Match names the stored
// version, so two devices cannot overwrite each other unseen.
func (a *API) putPinnedKeys(w http.ResponseWriter, r *http.Request, c *call) error {
	im := r.Header.Values("If-Match")
	if len(im) == 0 {
		return errPreconditionRequired
	}
	ifVersion, ok := parseETag(im)
	if !ok {
		return invalid(`If-Match must be the single ETag of GET /api/pinned_keys, for example "3"`)
	}
	var req pinnedKeysReq
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	blob, err := decodeB64("blob", req.Blob, 1, maxPinnedKeys)
	if err != nil {
		return err
	}
	v, err := a.dir.PutPinnedKeys(c.auth.UserID, blob, ifVersion)
	if errors.Is(err, storage.ErrVersionMismatch) {
		return errPreconditionFailed
	}
	if err != nil {
		return goneIsUnauthenticated(err)
	}
	w.Header().Set("ETag", etag(v))
	writeJSON(w, http.StatusOK, pinnedKeysVersion{Version: v})
	return nil
}

// parseETag reads If-Match: exactly one strong ETag "N".
func parseETag(values []string) (uint64, bool) {
	if len(values) != 1 {
		return 0, false
	}
	s := values[0]
	if len(s) < 3 || s[0] != '"' || s[len(s)-1] != '"' {
		return 0, false
	}
	digits := s[1 : len(s)-1]
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != digits {
		return 0, false
	}
	return n, true
}
