package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/serverkey"
)

// fast are limits for tests; the handshake timeout is only a failsafe.
var fast = Limits{HandshakeTimeout: 5 * time.Second, IdleTimeout: 10 * time.Second}

func newKey(t *testing.T) *serverkey.PrivateKey {
	t.Helper()
	k, err := serverkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newID(t *testing.T, name privateline.ServerName, k *serverkey.PrivateKey, changes ...KeyChange) *Identity {
	t.Helper()
	id, err := NewIdentity(name, k, changes...)
	if err != nil {
		t.Fatalf("NewIdentity(%s): %v", name, err)
	}
	return id
}

func newPolicy(t *testing.T, c PolicyConfig) *Policy {
	t.Helper()
	p, err := NewPolicy(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// configured trusts exactly the given names and keys.
func configured(t *testing.T, peers map[privateline.ServerName]ed25519.PublicKey) *Policy {
	return newPolicy(t, PolicyConfig{Peers: peers, Logger: slog.New(slog.DiscardHandler)})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// server is a listener that answers every exchange with "echo:" and the
// request, and reports the peers it accepted.
type server struct {
	l        *Listener
	accepted chan *Conn
	wg       sync.WaitGroup
}

func serve(t *testing.T, id *Identity, trust Trust, lim Limits) *server {
	t.Helper()
	l, err := Listen("127.0.0.1:0", id, trust, lim)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{l: l, accepted: make(chan *Conn, 16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept(context.Background())
			if err != nil {
				return
			}
			s.accepted <- c
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				for {
					st, err := c.AcceptStream(context.Background())
					if err != nil {
						return
					}
					req, err := st.Receive()
					if err != nil {
						continue
					}
					st.Send(append([]byte("echo:"), req...))
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		s.wg.Wait()
	})
	return s
}

func (s *server) addr() string { return s.l.Addr().String() }

// exchange dials and makes one exchange; it returns the connection (open)
// and the first error.
func exchange(t *testing.T, name privateline.ServerName, addr string, id *Identity, trust Trust, req string) (*Conn, string, error) {
	t.Helper()
	ctx := testCtx(t)
	c, err := Dial(ctx, name, addr, id, trust, fast)
	if err != nil {
		return nil, "", err
	}
	t.Cleanup(func() { c.Close() })
	st, err := c.OpenStream(ctx)
	if err != nil {
		return c, "", err
	}
	st.SetDeadline(time.Now().Add(5 * time.Second))
	if err := st.Send([]byte(req)); err != nil {
		return c, "", err
	}
	resp, err := st.Receive()
	return c, string(resp), err
}

// logBuf collects log output from concurrent handshakes.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func wantErr(t *testing.T, err error, what string, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("%s: %v, want an error mentioning %q", what, err, s)
		}
	}
}

func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded)
}

// forgeIdentity makes a certificate carrying statements NewIdentity would
// refuse, as an attacker could.
func forgeIdentity(t *testing.T, name privateline.ServerName, k *serverkey.PrivateKey, changes ...KeyChange) *Identity {
	t.Helper()
	id := newID(t, name, k)
	tmpl := *id.cert.Leaf
	for _, c := range changes {
		tmpl.URIs = append(tmpl.URIs, &url.URL{Scheme: KeyChangeScheme, Opaque: b64url.EncodeToString(c.Marshal())})
	}
	cert, err := k.TLSCertificate(&tmpl)
	if err != nil {
		t.Fatal(err)
	}
	id.cert = cert
	return id
}
