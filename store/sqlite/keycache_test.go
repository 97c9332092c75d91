package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stele-log/stele"
)

// TestKeyRevocationAcrossProcesses: two stores on one database stand for two
// server processes. A key that one of them has authenticated (and so holds
// in memory) stops working there the moment the other revokes or rotates
// it, and a caller mutating a returned key does not change what is cached.
func TestKeyRevocationAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "stele.db")
	a, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.CreateWorkspace(ctx, stele.Workspace{ID: "acme", Name: "Acme", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	k := stele.APIKey{ID: "k1", Workspace: "acme", Name: "ci", Scopes: []string{stele.ScopeWrite},
		SecretHash: []byte("hash-1"), CreatedAt: time.Now(), CreatedBy: "test"}
	if err := a.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	for range 3 { // read twice so that the second answer comes from memory
		got, err := a.Key(ctx, "k1")
		if err != nil {
			t.Fatal(err)
		}
		if !got.RevokedAt.IsZero() || string(got.SecretHash) != "hash-1" {
			t.Fatalf("unexpected key %+v", got)
		}
		got.Scopes[0] = "tampered"
		got.SecretHash[0] = 'X'
	}
	got, err := a.Key(ctx, "k1")
	if err != nil || got.Scopes[0] != stele.ScopeWrite || string(got.SecretHash) != "hash-1" {
		t.Fatalf("a caller's changes reached the cache: %+v, %v", got, err)
	}

	rotated := got
	rotated.SecretHash = []byte("hash-2")
	if err := b.UpdateKey(ctx, rotated); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Key(ctx, "k1"); err != nil || string(got.SecretHash) != "hash-2" {
		t.Fatalf("after rotation in another process: %+v, %v", got, err)
	}
	a.Key(ctx, "k1")
	revoked := rotated
	revoked.RevokedAt = time.Now().UTC()
	if err := b.UpdateKey(ctx, revoked); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Key(ctx, "k1"); err != nil || got.RevokedAt.IsZero() {
		t.Fatalf("a key revoked by another process still reads as active: %+v, %v", got, err)
	}
	if _, err := a.Key(ctx, "nope"); err != stele.ErrNotFound {
		t.Fatalf("unknown key: %v", err)
	}
}
