package e2ee

import (
	"crypto/sha256"
	"crypto/subtle"
	"io"

	"github.com/privateline/privateline"
)

// EncryptAttachment encrypts a file under a fresh key (spec/e2ee.md §9):
// blob = nonce ‖ AES-256-GCM(key, nonce, data, aad "privateline/v1/attachment").
// The returned Attachment holds the key, the blob's SHA-256 and the size;
// the caller uploads the blob and fills in FileID, Name and MIME. r supplies
// key and nonce; nil means crypto/rand.
func EncryptAttachment(r io.Reader, data []byte) (blob []byte, a Attachment, err error) {
	const op = "e2ee.EncryptAttachment"
	if len(data) > MaxAttachment {
		return nil, Attachment{}, refuse(op, ErrTooLarge, "attachment is too large")
	}
	key, err := readRand(r, KeySize)
	if err != nil {
		return nil, Attachment{}, err
	}
	nonce, err := readRand(r, NonceSize)
	if err != nil {
		return nil, Attachment{}, err
	}
	blob = newGCM(key).Seal(nonce, nonce, data, []byte(labelAttachment))
	sum := sha256.Sum256(blob)
	return blob, Attachment{Key: privateline.Secret(key), SHA256: sum[:], Size: int64(len(data))}, nil
}

// DecryptAttachment checks the blob's SHA-256 against a.SHA256 before
// anything else, then decrypts it and checks the size.
func DecryptAttachment(a Attachment, blob []byte) ([]byte, error) {
	const op = "e2ee.DecryptAttachment"
	if len(blob) > MaxAttachment+NonceSize+16 {
		return nil, refuse(op, ErrTooLarge, "attachment is too large")
	}
	sum := sha256.Sum256(blob)
	if len(a.SHA256) != 32 || subtle.ConstantTimeCompare(sum[:], a.SHA256) != 1 {
		return nil, refuse(op, ErrHashMismatch, "attachment does not match its SHA-256")
	}
	if len(a.Key) != KeySize || len(blob) < NonceSize+16 {
		return nil, refuse(op, ErrMalformed, "attachment key or blob has the wrong size")
	}
	pt, err := newGCM(a.Key).Open(nil, blob[:NonceSize], blob[NonceSize:], []byte(labelAttachment))
	if err != nil {
		return nil, refuse(op, ErrDecrypt, "attachment does not decrypt")
	}
	if int64(len(pt)) != a.Size {
		return nil, refuse(op, ErrMalformed, "attachment size differs from its description")
	}
	return pt, nil
}
