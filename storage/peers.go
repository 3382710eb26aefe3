package storage

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"

	"github.com/privateline/privateline"
)

// Peer pins (spec/federation.md §4.1): the identity key this server
// accepted for another server on first contact.
//
//	'N' server(16)   the server's name and its pinned Ed25519 key
//	'B' server(16)   the last signed tree head of the server's key directory
//	                 that this server verified (spec/federation.md §12.5)
//	'A' address(16)  the last verified directory answer for a remote user:
//	                 public data, served again while their server is down
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

type peerHead struct {
	Name privateline.ServerName `json:"name"`
	Head []byte                 `json:"head"` // canonical JSON of the signed tree head
}

// PeerDirectoryHead returns the last verified tree head of name's key
// directory (its canonical JSON), nil if none.
func (d *DB) PeerDirectoryHead(name privateline.ServerName) ([]byte, error) {
	var h peerHead
	err := d.getJSON(tPeerHead.key(d.serverHash(name)), &h)
	if privateline.Is(privateline.NotExist, err) {
		return nil, nil
	} else if err != nil {
		return nil, privateline.E("storage.PeerDirectoryHead", err)
	}
	if h.Name != name {
		return nil, privateline.E("storage.PeerDirectoryHead", privateline.Internal, "bad peer head record")
	}
	return h.Head, nil
}

// SetPeerDirectoryHead records head as the last verified tree head of
// name's key directory, durably.
func (d *DB) SetPeerDirectoryHead(name privateline.ServerName, head []byte) error {
	const op = "storage.SetPeerDirectoryHead"
	if name == "" || len(head) == 0 {
		return privateline.E(op, privateline.Invalid, "a peer head needs a server name and a head")
	}
	b := d.db.NewBatch()
	if err := d.setJSON(b, tPeerHead.key(d.serverHash(name)), peerHead{Name: name, Head: head}); err != nil {
		b.Close()
		return privateline.E(op, err)
	}
	return d.commit(b)
}

type remoteLookup struct {
	Address privateline.Address `json:"address"`
	Lookup  []byte              `json:"lookup"` // the answer's canonical JSON
}

func (d *DB) addressHash(a privateline.Address) []byte {
	m := hmac.New(sha256.New, d.nameKey)
	m.Write([]byte("remote-address\x00"))
	m.Write([]byte(a))
	return m.Sum(nil)[:16]
}

// RemoteLookup returns the last verified directory answer kept for a user
// of another server, nil if none.
func (d *DB) RemoteLookup(a privateline.Address) ([]byte, error) {
	var r remoteLookup
	err := d.getJSON(tRemoteLookup.key(d.addressHash(a)), &r)
	if privateline.Is(privateline.NotExist, err) {
		return nil, nil
	} else if err != nil {
		return nil, privateline.E("storage.RemoteLookup", err)
	}
	if r.Address != a {
		return nil, privateline.E("storage.RemoteLookup", privateline.Internal, "bad remote lookup record")
	}
	return r.Lookup, nil
}

// SetRemoteLookup keeps lookup as the last verified answer for a, durably.
func (d *DB) SetRemoteLookup(a privateline.Address, lookup []byte) error {
	const op = "storage.SetRemoteLookup"
	if a == "" || len(lookup) == 0 {
		return privateline.E(op, privateline.Invalid, "a remote lookup needs an address and an answer")
	}
	b := d.db.NewBatch()
	if err := d.setJSON(b, tRemoteLookup.key(d.addressHash(a)), remoteLookup{Address: a, Lookup: lookup}); err != nil {
		b.Close()
		return privateline.E(op, err)
	}
	return d.commit(b)
}

// DeleteRemoteLookup forgets the answer kept for a (the user is gone).
func (d *DB) DeleteRemoteLookup(a privateline.Address) error {
	b := d.db.NewBatch()
	if err := b.Delete(tRemoteLookup.key(d.addressHash(a)), nil); err != nil {
		b.Close()
		return privateline.E("storage.DeleteRemoteLookup", privateline.Internal, err)
	}
	return d.commit(b)
}
