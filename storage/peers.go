package storage

import (
	"crypto/ed25519"

	"github.com/privateline/privateline"
)

// Peer pins (spec/federation.md §4.1): the identity key this server
// accepted for another server on first contact.
//
//	'N' server(16)   the server's name and its pinned Ed25519 key
//
// server is serverHash(name) (outbox.go): no name appears in a key.

type peerPin struct {
	Name privateline.ServerName `json:"name"`
	Key  []byte                 `json:"key"`
}

// PeerPin returns the key pinned for name, nil if none.
func (d *DB) PeerPin(name privateline.ServerName) (ed25519.PublicKey, error) {
	var p peerPin
	err := d.getJSON(tPeerPin.key(d.serverHash(name)), &p)
	if privateline.Is(privateline.NotExist, err) {
		return nil, nil
	} else if err != nil {
		return nil, privateline.E("storage.PeerPin", err)
	}
	if len(p.Key) != ed25519.PublicKeySize || p.Name != name {
		return nil, privateline.E("storage.PeerPin", privateline.Internal, "bad peer pin record")
	}
	return ed25519.PublicKey(p.Key), nil
}

// SetPeerPin pins key for name (replacing any pin), durably.
func (d *DB) SetPeerPin(name privateline.ServerName, key ed25519.PublicKey) error {
	const op = "storage.SetPeerPin"
	if name == "" || len(key) != ed25519.PublicKeySize {
		return privateline.E(op, privateline.Invalid, "a peer pin needs a server name and an Ed25519 public key")
	}
	b := d.db.NewBatch()
	if err := d.setJSON(b, tPeerPin.key(d.serverHash(name)), peerPin{Name: name, Key: key}); err != nil {
		b.Close()
		return privateline.E(op, err)
	}
	return d.commit(b)
}
