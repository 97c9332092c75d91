package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/stele-log/stele"
)

// BenchmarkKeyUnderWrites is the authentication lookup as the server makes
// it: one Key read per request while the writer commits between requests
// (each commit invalidates the readers' page caches).
func BenchmarkKeyUnderWrites(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "stele.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateWorkspace(ctx, stele.Workspace{ID: "acme", Name: "Acme", CreatedAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	for i := range 50 {
		k := stele.APIKey{ID: "key" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Workspace: "acme", Name: "k",
			Scopes: []string{stele.ScopeWrite}, SecretHash: make([]byte, 32), CreatedAt: time.Now(), CreatedBy: "bench"}
		if err := s.CreateKey(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.w.ExecContext(ctx, "CREATE TABLE bench_writes (x BLOB)"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		if err := s.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO bench_writes VALUES (randomblob(400))")
			return err
		}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.Key(ctx, "keyaa"); err != nil {
			b.Fatal(err)
		}
	}
}
