package clientapi

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/mail"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keydir"
	"github.com/privateline/privateline/storage"
)

// Client-side key derivation announced by prelogin (spec/e2ee.md).
const (
	kdfName       = "pbkdf2-sha256"
	kdfIterations = 600_000
)

// Sizes of the account's key material on the wire.
const (
	authKeyLen     = 32
	saltLen        = 16
	nonceLen       = 12
	maxWrappedKeys = 16 << 10
	maxEmailLen    = 254
)

// Argon2id parameters for the server's check of the client auth key.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
)

// hashAuthKey runs Argon2id under the concurrency bound.
func (a *API) hashAuthKey(ctx context.Context, authKey, salt []byte) ([]byte, error) {
	select {
	case a.argon2 <- struct{}{}:
	case <-ctx.Done():
		return nil, privateline.E("clientapi.hashAuthKey", privateline.Unavailable, ctx.Err())
	}
	defer func() { <-a.argon2 }()
	return argon2.IDKey(authKey, salt, argonTime, argonMemory, argonThreads, argonKeyLen), nil
}

// checkAuthKey verifies authKey against u; with u == nil it spends the same
// work on a dummy so unknown names cost the same time.
func (a *API) checkAuthKey(ctx context.Context, u *storage.User, authKey []byte) (bool, error) {
	salt, want := dummySalt[:], dummyHash[:]
	if u != nil {
		salt, want = u.AuthSalt, u.AuthHash
	}
	got, err := a.hashAuthKey(ctx, authKey, salt)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1 && u != nil, nil
}

var dummySalt, dummyHash [32]byte

func init() {
	rand.Read(dummySalt[:16])
	rand.Read(dummyHash[:])
}

func (a *API) limitIP(r *http.Request) error {
	if ok, after := a.ipLimit.allow(a.clientIP(r)); !ok {
		return &rateLimitError{after}
	}
	return nil
}

func (a *API) limitName(u privateline.Username) error {
	if ok, after := a.nameLimit.allow(string(u)); !ok {
		return &rateLimitError{after}
	}
	return nil
}

type preloginReq struct {
	Username string `json:"username"`
}

type kdfResp struct {
	KDF        string `json:"kdf"`
	Iterations int    `json:"iterations"`
	Salt       []byte `json:"salt"`
}

func (a *API) prelogin(w http.ResponseWriter, r *http.Request, _ *call) error {
	if err := a.limitIP(r); err != nil {
		return err
	}
	var req preloginReq
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	name, err := privateline.ParseUsername(req.Username)
	if err != nil {
		return invalid(privateline.MessageOf(err))
	}
	u, err := a.store.UserByName(name)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, kdfResp{u.KDF.Name, u.KDF.Iterations, u.Salt})
	case privateline.Is(privateline.NotExist, err):
		// A deterministic fake: the same name always gets the same salt,
		// indistinguishable from a real one.
		m := hmac.New(sha256.New, a.preloginKey)
		m.Write([]byte(name))
		writeJSON(w, http.StatusOK, kdfResp{kdfName, kdfIterations, m.Sum(nil)[:saltLen]})
	default:
		return err
	}
	return nil
}

type registerReq struct {
	Username            string          `json:"username"`
	Email               string          `json:"email"`
	AuthKey             string          `json:"auth_key"`
	EncryptedPrivateKey string          `json:"encrypted_private_key"`
	Salt                string          `json:"salt"`
	Nonce               string          `json:"nonce"`
	KeyBundle           json.RawMessage `json:"key_bundle"`
}

// keyMaterial is the wrapped key material a client needs on a new device.
type keyMaterial struct {
	Address             privateline.Address `json:"address"`
	KDF                 string              `json:"kdf"`
	Iterations          int                 `json:"iterations"`
	Salt                []byte              `json:"salt"`
	EncryptedPrivateKey []byte              `json:"encrypted_private_key"`
	Nonce               []byte              `json:"nonce"`
	KeyBundle           json.RawMessage     `json:"key_bundle"`
}

func (a *API) keyMaterial(u *storage.User) keyMaterial {
	return keyMaterial{
		Address:             privateline.MakeAddress(u.Username, a.cfg.ServerName),
		KDF:                 u.KDF.Name,
		Iterations:          u.KDF.Iterations,
		Salt:                u.Salt,
		EncryptedPrivateKey: u.EncryptedPrivateKey,
		Nonce:               u.Nonce,
		KeyBundle:           u.KeyBundle,
	}
}

