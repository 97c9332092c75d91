package integrity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"golang.org/x/mod/sumdb/tlog"
)

// frontier is the right edge of the tree being rebuilt: the root of each
// complete subtree, by level. tlog does the hashing (StoredHashesForRecordHash,
// TreeHash); this only holds what it reads, without allocating per leaf.
type frontier struct {
	size int64
	root [64]tlog.Hash // root[l]: the subtree of 2^l leaves, when bit l of size is set
	buf  []tlog.Hash
}

// ReadHashes implements tlog.HashReader over the frontier: every hash tlog
// reads to append a leaf or to hash the tree is a frontier root.
func (f *frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	f.buf = f.buf[:0]
	for _, x := range indexes {
		level, _ := tlog.SplitStoredHashIndex(x)
		f.buf = append(f.buf, f.root[level])
	}
	return f.buf, nil
}

// Append adds a leaf and returns the hashes a store keeps for it.
func (f *frontier) Append(leaf tlog.Hash) ([]tlog.Hash, error) {
	stored, err := tlog.StoredHashesForRecordHash(f.size, leaf, f)
	if err != nil {
		return nil, err
	}
	// The highest hash is the new complete subtree; lower ones merged into it.
	f.root[len(stored)-1] = stored[len(stored)-1]
	f.size++
	return stored, nil
}

// Root returns the RFC 6962 root of the tree.
func (f *frontier) Root() tlog.Hash {
	h, err := tlog.TreeHash(f.size, f)
	if err != nil {
		panic("integrity: frontier misses a hash: " + err.Error())
	}
	return h
}

// rowMAC computes the row MACs of one workspace (sequencer.MAC, whose
// format it follows; the tests hold the two together), reusing one HMAC.
type rowMAC struct {
	h   hash.Hash
	ws  []byte
	buf []byte
}

func newMAC(key []byte, ws string) *rowMAC {
	if key == nil {
		return nil
	}
	return &rowMAC{h: hmac.New(sha256.New, key), ws: append([]byte(ws), 0)}
}

func (m *rowMAC) valid(seq int64, leaf tlog.Hash, mac []byte) bool {
	m.h.Reset()
	m.h.Write(m.ws)
	m.h.Write(binary.BigEndian.AppendUint64(m.buf[:0], uint64(seq)))
	m.h.Write(leaf[:])
	m.buf = m.h.Sum(m.buf[:0])
	return hmac.Equal(m.buf, mac)
}
