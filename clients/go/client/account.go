package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// Account is the caller's account (GET /api/account).
type Account struct {
	Address              privateline.Address
	Username             privateline.Username
	Email                string // "" for none
	CreatedAt            time.Time
	DefaultRetentionDays int // 0: keep messages until deleted
	Bundle               *e2ee.KeyBundle
	Sessions             int // live sessions, this one included
}

type accountResp struct {
	Address              privateline.Address  `json:"address"`
	Username             privateline.Username `json:"username"`
	Email                string               `json:"email"`
	CreatedAt            time.Time            `json:"created_at"`
	DefaultRetentionDays int                  `json:"default_retention_days"`
	KeyBundle            json.RawMessage      `json:"key_bundle"`
	Sessions             int                  `json:"sessions"`
}

func (s *Session) readAccount(op string, r *response) (*Account, error) {
	var a accountResp
	if err := decode(op, r, &a); err != nil {
		return nil, err
	}
	if a.Address != s.address {
		return nil, privateline.E(op, privateline.Invalid, "the server answered with another account: "+string(a.Address))
	}
	b, err := e2ee.ParseKeyBundle(a.KeyBundle)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return &Account{Address: a.Address, Username: a.Username, Email: a.Email, CreatedAt: a.CreatedAt,
		DefaultRetentionDays: a.DefaultRetentionDays, Bundle: b, Sessions: a.Sessions}, nil
}

// Account fetches the caller's account.
func (s *Session) Account(ctx context.Context) (*Account, error) {
	const op = "client.Session.Account"
	r, err := s.do(ctx, op, &request{method: http.MethodGet, path: "/api/account"})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, err
	}
	return s.readAccount(op, r)
}

// Settings are account settings to change; nil fields stay as they are.
type Settings struct {
	Email                *string // "" removes the address
	DefaultRetentionDays *int    // 0 to 365; 0 keeps messages until deleted
}

// UpdateSettings changes the given settings (PUT /api/account-settings)
// and returns the account as it now is.
func (s *Session) UpdateSettings(ctx context.Context, set Settings) (*Account, error) {
	const op = "client.Session.UpdateSettings"
	req := map[string]any{}
	if set.Email != nil {
		req["email"] = *set.Email
	}
	if set.DefaultRetentionDays != nil {
		req["default_retention_days"] = *set.DefaultRetentionDays
	}
	if len(req) == 0 {
		return nil, privateline.E(op, privateline.Invalid, "no setting to change")
	}
	return s.putSettings(ctx, op, req)
}

func (s *Session) putSettings(ctx context.Context, op string, req map[string]any) (*Account, error) {
	body, err := jsonBody(op, req)
	if err != nil {
		return nil, err
	}
	r, err := s.do(ctx, op, &request{method: http.MethodPut, path: "/api/account-settings", body: body})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, wrongPassword(op, err)
	}
	return s.readAccount(op, r)
}

// wrongPassword gives 403 wrong_password a message about the password.
func wrongPassword(op string, err error) error {
	if CodeOf(err) == CodeWrongPassword {
		return privateline.E(op, privateline.Forbidden, "the current password is wrong", err)
	}
	return err
}

// currentAuthKey derives the auth key of password with the session's KDF
// parameters, for the requests that re-check the password. A password
// whose KEK does not unwrap the session's wrapped keys is refused here,
// before anything is sent (the server checks the auth key as well).
func (s *Session) currentAuthKey(op, password string) (string, error) {
	s.mu.Lock()
	w, b := s.wrapped, s.bundle
	s.mu.Unlock()
	pk, err := e2ee.DerivePasswordKeys(password, w.KDF, w.Iterations, w.Salt)
	if err != nil {
		return "", privateline.E(op, err)
	}
	if _, err := unwrapAccountKeys(op, pk.KEK, s.address, w, b); err != nil {
		if privateline.Is(privateline.Unauthenticated, err) {
			return "", privateline.E(op, privateline.Forbidden, "the current password is wrong", err)
		}
		return "", err
	}
	return b64.EncodeToString(pk.AuthKey.Bytes()), nil
}

// ChangePassword replaces the password (PUT /api/account-settings with
// "password"): new key material is derived from next with a new salt, the
// private keys are wrapped again under the new KEK, and current is proved
// by its auth key (a wrong one is Forbidden). The server ends every other
// session of the account. The pinned-keys blob, sealed under the KEK, is
// sealed again under the new one; if that fails after the password
// changed, the password change stands and the error says so. The session
// must be unlocked.
func (s *Session) ChangePassword(ctx context.Context, current, next string) (*Account, error) {
	const op = "client.Session.ChangePassword"
	keys, oldKEK, err := s.unlocked(op)
	if err != nil {
		return nil, err
	}
	curAuth, err := s.currentAuthKey(op, current)
	if err != nil {
		return nil, err
	}
	// Read the pins under the old KEK before it goes. A blob that does
	// not open now has nothing to carry over.
	pins, err := s.GetPins(ctx)
	if e2ee.ReasonOf(err) == e2ee.ErrDecrypt {
		pins, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	salt := make([]byte, e2ee.SaltSize)
	rand.Read(salt)
	pk, err := e2ee.DerivePasswordKeys(next, e2ee.KDFName, e2ee.Iterations, salt)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	w, err := e2ee.WrapPrivateKeys(nil, pk.KEK, keys)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	a, err := s.putSettings(ctx, op, map[string]any{"password": map[string]string{
		"current_auth_key":      curAuth,
		"auth_key":              b64.EncodeToString(pk.AuthKey.Bytes()),
		"encrypted_private_key": b64.EncodeToString(w.Ciphertext),
		"salt":                  b64.EncodeToString(salt),
		"nonce":                 b64.EncodeToString(w.Nonce),
	}})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.kek = pk.KEK
	s.wrapped = WrappedKeys{KDF: e2ee.KDFName, Iterations: e2ee.Iterations, Salt: salt, Nonce: w.Nonce, EncryptedPrivateKey: w.Ciphertext}
	s.mu.Unlock()
	s.changed()
	if pins != nil && pins.Version > 0 {
		if err := s.resealPins(ctx, op, pins, oldKEK); err != nil {
			return a, privateline.E(op, "the password was changed, but the pinned keys could not be sealed under it", err)
		}
	}
	return a, nil
}

// DeleteAccount erases the account and everything of it on the server
// (DELETE /api/account), after proving the password (a wrong one is
// Forbidden). The session ends.
func (s *Session) DeleteAccount(ctx context.Context, password string) error {
	const op = "client.Session.DeleteAccount"
	auth, err := s.currentAuthKey(op, password)
	if err != nil {
		return err
	}
	body, err := jsonBody(op, map[string]string{"auth_key": auth})
	if err != nil {
		return err
	}
	r, err := s.do(ctx, op, &request{method: http.MethodDelete, path: "/api/account", body: body})
	if err != nil {
		return err
	}
	if err := expect(op, r, http.StatusNoContent); err != nil {
		return wrongPassword(op, err)
	}
	s.end()
	return nil
}
