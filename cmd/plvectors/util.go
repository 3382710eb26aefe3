package main

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

//go:embed rsakeys.json
var rsaKeysJSON []byte

// stream is a deterministic byte source: SHA-256(label ‖ u64be(counter))
// blocks. It records what each Read returned.
type stream struct {
	label string
	ctr   uint64
	buf   []byte
	reads [][]byte
}

func newStream(label string) *stream { return &stream{label: "privateline vectors/" + label} }

func (s *stream) Read(p []byte) (int, error) {
	for len(s.buf) < len(p) {
		var c [8]byte
		binary.BigEndian.PutUint64(c[:], s.ctr)
		s.ctr++
		h := sha256.Sum256(append([]byte(s.label), c[:]...))
		s.buf = append(s.buf, h[:]...)
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	s.reads = append(s.reads, bytes.Clone(p[:n]))
	return n, nil
}

// bytes returns n bytes from the stream.
func (s *stream) bytes(n int) []byte {
	b := make([]byte, n)
	io.ReadFull(s, b)
	return b
}

type party struct {
	name    string
	address privateline.Address
	seed    []byte
	rsaDER  []byte
	rsa     *rsa.PrivateKey
	keys    *e2ee.PrivateKeys
	bundle  *e2ee.KeyBundle
}

var partyNames = []string{"alice", "bob", "carol"}

var partyAddress = map[string]privateline.Address{
	"alice": "alice@example.org",
	"bob":   "bob@example.org",
	"carol": "carol@chat.other.example",
}

// bundleTime is when the fixed parties published their bundles.
var bundleTime = time.UnixMilli(1767225600000) // 2026-01-01T00:00:00Z

func loadParties() (map[string]*party, error) {
	var ders map[string]string
	if err := json.Unmarshal(rsaKeysJSON, &ders); err != nil {
		return nil, err
	}
	ps := map[string]*party{}
	for _, n := range partyNames {
		seed := sha256.Sum256([]byte("privateline vectors/identity/" + n))
		der, err := base64.StdEncoding.DecodeString(ders[n])
		if err != nil {
			return nil, err
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, err
		}
		keys, err := e2ee.NewPrivateKeys(partyAddress[n], seed[:], der)
		if err != nil {
			return nil, err
		}
		b, err := e2ee.NewKeyBundle(keys, bundleTime)
		if err != nil {
			return nil, err
		}
		ps[n] = &party{name: n, address: partyAddress[n], seed: seed[:], rsaDER: der, rsa: k.(*rsa.PrivateKey), keys: keys, bundle: b}
	}
	return ps, nil
}

func printNewKeys(w io.Writer) error {
	out := map[string]string{}
	for _, n := range partyNames {
		k, err := rsa.GenerateKey(nil, e2ee.RSABits)
		if err != nil {
			return err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return err
		}
		out[n] = base64.StdEncoding.EncodeToString(der)
	}
	return writeJSON(w, out)
}

func writeJSON(w io.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	return e.Encode(v)
}

type obj = map[string]any

func hx(b []byte) string  { return hex.EncodeToString(b) }
func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// vectorFile is the common frame of every file.
func vectorFile(construction, section string, notes []string, cases []obj) obj {
	return obj{
		"construction": construction,
		"spec":         "spec/e2ee.md " + section,
		"generated_by": "go run ./cmd/plvectors -out spec/vectors (deterministic; regenerate rather than edit)",
		"encoding":     "field suffixes: _hex lower-case hex, _b64 standard base64 with padding, _ms Unix milliseconds; a field without suffix is a string used verbatim (JSON texts are given as strings); parties are named as in parties.json",
		"notes":        notes,
		"cases":        cases,
	}
}

func writeFile(dir, name string, v any) error {
	var b bytes.Buffer
	if err := writeJSON(&b, v); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644)
}
