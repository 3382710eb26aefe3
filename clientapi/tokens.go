package clientapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/privateline/privateline"
	"github.com/privateline/privateline/storage"
)

// audience is the aud of access tokens.
const audience = "privateline-client"

// accessClaims are the claims of an access token.
type accessClaims struct {
	SessionID string `json:"sid"`
	jwt.RegisteredClaims
}

// principal is the authenticated caller of a request.
type principal struct {
	UserID    storage.ID
	SessionID storage.ID
	TokenID   string
	Expires   time.Time
	ViaCookie bool
}

// issueAccess signs an access token for the session.
func (a *API) issueAccess(s *storage.Session) (token string, exp time.Time, err error) {
	now := a.now()
	exp = now.Add(a.cfg.AccessTokenTTL)
	var jti [16]byte
	rand.Read(jti[:])
	c := accessClaims{
		SessionID: s.ID.String(),
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    string(a.cfg.ServerName),
			Subject:   s.UserID.String(),
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        hex.EncodeToString(jti[:]),
		},
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.cfg.JWTSecret.Bytes())
	return token, exp, err
}

// parseAccess verifies an access token's signature (HS256 only) and claims.
func (a *API) parseAccess(token string) (*accessClaims, error) {
	if strings.ContainsAny(token, "\r\n") { // base64 decoders skip them
		return nil, errUnauthenticated
	}
	var c accessClaims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) {
		return a.cfg.JWTSecret.Bytes(), nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(string(a.cfg.ServerName)),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(a.now),
		jwt.WithStrictDecoding(),
	)
	if err != nil || c.ID == "" || c.Subject == "" {
		return nil, errUnauthenticated
	}
	return &c, nil
}

// authenticate finds and checks the request's access token: the
// Authorization header, or else the access cookie (with the CSRF check for
// state-changing methods).
func (a *API) authenticate(r *http.Request) (*principal, error) {
	token, viaCookie := "", false
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || t == "" {
			return nil, errUnauthenticated
		}
		token = strings.TrimSpace(t)
	} else if ck, err := r.Cookie(cookieAccess); err == nil {
		token, viaCookie = ck.Value, true
	} else {
		return nil, errUnauthenticated
	}
	c, err := a.parseAccess(token)
	if err != nil {
		return nil, err
	}
	uid, err1 := storage.ParseID(c.Subject)
	sid, err2 := storage.ParseID(c.SessionID)
	if err1 != nil || err2 != nil {
		return nil, errUnauthenticated
	}
	if viaCookie && a.cfg.CookieCSRF && !safeMethod(r.Method) && !a.csrfOK(r, sid) {
		return nil, errCSRF
	}
	denied, err := a.store.TokenDenied(c.ID)
	if err != nil {
		return nil, err
	}
	if denied {
		return nil, errUnauthenticated
	}
	s, err := a.store.SessionByID(sid)
	if privateline.Is(privateline.NotExist, err) || (err == nil && s.UserID != uid) {
		return nil, errUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	return &principal{UserID: uid, SessionID: sid, TokenID: c.ID, Expires: c.ExpiresAt.Time, ViaCookie: viaCookie}, nil
}

func safeMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

// Refresh tokens: base64url(session id || generation || MAC).
const refreshTokenLen = 16 + 8 + 32

func refreshMAC(s *storage.Session, gen uint64) []byte {
	m := hmac.New(sha256.New, s.Key.Bytes())
	m.Write([]byte("privateline/v1/refresh"))
	m.Write(s.ID[:])
	binary.Write(m, binary.BigEndian, gen)
	return m.Sum(nil)
}

func encodeRefresh(s *storage.Session) string {
	b := make([]byte, 0, refreshTokenLen)
	b = append(b, s.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, s.Gen)
	b = append(b, refreshMAC(s, s.Gen)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseRefresh splits a refresh token; its MAC is checked against the
// session by checkRefreshMAC.
func parseRefresh(tok string) (sid storage.ID, gen uint64, mac []byte, ok bool) {
	if strings.ContainsAny(tok, "\r\n") { // base64 decoders skip them
		return sid, 0, nil, false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(b) != refreshTokenLen {
		return sid, 0, nil, false
	}
	copy(sid[:], b[:16])
	return sid, binary.BigEndian.Uint64(b[16:24]), b[24:], true
}

func checkRefreshMAC(s *storage.Session, gen uint64, mac []byte) bool {
	return subtle.ConstantTimeCompare(refreshMAC(s, gen), mac) == 1
}

// csrfToken is the signed double-submit token for a session.
func (a *API) csrfToken(sid storage.ID) string {
	m := hmac.New(sha256.New, a.csrfKey)
	m.Write(sid[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (a *API) csrfOK(r *http.Request, sid storage.ID) bool {
	got := r.Header.Get("X-CSRF-Token")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(a.csrfToken(sid))) == 1
}
