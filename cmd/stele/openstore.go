package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/store/sqlite"
)

// openStore opens the log's database: the PostgreSQL server that dbURL
// names (postgres:// or postgresql://), or, when dbURL is empty, the
// embedded SQLite database in dataDir. Migrations are applied on open.
func openStore(ctx context.Context, dataDir, dbURL string) (stele.Store, error) {
	switch {
	case dbURL == "":
		return sqlite.Open(ctx, filepath.Join(dataDir, "stele.db"), sqlite.Options{})
	case strings.HasPrefix(dbURL, "postgres://"), strings.HasPrefix(dbURL, "postgresql://"):
		return nil, fmt.Errorf("--db %s: the PostgreSQL backend is not built yet", redactURL(dbURL))
	default:
		return nil, fmt.Errorf("--db: want a postgres:// URL, or no --db for the embedded SQLite database")
	}
}

// redactURL is dbURL without its password, fit for messages and logs.
func redactURL(dbURL string) string {
	scheme, rest, ok := strings.Cut(dbURL, "://")
	if !ok {
		return "(unparsable URL)"
	}
	creds, host, ok := strings.Cut(rest, "@")
	if !ok {
		return dbURL
	}
	user, _, _ := strings.Cut(creds, ":")
	return scheme + "://" + user + ":xxxxx@" + host
}
