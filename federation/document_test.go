package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/federation/transport"
)

func TestDocument(t *testing.T) {
	a := newNode(t, nameA)
	svc, err := New(Config{Name: nameA, Key: a.key, ListenAddr: "127.0.0.1:0", Log: quiet}, a.st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Document(); err == nil {
		t.Fatal("a document before Start without an advertised address")
	}
	a.start(t, nil, nil)
	raw, err := a.svc.Document()
	if err != nil {
		t.Fatal(err)
	}
	if err := cjson.Check(raw); err != nil {
		t.Fatalf("not canonical: %v", err)
	}
	d, err := VerifyDocument(raw, nameA, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The signature, checked independently of VerifyDocument.
	v, _ := cjson.Parse(raw)
	m := v.(map[string]any)
	sig, _ := std64.DecodeString(m["signature"].(string))
	delete(m, "signature")
	unsigned, _ := cjson.Marshal(m)
	if !ed25519.Verify(a.key.Public(), append([]byte("privateline/v1/federation-server\x00"), unsigned...), sig) {
		t.Fatal("the signature is not over the federation-server label and the document without its signature")
	}
	if d.Server != nameA || d.Federation != a.svc.Addr() || !d.Key.Equal(a.key.Public()) {
		t.Fatalf("document %+v", d)
	}
	if _, err := VerifyDocument(raw, nameA, a.key.Public()); err != nil {
		t.Fatalf("with the known key: %v", err)
	}
	if _, err := VerifyDocument(raw, nameB, nil); err == nil {
		t.Fatal("accepted for another name")
	}
	if _, err := VerifyDocument(raw, nameA, newKey(t).Public()); err == nil {
		t.Fatal("accepted a key other than the known one without key changes")
	}
	tampered := bytes.Replace(raw, []byte(a.svc.Addr()), []byte("127.0.0.1:1"), 1)
	if _, err := VerifyDocument(tampered, nameA, nil); err == nil {
		t.Fatal("accepted a tampered document")
	}

	// Advertised address; a key reached from the known one by a key change.
	old := newKey(t)
	kc, err := transport.NewKeyChange(nameC, old, a.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	var chg any
	chg, _ = cjson.Parse(kc.Marshal())
	body := map[string]any{"created_at": int64(1), "federation": "c.test:8448", "key": std64.EncodeToString(a.key.Public()),
		"key_changes": []any{chg}, "server": string(nameC), "v": int64(1)}
	in, _ := documentInput(body)
	body["signature"] = std64.EncodeToString(a.key.Sign(in))
	docC, _ := cjson.Marshal(body)
	if _, err := VerifyDocument(docC, nameC, old.Public()); err != nil {
		t.Fatalf("a key change from the known key: %v", err)
	}
	if _, err := VerifyDocument(docC, nameC, newKey(t).Public()); err == nil {
		t.Fatal("a key change from another key than the known one")
	}

	c := newNode(t, nameC)
	c.start(t, nil, func(cfg *Config) { cfg.AdvertiseAddr = "c.test:8448" })
	raw1, _ := c.svc.Document()
	raw2, _ := c.svc.Document()
	d1, err := VerifyDocument(raw1, nameC, c.key.Public())
	if err != nil || d1.Federation != "c.test:8448" {
		t.Fatalf("advertised document %+v, %v", d1, err)
	}
	if d2, _ := VerifyDocument(raw2, nameC, nil); d2.CreatedAt.Before(d1.CreatedAt) {
		t.Fatal("created_at decreased")
	}
}

// Without a configured address the sender fetches the destination's
// server document (http for a loopback name) and pins its key on first
// contact.
func TestAddressFromDocument(t *testing.T) {
	var doc atomic.Value
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != DocumentPath {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc.Load().([]byte))
	}))
	defer hs.Close()
	nameH := privateline.ServerName(hs.Listener.Addr().(*net.TCPAddr).String()) // 127.0.0.1:port

	a, b := newNode(t, nameA, "alice"), newNode(t, nameH, "bob")
	a.start(t, nil, func(c *Config) { c.HTTPClient = hs.Client() }) // no peers: pin on first contact
	b.start(t, []Peer{{Name: nameA, Key: a.key.Public()}}, nil)
	raw, err := b.svc.Document()
	if err != nil {
		t.Fatal(err)
	}
	doc.Store(raw)

	ids := queueTo(t, a, "alice", nameH, "bob", 2)
	waitFor(t, "delivery", func() bool { return a.st.depth(nameH) == 0 })
	if got := mailIDs(b.st); !slices.Equal(got, ids) {
		t.Fatalf("stored %v, want %v", got, ids)
	}
	if pin, _ := a.st.PeerPin(nameH); !pin.Equal(b.key.Public()) {
		t.Fatal("A did not pin B's key on first contact")
	}
	if got := documentURL("chat.example.org"); got != "https://chat.example.org"+DocumentPath {
		t.Fatalf("documentURL = %s", got)
	}
	if got := documentURL("localhost:8081"); got != "http://localhost:8081"+DocumentPath {
		t.Fatalf("documentURL = %s", got)
	}
}

// Close stops every goroutine the services started.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		a, b := newNode(t, nameA, "alice"), newNode(t, nameB, "bob")
		pair(t, a, b, nil, nil)
		queueTo(t, a, "alice", nameB, "bob", 3)
		queueTo(t, b, "bob", nameA, "alice", 3)
		queueTo(t, a, "alice", nameC, "carol", 1) // an unreachable destination: a sender in backoff
		waitFor(t, "delivery", func() bool { return a.st.depth(nameB) == 0 && b.st.depth(nameA) == 0 })
		a.svc.Close()
		b.svc.Close()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A name that leads to no server (DNS: no such host; or the host has no
// server document) is ErrUnknownServer; a failure that may pass is not.
func TestUnknownServer(t *testing.T) {
	status := atomic.Int64{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer hs.Close()
	nameH := privateline.ServerName(hs.Listener.Addr().(*net.TCPAddr).String()) // 127.0.0.1:port, http
	dnsErr := map[string]error{
		"typo.example":  &net.DNSError{Err: "no such host", Name: "typo.example", IsNotFound: true},
		"flaky.example": &net.DNSError{Err: "server misbehaving", Name: "flaky.example", IsTemporary: true},
		"slow.example":  &net.DNSError{Err: "i/o timeout", Name: "slow.example", IsTimeout: true},
	}
	tr := hs.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if err, ok := dnsErr[host]; ok {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	a := newNode(t, nameA, "alice")
	a.start(t, nil, func(c *Config) { c.HTTPClient = &http.Client{Transport: tr, Timeout: 10 * time.Second} })
	ctx := context.Background()
	for _, c := range []struct {
		name    privateline.ServerName
		status  int
		unknown bool
	}{
		{"typo.example", 0, true},
		{"flaky.example", 0, false},
		{"slow.example", 0, false},
		{nameH, http.StatusNotFound, true},
		{nameH, http.StatusServiceUnavailable, false},
		{nameH, http.StatusInternalServerError, false},
	} {
		status.Store(int64(max(c.status, 200)))
		_, err := a.svc.fetchDocument(ctx, c.name)
		if err == nil || errors.Is(err, ErrUnknownServer) != c.unknown {
			t.Errorf("%s (HTTP %d): %v, want unknown %v", c.name, c.status, err, c.unknown)
		}
	}
}
