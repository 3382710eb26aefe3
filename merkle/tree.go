package merkle

import "fmt"

// Tree is an in-memory log: the perfect subtree hashes of its leaves, kept
// as AppendNodes makes them. It is a NodeSource, for tests and for clients
// that mirror a small log. The zero Tree is empty and ready to use; a Tree
// is not safe for concurrent use.
type Tree struct {
	levels [][]Hash // levels[l][i] = Node(l, i)
}

// Size returns the number of leaves.
func (t *Tree) Size() uint64 {
	if len(t.levels) == 0 {
		return 0
	}
	return uint64(len(t.levels[0]))
}

// Append adds a leaf with the given data and returns its hash.
func (t *Tree) Append(data []byte) Hash {
	h := LeafHash(data)
	t.AppendHash(h)
	return h
}

// AppendHash adds a leaf given its leaf hash.
func (t *Tree) AppendHash(leaf Hash) {
	nodes, err := AppendNodes(t, t.Size(), leaf)
	if err != nil {
		panic(err) // every sibling a Tree is asked for exists
	}
	for _, n := range nodes {
		if int(n.Level) == len(t.levels) {
			t.levels = append(t.levels, nil)
		}
		t.levels[n.Level] = append(t.levels[n.Level], n.Hash)
	}
}

// Node implements NodeSource.
func (t *Tree) Node(level uint8, index uint64) (Hash, error) {
	if int(level) >= len(t.levels) || index >= uint64(len(t.levels[level])) {
		return Hash{}, fmt.Errorf("%w: no complete subtree at level %d, index %d", ErrRange, level, index)
	}
	return t.levels[level][index], nil
}

// Root returns the root of the whole tree.
func (t *Tree) Root() Hash {
	r, err := Root(t, t.Size())
	if err != nil {
		panic(err)
	}
	return r
}
