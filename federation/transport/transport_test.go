package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/privateline/privateline"
)

const (
	nameA privateline.ServerName = "a.example"
	nameB privateline.ServerName = "localhost:8082"
)

func TestRoundTripBothWays(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	idA, idB := newID(t, nameA, ka), newID(t, nameB, kb)
	ta := configured(t, map[privateline.ServerName]ed25519.PublicKey{nameB: kb.Public()})
	tb := configured(t, map[privateline.ServerName]ed25519.PublicKey{nameA: ka.Public()})
	l, err := Listen("127.0.0.1:0", idA, ta, fast)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := testCtx(t)

	type result struct {
		c   *Conn
		err error
	}
	acc := make(chan result, 1)
	go func() {
		c, err := l.Accept(ctx)
		acc <- result{c, err}
	}()
	cb, err := Dial(ctx, nameA, l.Addr().String(), idB, tb, fast)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	r := <-acc
	if r.err != nil {
		t.Fatal(r.err)
	}
	ca := r.c
	defer ca.Close()
	if cb.PeerName() != nameA || !cb.PeerKey().Equal(ka.Public()) {
		t.Fatalf("the dialer sees %s %x", cb.PeerName(), cb.PeerKey())
	}
	if ca.PeerName() != nameB || !ca.PeerKey().Equal(kb.Public()) {
		t.Fatalf("the listener sees %s %x", ca.PeerName(), ca.PeerKey())
	}

	// respond answers one exchange on c with prefix+request.
	respond := func(c *Conn, prefix string) chan error {
		done := make(chan error, 1)
		go func() {
			st, err := c.AcceptStream(ctx)
			if err != nil {
				done <- err
				return
			}
			req, err := st.Receive()
			if err != nil {
				done <- err
				return
			}
			done <- st.Send(append([]byte(prefix), req...))
		}()
		return done
	}
	ask := func(c *Conn, req []byte) []byte {
		t.Helper()
		st, err := c.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Receive()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	big := []byte(strings.Repeat("x", 200_000)) // many QUIC packets
	for _, tc := range []struct {
		from, to *Conn
		prefix   string
		req      []byte
	}{
		{cb, ca, "a got ", []byte("hello from b")},
		{ca, cb, "b got ", []byte("hello from a")},
		{cb, ca, "a got ", big},
	} {
		done := respond(tc.to, tc.prefix)
		got := ask(tc.from, tc.req)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if want := tc.prefix + string(tc.req); string(got) != want {
			t.Fatalf("response %.40q… (%d bytes), want %.40q… (%d bytes)", got, len(got), want, len(want))
		}
	}
}

func TestDialerRefusesServerWithWrongKey(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	s := serve(t, newID(t, nameA, ka), configured(t, map[privateline.ServerName]ed25519.PublicKey{nameB: kb.Public()}), fast)
	idB := newID(t, nameB, kb)

	// The dialer expects another key for a.example.
	wrong := configured(t, map[privateline.ServerName]ed25519.PublicKey{nameA: newKey(t).Public()})
	_, err := Dial(testCtx(t), nameA, s.addr(), idB, wrong, fast)
	wantErr(t, err, "dial with a wrong configured key", "not its configured key")

	// The server's certificate names a.example; dialing it as another
	// name is refused even if that name's key is a.example's key.
	other := configured(t, map[privateline.ServerName]ed25519.PublicKey{"c.example": ka.Public()})
	_, err = Dial(testCtx(t), "c.example", s.addr(), idB, other, fast)
	wantErr(t, err, "dial under another name", "presented a certificate for a.example")

	// Control: the right key connects.
	right := configured(t, map[privateline.ServerName]ed25519.PublicKey{nameA: ka.Public()})
	if _, resp, err := exchange(t, nameA, s.addr(), idB, right, "hi"); err != nil || resp != "echo:hi" {
		t.Fatalf("the right key: %q, %v", resp, err)
	}
}

func TestListenerRefusesClientWithWrongKey(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	s := serve(t, newID(t, nameA, ka), configured(t, map[privateline.ServerName]ed25519.PublicKey{nameB: kb.Public()}), fast)
	trustA := configured(t, map[privateline.ServerName]ed25519.PublicKey{nameA: ka.Public()})

	// A certificate for localhost:8082 with a key that is not its key.
	impostor := newID(t, nameB, newKey(t))
	_, _, err := exchange(t, nameA, s.addr(), impostor, trustA, "hi")
	wantErr(t, err, "an impostor's exchange")
	var te *quic.TransportError
	if !errors.As(err, &te) || te.ErrorCode != quic.TransportErrorCode(0x100+42) { // CRYPTO_ERROR, bad_certificate
		t.Fatalf("the impostor got %v (%T), want a bad_certificate alert", err, err)
	}

	// A client without a certificate.
	tc := &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}, InsecureSkipVerify: true}
	qc, err := quic.DialAddr(testCtx(t), s.addr(), tc, nil)
	if err == nil {
		_, err = qc.AcceptStream(testCtx(t)) // the server's refusal closes the connection
		qc.CloseWithError(0, "")
	}
	if !errors.As(err, &te) || te.ErrorCode != quic.TransportErrorCode(0x100+116) { // CRYPTO_ERROR, certificate_required
		t.Fatalf("a client without a certificate got %v, want a certificate_required alert", err)
	}

	// The real localhost:8082 is accepted, and it is the first connection
	// the server accepted.
	if _, resp, err := exchange(t, nameA, s.addr(), newID(t, nameB, kb), trustA, "hi"); err != nil || resp != "echo:hi" {
		t.Fatalf("the real client: %q, %v", resp, err)
	}
	c := <-s.accepted
	if c.PeerName() != nameB || !c.PeerKey().Equal(kb.Public()) {
		t.Fatalf("the server accepted %s %x first", c.PeerName(), c.PeerKey())
	}
}

