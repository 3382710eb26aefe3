package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/privateline/privateline"
)

// ALPN is the application protocol of federation links.
const ALPN = "privateline-fed/1"

// Stream error codes (RESET_STREAM and STOP_SENDING), spec/federation.md §10.3.
const (
	CodeFrameTooLarge quic.StreamErrorCode = 0x110 // frame_too_large: a frame's length is over the receiver's cap
	CodeCancelled     quic.StreamErrorCode = 0x113 // cancelled: the exchange was abandoned
	CodeProtocol      quic.StreamErrorCode = 0x114 // malformed_frame: not one non-empty frame followed by the end of the stream
)

// CodeClosed is the application error code of a connection closed
// normally.
const CodeClosed quic.ApplicationErrorCode = 0x0

var (
	// ErrFrameTooLarge is returned for a frame over the cap, on the side
	// that refused it and on the side whose frame was refused.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrProtocol is returned for a stream that is not one frame followed
	// by the end of the stream.
	ErrProtocol = errors.New("transport: protocol violation")
)

// Limits bounds a link. Zero fields take the defaults.
type Limits struct {
	// HandshakeTimeout bounds the QUIC/TLS handshake (default 10 s).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection with no incoming packets for that
	// long (default 60 s).
	IdleTimeout time.Duration
	// KeepAlive is how often the dialling side (a sender, whose link
	// lives while it has work) pings an otherwise quiet connection, so a
	// peer that vanished is noticed within the idle timeout and a live
	// link is not closed (default 15 s, spec/federation.md §6.4; at most
	// half the idle timeout; negative: none). The accepting side sends none.
	KeepAlive time.Duration
	// MaxIncomingStreams is how many streams the peer may have open on a
	// connection at once (default 32).
	MaxIncomingStreams int64
	// MaxFrameSize is the largest frame payload accepted and sent
	// (default 4 MiB).
	MaxFrameSize uint32
}

// DefaultLimits are the limits of zero fields.
var DefaultLimits = Limits{
	HandshakeTimeout:   10 * time.Second,
	IdleTimeout:        60 * time.Second,
	KeepAlive:          15 * time.Second,
	MaxIncomingStreams: 32,
	MaxFrameSize:       4 << 20,
}

func (l Limits) withDefaults() Limits {
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = DefaultLimits.HandshakeTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultLimits.IdleTimeout
	}
	if l.KeepAlive == 0 {
		l.KeepAlive = DefaultLimits.KeepAlive
	}
	if l.MaxIncomingStreams <= 0 {
		l.MaxIncomingStreams = DefaultLimits.MaxIncomingStreams
	}
	if l.MaxFrameSize == 0 {
		l.MaxFrameSize = DefaultLimits.MaxFrameSize
	}
	return l
}

func (l Limits) quicConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:  l.HandshakeTimeout,
		MaxIdleTimeout:        l.IdleTimeout,
		MaxIncomingStreams:    l.MaxIncomingStreams,
		MaxIncomingUniStreams: -1, // the protocol has no unidirectional streams
	}
}

func baseTLS(id *Identity) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.cert},
		NextProtos:   []string{ALPN},
	}
}

func checkState(cs tls.ConnectionState) (*peer, error) {
	if cs.Version != tls.VersionTLS13 {
		return nil, errors.New("not TLS 1.3")
	}
	if cs.NegotiatedProtocol != ALPN {
		return nil, fmt.Errorf("ALPN %q, want %q", cs.NegotiatedProtocol, ALPN)
	}
	raw := make([][]byte, len(cs.PeerCertificates))
	for i, c := range cs.PeerCertificates {
		raw[i] = c.Raw
	}
	return parsePeer(raw)
}

// Listener accepts authenticated federation connections.
type Listener struct {
	udp *net.UDPConn
	tr  *quic.Transport
	ln  *quic.Listener
	lim Limits
}

// Listen listens on the UDP address addr (host:port; port 0 picks one)
// for connections from peers that present a certificate trust accepts for
// the name it claims.
func Listen(addr string, id *Identity, trust Trust, lim Limits) (*Listener, error) {
	lim = lim.withDefaults()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	tc := baseTLS(id)
	tc.ClientAuth = tls.RequireAnyClientCert // verified below, by key
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		p, err := checkState(cs)
		if err != nil {
			return fmt.Errorf("federation client: %w", err)
		}
		if p.name == id.name {
			return fmt.Errorf("federation client claims our own name %s", p.name)
		}
		if err := trust.Check(p.name, p.key, p.changes); err != nil {
			return fmt.Errorf("federation client %s: %w", p.name, err)
		}
		return nil
	}
	// The reset key lets a restarted server end its previous process's
	// links at their first packet (RFC 9000 §10.3).
	tr := &quic.Transport{Conn: udp, StatelessResetKey: &id.reset}
	ln, err := tr.Listen(tc, lim.quicConfig())
	if err != nil {
		tr.Close()
		udp.Close()
		return nil, err
	}
	return &Listener{udp: udp, tr: tr, ln: ln, lim: lim}, nil
}

