package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// Tokens are a session's tokens. They never print.
type Tokens struct {
	Access  privateline.Secret // the JWT access token
	Refresh privateline.Secret // the single-use refresh token
	// When they expire, by the client's clock at the time they were
	// issued (the server's expires_in and refresh_expires_in).
	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
}

// WrappedKeys is the account's key material as the server stores it: the
// password KDF's parameters and the private keys sealed under the KEK
// (spec/e2ee.md §4, §5.3). It is safe to keep on disk; without the
// password it reveals nothing.
type WrappedKeys struct {
	KDF                 string
	Iterations          int
	Salt                []byte
	Nonce               []byte
	EncryptedPrivateKey []byte
}

// SessionState is what a client keeps to resume a session later (Resume)
// without logging in again: no private key and no KEK, only the wrapped
// keys, which Unlock opens with the password, and the account's held
// epochs (lostepochs.go).
type SessionState struct {
	Address privateline.Address
	Tokens  Tokens
	Wrapped WrappedKeys
	Bundle  []byte // the account's key bundle, canonical JSON
	// Epochs is, by group id, the highest epoch of each group whose key
	// the account's sessions on this Client held (spec/e2ee.md §8.1), so
	// that after a restart the client still reports the epochs a group's
	// restored server lost and never makes a second key for one of them.
	// The state of a session the server ended still has it: hand it to
	// the Client of the account's next login with RememberEpochs.
	Epochs map[string]HeldEpoch `json:"Epochs,omitempty"`
}

// Session is a logged-in account: its tokens and, while unlocked, its
// private keys and KEK (in memory only). It is safe for concurrent use.
type Session struct {
	c       *Client
	address privateline.Address

	// refreshing admits one refresh at a time (a buffered channel rather
	// than a mutex, so that waiting respects the caller's context).
	refreshing chan struct{}

	// notify serializes the OnChange calls, each with a state taken while
	// it is held, so the last call always has the newest state. Lock
	// order: notify, then mu, then the Client's mu.
	notify sync.Mutex

	mu       sync.Mutex
	tokens   Tokens             // guarded by mu
	ended    bool               // guarded by mu: the server ended the session
	wrapped  WrappedKeys        // guarded by mu
	bundle   *e2ee.KeyBundle    // guarded by mu
	keys     *e2ee.PrivateKeys  // guarded by mu; nil while locked
	kek      *e2ee.KEK          // guarded by mu; nil while locked
	onChange func(SessionState) // guarded by mu
	// groupKeys are the group keys opened or made, by group id and epoch;
	// guarded by mu, forgotten by Lock.
	groupKeys map[string]map[int64]*e2ee.GroupKey
}

func (c *Client) newSession(address privateline.Address, t Tokens, w WrappedKeys, b *e2ee.KeyBundle) *Session {
	return &Session{c: c, address: address, refreshing: make(chan struct{}, 1), tokens: t, wrapped: w, bundle: b}
}

const redactedSession = "client.Session{[REDACTED]}"

// String, GoString, Format and LogValue keep a session's tokens and keys
// out of every printout.
func (s *Session) String() string             { return redactedSession }
func (s *Session) GoString() string           { return redactedSession }
func (s *Session) Format(f fmt.State, _ rune) { io.WriteString(f, redactedSession) }
func (s *Session) LogValue() slog.Value       { return slog.StringValue(redactedSession) }

// Resume rebuilds a session from a state saved earlier (Session.State).
// It is locked: calls that need the private keys or the KEK need Unlock
// first. The state's bundle must be the address's. The state's held
// epochs join the Client's memory of the account's (the higher epoch of
// a group wins; RememberEpochs).
func (c *Client) Resume(st SessionState) (*Session, error) {
	const op = "client.Resume"
	_, server, err := st.Address.Split()
	if err != nil {
		return nil, privateline.E(op, err)
	}
	b, err := e2ee.ParseKeyBundle(st.Bundle)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if b.Address != st.Address {
		return nil, privateline.E(op, privateline.Invalid, "the saved key bundle is of another account")
	}
	if len(st.Tokens.Access) == 0 || len(st.Tokens.Refresh) == 0 {
		return nil, privateline.E(op, privateline.Unauthenticated, "the saved session has no tokens; log in again")
	}
	if err := c.adoptServer(op, server); err != nil {
		return nil, err
	}
	if err := c.rememberEpochs(op, st.Address, st.Epochs); err != nil {
		return nil, err
	}
	return c.newSession(st.Address, cloneTokens(st.Tokens), cloneWrapped(st.Wrapped), b), nil
}

