package clientapi

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/storage"
)

type accountResp struct {
	Address              privateline.Address  `json:"address"`
	Username             privateline.Username `json:"username"`
	Email                string               `json:"email,omitempty"`
	CreatedAt            time.Time            `json:"created_at"`
	DefaultRetentionDays int                  `json:"default_retention_days"` // deprecated: whole days, rounded up
	DefaultRetentionSecs int64                `json:"default_retention_seconds"`
	KeyBundle            json.RawMessage      `json:"key_bundle"`
	Sessions             int                  `json:"sessions"`
}

func (a *API) account(u *storage.User, sessions int) accountResp {
	return accountResp{
		Address:              privateline.MakeAddress(u.Username, a.cfg.ServerName),
		Username:             u.Username,
		Email:                u.Email,
		CreatedAt:            u.CreatedAt,
		DefaultRetentionDays: int((u.DefaultRetention() + 24*time.Hour - time.Second) / (24 * time.Hour)),
		DefaultRetentionSecs: int64(u.DefaultRetention() / time.Second),
		KeyBundle:            u.KeyBundle,
		Sessions:             sessions,
	}
}

// goneIsUnauthenticated maps "no such user" (the account was deleted by a
// concurrent request) to 401, as for any request of a deleted account.
func goneIsUnauthenticated(err error) error {
	if privateline.Is(privateline.NotExist, err) {
		return errUnauthenticated
	}
	return err
}

// caller loads the authenticated user; a deleted account is 401.
func (a *API) caller(c *call) (*storage.User, error) {
	u, err := a.store.UserByID(c.auth.UserID)
	return u, goneIsUnauthenticated(err)
}

func (a *API) getAccount(w http.ResponseWriter, r *http.Request, c *call) error {
	u, err := a.caller(c)
	if err != nil {
		return err
	}
	n, err := a.sessionCount(u.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.account(u, n))
	return nil
}

func (a *API) sessionCount(id storage.ID) (int, error) {
	ids, err := a.store.UserSessions(id)
	return len(ids), err
}

type settingsReq struct {
	Email                *string         `json:"email"`
	DefaultRetentionDays *int            `json:"default_retention_days"`
	DefaultRetentionSecs *int64          `json:"default_retention_seconds"`
	Password             *passwordChange `json:"password"`
}

// passwordChange replaces the auth key and the wrapped private keys in one
// step; the current auth key proves the caller knows the old password.
type passwordChange struct {
	CurrentAuthKey      string `json:"current_auth_key"`
	AuthKey             string `json:"auth_key"`
	EncryptedPrivateKey string `json:"encrypted_private_key"`
	Salt                string `json:"salt"`
	Nonce               string `json:"nonce"`
}

func (a *API) putAccountSettings(w http.ResponseWriter, r *http.Request, c *call) error {
	var req settingsReq
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	if req.Email == nil && req.DefaultRetentionDays == nil && req.DefaultRetentionSecs == nil && req.Password == nil {
		return invalid("nothing to change: give email, default_retention_seconds or password")
	}
	if req.DefaultRetentionDays != nil && req.DefaultRetentionSecs != nil {
		return invalid("give default_retention_seconds or the older default_retention_days, not both")
	}
	u, err := a.caller(c)
	if err != nil {
		return err
	}
	if req.Email != nil {
		if u.Email, err = checkEmail(*req.Email); err != nil {
			return err
		}
	}
	if d := req.DefaultRetentionDays; d != nil {
		if *d != 0 && (*d < 1 || *d > 365) {
			return invalid("default_retention_days must be 1 to 365, or 0 to keep messages until deleted")
		}
		u.DefaultRetentionDays, u.DefaultRetentionSeconds = 0, int64(*d)*24*60*60
	}
	if s := req.DefaultRetentionSecs; s != nil {
		if err := checkRetention("default_retention_seconds", *s); err != nil {
			return err
		}
		u.DefaultRetentionDays, u.DefaultRetentionSeconds = 0, *s
	}
	changePassword := req.Password != nil
	if changePassword {
		if err := a.applyPasswordChange(r, u, req.Password); err != nil {
			return err
		}
	}
	if err := a.store.UpdateUser(u, changePassword, c.auth.SessionID); err != nil {
		return goneIsUnauthenticated(err)
	}
	if changePassword {
		a.hub.sessionsEnded(u.ID, c.auth.SessionID)
		a.log.Info("password changed; other sessions ended", "user_id", u.ID.String())
	}
	n, err := a.sessionCount(u.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.account(u, n))
	return nil
}

func (a *API) applyPasswordChange(r *http.Request, u *storage.User, p *passwordChange) error {
	current, err := decodeB64("password.current_auth_key", p.CurrentAuthKey, authKeyLen, authKeyLen)
	if err != nil {
		return err
	}
	authKey, err := decodeB64("password.auth_key", p.AuthKey, authKeyLen, authKeyLen)
	if err != nil {
		return err
	}
	wrapped, err := decodeB64("password.encrypted_private_key", p.EncryptedPrivateKey, 1, maxWrappedKeys)
	if err != nil {
		return err
	}
	salt, err := decodeB64("password.salt", p.Salt, saltLen, saltLen)
	if err != nil {
		return err
	}
	nonce, err := decodeB64("password.nonce", p.Nonce, nonceLen, nonceLen)
	if err != nil {
		return err
	}
	if err := a.verifyCurrent(r, u, current); err != nil {
		return err
	}
	newSalt := make([]byte, 16)
	rand.Read(newSalt)
	hash, err := a.hashAuthKey(r.Context(), authKey, newSalt)
	if err != nil {
		return err
	}
	u.AuthSalt, u.AuthHash = newSalt, hash
	u.Salt, u.EncryptedPrivateKey, u.Nonce = salt, wrapped, nonce
	return nil
}

// verifyCurrent checks a re-entered auth key, rate-limited per username.
func (a *API) verifyCurrent(r *http.Request, u *storage.User, authKey []byte) error {
	if err := a.limitName(u.Username); err != nil {
		return err
	}
	ok, err := a.checkAuthKey(r.Context(), u, authKey)
	if err != nil {
		return err
	}
	if !ok {
		return errWrongPassword
	}
	return nil
}

type deleteAccountReq struct {
	AuthKey string `json:"auth_key"`
}

func (a *API) deleteAccount(w http.ResponseWriter, r *http.Request, c *call) error {
	var req deleteAccountReq
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	authKey, err := decodeB64("auth_key", req.AuthKey, authKeyLen, authKeyLen)
	if err != nil {
		return err
	}
	u, err := a.caller(c)
	if err != nil {
		return err
	}
	if err := a.verifyCurrent(r, u, authKey); err != nil {
		return err
	}
	a.leaveRemoteGroups(r.Context(), u) // fedgroups.go
	if err := a.dir.DeleteUser(u.ID); err != nil {
		return goneIsUnauthenticated(err)
	}
	a.hub.sessionsEnded(u.ID, storage.ID{})
	a.log.Info("account deleted", "user_id", u.ID.String())
	a.clearSessionCookies(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