// Addr returns the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.udp.LocalAddr() }

// Accept returns the next connection whose handshake completed and whose
// peer passed the trust check.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	for {
		qc, err := l.ln.Accept(ctx)
		if err != nil {
			return nil, err
		}
		p, err := checkState(qc.ConnectionState().TLS)
		if err != nil { // cannot happen: VerifyConnection passed
			qc.CloseWithError(CodeClosed, "")
			continue
		}
		return newConn(qc, p, l.lim), nil
	}
}

// Close stops listening and closes every connection it accepted.
func (l *Listener) Close() error {
	err := l.ln.Close()
	l.tr.Close()
	l.udp.Close()
	return err
}

// Dial connects to the server name at addr (host:port, UDP) and returns
// the connection once the handshake is complete and the server presented
// a certificate for name with a key trust accepts. A refusal of our own
// certificate by the server shows as the connection closing with a TLS
// alert (CRYPTO_ERROR), at the latest at the first stream operation.
func Dial(ctx context.Context, name privateline.ServerName, addr string, id *Identity, trust Trust, lim Limits) (*Conn, error) {
	lim = lim.withDefaults()
	if _, err := privateline.ParseServerName(string(name)); err != nil {
		return nil, err
	}
	host, err := hostOf(name)
	if err != nil {
		return nil, err
	}
	tc := baseTLS(id)
	tc.ServerName = host
	// Verification is by key, against trust, in VerifyConnection: the
	// certificates are self-signed and no CA is involved.
	tc.InsecureSkipVerify = true
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		p, err := checkState(cs)
		if err != nil {
			return fmt.Errorf("federation server %s: %w", name, err)
		}
		if p.name != name {
			return fmt.Errorf("federation server %s presented a certificate for %s", name, p.name)
		}
		if err := trust.Check(p.name, p.key, p.changes); err != nil {
			return fmt.Errorf("federation server %s: %w", name, err)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, lim.HandshakeTimeout)
	defer cancel()
	qcfg := lim.quicConfig()
	if lim.KeepAlive > 0 {
		qcfg.KeepAlivePeriod = lim.KeepAlive
	}
	qc, err := quic.DialAddr(ctx, addr, tc, qcfg)
	if err != nil {
		return nil, err
	}
	p, err := checkState(qc.ConnectionState().TLS)
	if err != nil || p.name != name { // cannot happen: VerifyConnection passed
		qc.CloseWithError(CodeClosed, "")
		return nil, fmt.Errorf("federation server %s: %v", name, err)
	}
	return newConn(qc, p, lim), nil
}

// Conn is an authenticated connection with a peer homeserver.
type Conn struct {
	qc  *quic.Conn
	p   *peer
	max uint32
}

func newConn(qc *quic.Conn, p *peer, lim Limits) *Conn {
	return &Conn{qc: qc, p: p, max: lim.MaxFrameSize}
}

// PeerName is the server name the peer's certificate was checked for.
func (c *Conn) PeerName() privateline.ServerName { return c.p.name }

// PeerKey is the peer's Ed25519 identity key.
func (c *Conn) PeerKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), c.p.key...) }

// PeerInstance identifies the certificate the peer presented. A server
// makes a new certificate each time it starts (NewIdentity), so two
// connections from the same peer with different instances lead to
// different processes of it: the older one's process is gone.
func (c *Conn) PeerInstance() [32]byte { return c.p.cert }

