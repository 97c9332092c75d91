package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stele-log/stele"
)

func TestExpectedGuardsCoverTheLog(t *testing.T) {
	gs, err := expectedGuards()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range gs {
		names = append(names, g.name)
	}
	for _, want := range []string{"events_append_only_update", "events_append_only_delete", "tree_append_only_update",
		"tree_append_only_delete", "checkpoints_append_only_update", "checkpoints_append_only_delete"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("guards %v lack %s", names, want)
		}
	}
}

// TestGuards drops one guard trigger and neuters another, and expects
// CheckGuards to name both, on the live store and on a read-only one, and
// RestoreGuards to put them back so that the guarded UPDATE fails again.
func TestGuards(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "stele.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CheckGuards(ctx); err != nil {
		t.Fatalf("fresh database: CheckGuards = %v, want nil", err)
	}
	for _, stmt := range []string{
		"DROP TRIGGER events_append_only_delete",
		"DROP TRIGGER tree_append_only_update",
		"CREATE TRIGGER tree_append_only_update BEFORE UPDATE ON tree WHEN 0 BEGIN SELECT RAISE(ABORT, 'stele: tree hashes are append-only'); END",
	} {
		if _, err := s.w.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	ro, err := Open(ctx, path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for name, st := range map[string]*Store{"read-write": s, "read-only": ro} {
		err := st.CheckGuards(ctx)
		if err == nil {
			t.Fatalf("%s: CheckGuards = nil after dropping guards", name)
		}
		for _, want := range []string{"events_append_only_delete missing", "tree_append_only_update altered"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: CheckGuards = %q, want it to say %q", name, err, want)
			}
		}
	}
	if _, err := ro.RestoreGuards(ctx); err == nil {
		t.Error("RestoreGuards on a read-only store succeeded")
	}
	restored, err := s.RestoreGuards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(restored) != 2 {
		t.Errorf("restored %v, want the two broken guards", restored)
	}
	if err := s.CheckGuards(ctx); err != nil {
		t.Errorf("after RestoreGuards: %v", err)
	}
	if _, err := s.w.ExecContext(ctx, "INSERT INTO tree (rowid, hashes, mac) VALUES (1, x'00', x'00')"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, "UPDATE tree SET mac = x'01'"); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("UPDATE tree after restore: err = %v, want the guard's refusal", err)
	}
}

// TestReadOnly opens a database read-only beside its writer: reads see
// committed data, every write is refused, nothing is created or migrated.
func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Open(ctx, filepath.Join(dir, "missing.db"), Options{ReadOnly: true}); err == nil {
		t.Error("read-only open of a missing database succeeded")
	}
	path := filepath.Join(dir, "stele.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateWorkspace(ctx, stele.Workspace{ID: "ws1", Name: "one", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(ctx, path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Workspace(ctx, "ws1"); err != nil {
		t.Errorf("read-only Workspace: %v", err)
	}
	if err := ro.CreateWorkspace(ctx, stele.Workspace{ID: "ws2", Name: "two", CreatedAt: time.Now()}); err == nil {
		t.Error("read-only CreateWorkspace succeeded")
	}
	if err := ro.Update(ctx, func(stele.AppendTx) error { return nil }); err == nil {
		t.Error("read-only Update succeeded")
	}
	if err := ro.Ping(ctx); err == nil {
		t.Error("read-only Ping reports writable")
	}
	// Even raw SQL on its connections cannot write.
	if _, err := ro.r.ExecContext(ctx, "INSERT INTO workspaces (n, id, name, created_ns) VALUES (99, 'x', 'x', 0)"); err == nil {
		t.Error("raw INSERT through a read-only connection succeeded")
	}
	if _, err := s.Workspace(ctx, "x"); err == nil {
		t.Error("the raw INSERT took effect")
	}
}
