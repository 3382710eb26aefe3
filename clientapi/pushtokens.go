package clientapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/storage"
)

// Push tokens (POST/GET/DELETE /api/push-token): a device registers where
// the push service (package push) reaches it. Tokens are kept
// sealed, per user, at most storage.MaxPushTokens (the oldest is
// forgotten), and go with the account.
//
// Formats, checked strictly:
//
//	ios      the APNs device token in hex, 64 to 200 digits (stored lower-case)
//	android  the FCM registration token: 32 to 1024 of [A-Za-z0-9_:.-]
//	web      the browser's PushSubscription as a JSON string (at most 2048
//	         bytes): {"endpoint": "https://…", "keys": {"p256dh": …,
//	         "auth": …}} with an optional "expirationTime" (null or a number,
//	         dropped); endpoint an https URL of at most 1024 bytes without
//	         credentials or fragment, p256dh the base64url of a 65-byte
//	         uncompressed P-256 point, auth the base64url of 16 bytes. It is
//	         stored in canonical form, {"endpoint","keys":{"auth","p256dh"}}
//	         with unpadded base64url, which is also the form GET answers.

// PushTokenStore is what the push-token routes need from storage.
type PushTokenStore interface {
	AddPushToken(user storage.ID, pt storage.PushToken) (bool, error)
	RemovePushToken(user storage.ID, token string) error
	PushTokens(user storage.ID) ([]storage.PushToken, error)
}

type noPushTokens struct{}

var errNoPushTokens = privateline.E("clientapi", privateline.Unavailable, "push tokens are not available")

func (noPushTokens) AddPushToken(storage.ID, storage.PushToken) (bool, error) {
	return false, errNoPushTokens
}
func (noPushTokens) RemovePushToken(storage.ID, string) error { return errNoPushTokens }
func (noPushTokens) PushTokens(storage.ID) ([]storage.PushToken, error) {
	return nil, errNoPushTokens
}

var (
	apnsTokenRE = regexp.MustCompile(`^(?:[0-9a-fA-F]{2}){32,100}$`)
	fcmTokenRE  = regexp.MustCompile(`^[A-Za-z0-9_:.\-]+$`) // and 32 to 1024 bytes
)

const (
	maxWebSubscription = 2048
	maxWebEndpoint     = 1024
)

// canonicalPushToken checks a token for its platform and returns the form
// it is stored under.
func canonicalPushToken(platform, token string) (string, error) {
	switch platform {
	case "ios":
		if !apnsTokenRE.MatchString(token) {
			return "", invalid(`an ios "token" is the APNs device token in hex (64 to 200 digits)`)
		}
		return strings.ToLower(token), nil
	case "android":
		if len(token) < 32 || len(token) > 1024 || !fcmTokenRE.MatchString(token) {
			return "", invalid(`an android "token" is the FCM registration token (32 to 1024 of A-Z a-z 0-9 _ : . -)`)
		}
		return token, nil
	case "web":
		return canonicalWebSubscription(token)
	}
	return "", invalid(`"platform" must be "ios", "android" or "web"`)
}

func canonicalWebSubscription(s string) (string, error) {
	bad := invalid(`a web "token" is the PushSubscription as a JSON string: {"endpoint":"https://…","keys":{"p256dh":…,"auth":…}}`)
	if len(s) > maxWebSubscription {
		return "", bad
	}
	if err := checkJSONShape([]byte(s)); err != nil {
		return "", bad
	}
	var sub struct {
		Endpoint       string           `json:"endpoint"`
		ExpirationTime *json.RawMessage `json:"expirationTime"`
		Keys           *struct {
			P256dh string `json:"p256dh"`
			Auth   string `json:"auth"`
		} `json:"keys"`
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sub); err != nil || sub.Keys == nil {
		return "", bad
	}
	if sub.ExpirationTime != nil {
		if v := bytes.TrimSpace(*sub.ExpirationTime); !bytes.Equal(v, []byte("null")) {
			var n float64
			if json.Unmarshal(v, &n) != nil {
				return "", bad
			}
		}
	}
	u, err := url.Parse(sub.Endpoint)
	if err != nil || len(sub.Endpoint) > maxWebEndpoint || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" || strings.ContainsAny(sub.Endpoint, " \t\r\n") {
		return "", bad
	}
	p256, err1 := decodeB64URL(sub.Keys.P256dh)
	auth, err2 := decodeB64URL(sub.Keys.Auth)
	if err1 != nil || err2 != nil || len(p256) != 65 || p256[0] != 4 || len(auth) != 16 {
		return "", bad
	}
	out, err := json.Marshal(map[string]any{"endpoint": sub.Endpoint, "keys": map[string]string{
		"auth":   base64.RawURLEncoding.EncodeToString(auth),
		"p256dh": base64.RawURLEncoding.EncodeToString(p256),
	}})
	if err != nil {
		return "", bad
	}
	return string(out), nil
}

