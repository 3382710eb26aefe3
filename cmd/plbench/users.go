package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// user is a registered bench user with an access token.
type user struct {
	keys   *e2ee.PrivateKeys
	bundle *e2ee.KeyBundle
	access string
}

// rsaKeys returns n RSA-4096 keys (PKCS#8), from the cache file when it has
// enough, generating the rest on every CPU.
func rsaKeys(cache string, n int) ([][]byte, error) {
	var keys [][]byte
	if b, err := os.ReadFile(cache); err == nil {
		json.Unmarshal(b, &keys)
	}
	if len(keys) >= n {
		return keys[:n], nil
	}
	fmt.Fprintf(os.Stderr, "generating %d RSA-4096 keys (cached in %s)…\n", n-len(keys), cache)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for range n - len(keys) {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			k, err := rsa.GenerateKey(rand.Reader, e2ee.RSABits)
			var der []byte
			if err == nil {
				der, err = x509.MarshalPKCS8PrivateKey(k)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = err
				return
			}
			keys = append(keys, der)
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := os.MkdirAll(filepath.Dir(cache), 0o700); err == nil {
		if b, err := json.Marshal(keys); err == nil {
			os.WriteFile(cache, b, 0o600)
		}
	}
	return keys, nil
}

// registerUsers registers n users with the SDK and logs each in.
func registerUsers(ctx context.Context, base string, rsaDER [][]byte) ([]*user, error) {
	c, err := client.New(client.Options{BaseURL: base})
	if err != nil {
		return nil, err
	}
	server, err := c.ServerName(ctx)
	if err != nil {
		return nil, err
	}
	users := make([]*user, len(rsaDER))
	errs := make(chan error, len(rsaDER))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	run := make([]byte, 4)
	rand.Read(run)
	for i := range rsaDER {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("bench%x%d", run, i)
			addr := privateline.MakeAddress(privateline.Username(name), server)
			seed := make([]byte, ed25519.SeedSize)
			rand.Read(seed)
			keys, err := e2ee.NewPrivateKeys(addr, seed, rsaDER[i])
			if err != nil {
				errs <- err
				return
			}
			password := base64.RawStdEncoding.EncodeToString(seed)
			reg, err := c.Register(ctx, client.RegisterParams{Username: name, Password: password, Keys: keys})
			if err != nil {
				errs <- err
				return
			}
			access, err := login(ctx, c, base, name, password)
			if err != nil {
				errs <- err
				return
			}
			users[i] = &user{keys: keys, bundle: reg.Bundle, access: access}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return users, nil
}

// login logs in over the raw API to get an access token for raw requests.
func login(ctx context.Context, c *client.Client, base, name, password string) (string, error) {
	p, err := c.Prelogin(ctx, name)
	if err != nil {
		return "", err
	}
	pk, err := e2ee.DerivePasswordKeys(password, p.KDF, p.Iterations, p.Salt)
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(map[string]string{"username": name, "auth_key": base64.StdEncoding.EncodeToString(pk.AuthKey.Bytes())})
	resp, err := http.Post(base+"/api/login", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var lr struct {
		Access string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&lr); err != nil || resp.StatusCode != http.StatusOK || lr.Access == "" {
		return "", fmt.Errorf("login %s: status %d %v", name, resp.StatusCode, err)
	}
	return lr.Access, nil
}
