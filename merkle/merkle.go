// Package merkle is the Merkle tree hashing of RFC 6962 §2.1 (restated in
// RFC 9162 §2.1), used by the key directory's append-only log: leaf and
// node hashes, the root of a tree of n leaves, inclusion and consistency
// proofs, and their verification.
//
// For a list of n leaves D[0:n] (n ≥ 1):
//
//	MTH({})      = SHA-256()                                  the empty tree
//	MTH({d})     = SHA-256(0x00 ‖ d)                          a leaf
//	MTH(D[0:n])  = SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n]))  k = the largest power of two < n
//
// Every left subtree D[0:k] in that recursion is perfect (k leaves, k a
// power of two, aligned to a multiple of k), and the right parts split the
// same way, so every node a proof needs is either a perfect subtree or
// folded from O(log n) of them. A log that stores the hash of each perfect
// subtree as it completes ([AppendNodes]) therefore appends and proves in
// O(log n) reads and writes; [NodeSource] is that storage.
//
// The package imports nothing of the project's own: the server (storage,
// keydir) and the client SDK share it.
package merkle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
)

// HashSize is the size of every hash in the tree (SHA-256).
const HashSize = sha256.Size

// Hash is a leaf, node or root hash.
type Hash [HashSize]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Domain-separation prefixes of RFC 6962 §2.1.
const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

