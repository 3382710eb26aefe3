package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// KDFParams are an account's password-derivation parameters (POST
// /api/prelogin). For an unknown username the server answers convincing
// fakes, so they do not show whether the account exists.
type KDFParams struct {
	KDF        string
	Iterations int
	Salt       []byte
}

// Prelogin fetches the KDF parameters of username.
func (c *Client) Prelogin(ctx context.Context, username string) (*KDFParams, error) {
	const op = "client.Prelogin"
	name, err := privateline.ParseUsername(username)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	body, err := jsonBody(op, map[string]string{"username": string(name)})
	if err != nil {
		return nil, err
	}
	r, err := c.do(ctx, op, &request{method: http.MethodPost, path: "/api/prelogin", body: body})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, err
	}
	var p struct {
		KDF        string `json:"kdf"`
		Iterations int    `json:"iterations"`
		Salt       []byte `json:"salt"`
	}
	if err := decode(op, r, &p); err != nil {
		return nil, err
	}
	return &KDFParams{KDF: p.KDF, Iterations: p.Iterations, Salt: p.Salt}, nil
}

// RegisterParams describe a new account.
type RegisterParams struct {
	Username string
	Password string
	Email    string // optional
	// Keys, if set, are the account's keys, made beforehand for the
	// account's address; nil means generate them (RSA-4096 takes a
	// second or so).
	Keys *e2ee.PrivateKeys
}

// Registered is a new account. Login logs it in with the keys derived
// for the registration, without running the password KDF again.
type Registered struct {
	Address   privateline.Address
	Username  privateline.Username
	Email     string
	CreatedAt time.Time
	Bundle    *e2ee.KeyBundle

	c      *Client
	pk     *e2ee.PasswordKeys
	params KDFParams
}

const redactedRegistered = "client.Registered{[REDACTED]}"

// String, GoString, Format and LogValue keep the derived keys out of
// every printout.
func (r *Registered) String() string             { return redactedRegistered }
func (r *Registered) GoString() string           { return redactedRegistered }
func (r *Registered) Format(f fmt.State, _ rune) { io.WriteString(f, redactedRegistered) }
func (r *Registered) LogValue() slog.Value       { return slog.StringValue(redactedRegistered) }

// Register creates an account (POST /api/register): a fresh 16-byte salt,
// the auth key and KEK derived from the password (PBKDF2-HMAC-SHA256,
// 600,000 iterations, HKDF), the identity and encryption keys (p.Keys or
// new ones), the private keys wrapped under the KEK, and the signed key
// bundle for username@server. A taken username is Exist. Registration
// does not log in: call Login on the result.
func (c *Client) Register(ctx context.Context, p RegisterParams) (*Registered, error) {
	const op = "client.Register"
	name, err := privateline.ParseUsername(p.Username)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	server, err := c.ServerName(ctx)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	address := privateline.MakeAddress(name, server)
	salt := make([]byte, e2ee.SaltSize)
	rand.Read(salt)
	params := KDFParams{KDF: e2ee.KDFName, Iterations: e2ee.Iterations, Salt: salt}
	pk, err := e2ee.DerivePasswordKeys(p.Password, params.KDF, params.Iterations, salt)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	keys := p.Keys
	if keys == nil {
		if keys, err = e2ee.GenerateKeys(address); err != nil {
			return nil, privateline.E(op, err)
		}
	} else if keys.Address() != address {
		return nil, privateline.E(op, privateline.Invalid, "the keys are for "+string(keys.Address())+", not "+string(address))
	}
	bundle, err := e2ee.NewKeyBundle(keys, c.now())
	if err != nil {
		return nil, privateline.E(op, err)
	}
	w, err := e2ee.WrapPrivateKeys(nil, pk.KEK, keys)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	req := map[string]any{
		"username":              string(name),
		"auth_key":              b64.EncodeToString(pk.AuthKey.Bytes()),
		"encrypted_private_key": b64.EncodeToString(w.Ciphertext),
		"salt":                  b64.EncodeToString(salt),
		"nonce":                 b64.EncodeToString(w.Nonce),
		"key_bundle":            json.RawMessage(bundle.JSON()),
	}
	if p.Email != "" {
		req["email"] = p.Email
	}
	body, err := jsonBody(op, req)
	if err != nil {
		return nil, err
	}
	r, err := c.do(ctx, op, &request{method: http.MethodPost, path: "/api/register", body: body})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusCreated); err != nil {
		if r.status == http.StatusConflict {
			return nil, privateline.E(op, privateline.Exist, "the username "+string(name)+" is taken", err)
		}
		return nil, err
	}
	var rr struct {
		keyMaterial
		Username  privateline.Username `json:"username"`
		Email     string               `json:"email"`
		CreatedAt time.Time            `json:"created_at"`
	}
	if err := decode(op, r, &rr); err != nil {
		return nil, err
	}
	if rr.Address != address || rr.Username != name {
		return nil, privateline.E(op, privateline.Invalid, "the server registered another address: "+string(rr.Address))
	}
	if sb, err := e2ee.ParseKeyBundle(rr.KeyBundle); err != nil || !sb.Equal(bundle) {
		return nil, privateline.E(op, privateline.Invalid, "the server stored another key bundle than the one sent")
	}
	return &Registered{Address: address, Username: name, Email: rr.Email, CreatedAt: rr.CreatedAt, Bundle: bundle, c: c, pk: pk, params: params}, nil
}