func cloneTokens(t Tokens) Tokens {
	t.Access, t.Refresh = bytes.Clone(t.Access), bytes.Clone(t.Refresh)
	return t
}

func cloneWrapped(w WrappedKeys) WrappedKeys {
	w.Salt, w.Nonce, w.EncryptedPrivateKey = bytes.Clone(w.Salt), bytes.Clone(w.Nonce), bytes.Clone(w.EncryptedPrivateKey)
	return w
}

// Address returns the account's address.
func (s *Session) Address() privateline.Address { return s.address }

// Client returns the client the session talks through.
func (s *Session) Client() *Client { return s.c }

// Bundle returns the account's current key bundle.
func (s *Session) Bundle() *e2ee.KeyBundle {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bundle
}

// Keys returns the account's private keys, or an error while locked.
func (s *Session) Keys() (*e2ee.PrivateKeys, error) {
	k, _, err := s.unlocked("client.Session.Keys")
	return k, err
}

// Locked reports whether the private keys are unavailable (a resumed
// session before Unlock).
func (s *Session) Locked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys == nil
}

func (s *Session) unlocked(op string) (*e2ee.PrivateKeys, *e2ee.KEK, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil || s.kek == nil {
		return nil, nil, privateline.E(op, privateline.Unauthenticated, "the private keys are locked; unlock them with the password")
	}
	return s.keys, s.kek, nil
}

// Unlock derives the KEK from the password with the saved KDF parameters
// and unwraps the saved private keys, which must be those of the
// account's bundle. A wrong password is Unauthenticated (unwrap_failed).
// It does not talk to the server: after a password change on another
// device the saved wrapped keys are stale, and only a new login helps.
func (s *Session) Unlock(password string) error {
	const op = "client.Session.Unlock"
	s.mu.Lock()
	w, b := s.wrapped, s.bundle
	s.mu.Unlock()
	pk, err := e2ee.DerivePasswordKeys(password, w.KDF, w.Iterations, w.Salt)
	if err != nil {
		return privateline.E(op, err)
	}
	keys, err := unwrapAccountKeys(op, pk.KEK, s.address, w, b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.keys, s.kek = keys, pk.KEK
	s.mu.Unlock()
	return nil
}

// unwrapAccountKeys opens wrapped keys and checks them against the
// account's bundle (spec/e2ee.md §5.3).
func unwrapAccountKeys(op string, kek *e2ee.KEK, address privateline.Address, w WrappedKeys, b *e2ee.KeyBundle) (*e2ee.PrivateKeys, error) {
	keys, err := e2ee.UnwrapPrivateKeys(kek, address, &e2ee.WrappedKeys{Nonce: w.Nonce, Ciphertext: w.EncryptedPrivateKey})
	if err != nil {
		if e2ee.ReasonOf(err) == e2ee.ErrWrongPasswordOrKey {
			return nil, privateline.E(op, privateline.Unauthenticated, "wrong password: the private keys do not unwrap", err)
		}
		return nil, privateline.E(op, err)
	}
	if !keys.Matches(b) {
		return nil, privateline.E(op, privateline.Forbidden, "the unwrapped private keys are not those of the account's key bundle")
	}
	return keys, nil
}

// Lock forgets the private keys and the KEK.
func (s *Session) Lock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys, s.kek, s.groupKeys = nil, nil, nil
}

// State returns what Resume needs to rebuild the session.
func (s *Session) State() SessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateLocked()
}

func (s *Session) stateLocked() SessionState {
	return SessionState{Address: s.address, Tokens: cloneTokens(s.tokens), Wrapped: cloneWrapped(s.wrapped), Bundle: s.bundle.JSON(), Epochs: s.c.heldEpochs(s.address)}
}

// OnChange sets f to be called with the new state whenever the session's
// tokens (a refresh), wrapped keys (a password or key change) or bundle
// change, before the new tokens are used, so the caller can store them,
// and when this session raises a held epoch (it opened or made the key of
// an epoch above the highest held of the group). f runs on the goroutine
// of the call that caused the change, one call at a time, and must not
// call back into the session's network methods.
func (s *Session) OnChange(f func(SessionState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onChange = f
}

// changed calls the OnChange function with the current state. Calls are
// serialized under notify, and each takes its state under it, so two
// changes on two goroutines cannot reach the caller newest first.
func (s *Session) changed() {
	s.notify.Lock()
	defer s.notify.Unlock()
	s.mu.Lock()
	f := s.onChange
	var st SessionState
	if f != nil {
		st = s.stateLocked()
	}
	s.mu.Unlock()
	if f != nil {
		f(st)
	}
}

// Ended reports whether the server ended the session (a revoke, a refresh
// that was refused): only a new login helps.
func (s *Session) Ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

func (s *Session) end() {
	s.mu.Lock()
	s.ended = true
	s.tokens = Tokens{}
	s.mu.Unlock()
	s.changed()
}

func errEnded(op string) error {
	return privateline.E(op, privateline.Unauthenticated, "the session has ended; log in again")
}

func (s *Session) access(op string) (privateline.Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, errEnded(op)
	}
	return s.tokens.Access, nil
}

