// Package tree holds the arithmetic of Stele's Merkle trees over
// golang.org/x/mod/sumdb/tlog: where each stored hash lives, which hashes an
// append needs (the frontier), and the frontier itself. It does no I/O and
// never re-derives RFC 6962 hashing: tlog does that.
//
// A log of n leaves stores, for each leaf, the hashes tlog.StoredHashes
// returns when the leaf is appended: the leaf hash, then the root of every
// complete subtree the leaf completes. Stores keep them beside the leaf, so
// the stored hash with tlog index i lives at the leaf Locate(i) returns.
package tree

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// Locate returns where tlog's stored hash index lives: the seq of the leaf
// whose append produced it, and its offset among that leaf's stored hashes.
func Locate(index int64) (seq int64, offset int) {
	level, n := tlog.SplitStoredHashIndex(index)
	return (n+1)<<level - 1, level
}

// FrontierIndexes returns the stored-hash indexes of the roots of the
// complete subtrees that make up a tree of size leaves, largest first. They
// are all that appending to the tree, or computing its root, reads.
func FrontierIndexes(size int64) []int64 {
	var idx []int64
	for level := 62; level >= 0; level-- {
		if size>>level&1 == 1 {
			idx = append(idx, tlog.StoredHashIndex(level, size>>level-1))
		}
	}
	return idx
}

// Frontier is the right edge of a tree: enough to append leaves and compute
// the root without reading anything else. It is not safe for concurrent use.
type Frontier struct {
	size   int64
	hashes map[int64]tlog.Hash // by stored-hash index; exactly FrontierIndexes(size)
}

// NewFrontier returns the frontier of a tree of size leaves from the hashes
// at FrontierIndexes(size), in that order.
func NewFrontier(size int64, hashes []tlog.Hash) (*Frontier, error) {
	idx := FrontierIndexes(size)
	if len(hashes) != len(idx) {
		return nil, fmt.Errorf("frontier of size %d needs %d hashes, got %d", size, len(idx), len(hashes))
	}
	f := &Frontier{size: size, hashes: make(map[int64]tlog.Hash, len(idx))}
	for i, x := range idx {
		f.hashes[x] = hashes[i]
	}
	return f, nil
}

// Size returns the number of leaves in the tree.
func (f *Frontier) Size() int64 { return f.size }

// Clone returns an independent copy of f.
func (f *Frontier) Clone() *Frontier {
	c := &Frontier{size: f.size, hashes: make(map[int64]tlog.Hash, len(f.hashes))}
	for k, v := range f.hashes {
		c.hashes[k] = v
	}
	return c
}

// ReadHashes implements tlog.HashReader over the frontier.
func (f *Frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := f.hashes[x]
		if !ok {
			return nil, fmt.Errorf("stored hash %d is not on the frontier of size %d", x, f.size)
		}
		out[i] = h
	}
	return out, nil
}

// Append adds a leaf with the given leaf hash and returns the hashes to
// store for it (tlog.StoredHashesForRecordHash), the first being leafHash.
func (f *Frontier) Append(leafHash tlog.Hash) ([]tlog.Hash, error) {
	n := f.size
	stored, err := tlog.StoredHashesForRecordHash(n, leafHash, f)
	if err != nil {
		return nil, err
	}
	for level, h := range stored {
		f.hashes[tlog.StoredHashIndex(level, n>>level)] = h
	}
	f.size++
	keep := FrontierIndexes(f.size)
	for x := range f.hashes {
		if !contains(keep, x) {
			delete(f.hashes, x)
		}
	}
	return stored, nil
}

// Root returns the RFC 6962 root of the tree.
func (f *Frontier) Root() tlog.Hash {
	h, err := tlog.TreeHash(f.size, f)
	if err != nil {
		panic("tree: frontier misses a hash it must hold: " + err.Error())
	}
	return h
}

func contains(xs []int64, x int64) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// HashReaderFunc adapts a function to tlog.HashReader.
type HashReaderFunc func([]int64) ([]tlog.Hash, error)

// ReadHashes calls f.
func (f HashReaderFunc) ReadHashes(indexes []int64) ([]tlog.Hash, error) { return f(indexes) }

// StoredHash returns the stored hash with tlog index from the stored hashes
// of its leaf (as returned by Locate).
func StoredHash(leafHashes []tlog.Hash, index int64) (tlog.Hash, error) {
	_, off := Locate(index)
	if off >= len(leafHashes) {
		return tlog.Hash{}, fmt.Errorf("stored hash %d missing: its leaf holds %d hashes", index, len(leafHashes))
	}
	return leafHashes[off], nil
}

// HashesPerLeaf returns how many hashes the append of leaf seq stores:
// one plus the number of trailing one bits of seq.
func HashesPerLeaf(seq int64) int {
	n := 1
	for seq&1 == 1 {
		n++
		seq >>= 1
	}
	return n
}

// JoinHashes is the stored form of the tree hashes one position adds (the
// Entry.TreeHashes of an append): the hashes concatenated.
func JoinHashes(hs []tlog.Hash) []byte {
	out := make([]byte, 0, len(hs)*tlog.HashSize)
	for _, h := range hs {
		out = append(out, h[:]...)
	}
	return out
}

// SplitHashes parses what JoinHashes made. It refuses anything that is not
// a positive whole number of hashes.
func SplitHashes(b []byte) ([]tlog.Hash, error) {
	if len(b) == 0 || len(b)%tlog.HashSize != 0 {
		return nil, fmt.Errorf("malformed tree hashes (%d bytes)", len(b))
	}
	out := make([]tlog.Hash, len(b)/tlog.HashSize)
	for i := range out {
		copy(out[i][:], b[i*tlog.HashSize:])
	}
	return out, nil
}