// Login logs the new account in (see Client.Login). Each call starts
// another session.
func (r *Registered) Login(ctx context.Context) (*Session, error) {
	return r.c.login(ctx, "client.Registered.Login", r.Username, r.pk, r.params)
}

// keyMaterial is the account part of register and login answers.
type keyMaterial struct {
	Address             privateline.Address `json:"address"`
	KDF                 string              `json:"kdf"`
	Iterations          int                 `json:"iterations"`
	Salt                []byte              `json:"salt"`
	EncryptedPrivateKey []byte              `json:"encrypted_private_key"`
	Nonce               []byte              `json:"nonce"`
	KeyBundle           json.RawMessage     `json:"key_bundle"`
}

// Login logs in with a username and password: prelogin for the KDF
// parameters, the auth key and KEK derived from the password, POST
// /api/login, and the private keys the server returns unwrapped under the
// KEK and checked against the account's key bundle, so a new device gets
// the same keys. A wrong username or password is Unauthenticated.
func (c *Client) Login(ctx context.Context, username, password string) (*Session, error) {
	const op = "client.Login"
	name, err := privateline.ParseUsername(username)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	params, err := c.Prelogin(ctx, string(name))
	if err != nil {
		return nil, privateline.E(op, err)
	}
	pk, err := e2ee.DerivePasswordKeys(password, params.KDF, params.Iterations, params.Salt)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return c.login(ctx, op, name, pk, *params)
}

func (c *Client) login(ctx context.Context, op string, name privateline.Username, pk *e2ee.PasswordKeys, params KDFParams) (*Session, error) {
	body, err := jsonBody(op, map[string]string{"username": string(name), "auth_key": b64.EncodeToString(pk.AuthKey.Bytes())})
	if err != nil {
		return nil, err
	}
	sent := c.now()
	r, err := c.do(ctx, op, &request{method: http.MethodPost, path: "/api/login", body: body})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		if r.status == http.StatusUnauthorized {
			return nil, privateline.E(op, privateline.Unauthenticated, "wrong username or password", err)
		}
		return nil, err
	}
	var lr struct {
		tokenResp
		keyMaterial
	}
	if err := decode(op, r, &lr); err != nil {
		return nil, err
	}
	t, err := lr.tokens(op, sent)
	if err != nil {
		return nil, err
	}
	u, server, err := lr.Address.Split()
	if err != nil || u != name {
		return nil, privateline.E(op, privateline.Invalid, "the server answered for another account: "+string(lr.Address))
	}
	if err := c.adoptServer(op, server); err != nil {
		return nil, err
	}
	if lr.KDF != params.KDF || lr.Iterations != params.Iterations || !bytes.Equal(lr.Salt, params.Salt) {
		return nil, privateline.E(op, privateline.Invalid, "the server's KDF parameters changed during the login; try again")
	}
	b, err := e2ee.ParseKeyBundle(lr.KeyBundle)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if b.Address != lr.Address {
		return nil, privateline.E(op, privateline.Invalid, "the server's key bundle is of another account")
	}
	w := WrappedKeys{KDF: lr.KDF, Iterations: lr.Iterations, Salt: lr.Salt, Nonce: lr.Nonce, EncryptedPrivateKey: lr.EncryptedPrivateKey}
	keys, err := unwrapAccountKeys(op, pk.KEK, lr.Address, w, b)
	if err != nil {
		return nil, err
	}
	s := c.newSession(lr.Address, t, w, b)
	s.keys, s.kek = keys, pk.KEK
	return s, nil
}