func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(strings.TrimRight(s, "="))
}

type pushTokenReq struct {
	Token    string `json:"token"`
	Platform string `json:"platform"`
}

type pushTokenResp struct {
	Token       string    `json:"token"`
	Platform    string    `json:"platform"`
	CreatedAt   time.Time `json:"created_at"`
	RefreshedAt time.Time `json:"refreshed_at"`
}

func (a *API) postPushToken(w http.ResponseWriter, r *http.Request, c *call) error {
	var req pushTokenReq
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	tok, err := canonicalPushToken(req.Platform, req.Token)
	if err != nil {
		return err
	}
	if req.Platform == "web" && a.webPush != nil {
		var sub struct{ Endpoint string }
		if err := json.Unmarshal([]byte(tok), &sub); err != nil {
			return err
		}
		if err := a.webPush.CheckEndpoint(sub.Endpoint); err != nil {
			return invalid("this server does not send Web Push to that push service: " + err.Error())
		}
	}
	pt := storage.PushToken{Token: tok, Platform: req.Platform, CreatedAt: a.now().UTC()}
	created, err := a.push.AddPushToken(c.auth.UserID, pt)
	if err != nil {
		return goneIsUnauthenticated(err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	all, err := a.push.PushTokens(c.auth.UserID)
	if err != nil {
		return err
	}
	for _, t := range all {
		if t.Token == tok {
			pt = t
		}
	}
	writeJSON(w, status, pushTokenResp(pt))
	return nil
}

// getVAPIDPublicKey serves the Web Push application server key, so the web
// client needs no build-time setting. A server without Web Push answers
// 200 {"available": false}: that is a setting, not a failure, and a 404
// would be logged as an error by every browser that asks.
func (a *API) getVAPIDPublicKey(w http.ResponseWriter, r *http.Request, c *call) error {
	type vapidResp struct {
		Available bool   `json:"available"`
		PublicKey string `json:"public_key,omitempty"`
	}
	if a.webPush == nil {
		writeJSON(w, http.StatusOK, vapidResp{})
		return nil
	}
	writeJSON(w, http.StatusOK, vapidResp{Available: true, PublicKey: a.webPush.PublicKey()})
	return nil
}

func (a *API) getPushTokens(w http.ResponseWriter, r *http.Request, c *call) error {
	all, err := a.push.PushTokens(c.auth.UserID)
	if err != nil {
		return err
	}
	out := make([]pushTokenResp, 0, len(all))
	for _, t := range all {
		out = append(out, pushTokenResp(t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

type pushTokenDeleteReq struct {
	Token string `json:"token"`
}

// deletePushToken removes one of the caller's tokens; a token the caller
// does not have (another user's included) is 404.
func (a *API) deletePushToken(w http.ResponseWriter, r *http.Request, c *call) error {
	var req pushTokenDeleteReq
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	tok := req.Token
	switch {
	case tok == "" || len(tok) > maxWebSubscription:
		return invalid(`"token" must be a push token`)
	case strings.HasPrefix(tok, "{"):
		var err error
		if tok, err = canonicalWebSubscription(tok); err != nil {
			return err
		}
	}
	err := a.push.RemovePushToken(c.auth.UserID, tok)
	if low := strings.ToLower(tok); privateline.Is(privateline.NotExist, err) && low != tok && apnsTokenRE.MatchString(tok) {
		err = a.push.RemovePushToken(c.auth.UserID, low) // ios tokens are stored lower-case
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
