package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/store/postgres/pgtest"
	"github.com/stele-log/stele/store/storetest"
)

// TestCheckIndexes edits query columns behind the store's back (as the
// owner, with the guard switched off) and expects CheckIndexes to name each
// edited event and column, and nothing else.
func TestCheckIndexes(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s := open(t, url)
	defer s.Close()
	if err := s.CreateWorkspace(ctx, stele.Workspace{ID: "acme", Name: "acme", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	l := storetest.NewLog("acme")
	l.Append(t, s, eventgen.New(5).Stream(200, time.Now().Add(-time.Hour), time.Second, true))  // a COPY batch
	l.Append(t, s, eventgen.New(6).Stream(10, time.Now().Add(-time.Minute), time.Second, true)) // an INSERT batch
	check := func() map[int64]string {
		t.Helper()
		found := map[int64]string{}
		if err := s.CheckIndexes(ctx, "acme", func(seq int64, detail string) error { found[seq] = detail; return nil }); err != nil {
			t.Fatal(err)
		}
		return found
	}
	if found := check(); len(found) != 0 {
		t.Fatalf("untouched log: %v", found)
	}
	pgtest.ExecOn(t, url,
		"ALTER TABLE events DISABLE TRIGGER events_append_only",
		"UPDATE events SET actor_id = 'someone-else'::bytea WHERE seq = 3",
		"UPDATE events SET words = '{}' WHERE seq = 150",
		"UPDATE events SET ip = NULL WHERE seq = (SELECT min(seq) FROM events WHERE ip IS NOT NULL)",
		"UPDATE events SET type = 'user.logout' WHERE seq = 205 AND type <> 'user.logout'",
		"ALTER TABLE events ENABLE TRIGGER events_append_only",
	)
	found := check()
	want := map[int64]string{3: "actor_id", 150: "words"}
	for seq, col := range want {
		if found[seq] != "the query column "+col+" differs from the stored event" {
			t.Errorf("seq %d: %q, want the %s column named", seq, found[seq], col)
		}
	}
	if len(found) < 3 || len(found) > 4 {
		t.Errorf("found %d edited events, want 3 or 4: %v", len(found), found)
	}
}
