package transport

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/serverkey"
)

func TestKeyChangeStatement(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	c, err := NewKeyChange(nameA, k1, k2.Public())
	if err != nil {
		t.Fatal(err)
	}
	// The signing input is the label, a zero byte and canonical JSON.
	want := "privateline/v1/federation-key-change\x00{\"created_at\":" + strconv.FormatInt(c.CreatedAt.UnixMilli(), 10) +
		",\"new_key\":\"" + std64.EncodeToString(k2.Public()) +
		"\",\"old_key\":\"" + std64.EncodeToString(k1.Public()) + "\",\"server\":\"a.example\"}"
	if string(c.SigningInput()) != want {
		t.Fatalf("signing input %q", c.SigningInput())
	}
	if !ed25519.Verify(k1.Public(), []byte(want), c.Signature) {
		t.Fatal("the old key's signature does not verify over the documented bytes")
	}
	back, err := ParseKeyChange(c.Marshal())
	if err != nil || back.Verify() != nil || !bytes.Equal(back.Marshal(), c.Marshal()) {
		t.Fatalf("round trip: %v", err)
	}
	for name, mut := range map[string]func(*KeyChange){
		"other server": func(c *KeyChange) { c.Server = "b.example" },
		"other new":    func(c *KeyChange) { c.NewKey = newKey(t).Public() },
		"swapped":      func(c *KeyChange) { c.OldKey, c.NewKey = c.NewKey, c.OldKey },
		"bit flip":     func(c *KeyChange) { c.Signature = append([]byte{c.Signature[0] ^ 1}, c.Signature[1:]...) },
	} {
		m := c
		mut(&m)
		if m.Verify() == nil {
			t.Errorf("%s: verifies", name)
		}
	}
	for name, data := range map[string]string{
		"not canonical":  strings.Replace(string(c.Marshal()), "{", "{ ", 1),
		"unknown member": strings.Replace(string(c.Marshal()), "{", `{"a":1,`, 1),
		"short key":      strings.Replace(string(c.Marshal()), std64.EncodeToString(k2.Public()), "AAAA", 1),
	} {
		if _, err := ParseKeyChange([]byte(data)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if _, err := NewKeyChange(nameA, k1, k1.Public()); err == nil {
		t.Error("a change to the same key was made")
	}
}

func TestCertificateNamesTheServer(t *testing.T) {
	k := newKey(t)
	for _, tc := range []struct {
		name     privateline.ServerName
		dns, ip  string
		wantHost string
	}{
		{"chat.example.org", "chat.example.org", "", "chat.example.org"},
		{"localhost:8081", "localhost", "", "localhost"},
		{"127.0.0.1:8443", "", "127.0.0.1", "127.0.0.1"},
		{"[::1]:8443", "", "::1", "::1"},
	} {
		id := newID(t, tc.name, k)
		leaf := id.cert.Leaf
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "privateline://"+string(tc.name) {
			t.Errorf("%s: URI SANs %v", tc.name, leaf.URIs)
		}
		if tc.dns != "" && (len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != tc.dns || len(leaf.IPAddresses) != 0) {
			t.Errorf("%s: DNS SANs %v, IPs %v", tc.name, leaf.DNSNames, leaf.IPAddresses)
		}
		if tc.ip != "" && (len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != tc.ip || len(leaf.DNSNames) != 0) {
			t.Errorf("%s: IP SANs %v, DNS %v", tc.name, leaf.IPAddresses, leaf.DNSNames)
		}
		if !leaf.PublicKey.(ed25519.PublicKey).Equal(k.Public()) || leaf.SignatureAlgorithm != x509.PureEd25519 {
			t.Errorf("%s: not a certificate for the identity key", tc.name)
		}
	}
}

func TestParsePeerRefusesMalformedCertificates(t *testing.T) {
	k, k2 := newKey(t), newKey(t)
	id := newID(t, nameA, k)
	remake := func(f func(*x509.Certificate)) [][]byte {
		tmpl := *id.cert.Leaf
		tmpl.URIs = append([]*url.URL(nil), tmpl.URIs...)
		f(&tmpl)
		cert, err := k.TLSCertificate(&tmpl)
		if err != nil {
			t.Fatal(err)
		}
		return cert.Certificate
	}
	good, err := NewKeyChange(nameA, k2, k.Public())
	if err != nil {
		t.Fatal(err)
	}
	otherServer, err := NewKeyChange("b.example", k2, k.Public())
	if err != nil {
		t.Fatal(err)
	}
	kcURI := func(c KeyChange) *url.URL {
		return &url.URL{Scheme: KeyChangeScheme, Opaque: b64url.EncodeToString(c.Marshal())}
	}
	if p, err := parsePeer(remake(func(c *x509.Certificate) { c.URIs = append(c.URIs, kcURI(good)) })); err != nil || len(p.changes) != 1 {
		t.Fatalf("a certificate with a key change: %v", err)
	}
	for name, raw := range map[string][][]byte{
		"two certificates": {id.cert.Certificate[0], id.cert.Certificate[0]},
		"no server URI":    remake(func(c *x509.Certificate) { c.URIs = nil }),
		"two server URIs":  remake(func(c *x509.Certificate) { c.URIs = append(c.URIs, &url.URL{Scheme: NameScheme, Host: "b.example"}) }),
		"URI with a path":  remake(func(c *x509.Certificate) { c.URIs[0].Path = "/x" }),
		"host not in SAN":  remake(func(c *x509.Certificate) { c.DNSNames = []string{"b.example"} }),
		"invalid name":     remake(func(c *x509.Certificate) { c.URIs[0].Host = "A.EXAMPLE" }),
		"change for another server": remake(func(c *x509.Certificate) {
			c.URIs = append(c.URIs, kcURI(otherServer))
		}),
		"change not base64url": remake(func(c *x509.Certificate) {
			c.URIs = append(c.URIs, &url.URL{Scheme: KeyChangeScheme, Opaque: std64.EncodeToString(good.Marshal())})
		}),
	} {
		if _, err := parsePeer(raw); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A certificate whose signature is not by its key.
	der := bytes.Clone(id.cert.Certificate[0])
	der[len(der)-1] ^= 1
	if _, err := parsePeer([][]byte{der}); err == nil {
		t.Error("a certificate with a broken self-signature was accepted")
	}
}

func TestNewIdentityChecksTheChain(t *testing.T) {
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	c12, _ := NewKeyChange(nameA, k1, k2.Public())
	c23, _ := NewKeyChange(nameA, k2, k3.Public())
	if _, err := NewIdentity(nameA, k3, c12, c23); err != nil {
		t.Fatalf("a valid chain: %v", err)
	}
	if _, err := NewIdentity(nameA, k3, c23, c12); err == nil {
		t.Error("a chain out of order was accepted")
	}
	if _, err := NewIdentity(nameA, k3, c12); err == nil {
		t.Error("a chain that does not reach the key was accepted")
	}
	if _, err := NewIdentity(nameB, k3, c12, c23); err == nil {
		t.Error("a chain for another name was accepted")
	}
	// A peer that pinned k1 follows both statements to k3.
	pins := &MemoryPins{}
	pins.SetPin(nameA, k1.Public())
	p := newPolicy(t, PolicyConfig{Pins: pins})
	if err := p.Check(nameA, k3.Public(), []KeyChange{c23, c12}); err != nil {
		t.Fatalf("following a chain of two: %v", err)
	}
	if got, _ := pins.Pin(nameA); !got.Equal(k3.Public()) {
		t.Fatal("the end of the chain was not pinned")
	}
}

// TestPolicyFollowsLongerChain: a peer pinned at a key older than the
// statements its certificate carries follows the longer chain Chain gives
// (its server document's); a chain that does not reach the pin, a Chain
// that fails, or one for another key is refused, and the pin stays.
func TestPolicyFollowsLongerChain(t *testing.T) {
	keys := []*serverkey.PrivateKey{newKey(t), newKey(t), newKey(t), newKey(t)}
	var chain []KeyChange
	for i := range 3 {
		c, err := NewKeyChange(nameA, keys[i], keys[i+1].Public())
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	cur := keys[3].Public()
	cert := chain[2:] // as if the certificate carried only the newest
	for _, tc := range []struct {
		name   string
		pin    ed25519.PublicKey
		doc    []KeyChange
		docErr error
		ok     bool
	}{
		{"document reaches the pin", keys[0].Public(), chain, nil, true},
		{"document does not reach it", newKey(t).Public(), chain, nil, false},
		{"document cannot be had", keys[0].Public(), nil, errors.New("unreachable"), false},
		{"document of a broken chain", keys[0].Public(), []KeyChange{chain[0], chain[2]}, nil, false},
	} {
		pins := &MemoryPins{}
		pins.SetPin(nameA, tc.pin)
		var logs bytes.Buffer
		asked := 0
		p := newPolicy(t, PolicyConfig{Pins: pins, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Chain: func(name privateline.ServerName, key ed25519.PublicKey) ([]KeyChange, error) {
				asked++
				if name != nameA || !key.Equal(cur) {
					t.Errorf("%s: Chain asked for %s", tc.name, name)
				}
				return tc.doc, tc.docErr
			}})
		err := p.Check(nameA, cur, cert)
		got, _ := pins.Pin(nameA)
		if tc.ok != (err == nil) || tc.ok != got.Equal(cur) || asked != 1 {
			t.Fatalf("%s: %v, pinned the new key %v, asked %d", tc.name, err, got.Equal(cur), asked)
		}
		if !tc.ok && (!strings.Contains(err.Error(), "FEDERATION_PEERS") || !strings.Contains(logs.String(), "FEDERATION_PEERS") || !strings.Contains(logs.String(), std64.EncodeToString(cur))) {
			t.Fatalf("%s: the refusal does not tell the operator what to do: %v\n%s", tc.name, err, logs.String())
		}
		if !tc.ok { // logged once per key
			logs.Reset()
			p.Check(nameA, cur, cert)
			if logs.Len() != 0 {
				t.Fatalf("%s: the refusal was logged again", tc.name)
			}
		}
	}
	// The certificate's statements suffice: the document is not asked for.
	pins := &MemoryPins{}
	pins.SetPin(nameA, keys[2].Public())
	p := newPolicy(t, PolicyConfig{Pins: pins, Chain: func(privateline.ServerName, ed25519.PublicKey) ([]KeyChange, error) {
		t.Error("Chain asked although the certificate reaches the pin")
		return nil, nil
	}})
	if err := p.Check(nameA, cur, cert); err != nil {
		t.Fatal(err)
	}
}
