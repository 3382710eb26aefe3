package storage

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	"github.com/privateline/privateline"
)

const sealVersion = 1

// sealer seals and opens values with a per-table AES-256-GCM subkey.
type sealer struct {
	aead [256]cipher.AEAD // indexed by table prefix byte
}

func newSealer(key privateline.Secret) (*sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("storage: AES key must be 32 bytes, got %d", len(key))
	}
	s := &sealer{}
	for _, t := range tables {
		sub, err := hkdf.Key(sha256.New, key.Bytes(), nil, "privateline/v1/storage/"+t.name, 32)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(sub)
		if err != nil {
			return nil, err
		}
		if s.aead[t.prefix], err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *sealer) seal(key, plaintext []byte) []byte {
	a := s.aead[key[0]]
	if a == nil {
		panic(fmt.Sprintf("storage: no table for prefix %#x", key[0]))
	}
	out := make([]byte, 1+a.NonceSize(), 1+a.NonceSize()+len(plaintext)+a.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:])
	return a.Seal(out, out[1:1+a.NonceSize()], plaintext, key)
}

func (s *sealer) open(key, sealed []byte) ([]byte, error) {
	a := s.aead[key[0]]
	if a == nil {
		return nil, fmt.Errorf("storage: no table for prefix %#x", key[0])
	}
	if len(sealed) < 1+a.NonceSize()+a.Overhead() || sealed[0] != sealVersion {
		return nil, errCorrupt
	}
	n := a.NonceSize()
	pt, err := a.Open(nil, sealed[1:1+n], sealed[1+n:], key)
	if err != nil {
		return nil, errCorrupt
	}
	return pt, nil
}
