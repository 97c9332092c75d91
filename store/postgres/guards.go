package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/stele-log/stele"
)

var _ stele.GuardChecker = (*Store)(nil)

// The guards are the triggers and trigger functions the migrations create
// (0001_init.sql): UPDATE, DELETE and TRUNCATE refused on events, tree hashes
// and checkpoints; a log's head never shrinks nor is deleted. Each trigger
// must exist on its table, be enabled, fire BEFORE on exactly the operations
// the migration names, without a WHEN clause or column list, and call its
// function, whose body must be the migration's.
var (
	triggerDDL  = regexp.MustCompile(`(?s)CREATE TRIGGER (\w+) (BEFORE [A-Z ]+?) ON (\w+)\s+FOR EACH (ROW|STATEMENT) EXECUTE FUNCTION (\w+)\(\);`)
	functionDDL = regexp.MustCompile(`(?s)CREATE FUNCTION (\w+)\(\) RETURNS trigger LANGUAGE plpgsql AS \$\$(.*?)\$\$;`)
	spaces      = regexp.MustCompile(`\s+`)
)

// Bits of pg_trigger.tgtype.
const (
	tgRow      = 1
	tgBefore   = 2
	tgInsert   = 4
	tgDelete   = 8
	tgUpdate   = 16
	tgTruncate = 32
)

type guard struct {
	name, table, function string
	tgtype                int16
	ddl                   string
}

type guardFunc struct{ name, body, ddl string }

// expectedGuards reads the guards from the embedded migrations.
func expectedGuards() ([]guard, []guardFunc, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(names)
	var gs []guard
	var fns []guardFunc
	for _, n := range names {
		body, err := migrations.ReadFile(n)
		if err != nil {
			return nil, nil, err
		}
		for _, m := range triggerDDL.FindAllStringSubmatch(string(body), -1) {
			g := guard{name: m[1], table: m[3], function: m[5], tgtype: tgBefore, ddl: m[0]}
			if m[4] == "ROW" {
				g.tgtype |= tgRow
			}
			for _, op := range strings.Fields(strings.TrimPrefix(m[2], "BEFORE ")) {
				g.tgtype |= map[string]int16{"INSERT": tgInsert, "DELETE": tgDelete, "UPDATE": tgUpdate, "TRUNCATE": tgTruncate}[op]
			}
			gs = append(gs, g)
		}
		for _, m := range functionDDL.FindAllStringSubmatch(string(body), -1) {
			fns = append(fns, guardFunc{name: m[1], body: m[2], ddl: m[0]})
		}
	}
	return gs, fns, nil
}

func normalize(s string) string { return strings.TrimSpace(spaces.ReplaceAllString(s, " ")) }

// CheckGuards reports whether every guard is in place and unaltered
// (RELIABILITY.md TAM-22): nil, or an error naming each trigger or function
// that is missing, disabled or altered. It only reads. A session can still
// bypass triggers with session_replication_role = replica, which needs
// superuser rights: run the service under the least-privilege role.
func (s *Store) CheckGuards(ctx context.Context) error {
	ctx, cancel := s.read(ctx)
	defer cancel()
	bad, _, err := s.badGuards(ctx)
	if err != nil {
		return fmt.Errorf("couldn't read the database's triggers: %w", wrap(err))
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%d of the database's append-only guards are not in place: %s", len(bad), strings.Join(bad, ", "))
}

// badGuards returns a description of each guard not in place, and the
// statements that restore them.
func (s *Store) badGuards(ctx context.Context) ([]string, []string, error) {
	gs, fns, err := expectedGuards()
	if err != nil {
		return nil, nil, err
	}
	var bad, fix []string
	for _, f := range fns {
		var src string
		err := s.pool.QueryRow(ctx, "SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure($1 || '()')", f.name).Scan(&src)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			bad = append(bad, "function "+f.name+" missing")
		case err != nil:
			return nil, nil, err
		case normalize(src) != normalize(f.body):
			bad = append(bad, "function "+f.name+" altered")
		default:
			continue
		}
		fix = append(fix, strings.Replace(f.ddl, "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
	}
	for _, g := range gs {
		var tgtype int16
		var enabled, function string
		var hasWhen bool
		var columns int
		err := s.pool.QueryRow(ctx, `SELECT t.tgtype, t.tgenabled::text, p.proname, t.tgqual IS NOT NULL, coalesce(array_length(t.tgattr::int2[], 1), 0)
			FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
			WHERE t.tgrelid = to_regclass($1) AND t.tgname = $2 AND NOT t.tgisinternal`, g.table, g.name).
			Scan(&tgtype, &enabled, &function, &hasWhen, &columns)
		var problem string
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			problem = "missing"
		case err != nil:
			return nil, nil, err
		case enabled == "D":
			problem = "disabled"
		case enabled != "O" && enabled != "A":
			problem = "enabled for replicas only"
		case tgtype != g.tgtype || function != g.function || hasWhen || columns != 0:
			problem = "altered"
		default:
			continue
		}
		bad = append(bad, "trigger "+g.name+" on "+g.table+" "+problem)
		fix = append(fix, "DROP TRIGGER IF EXISTS "+g.name+" ON "+g.table, g.ddl)
	}
	return bad, fix, nil
}

// RestoreGuards re-creates every missing, disabled or altered guard as the
// migrations wrote it, in one transaction, and returns what it restored. It
// needs the tables' owner (not the least-privilege role).
func (s *Store) RestoreGuards(ctx context.Context) ([]string, error) {
	ctx, cancel := s.read(ctx)
	defer cancel()
	bad, fix, err := s.badGuards(ctx)
	if err != nil || len(bad) == 0 {
		return nil, wrap(err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, stmt := range fix { // statements from our own migrations, never from input
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("couldn't restore a guard (%s): %w", strings.SplitN(stmt, "\n", 2)[0], err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap(err)
	}
	return bad, nil
}