type registerResp struct {
	keyMaterial
	Username  privateline.Username `json:"username"`
	Email     string               `json:"email,omitempty"`
	CreatedAt time.Time            `json:"created_at"`
}

func (a *API) register(w http.ResponseWriter, r *http.Request, _ *call) error {
	if err := a.limitIP(r); err != nil {
		return err
	}
	var req registerReq
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	name, err := privateline.ParseUsername(req.Username)
	if err != nil {
		return invalid(privateline.MessageOf(err))
	}
	email, err := checkEmail(req.Email)
	if err != nil {
		return err
	}
	authKey, err := decodeB64("auth_key", req.AuthKey, authKeyLen, authKeyLen)
	if err != nil {
		return err
	}
	wrapped, err := decodeB64("encrypted_private_key", req.EncryptedPrivateKey, 1, maxWrappedKeys)
	if err != nil {
		return err
	}
	salt, err := decodeB64("salt", req.Salt, saltLen, saltLen)
	if err != nil {
		return err
	}
	nonce, err := decodeB64("nonce", req.Nonce, nonceLen, nonceLen)
	if err != nil {
		return err
	}
	bundle, err := keydir.CheckBundleShape(req.KeyBundle)
	if err != nil {
		return invalid(privateline.MessageOf(err))
	}
	if _, err := a.store.UserByName(name); err == nil {
		return privateline.E("clientapi.register", privateline.Exist, "username is taken")
	} else if !privateline.Is(privateline.NotExist, err) {
		return err
	}
	kb, err := a.dir.VerifyBundle(bundle, name)
	if err != nil {
		return err
	}
	u := &storage.User{
		ID:                  storage.NewID(),
		Username:            name,
		Email:               email,
		AuthSalt:            make([]byte, 16),
		KDF:                 storage.KDF{Name: kdfName, Iterations: kdfIterations},
		Salt:                salt,
		EncryptedPrivateKey: wrapped,
		Nonce:               nonce,
		KeyBundle:           bundle,
		CreatedAt:           a.now().UTC().Truncate(time.Second),
	}
	rand.Read(u.AuthSalt)
	if u.AuthHash, err = a.hashAuthKey(r.Context(), authKey, u.AuthSalt); err != nil {
		return err
	}
	if err := a.dir.Register(u, kb); err != nil {
		return err
	}
	a.log.Info("account registered", "user_id", u.ID.String())
	writeJSON(w, http.StatusCreated, registerResp{keyMaterial: a.keyMaterial(u), Username: u.Username, Email: u.Email, CreatedAt: u.CreatedAt})
	return nil
}

func checkEmail(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) > maxEmailLen {
		return "", invalid("email is too long")
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", invalid("email must be a plain address such as name@example.org")
	}
	return s, nil
}

type loginReq struct {
	Username   string `json:"username"`
	AuthKey    string `json:"auth_key"`
	UseCookies bool   `json:"use_cookies"`
}

