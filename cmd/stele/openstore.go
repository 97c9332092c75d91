package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/store/postgres"
	"github.com/stele-log/stele/store/sqlite"
)

// openStore opens the log's database: the PostgreSQL server that dbURL
// names (postgres:// or postgresql://), or, when dbURL is empty, the
// embedded SQLite database in dataDir. Migrations are applied on open. On
// PostgreSQL it warns, loudly, when the server's settings let a crash lose
// acknowledged events (synchronous_commit off or local, fsync off).
func openStore(ctx context.Context, dataDir, dbURL string, logger *slog.Logger) (stele.Store, error) {
	switch {
	case dbURL == "":
		return sqlite.Open(ctx, filepath.Join(dataDir, "stele.db"), sqlite.Options{})
	case isPostgresURL(dbURL):
		s, err := postgres.Open(ctx, dbURL, postgres.Options{})
		if err != nil {
			return nil, fmt.Errorf("--db %s: %w", redactURL(dbURL), err)
		}
		warning, err := s.DurabilityWarning(ctx)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("--db %s: couldn't read the server's durability settings: %w", redactURL(dbURL), err)
		}
		if warning != "" {
			logger.Warn("DURABILITY WARNING: "+warning+"; set synchronous_commit = on (or remote_apply with a synchronous standby)",
				"db", redactURL(dbURL))
		}
		return s, nil
	default:
		return nil, fmt.Errorf("--db: want a postgres:// URL, or no --db for the embedded SQLite database")
	}
}

// durabilityWarner is a store that can say whether its database may lose
// acknowledged writes in a crash (store/postgres).
type durabilityWarner interface {
	DurabilityWarning(ctx context.Context) (string, error)
}

// registerStoreMetrics exports stele_database_durability_warning: 1 when,
// at start, the database's settings let a crash lose acknowledged events
// (RELIABILITY.md DUR-09), else 0. SQLite's settings are enforced at open,
// so it is always 0 there.
func registerStoreMetrics(ctx context.Context, reg *prometheus.Registry, store stele.Store) {
	value := 0.0
	if dw, ok := store.(durabilityWarner); ok {
		if w, err := dw.DurabilityWarning(ctx); err != nil || w != "" {
			value = 1
		}
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stele_database_durability_warning",
		Help: "1 when the database's settings (synchronous_commit, fsync) let a crash lose acknowledged events."},
		func() float64 { return value }))
}

func isPostgresURL(dbURL string) bool {
	return strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://")
}

// writeLanes is how many batches the write path commits in parallel: one
// for SQLite's single writer; several on PostgreSQL, where transactions on
// different workspaces do not wait for each other.
func writeLanes(dbURL string) int {
	if isPostgresURL(dbURL) {
		return 4
	}
	return 1
}

// redactURL is dbURL without its password (in the user part or the
// password parameter), fit for messages and logs.
func redactURL(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
