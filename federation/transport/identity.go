package transport

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/serverkey"
)

const (
	// NameScheme is the scheme of the URI SAN that names the server:
	// privateline://<server name>.
	NameScheme = "privateline"
	// KeyChangeScheme is the scheme of a URI SAN that carries a key-change
	// statement: privateline-key-change:<base64url without padding of the
	// statement's canonical JSON>.
	KeyChangeScheme = "privateline-key-change"
	// MaxKeyChanges bounds the statements one certificate may carry.
	MaxKeyChanges = 8
)

var b64url = base64.RawURLEncoding.Strict()

// notAfter is RFC 5280's "no well-defined expiration date"; verifiers
// ignore the validity period (trust is by key, not by date).
var notAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// Identity is this server's side of a link: its name, its certificate for
// its Ed25519 identity key, and the key-change statements it presents.
type Identity struct {
	name privateline.ServerName
	pub  ed25519.PublicKey
	cert tls.Certificate
	// reset is the QUIC stateless reset key (RFC 9000 §10.3) of the
	// listener: derived from the identity key, so that the same server
	// after a restart or crash resets the links its previous process had,
	// and their other ends notice at once instead of after the idle
	// timeout.
	reset quic.StatelessResetKey
}

// resetLabel is signed (Ed25519 signatures are deterministic) to derive
// the stateless reset key; nothing else the server signs starts like it
// (documents, receipts and tree heads are JSON objects).
const resetLabel = "privateline-fed/1 QUIC stateless reset key"

// resetKey derives the stateless reset key from the identity key.
func resetKey(key *serverkey.PrivateKey) quic.StatelessResetKey {
	return quic.StatelessResetKey(sha256.Sum256(key.Sign([]byte(resetLabel))))
}

// NewIdentity makes the certificate for name and key. changes, oldest
// first, must form a chain of valid statements for name ending at key
// (each one's NewKey is the next one's OldKey); a peer that pinned any
// earlier key follows them to key.
func NewIdentity(name privateline.ServerName, key *serverkey.PrivateKey, changes ...KeyChange) (*Identity, error) {
	if _, err := privateline.ParseServerName(string(name)); err != nil {
		return nil, err
	}
	host, err := hostOf(name)
	if err != nil {
		return nil, err
	}
	if len(changes) > MaxKeyChanges {
		return nil, fmt.Errorf("transport: at most %d key changes", MaxKeyChanges)
	}
	pub := key.Public()
	if err := keylog.VerifyServerKeyChain(name, changes, pub); err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host},
		NotBefore:             time.Now().Add(-time.Hour).UTC().Truncate(time.Second),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{{Scheme: NameScheme, Host: string(name)}},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	for _, c := range changes {
		tmpl.URIs = append(tmpl.URIs, &url.URL{Scheme: KeyChangeScheme, Opaque: b64url.EncodeToString(c.Marshal())})
	}
	cert, err := key.TLSCertificate(tmpl)
	if err != nil {
		return nil, err
	}
	// What we present must pass our own reading of a peer's certificate.
	if p, err := parsePeer(cert.Certificate); err != nil || p.name != name || !p.key.Equal(pub) {
		return nil, fmt.Errorf("transport: the certificate made for %q does not read back: %v", name, err)
	}
	return &Identity{name: name, pub: pub, cert: cert, reset: resetKey(key)}, nil
}

// Name returns the server name the identity presents.
func (id *Identity) Name() privateline.ServerName { return id.name }

// PublicKey returns the identity key.
func (id *Identity) PublicKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), id.pub...) }

// hostOf returns the host part of a server name: the name itself, or
// without its ":port", or without brackets for an IPv6 literal.
func hostOf(name privateline.ServerName) (string, error) {
	s := string(name)
	if net.ParseIP(s) != nil {
		return s, nil
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") && net.ParseIP(s[1:len(s)-1]) != nil {
		return s[1 : len(s)-1], nil
	}
	if !strings.Contains(s, ":") {
		return s, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("transport: server name %q is neither a host nor host:port", s)
	}
	return host, nil
}

// peer is what a certificate claims, after the checks of parsePeer.
type peer struct {
	name    privateline.ServerName
	key     ed25519.PublicKey
	changes []KeyChange
	cert    [32]byte // SHA-256 of the certificate
}

// parsePeer reads a peer's certificate chain: exactly one self-signed
// certificate for an Ed25519 key, exactly one privateline:// URI SAN with
// a valid server name whose host part is also a DNS (or IP) SAN, and at
// most MaxKeyChanges well-formed key-change statements for that name.
// Signatures of the statements are checked by the Trust that uses them.
func parsePeer(raw [][]byte) (*peer, error) {
	if len(raw) != 1 {
		return nil, fmt.Errorf("want exactly one certificate, got %d", len(raw))
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return nil, err
	}
	key, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the certificate's key is a %T, not Ed25519", cert.PublicKey)
	}
	if cert.SignatureAlgorithm != x509.PureEd25519 || cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) != nil {
		return nil, errors.New("the certificate is not self-signed by its key")
	}
	p := &peer{key: key, cert: sha256.Sum256(raw[0])}
	for _, u := range cert.URIs {
		switch u.Scheme {
		case NameScheme:
			if p.name != "" {
				return nil, errors.New("the certificate names more than one server")
			}
			if u.Opaque != "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
				return nil, fmt.Errorf("malformed server URI %q", u)
			}
			name, err := privateline.ParseServerName(u.Host)
			if err != nil {
				return nil, err
			}
			p.name = name
		case KeyChangeScheme:
			if len(p.changes) == MaxKeyChanges {
				return nil, fmt.Errorf("more than %d key changes", MaxKeyChanges)
			}
			b, err := b64url.DecodeString(u.Opaque)
			if err != nil || b64url.EncodeToString(b) != u.Opaque {
				return nil, errors.New("a key change is not canonical base64url")
			}
			c, err := ParseKeyChange(b)
			if err != nil {
				return nil, err
			}
			p.changes = append(p.changes, c)
		}
	}
	if p.name == "" {
		return nil, errors.New("the certificate names no server (privateline:// URI SAN)")
	}
	host, err := hostOf(p.name)
	if err != nil {
		return nil, err
	}
	hostOK := false
	if ip := net.ParseIP(host); ip != nil {
		for _, a := range cert.IPAddresses {
			hostOK = hostOK || a.Equal(ip)
		}
	} else {
		for _, d := range cert.DNSNames {
			hostOK = hostOK || d == host
		}
	}
	if !hostOK {
		return nil, fmt.Errorf("the certificate's DNS/IP SANs do not include %q", host)
	}
	for _, c := range p.changes {
		if c.Server != p.name {
			return nil, fmt.Errorf("a key change is for %q, not %q", c.Server, p.name)
		}
	}
	return p, nil
}

// sameKey reports whether a and b are the same Ed25519 key.
func sameKey(a, b ed25519.PublicKey) bool {
	return len(a) == ed25519.PublicKeySize && bytes.Equal(a, b)
}