type tokenResp struct {
	AccessToken      string `json:"access_token,omitempty"`
	RefreshToken     string `json:"refresh_token,omitempty"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int    `json:"expires_in"`
	RefreshExpiresIn int    `json:"refresh_expires_in"`
	CSRFToken        string `json:"csrf_token,omitempty"`
}

type loginResp struct {
	tokenResp
	keyMaterial
}

var errBadLogin = privateline.E("clientapi.login", privateline.Unauthenticated, "wrong username or password")

func (a *API) login(w http.ResponseWriter, r *http.Request, _ *call) error {
	if err := a.limitIP(r); err != nil {
		return err
	}
	var req loginReq
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	name, err := privateline.ParseUsername(req.Username)
	if err != nil {
		return invalid(privateline.MessageOf(err))
	}
	authKey, err := decodeB64("auth_key", req.AuthKey, authKeyLen, authKeyLen)
	if err != nil {
		return err
	}
	if err := a.limitName(name); err != nil {
		return err
	}
	u, err := a.store.UserByName(name)
	if err != nil && !privateline.Is(privateline.NotExist, err) {
		return err
	}
	ok, err := a.checkAuthKey(r.Context(), u, authKey)
	if err != nil {
		return err
	}
	if !ok {
		return errBadLogin
	}
	now := a.now()
	s := &storage.Session{
		ID:        storage.NewID(),
		UserID:    u.ID,
		Key:       make(privateline.Secret, 32),
		CreatedAt: now.UTC(),
		ExpiresAt: now.Add(a.cfg.RefreshTokenTTL).UTC(),
	}
	rand.Read(s.Key)
	if err := a.store.CreateSession(s); err != nil {
		if privateline.Is(privateline.NotExist, err) {
			return errBadLogin // deleted while we checked the key
		}
		return err
	}
	tr, err := a.tokens(w, s, req.UseCookies)
	if err != nil {
		return err
	}
	a.log.Info("login", "user_id", u.ID.String(), "session_id", s.ID.String())
	writeJSON(w, http.StatusOK, loginResp{tokenResp: tr, keyMaterial: a.keyMaterial(u)})
	return nil
}

// tokens issues an access token and the session's current refresh token,
// in the body or, for browsers that ask, as cookies.
func (a *API) tokens(w http.ResponseWriter, s *storage.Session, cookies bool) (tokenResp, error) {
	access, _, err := a.issueAccess(s)
	if err != nil {
		return tokenResp{}, privateline.E("clientapi.tokens", privateline.Internal, err)
	}
	tr := tokenResp{
		TokenType:        "Bearer",
		ExpiresIn:        int(a.cfg.AccessTokenTTL.Seconds()),
		RefreshExpiresIn: int(s.ExpiresAt.Sub(a.now()).Seconds()),
	}
	refresh := encodeRefresh(s)
	if cookies {
		tr.CSRFToken = a.csrfToken(s.ID)
		a.setSessionCookies(w, access, refresh, tr.CSRFToken)
	} else {
		tr.AccessToken, tr.RefreshToken = access, refresh
	}
	return tr, nil
}

type refreshReq struct {
	RefreshToken string `json:"refresh_token"`
	UseCookies   bool   `json:"use_cookies"`
}

func (a *API) refresh(w http.ResponseWriter, r *http.Request, _ *call) error {
	if err := a.limitIP(r); err != nil {
		return err
	}
	var req refreshReq
	if err := decodeJSON(r, &req, true); err != nil {
		return err
	}
	tok, viaCookie := req.RefreshToken, false
	if tok == "" {
		ck, err := r.Cookie(cookieRefresh)
		if err != nil {
			return invalid(`field "refresh_token" is required (or the refresh cookie)`)
		}
		tok, viaCookie = ck.Value, true
	}
	sid, gen, mac, ok := parseRefresh(tok)
	if !ok {
		return errUnauthenticated
	}
	if viaCookie && a.cfg.CookieCSRF && !a.csrfOK(r, sid) {
		return errCSRF
	}
	s, err := a.store.SessionByID(sid)
	if privateline.Is(privateline.NotExist, err) {
		return errUnauthenticated
	}
	if err != nil {
		return err
	}
	if gen > s.Gen || !checkRefreshMAC(s, gen, mac) {
		return errUnauthenticated
	}
	if gen == s.Gen && a.now().After(s.ExpiresAt) {
		return errUnauthenticated
	}
	// An earlier generation makes RotateSession revoke the session.
	uid := s.UserID
	s, err = a.store.RotateSession(sid, gen, a.now().Add(a.cfg.RefreshTokenTTL).UTC())
	if err != nil {
		if privateline.Is(privateline.Unauthenticated, err) {
			a.hub.sessionEnded(uid, sid)
			a.log.Warn("refresh token reused; session revoked", "session_id", sid.String())
			return errUnauthenticated
		}
		if privateline.Is(privateline.NotExist, err) {
			return errUnauthenticated
		}
		return err
	}
	tr, err := a.tokens(w, s, viaCookie || req.UseCookies)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tr)
	return nil
}

type revokeReq struct {
	All bool `json:"all"`
}

func (a *API) revoke(w http.ResponseWriter, r *http.Request, c *call) error {
	var req revokeReq
	if err := decodeJSON(r, &req, true); err != nil {
		return err
	}
	p := c.auth
	var err error
	if req.All {
		err = a.store.RevokeUserSessions(p.UserID, p.TokenID, p.Expires)
	} else {
		err = a.store.RevokeSession(p.SessionID, p.TokenID, p.Expires)
	}
	if err != nil {
		return err
	}
	if req.All {
		a.hub.sessionsEnded(p.UserID, storage.ID{})
	} else {
		a.hub.sessionEnded(p.UserID, p.SessionID)
	}
	a.log.Info("sessions revoked", "user_id", p.UserID.String(), "all", req.All)
	a.clearSessionCookies(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
