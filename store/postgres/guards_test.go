package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stele-log/stele"

	"github.com/stele-log/stele/store/postgres/pgtest"
)

// TestGuards removes, disables and alters guards behind the store's back and
// expects CheckGuards to name each, and RestoreGuards to put them back so
// that the guarded statements fail again (TAM-22).
func TestGuards(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s := open(t, url)
	defer s.Close()
	if err := s.CreateWorkspace(ctx, stele.Workspace{ID: "acme", Name: "acme", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckGuards(ctx); err != nil {
		t.Fatalf("fresh database: CheckGuards = %v, want nil", err)
	}
	pgtest.ExecOn(t, url,
		"DROP TRIGGER events_append_only ON events",
		"ALTER TABLE tree DISABLE TRIGGER tree_append_only",
		"DROP TRIGGER checkpoints_append_only ON checkpoints",
		"CREATE TRIGGER checkpoints_append_only BEFORE UPDATE ON checkpoints FOR EACH STATEMENT EXECUTE FUNCTION stele_append_only()",
		"CREATE OR REPLACE FUNCTION stele_log_never_shrinks() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
	)
	err := s.CheckGuards(ctx)
	if err == nil {
		t.Fatal("CheckGuards = nil after the guards were tampered with")
	}
	for _, want := range []string{"events_append_only on events missing", "tree_append_only on tree disabled",
		"checkpoints_append_only on checkpoints altered", "function stele_log_never_shrinks altered"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("CheckGuards = %q; want it to name %q", err, want)
		}
	}
	restored, err := s.RestoreGuards(ctx)
	if err != nil || len(restored) != 4 {
		t.Fatalf("RestoreGuards = %v, %v; want 4 restored", restored, err)
	}
	if err := s.CheckGuards(ctx); err != nil {
		t.Errorf("after RestoreGuards: %v", err)
	}
	h := harness(t, s, url)
	for _, stmt := range []string{"DELETE FROM events", "UPDATE tree SET mac = mac", "DELETE FROM checkpoints", "UPDATE logs SET size = -1"} {
		if err := h.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "stele:") {
			t.Errorf("after RestoreGuards, %q: %v; want the guard's refusal", stmt, err)
		}
	}
}