// LeafHash returns SHA-256(0x00 ‖ data), the hash of a leaf.
func LeafHash(data []byte) Hash {
	h := sha256.New()
	h.Write([]byte{leafPrefix})
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// NodeHash returns SHA-256(0x01 ‖ left ‖ right), the hash of an interior
// node.
func NodeHash(left, right Hash) Hash {
	var buf [1 + 2*HashSize]byte
	buf[0] = nodePrefix
	copy(buf[1:], left[:])
	copy(buf[1+HashSize:], right[:])
	return sha256.Sum256(buf[:])
}

// EmptyRoot is the root of the tree with no leaves, SHA-256 of nothing.
func EmptyRoot() Hash { return sha256.Sum256(nil) }

// Errors of proof generation and verification.
var (
	// ErrRange reports sizes or indices that do not fit together (an index
	// beyond the tree, a consistency proof from a larger tree to a smaller).
	ErrRange = errors.New("merkle: index or size out of range")
	// ErrProof reports a proof that does not verify.
	ErrProof = errors.New("merkle: proof does not verify")
)

// A NodeSource gives the hashes of perfect subtrees: Node(level, index) is
// the hash of the 2^level leaves starting at index·2^level (level 0: the
// leaf hashes). Callers in this package ask only for subtrees that lie
// wholly within the tree size they were given.
type NodeSource interface {
	Node(level uint8, index uint64) (Hash, error)
}

// Node is one perfect subtree's hash, as AppendNodes reports it.
type Node struct {
	Level uint8
	Index uint64
	Hash  Hash
}

// AppendNodes returns the perfect subtrees completed by appending a leaf
// whose hash is leaf to a tree of size leaves: the leaf itself (level 0,
// index size) and every ancestor that the new leaf completes, lowest first.
// It reads one left sibling per completed ancestor from src.
func AppendNodes(src NodeSource, size uint64, leaf Hash) ([]Node, error) {
	nodes := []Node{{0, size, leaf}}
	h, idx := leaf, size
	for level := uint8(0); idx&1 == 1; level++ {
		left, err := src.Node(level, idx-1)
		if err != nil {
			return nil, err
		}
		h, idx = NodeHash(left, h), idx>>1
		nodes = append(nodes, Node{level + 1, idx, h})
	}
	return nodes, nil
}

// splitPoint returns the largest power of two smaller than n (n ≥ 2).
func splitPoint(n uint64) uint64 { return 1 << (bits.Len64(n-1) - 1) }

// rangeHash returns MTH(D[lo:hi]) for a range that occurs in the RFC 6962
// recursion, reading only perfect subtrees from src.
func rangeHash(src NodeSource, lo, hi uint64) (Hash, error) {
	n := hi - lo
	if n == 0 {
		return EmptyRoot(), nil
	}
	if n&(n-1) == 0 && lo%n == 0 {
		level := uint8(bits.TrailingZeros64(n))
		return src.Node(level, lo>>level)
	}
	k := splitPoint(n)
	l, err := rangeHash(src, lo, lo+k)
	if err != nil {
		return Hash{}, err
	}
	r, err := rangeHash(src, lo+k, hi)
	if err != nil {
		return Hash{}, err
	}
	return NodeHash(l, r), nil
}

// Root returns the root hash of the first size leaves of src.
func Root(src NodeSource, size uint64) (Hash, error) { return rangeHash(src, 0, size) }

// InclusionProof returns the audit path of the leaf at index in the tree of
// the first size leaves (RFC 9162 §2.1.3.1 PATH), lowest node first.
func InclusionProof(src NodeSource, index, size uint64) ([]Hash, error) {
	if index >= size {
		return nil, fmt.Errorf("%w: leaf %d of a tree of %d", ErrRange, index, size)
	}
	var path func(lo, hi uint64) ([]Hash, error)
	path = func(lo, hi uint64) ([]Hash, error) {
		n := hi - lo
		if n == 1 {
			return nil, nil
		}
		k := splitPoint(n)
		var (
			p       []Hash
			sibling Hash
			err     error
		)
		if index < lo+k {
			if p, err = path(lo, lo+k); err == nil {
				sibling, err = rangeHash(src, lo+k, hi)
			}
		} else {
			if p, err = path(lo+k, hi); err == nil {
				sibling, err = rangeHash(src, lo, lo+k)
			}
		}
		if err != nil {
			return nil, err
		}
		return append(p, sibling), nil
	}
	return path(0, size)
}

// ConsistencyProof returns the proof that the tree of the first from leaves
// is a prefix of the tree of the first to leaves (RFC 9162 §2.1.4.1
// PROOF), for 0 < from ≤ to. It is empty when from = to.
func ConsistencyProof(src NodeSource, from, to uint64) ([]Hash, error) {
	if from == 0 || from > to {
		return nil, fmt.Errorf("%w: consistency from %d to %d", ErrRange, from, to)
	}
	// sub is SUBPROOF(m, D[lo:hi], b), m counting leaves from lo.
	var sub func(m, lo, hi uint64, b bool) ([]Hash, error)
	sub = func(m, lo, hi uint64, b bool) ([]Hash, error) {
		n := hi - lo
		if m == n {
			if b {
				return nil, nil
			}
			h, err := rangeHash(src, lo, hi)
			if err != nil {
				return nil, err
			}
			return []Hash{h}, nil
		}
		k := splitPoint(n)
		var (
			p    []Hash
			node Hash
			err  error
		)
		if m <= k {
			if p, err = sub(m, lo, lo+k, b); err == nil {
				node, err = rangeHash(src, lo+k, hi)
			}
		} else {
			if p, err = sub(m-k, lo+k, hi, false); err == nil {
				node, err = rangeHash(src, lo, lo+k)
			}
		}
		if err != nil {
			return nil, err
		}
		return append(p, node), nil
	}
	return sub(from, 0, to, true)
}

// VerifyInclusion checks that leaf is the leaf at index of the tree of size
// leaves whose root is root, given its audit path (RFC 9162 §2.1.3.2).
func VerifyInclusion(leaf Hash, index, size uint64, proof []Hash, root Hash) error {
	if index >= size {
		return fmt.Errorf("%w: leaf %d of a tree of %d", ErrRange, index, size)
	}
	fn, sn, r := index, size-1, leaf
	for _, p := range proof {
		if sn == 0 {
			return ErrProof // the proof is longer than the tree is deep
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 || r != root {
		return ErrProof
	}
	return nil
}

// VerifyConsistency checks that the tree of from leaves with root fromRoot
// is a prefix of the tree of to leaves with root toRoot (RFC 9162
// §2.1.4.2). Equal sizes need an empty proof and equal roots; from must be
// at least 1 (every tree extends the empty one, so there is nothing to
// prove).
func VerifyConsistency(from, to uint64, fromRoot, toRoot Hash, proof []Hash) error {
	switch {
	case from == 0 || from > to:
		return fmt.Errorf("%w: consistency from %d to %d", ErrRange, from, to)
	case from == to:
		if len(proof) != 0 || fromRoot != toRoot {
			return ErrProof
		}
		return nil
	case len(proof) == 0:
		return ErrProof
	}
	if from&(from-1) == 0 {
		proof = append([]Hash{fromRoot}, proof...)
	}
	fn, sn := from-1, to-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := proof[0], proof[0]
	for _, c := range proof[1:] {
		if sn == 0 {
			return ErrProof
		}
		if fn&1 == 1 || fn == sn {
			fr = NodeHash(c, fr)
			sr = NodeHash(c, sr)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 || fr != fromRoot || sr != toRoot {
		return ErrProof
	}
	return nil
}
