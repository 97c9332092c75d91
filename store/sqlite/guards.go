package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"

	"github.com/stele-log/stele"
)

var _ stele.GuardChecker = (*Store)(nil)

// The guards are the triggers the migrations create (0001_init.sql: UPDATE
// and DELETE refused on events, tree hashes and checkpoints; a log's head
// never shrinks). Each must be in the database exactly as a migration wrote
// it: a trigger of the same name with another body (say, a WHEN 0 clause)
// counts as altered.
var (
	triggerDDL = regexp.MustCompile(`(?is)\bCREATE\s+TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\b.*?\bEND\b|\bDROP\s+TRIGGER\s+(?:IF\s+EXISTS\s+)?(\w+)`)
	spaces     = regexp.MustCompile(`\s+`)
)

// guard is one trigger the schema requires.
type guard struct {
	name string
	ddl  string // the CREATE TRIGGER statement as the migration wrote it
}

// expectedGuards returns the triggers the embedded migrations leave in
// place, in the order they were created.
func expectedGuards() ([]guard, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []guard
	for _, n := range names {
		body, err := migrations.ReadFile(n)
		if err != nil {
			return nil, err
		}
		for _, m := range triggerDDL.FindAllSubmatch(body, -1) {
			if len(m[1]) > 0 { // CREATE
				out = append(out, guard{name: string(m[1]), ddl: string(m[0])})
				continue
			}
			out = slices.DeleteFunc(out, func(g guard) bool { return strings.EqualFold(g.name, string(m[2])) })
		}
	}
	return out, nil
}

// CheckGuards reports whether every guard trigger is in place, unaltered
// (RELIABILITY.md TAM-22). It returns nil, or an error naming each missing
// or altered trigger. It only reads, so it works on a read-only store.
func (s *Store) CheckGuards(ctx context.Context) error {
	bad, err := s.badGuards(ctx)
	if err != nil {
		return fmt.Errorf("couldn't read the database's triggers: %w", err)
	}
	if len(bad) == 0 {
		return nil
	}
	var parts []string
	for _, b := range bad {
		parts = append(parts, b.name+" "+b.problem)
	}
	return fmt.Errorf("%d of the database's append-only guards are not in place: %s", len(bad), strings.Join(parts, ", "))
}

type badGuard struct {
	guard
	problem string // "missing" or "altered"
}

func (s *Store) badGuards(ctx context.Context) ([]badGuard, error) {
	want, err := expectedGuards()
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	have := map[string]string{}
	for rows.Next() {
		var name string
		var ddl sql.NullString
		if err := rows.Scan(&name, &ddl); err != nil {
			return nil, err
		}
		have[strings.ToLower(name)] = ddl.String
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var bad []badGuard
	for _, g := range want {
		ddl, ok := have[strings.ToLower(g.name)]
		switch {
		case !ok:
			bad = append(bad, badGuard{g, "missing"})
		case normalizeSQL(ddl) != normalizeSQL(g.ddl):
			bad = append(bad, badGuard{g, "altered"})
		}
	}
	return bad, nil
}

func normalizeSQL(s string) string {
	return strings.ToLower(strings.TrimSpace(spaces.ReplaceAllString(s, " ")))
}

// RestoreGuards re-creates every missing or altered guard trigger as the
// migrations wrote it, in one transaction, and returns the names it
// restored. It needs a store opened read-write.
func (s *Store) RestoreGuards(ctx context.Context) ([]string, error) {
	bad, err := s.badGuards(ctx)
	if err != nil || len(bad) == 0 {
		return nil, err
	}
	var restored []string
	err = s.write(ctx, func(tx *sql.Tx) error {
		for _, b := range bad {
			// Trigger names come from our own migrations, never from input.
			if _, err := tx.ExecContext(ctx, `DROP TRIGGER IF EXISTS "`+b.name+`"`); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, b.ddl); err != nil {
				return fmt.Errorf("couldn't re-create %s: %w", b.name, err)
			}
			restored = append(restored, b.name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return restored, nil
}