// do sends an authenticated request. On 401 it refreshes the tokens (see
// refresh) and sends the request once more.
func (s *Session) do(ctx context.Context, op string, rq *request) (*response, error) {
	tok, err := s.access(op)
	if err != nil {
		return nil, err
	}
	rq.token = tok
	r, err := s.c.do(ctx, op, rq)
	if err != nil || r.status != http.StatusUnauthorized {
		return r, err
	}
	if err := s.refresh(ctx, op, tok); err != nil {
		return nil, err
	}
	if rq.token, err = s.access(op); err != nil {
		return nil, err
	}
	return s.c.do(ctx, op, rq)
}

// refresh exchanges the refresh token for new tokens (POST /api/refresh)
// because the access token stale was refused. Refreshes are serialized:
// a caller that gets its turn after another caller already replaced stale
// returns at once and uses the new token, so concurrent calls that all
// saw the same expired token cause one refresh, and a refresh token is
// never presented twice (which would revoke the session). A refusal (401)
// means the session is over.
func (s *Session) refresh(ctx context.Context, op string, stale privateline.Secret) error {
	select {
	case s.refreshing <- struct{}{}:
	case <-ctx.Done():
		return privateline.E(op, privateline.Unavailable, "gave up waiting for a token refresh", ctx.Err())
	}
	defer func() { <-s.refreshing }()

	s.mu.Lock()
	ended, current, rt := s.ended, s.tokens.Access, s.tokens.Refresh
	s.mu.Unlock()
	if ended {
		return errEnded(op)
	}
	if !current.Equal(stale) {
		return nil // another call refreshed meanwhile
	}
	body, err := jsonBody(op, map[string]string{"refresh_token": string(rt.Bytes())})
	if err != nil {
		return err
	}
	sent := s.c.now()
	r, err := s.c.do(ctx, op, &request{method: http.MethodPost, path: "/api/refresh", body: body})
	if err != nil {
		return err
	}
	if r.status == http.StatusUnauthorized {
		s.end()
		return privateline.E(op, privateline.Unauthenticated, "the session has ended (revoked, expired, or its refresh token was used twice); log in again", apiError(op, r))
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return err
	}
	var tr tokenResp
	if err := decode(op, r, &tr); err != nil {
		return err
	}
	t, err := tr.tokens(op, sent)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.tokens = t
	s.mu.Unlock()
	s.changed()
	return nil
}

// tokenResp is the token part of login and refresh answers.
type tokenResp struct {
	AccessToken      string `json:"access_token"`
	RefreshToken     string `json:"refresh_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
}

func (tr *tokenResp) tokens(op string, issued time.Time) (Tokens, error) {
	if tr.AccessToken == "" || tr.RefreshToken == "" {
		return Tokens{}, privateline.E(op, privateline.Invalid, "the server's answer has no tokens")
	}
	return Tokens{
		Access:           privateline.Secret(tr.AccessToken),
		Refresh:          privateline.Secret(tr.RefreshToken),
		AccessExpiresAt:  issued.Add(time.Duration(tr.ExpiresIn) * time.Second),
		RefreshExpiresAt: issued.Add(time.Duration(tr.RefreshExpiresIn) * time.Second),
	}, nil
}

// Revoke ends this session on the server (POST /api/revoke, logout). A
// session the server had ended already counts as revoked.
func (s *Session) Revoke(ctx context.Context) error {
	err := s.revoke(ctx, "client.Session.Revoke", false)
	if privateline.Is(privateline.Unauthenticated, err) {
		s.end()
		return nil
	}
	return err
}

// RevokeAll ends every session of the account, this one included.
func (s *Session) RevokeAll(ctx context.Context) error {
	return s.revoke(ctx, "client.Session.RevokeAll", true)
}

func (s *Session) revoke(ctx context.Context, op string, all bool) error {
	body, err := jsonBody(op, map[string]bool{"all": all})
	if err != nil {
		return err
	}
	r, err := s.do(ctx, op, &request{method: http.MethodPost, path: "/api/revoke", body: body})
	if err != nil {
		return err
	}
	if err := expect(op, r, http.StatusNoContent); err != nil {
		return err
	}
	s.end()
	return nil
}
