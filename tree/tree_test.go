package tree

import (
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestFrontierAgainstTlog appends leaves through a Frontier and checks every
// stored hash and root against tlog computing over all stored hashes.
func TestFrontierAgainstTlog(t *testing.T) {
	var all []tlog.Hash // every stored hash, by tlog index
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = all[x]
		}
		return out, nil
	})
	f, err := NewFrontier(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for n := int64(0); n < 300; n++ {
		rec := []byte(fmt.Sprintf("record %d", n))
		want, err := tlog.StoredHashes(n, rec, reader)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.Append(tlog.RecordHash(rec))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("leaf %d: stored hashes %v, tlog says %v", n, got, want)
		}
		if len(got) != HashesPerLeaf(n) {
			t.Fatalf("leaf %d: %d hashes, HashesPerLeaf says %d", n, len(got), HashesPerLeaf(n))
		}
		for i, h := range got {
			idx := int64(len(all) + i)
			seq, off := Locate(idx)
			if seq != n || off != i {
				t.Fatalf("Locate(%d) = (%d,%d), want (%d,%d)", idx, seq, off, n, i)
			}
			if sh, err := StoredHash(got, idx); err != nil || sh != h {
				t.Fatalf("StoredHash(%d) = %v, %v", idx, sh, err)
			}
		}
		all = append(all, want...)
		wantRoot, err := tlog.TreeHash(n+1, reader)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Root(); got != wantRoot {
			t.Fatalf("size %d: root %v, want %v", n+1, got, wantRoot)
		}
		// A frontier loaded from storage must equal the one grown in memory.
		hs, err := reader.ReadHashes(FrontierIndexes(n + 1))
		if err != nil {
			t.Fatal(err)
		}
		g, err := NewFrontier(n+1, hs)
		if err != nil {
			t.Fatal(err)
		}
		if g.Root() != wantRoot {
			t.Fatalf("loaded frontier of size %d has another root", n+1)
		}
	}
	if got := len(f.hashes); got != len(FrontierIndexes(300)) {
		t.Errorf("frontier holds %d hashes, want %d", got, len(FrontierIndexes(300)))
	}
}

func TestEmptyRoot(t *testing.T) {
	f, _ := NewFrontier(0, nil)
	want, _ := tlog.TreeHash(0, nil)
	if f.Root() != want {
		t.Errorf("empty root %v, want %v", f.Root(), want)
	}
}

func TestJoinSplitHashes(t *testing.T) {
	hs := []tlog.Hash{tlog.RecordHash([]byte("a")), tlog.RecordHash([]byte("b")), tlog.RecordHash([]byte("c"))}
	got, err := SplitHashes(JoinHashes(hs))
	if err != nil || len(got) != 3 || got[0] != hs[0] || got[2] != hs[2] {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, b := range [][]byte{nil, {}, make([]byte, 31), make([]byte, 33), make([]byte, 65)} {
		if _, err := SplitHashes(b); err == nil {
			t.Errorf("%d bytes accepted", len(b))
		}
	}
}
