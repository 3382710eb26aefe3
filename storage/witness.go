package storage

import (
	"crypto/sha256"
	"encoding/json"

	"github.com/privateline/privateline"
)

// Tree-head witnessing (spec/federation.md §12.6).
//
//	'J' server(16)             the latest co-signature a witness (a peer
//	                           server) made of this server's directory
//	'Y' server(16) hash(16)    fork evidence: two heads of a peer's
//	                           directory that cannot both be true
//
// Values are the federation package's canonical JSON, kept as given.

// MaxForksPerServer caps the fork evidence kept per server: a directory
// that forks once is already caught; the cap keeps a hostile one from
// filling the disk with more.
const MaxForksPerServer = 16

type witnessRecord struct {
	Name privateline.ServerName `json:"name"`
	Data []byte                 `json:"data"`
}

// Cosignature returns the latest co-signature witness made of this
// server's directory, nil if none.
func (d *DB) Cosignature(witness privateline.ServerName) ([]byte, error) {
	var r witnessRecord
	err := d.getJSON(tCosignature.key(d.serverHash(witness)), &r)
	if privateline.Is(privateline.NotExist, err) {
		return nil, nil
	} else if err != nil {
		return nil, privateline.E("storage.Cosignature", err)
	}
	if r.Name != witness {
		return nil, privateline.E("storage.Cosignature", privateline.Internal, "bad co-signature record")
	}
	return r.Data, nil
}

// SetCosignature keeps c as witness's latest co-signature, durably.
func (d *DB) SetCosignature(witness privateline.ServerName, c []byte) error {
	const op = "storage.SetCosignature"
	if witness == "" || len(c) == 0 {
		return privateline.E(op, privateline.Invalid, "a co-signature needs a witness and a value")
	}
	b := d.db.NewBatch()
	if err := d.setJSON(b, tCosignature.key(d.serverHash(witness)), witnessRecord{Name: witness, Data: c}); err != nil {
		b.Close()
		return privateline.E(op, err)
	}
	return d.commit(b)
}

// Cosignatures returns every witness's latest co-signature (in no
// particular order).
func (d *DB) Cosignatures() ([][]byte, error) {
	return d.scanWitness(tCosignature, "storage.Cosignatures")
}

// AddDirectoryFork keeps evidence that server's directory forked,
// durably. The same evidence twice is kept once; more than
// MaxForksPerServer pieces for one server are not kept (added is false).
func (d *DB) AddDirectoryFork(server privateline.ServerName, evidence []byte) (added bool, err error) {
	const op = "storage.AddDirectoryFork"
	if server == "" || len(evidence) == 0 {
		return false, privateline.E(op, privateline.Invalid, "fork evidence needs a server and a value")
	}
	sh := d.serverHash(server)
	eh := sha256.Sum256(evidence)
	key := tFork.key(sh, eh[:16])
	n := 0
	err = d.scanKeys(tFork.key(sh), func(k, _ []byte) error {
		if string(k) == string(key) {
			n = -1 << 30
		}
		n++
		return nil
	})
	if err != nil {
		return false, privateline.E(op, err)
	}
	if n < 0 || n >= MaxForksPerServer {
		return false, nil
	}
	b := d.db.NewBatch()
	if err := d.setJSON(b, key, witnessRecord{Name: server, Data: evidence}); err != nil {
		b.Close()
		return false, privateline.E(op, err)
	}
	if err := d.commit(b); err != nil {
		return false, err
	}
	return true, nil
}

// DirectoryForks returns every fork evidence kept (in no particular
// order).
func (d *DB) DirectoryForks() ([][]byte, error) {
	return d.scanWitness(tFork, "storage.DirectoryForks")
}

func (d *DB) scanWitness(t table, op string) ([][]byte, error) {
	var out [][]byte
	err := d.scanKeys(t.key(), func(k, v []byte) error {
		pt, err := d.seal.open(k, v)
		if err != nil {
			return privateline.E(op, privateline.Internal, err)
		}
		var r witnessRecord
		if err := json.Unmarshal(pt, &r); err != nil {
			return privateline.E(op, privateline.Internal, err)
		}
		out = append(out, r.Data)
		return nil
	})
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return out, nil
}