func TestTrustOnFirstUseAndKeyChange(t *testing.T) {
	var logs logBuf
	pins := &MemoryPins{}
	tofu := newPolicy(t, PolicyConfig{Pins: pins, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	kb := newKey(t)
	idB := newID(t, nameB, kb)
	var serverPins MemoryPins
	serverTrust := newPolicy(t, PolicyConfig{Pins: &serverPins, Logger: slog.New(slog.DiscardHandler)})

	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	s1 := serve(t, newID(t, nameA, k1), serverTrust, fast)
	if _, resp, err := exchange(t, nameA, s1.addr(), idB, tofu, "1"); err != nil || resp != "echo:1" {
		t.Fatalf("first contact: %q, %v", resp, err)
	}
	if p, _ := pins.Pin(nameA); !p.Equal(k1.Public()) {
		t.Fatalf("pinned %x, want the first key", p)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "first contact") {
		t.Fatalf("no warning on first pin: %q", logs.String())
	}
	// The listener pinned the dialer too.
	if p, _ := serverPins.Pin(nameB); !p.Equal(kb.Public()) {
		t.Fatalf("the listener pinned %x, want the client's key", p)
	}

	// a.example comes back with another key and no statement: refused.
	s2 := serve(t, newID(t, nameA, k2), serverTrust, fast)
	_, err := Dial(testCtx(t), nameA, s2.addr(), idB, tofu, fast)
	wantErr(t, err, "a changed key without a statement", "changed", "without a valid key-change statement")
	if p, _ := pins.Pin(nameA); !p.Equal(k1.Public()) {
		t.Fatal("the pin moved after a refusal")
	}

	// With a statement signed by the pinned key: accepted and re-pinned.
	ch12, err := NewKeyChange(nameA, k1, k2.Public())
	if err != nil {
		t.Fatal(err)
	}
	s3 := serve(t, newID(t, nameA, k2, ch12), serverTrust, fast)
	if _, resp, err := exchange(t, nameA, s3.addr(), idB, tofu, "3"); err != nil || resp != "echo:3" {
		t.Fatalf("key change with a statement: %q, %v", resp, err)
	}
	if p, _ := pins.Pin(nameA); !p.Equal(k2.Public()) {
		t.Fatal("the new key was not pinned")
	}
	if !strings.Contains(logs.String(), "changed its key") {
		t.Fatalf("no warning on the key change: %q", logs.String())
	}

	// A forged statement: k3 claims to replace k2 but signs it itself.
	forged, err := NewKeyChange(nameA, k3, newKey(t).Public())
	if err != nil {
		t.Fatal(err)
	}
	forged.OldKey, forged.NewKey = k2.Public(), k3.Public()
	forged.Signature = k3.Sign(forged.SigningInput())
	if forged.Verify() == nil {
		t.Fatal("the forged statement verifies")
	}
	// NewIdentity refuses a chain that does not verify, so the forged
	// statement is put into the certificate the way an attacker would.
	s4 := serve(t, forgeIdentity(t, nameA, k3, forged), serverTrust, fast)
	_, err = Dial(testCtx(t), nameA, s4.addr(), idB, tofu, fast)
	wantErr(t, err, "a forged statement", "without a valid key-change statement")
	if p, _ := pins.Pin(nameA); !p.Equal(k2.Public()) {
		t.Fatal("the pin moved after a forged statement")
	}

	// The listener side: localhost:8082 changes its key with a statement.
	kb2 := newKey(t)
	chb, err := NewKeyChange(nameB, kb, kb2.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := exchange(t, nameA, s3.addr(), newID(t, nameB, kb2), tofu, "x"); err == nil {
		t.Fatal("the listener accepted a changed client key without a statement")
	}
	if _, resp, err := exchange(t, nameA, s3.addr(), newID(t, nameB, kb2, chb), tofu, "y"); err != nil || resp != "echo:y" {
		t.Fatalf("the client's key change with a statement: %q, %v", resp, err)
	}
	if p, _ := serverPins.Pin(nameB); !p.Equal(kb2.Public()) {
		t.Fatal("the listener did not pin the client's new key")
	}
}

func TestAllowAndDenyLists(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	idA, idB := newID(t, nameA, ka), newID(t, nameB, kb)
	discard := slog.New(slog.DiscardHandler)
	trustA := configured(t, map[privateline.ServerName]ed25519.PublicKey{nameA: ka.Public()})

	denyB := newPolicy(t, PolicyConfig{Pins: &MemoryPins{}, Deny: []privateline.ServerName{nameB}, Logger: discard})
	s := serve(t, idA, denyB, fast)
	_, _, err := exchange(t, nameA, s.addr(), idB, trustA, "hi")
	wantErr(t, err, "a denied client")

	// A configured peer on the deny list is refused by the dialer.
	denyA := newPolicy(t, PolicyConfig{Peers: map[privateline.ServerName]ed25519.PublicKey{nameA: ka.Public()}, Deny: []privateline.ServerName{nameA}, Logger: discard})
	open := serve(t, idA, newPolicy(t, PolicyConfig{Pins: &MemoryPins{}, Logger: discard}), fast)
	_, err = Dial(testCtx(t), nameA, open.addr(), idB, denyA, fast)
	wantErr(t, err, "dialing a denied server", "deny list")

	// An allow list that does not name localhost:8082.
	allowOther := newPolicy(t, PolicyConfig{Pins: &MemoryPins{}, Allow: []privateline.ServerName{"c.example"}, Logger: discard})
	s2 := serve(t, idA, allowOther, fast)
	_, _, err = exchange(t, nameA, s2.addr(), idB, trustA, "hi")
	wantErr(t, err, "a client not on the allow list")
	if err := allowOther.Check(nameB, kb.Public(), nil); err == nil || !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "allow list") {
		t.Fatalf("allow list check: %v", err)
	}

	// Control: the same servers accept the client when the lists allow it.
	allowB := newPolicy(t, PolicyConfig{Pins: &MemoryPins{}, Allow: []privateline.ServerName{nameB}, Deny: []privateline.ServerName{"c.example"}, Logger: discard})
	s3 := serve(t, idA, allowB, fast)
	if _, resp, err := exchange(t, nameA, s3.addr(), idB, trustA, "hi"); err != nil || resp != "echo:hi" {
		t.Fatalf("an allowed client: %q, %v", resp, err)
	}
}

// pair returns a connected dialer and listener side with the given limits
// on each.
func pair(t *testing.T, dialLim, listenLim Limits) (dialer, listener *Conn) {
	t.Helper()
	ka, kb := newKey(t), newKey(t)
	l, err := Listen("127.0.0.1:0", newID(t, nameA, ka), configured(t, map[privateline.ServerName]ed25519.PublicKey{nameB: kb.Public()}), listenLim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx := testCtx(t)
	acc := make(chan *Conn, 1)
	go func() {
		c, _ := l.Accept(ctx)
		acc <- c
	}()
	d, err := Dial(ctx, nameA, l.Addr().String(), newID(t, nameB, kb), configured(t, map[privateline.ServerName]ed25519.PublicKey{nameA: ka.Public()}), dialLim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	c := <-acc
	if c == nil {
		t.Fatal("no connection accepted")
	}
	t.Cleanup(func() { c.Close() })
	return d, c
}

func TestFrameOverCapRefusedUnread(t *testing.T) {
	const max = 1024
	d, c := pair(t, Limits{MaxFrameSize: 1 << 20}, Limits{MaxFrameSize: max})
	ctx := testCtx(t)

	// Announce max+1 bytes and send none of them: a receiver that tried
	// to read the payload would wait for the deadline.
	st, err := d.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], max+1)
	if _, err := st.s.Write(hdr[:]); err != nil {
		t.Fatal(err)
	}
	in, err := c.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	in.SetDeadline(deadline)
	if _, err := in.Receive(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("receiver: %v, want ErrFrameTooLarge", err)
	}
	if time.Now().After(deadline) {
		t.Fatal("the receiver waited for the payload of a frame over the cap")
	}
	// The sender learns that its frame was refused.
	st.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := st.Receive(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("sender: %v, want ErrFrameTooLarge", err)
	}

	// Send refuses a frame over its own cap without writing it.
	small, _ := pair(t, Limits{MaxFrameSize: max}, Limits{})
	st2, err := small.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st2.Send(make([]byte, max+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Send over the cap: %v", err)
	}

	// Send refuses an empty frame; a receiver refuses one announced.
	if err := st2.Send(nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Send of an empty frame: %v", err)
	}
	st3, err := d.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st3.s.Write(make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	st3.s.Close()
	in3, err := c.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in3.Receive(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("an empty frame received: %v, want ErrProtocol", err)
	}

	// Exactly max bytes pass; data after the frame is refused.
	for _, extra := range []bool{false, true} {
		st, err := d.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		frame := make([]byte, 4+max)
		binary.BigEndian.PutUint32(frame, max)
		if extra {
			frame = append(frame, 'x')
		}
		if _, err := st.s.Write(frame); err != nil {
			t.Fatal(err)
		}
		st.s.Close()
		in, err := c.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p, err := in.Receive()
		if extra {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("data after the frame: %v", err)
			}
		} else if err != nil || len(p) != max {
			t.Fatalf("a frame of exactly the cap: %d bytes, %v", len(p), err)
		}
	}
}

func TestMaxIncomingStreams(t *testing.T) {
	d, c := pair(t, Limits{}, Limits{MaxIncomingStreams: 2})
	ctx := testCtx(t)
	var open []*Stream
	for i := range 2 {
		st, err := d.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		open = append(open, st)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := d.OpenStream(short); !isTimeout(err) {
		t.Fatalf("a third stream while two are open: %v, want to wait for the limit", err)
	}
	// The listener finishes one exchange; that frees a stream.
	in, err := c.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, err := in.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Send(req); err != nil {
		t.Fatal(err)
	}
	if _, err := open[req[0]].Receive(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenStream(ctx); err != nil {
		t.Fatalf("a stream after one finished: %v", err)
	}
}

func TestIdleTimeoutCloses(t *testing.T) {
	idle := Limits{IdleTimeout: 300 * time.Millisecond, KeepAlive: -1}
	d, c := pair(t, idle, idle)
	for _, conn := range []*Conn{d, c} {
		select {
		case <-conn.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("an idle connection stayed open")
		}
		var it *quic.IdleTimeoutError
		if !errors.As(conn.Err(), &it) {
			t.Fatalf("closed by %v, want an idle timeout", conn.Err())
		}
	}
	if _, err := d.OpenStream(testCtx(t)); err == nil {
		t.Fatal("a stream opened on a closed connection")
	}
}

// TestKeepAlive: the dialling side's pings keep a quiet link open past the
// idle timeout (a sender's link lives while it has work). QUIC pings at
// half the idle timeout, so a ping may be late by up to that much: 1 s
// leaves half a second, which a loaded -race run needs (300 ms did not).
func TestKeepAlive(t *testing.T) {
	idle := Limits{IdleTimeout: time.Second}
	d, c := pair(t, idle, idle)
	select {
	case <-d.Done():
		t.Fatalf("the link closed within 5 s: %v", d.Err())
	case <-c.Done():
		t.Fatalf("the link closed within 5 s: %v", c.Err())
	case <-time.After(5 * time.Second): // five idle timeouts
	}
	if _, err := d.OpenStream(testCtx(t)); err != nil {
		t.Fatalf("a stream after the quiet time: %v", err)
	}
}

func TestNoTLS12(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	s := serve(t, newID(t, nameA, ka), configured(t, map[privateline.ServerName]ed25519.PublicKey{nameB: kb.Public()}), fast)
	id := newID(t, nameB, kb)
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{id.cert}, NextProtos: []string{ALPN}, InsecureSkipVerify: true,
	}
	qc, err := quic.DialAddr(testCtx(t), s.addr(), tc, nil)
	if err == nil {
		qc.CloseWithError(0, "")
		t.Fatal("a TLS 1.2 handshake succeeded")
	}
	// Control: the same configuration with TLS 1.3 is accepted.
	tc.MinVersion, tc.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	qc, err = quic.DialAddr(testCtx(t), s.addr(), tc, nil)
	if err != nil {
		t.Fatalf("TLS 1.3: %v", err)
	}
	qc.CloseWithError(0, "")
}

func TestWrongALPNRefused(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	s := serve(t, newID(t, nameA, ka), configured(t, map[privateline.ServerName]ed25519.PublicKey{nameB: kb.Public()}), fast)
	tc := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{newID(t, nameB, kb).cert}, NextProtos: []string{"privateline-fed/0"}, InsecureSkipVerify: true}
	qc, err := quic.DialAddr(testCtx(t), s.addr(), tc, nil)
	if err == nil {
		qc.CloseWithError(0, "")
		t.Fatal("a handshake with another ALPN succeeded")
	}
}

func TestHandshakeTimeout(t *testing.T) {
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	kb := newKey(t)
	start := time.Now()
	_, err = Dial(context.Background(), nameA, silent.LocalAddr().String(), newID(t, nameB, kb),
		configured(t, nil), Limits{HandshakeTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("a handshake with a silent peer succeeded")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("the handshake gave up after %v", el)
	}
}

// TestRestartedListenerResetsOldLinks: a server that crashed and came
// back on the same address with the same identity key answers a packet of
// a link its previous process had with a stateless reset, so the other
// end drops the link at once instead of waiting for the idle timeout.
func TestRestartedListenerResetsOldLinks(t *testing.T) {
	ka, kb := newKey(t), newKey(t)
	idA := newID(t, nameA, ka)
	trustA := configured(t, map[privateline.ServerName]ed25519.PublicKey{nameB: kb.Public()})
	l, err := Listen("127.0.0.1:0", idA, trustA, fast)
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	ctx := testCtx(t)
	accepted := make(chan error, 1)
	go func() { // one exchange, so that both ends have confirmed the handshake
		c, err := l.Accept(ctx)
		if err == nil {
			var st *Stream
			if st, err = c.AcceptStream(ctx); err == nil {
				var p []byte
				if p, err = st.Receive(); err == nil {
					err = st.Send(p)
				}
			}
		}
		accepted <- err
	}()
	d, err := Dial(ctx, nameA, addr, newID(t, nameB, kb), configured(t, map[privateline.ServerName]ed25519.PublicKey{nameA: ka.Public()}), fast)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st, err := d.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if p, err := st.Receive(); err != nil || string(p) != "hello" {
		t.Fatalf("echo: %q %v", p, err)
	}
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	// A crash: the socket goes away without a word to the peer.
	l.udp.Close()
	l.Close()
	// The same server starts again (a new process: a new certificate for
	// the same key).
	l2, err := Listen(addr, newID(t, nameA, ka), trustA, fast)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	// A request (bigger than the 42 bytes below which no reset is sent).
	if st, err = d.OpenStream(ctx); err != nil {
		t.Fatal(err)
	}
	st.Send(bytes.Repeat([]byte("anyone? "), 32))
	select {
	case <-d.Done():
	case <-time.After(fast.IdleTimeout / 2):
		t.Fatalf("the link to the crashed process stayed open (%v)", d.Err())
	}
	var sr *quic.StatelessResetError
	if !errors.As(d.Err(), &sr) {
		t.Fatalf("closed by %v, want a stateless reset", d.Err())
	}
}