// RemoteAddr is the peer's UDP address.
func (c *Conn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// OpenStream opens a stream for one exchange, waiting while the peer's
// stream limit is reached.
func (c *Conn) OpenStream(ctx context.Context) (*Stream, error) {
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return &Stream{s: s, max: c.max}, nil
}

// AcceptStream returns the next stream the peer opened.
func (c *Conn) AcceptStream(ctx context.Context) (*Stream, error) {
	s, err := c.qc.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return &Stream{s: s, max: c.max}, nil
}

// Done is closed when the connection is closed, by either side or by a
// timeout.
func (c *Conn) Done() <-chan struct{} { return c.qc.Context().Done() }

// Err returns why the connection closed (nil while it is open).
func (c *Conn) Err() error { return context.Cause(c.qc.Context()) }

// Close closes the connection and its streams.
func (c *Conn) Close() error { return c.qc.CloseWithError(CodeClosed, "") }

// Stream carries one request/response exchange: each side sends exactly
// one frame (uint32 big-endian length, then that many bytes) and then the
// end of its direction. The opener sends first.
type Stream struct {
	s   *quic.Stream
	max uint32
}

// Send writes p as the one frame of this side and ends this side. A frame
// holds 1 to MaxFrameSize bytes (spec/federation.md §7.1).
func (s *Stream) Send(p []byte) error {
	if err := s.SendFrame(p); err != nil {
		return err
	}
	return streamErr(s.s.Close())
}

// Receive reads the peer's one frame and the end of its direction. A
// length over the cap is refused at once, before any of the payload is
// read, and so are an empty frame and data after the frame; each cancels
// the exchange.
func (s *Stream) Receive() ([]byte, error) {
	p, err := s.ReceiveFrame()
	if err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	return p, nil
}

// ReceiveFrame reads the peer's frame and leaves the rest of its direction
// unread: a frame followed by raw bytes (Body), as a file answer is
// (spec/federation.md §12.4). The frame's checks are Receive's.
func (s *Stream) ReceiveFrame() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(s.s, hdr[:]); err != nil {
		return nil, streamErr(err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > s.max {
		s.abort(CodeFrameTooLarge)
		return nil, fmt.Errorf("%w: the peer announced %d bytes, at most %d", ErrFrameTooLarge, n, s.max)
	}
	if n == 0 {
		s.abort(CodeProtocol)
		return nil, fmt.Errorf("%w: an empty frame", ErrProtocol)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(s.s, p); err != nil {
		return nil, streamErr(err)
	}
	return p, nil
}

// end reads the end of the peer's direction: data instead is refused.
func (s *Stream) end() error {
	var extra [1]byte
	if k, err := s.s.Read(extra[:]); k > 0 || err != io.EOF {
		if k > 0 || err == nil {
			s.abort(CodeProtocol)
			return fmt.Errorf("%w: data after the frame", ErrProtocol)
		}
		return streamErr(err)
	}
	return nil
}

// SendFrame writes p as this side's frame and keeps the direction open
// for raw bytes (SendBody).
func (s *Stream) SendFrame(p []byte) error {
	if len(p) == 0 {
		return fmt.Errorf("%w: an empty frame", ErrProtocol)
	}
	if uint64(len(p)) > uint64(s.max) {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrFrameTooLarge, len(p), s.max)
	}
	buf := make([]byte, 4+len(p))
	binary.BigEndian.PutUint32(buf, uint32(len(p)))
	copy(buf[4:], p)
	_, err := s.s.Write(buf)
	return streamErr(err)
}

// bodyChunk is how much of a body one write or read moves; each has its
// own progress deadline.
const bodyChunk = 64 << 10

// SendBody writes exactly n bytes of r after the frame and ends this
// side. Each chunk must be written within idle of the previous one (a
// peer that stops reading fails the transfer); r shorter than n is an
// error and the stream is cancelled.
func (s *Stream) SendBody(r io.Reader, n int64, idle time.Duration) error {
	buf := make([]byte, min(int64(bodyChunk), max(n, 1)))
	for left := n; left > 0; {
		k, err := io.ReadFull(r, buf[:min(int64(len(buf)), left)])
		if err != nil {
			s.Cancel()
			return fmt.Errorf("transport: the body ended after %d of %d bytes: %w", n-left, n, err)
		}
		s.s.SetWriteDeadline(time.Now().Add(idle))
		if _, err := s.s.Write(buf[:k]); err != nil {
			return streamErr(err)
		}
		left -= int64(k)
	}
	s.s.SetWriteDeadline(time.Now().Add(idle))
	return streamErr(s.s.Close())
}

// Body returns a reader of the n raw bytes that follow the peer's frame:
// it yields exactly n bytes and then io.EOF, but only once the peer ended
// its direction there. The direction ending early is ErrProtocol
// ("truncated"); more bytes than n are ErrProtocol and cancel the
// exchange; each read must make progress within idle
// (os.ErrDeadlineExceeded otherwise).
func (s *Stream) Body(n int64, idle time.Duration) io.Reader {
	return &body{s: s, left: n, idle: idle}
}

type body struct {
	s    *Stream
	left int64
	idle time.Duration
	err  error
}

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	b.s.s.SetReadDeadline(time.Now().Add(b.idle))
	if b.left == 0 {
		b.err = b.s.end()
		if b.err == nil {
			b.err = io.EOF
		}
		return 0, b.err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	k, err := b.s.s.Read(p)
	b.left -= int64(k)
	switch {
	case err == io.EOF && b.left > 0:
		b.err = fmt.Errorf("%w: the body was truncated (%d bytes missing)", ErrProtocol, b.left)
	case err == io.EOF:
		b.err = io.EOF
	case err != nil:
		b.err = streamErr(err)
	}
	if k > 0 {
		return k, nil
	}
	return 0, b.err
}

// SetDeadline bounds Send and Receive.
func (s *Stream) SetDeadline(t time.Time) error { return s.s.SetDeadline(t) }

// Cancel abandons the exchange in both directions.
func (s *Stream) Cancel() { s.abort(CodeCancelled) }

func (s *Stream) abort(code quic.StreamErrorCode) {
	s.s.CancelRead(code)
	s.s.CancelWrite(code)
}

// streamErr maps the peer's refusals to this package's errors.
func streamErr(err error) error {
	var se *quic.StreamError
	if errors.As(err, &se) && se.Remote {
		switch se.ErrorCode {
		case CodeFrameTooLarge:
			return fmt.Errorf("%w: the peer refused the frame: %v", ErrFrameTooLarge, err)
		case CodeProtocol:
			return fmt.Errorf("%w: the peer refused the exchange: %v", ErrProtocol, err)
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the stream ended inside a frame", ErrProtocol)
	}
	return err
}
