package postgres

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/store/postgres/pgtest"
	"github.com/stele-log/stele/store/storetest"
)

func open(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, Options{MaxConns: 4})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func harness(t *testing.T, s *Store, url string) storetest.Harness {
	return storetest.Harness{Store: s, Exec: func(ctx context.Context, stmt string) error {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, stmt)
		return err
	}}
}

// TestConformance runs the store contract against a real PostgreSQL, each
// test in a database of its own, as the tables' owner.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		url := pgtest.NewDatabase(t)
		return harness(t, open(t, url), url)
	})
}

// leastPrivilegeURL migrates a new database as its owner, then returns the
// URL of a new role holding exactly the grants of least_privilege.sql.
func leastPrivilegeURL(t *testing.T) (owner, app string) {
	owner = pgtest.NewDatabase(t)
	open(t, owner).Close()
	role := pgtest.NewRole(t, owner)
	pgtest.ExecOn(t, owner, strings.ReplaceAll(LeastPrivilege, "stele_app", role))
	return owner, pgtest.WithUser(t, owner, role)
}

// TestConformanceLeastPrivilege runs the contract again as the documented
// least-privilege role: the service needs nothing more, and the harness's
// direct edits fail for want of grants as well as by the triggers.
func TestConformanceLeastPrivilege(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		_, app := leastPrivilegeURL(t)
		return harness(t, open(t, app), app)
	})
}

// TestLeastPrivilegeCannotRewrite checks that the service's role cannot
// edit the log even by switching the guards off, while the owner is stopped
// by the triggers.
func TestLeastPrivilegeCannotRewrite(t *testing.T) {
	owner, app := leastPrivilegeURL(t)
	s := open(t, app)
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateWorkspace(ctx, stele.Workspace{ID: "acme", Name: "acme", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	l := storetest.NewLog("acme")
	l.Append(t, s, eventgen.New(1).Stream(5, time.Now().Add(-time.Hour), time.Minute, true))
	if err := s.AddCheckpoint(ctx, stele.Checkpoint{Workspace: "acme", Size: 5, Root: l.Frontier.Root(), Time: time.Unix(100, 0), Note: []byte("n\n")}, -1); err != nil {
		t.Fatalf("AddCheckpoint as the service role: %v", err)
	}
	try := func(url, stmt string) *pgconn.PgError {
		t.Helper()
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			t.Fatalf("%q was accepted (err %v)", stmt, err)
		}
		return pgErr
	}
	for _, stmt := range []string{
		"UPDATE events SET outcome = 'failure'",
		"DELETE FROM events",
		"TRUNCATE events",
		"UPDATE tree SET mac = mac",
		"DELETE FROM tree",
		"UPDATE checkpoints SET note = note",
		"DELETE FROM checkpoints",
		"TRUNCATE checkpoints",
		"DELETE FROM logs",
		"ALTER TABLE events DISABLE TRIGGER events_append_only",
		"DROP TRIGGER events_append_only ON events",
		"DROP TABLE events",
	} {
		if e := try(app, stmt); e.Code != "42501" {
			t.Errorf("as the service role, %q failed with %s %s; want 42501 (insufficient privilege)", stmt, e.Code, e.Message)
		}
		if strings.HasPrefix(stmt, "UPDATE") || strings.HasPrefix(stmt, "DELETE") || strings.HasPrefix(stmt, "TRUNCATE") {
			// The owner has the grants; the triggers refuse.
			if e := try(owner, stmt); !strings.Contains(e.Message, "append-only") {
				t.Errorf("as the owner, %q failed with %q; want the append-only trigger", stmt, e.Message)
			}
		}
	}
	if e := try(app, "UPDATE logs SET size = 0"); e.Code != "42501" || !strings.Contains(e.Message, "never shrinks") {
		t.Errorf("shrinking a log as the service role: %s %s; want the trigger's refusal", e.Code, e.Message)
	}
	head, err := s.Head(ctx, "acme")
	if err != nil || head.Size != 5 || head.Root != l.Frontier.Root() {
		t.Errorf("head after the attempts: %+v, %v", head, err)
	}
}

// TestConcurrentFirstStart opens one new database from several goroutines at
// once: the schema is migrated once and every Open succeeds.
func TestConcurrentFirstStart(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), url, Options{MaxConns: 2})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
	s := open(t, url)
	defer s.Close()
	v, err := s.schemaVersion(context.Background())
	if names, _ := fs.Glob(migrations, "migrations/*.sql"); err != nil || v != len(names) || v < 2 {
		t.Errorf("schema version %d, %v; want %d", v, err, len(names))
	}
}

// TestDurabilityWarning detects synchronous_commit settings that let a
// database crash lose acknowledged events (DUR-09).
func TestDurabilityWarning(t *testing.T) {
	url := pgtest.NewDatabase(t)
	name := url[strings.LastIndex(url, "/")+1:]
	if i := strings.IndexByte(name, '?'); i >= 0 {
		name = name[:i]
	}
	for _, c := range []struct {
		setting string
		want    string
	}{
		{"on", ""},
		{"remote_apply", ""},
		{"off", "synchronous_commit=off"},
		{"local", "synchronous_commit=local"},
	} {
		pgtest.Exec(t, "ALTER DATABASE "+name+" SET synchronous_commit = "+c.setting)
		s := open(t, url)
		got, err := s.DurabilityWarning(context.Background())
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("synchronous_commit=%s: warning %q, want %q", c.setting, got, c.want)
		}
	}
}

// TestUnreachableIsUnavailable checks that a store whose server is gone
// answers ErrUnavailable quickly on reads, writes and Ping, and never hangs.
func TestUnreachableIsUnavailable(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s := open(t, url)
	ctx := context.Background()
	if err := s.CreateWorkspace(ctx, stele.Workspace{ID: "acme", Name: "acme", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Cut every connection of the store from the server side and refuse new ones.
	name := url[strings.LastIndex(url, "/")+1:]
	if i := strings.IndexByte(name, '?'); i >= 0 {
		name = name[:i]
	}
	pgtest.Exec(t, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS false",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+name+"'")
	if err := s.Ping(ctx); !errors.Is(err, stele.ErrUnavailable) {
		t.Errorf("Ping: %v, want ErrUnavailable", err)
	}
	if _, err := s.Head(ctx, "acme"); !errors.Is(err, stele.ErrUnavailable) {
		t.Errorf("Head: %v, want ErrUnavailable", err)
	}
	err := s.Update(ctx, func(tx stele.AppendTx) error { _, err := tx.LockHead(ctx, "acme"); return err })
	if !errors.Is(err, stele.ErrUnavailable) {
		t.Errorf("Update: %v, want ErrUnavailable", err)
	}
	pgtest.Exec(t, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true")
	// Back without reopening the store.
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping after the server came back: %v", err)
	}
	l := storetest.NewLog("acme")
	l.Append(t, s, eventgen.New(2).Stream(3, time.Now().Add(-time.Hour), time.Minute, true))
	s.Close()
}

// TestIntegrityErrorNamesItsWorkspace appends to two workspaces in one
// transaction, the second at a position already taken, with both batch
// sizes (COPY and INSERT): the commit fails as a whole, with an
// *stele.ErrIntegrity naming the second workspace, and nothing of the first
// is kept.
func TestIntegrityErrorNamesItsWorkspace(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s := open(t, url)
	defer s.Close()
	for _, ws := range []string{"acme", "globex"} {
		if err := s.CreateWorkspace(ctx, stele.Workspace{ID: ws, Name: ws, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	g := storetest.NewLog("globex")
	g.Append(t, s, eventgen.New(1).Stream(3, time.Now().Add(-time.Hour), time.Minute, true))
	for _, n := range []int{70, 5} {
		a := storetest.NewLog("acme")
		good, goodHead, _ := a.Entries(eventgen.New(2).Stream(n, time.Now().Add(-time.Hour), time.Second, true))
		taken, _, _ := storetest.NewLog("globex").Entries(eventgen.New(3).Stream(n, time.Now().Add(-time.Hour), time.Second, true))
		err := s.Update(ctx, func(tx stele.AppendTx) error {
			if _, err := tx.LockHead(ctx, "acme"); err != nil {
				return err
			}
			if _, err := tx.LockHead(ctx, "globex"); err != nil {
				return err
			}
			if err := tx.Append(ctx, "acme", good, goodHead); err != nil {
				return err
			}
			return tx.Append(ctx, "globex", taken, stele.Head{Size: int64(n), Root: goodHead.Root})
		})
		var integrity *stele.ErrIntegrity
		if !errors.As(err, &integrity) || integrity.Workspace != "globex" {
			t.Errorf("batch of %d: err = %v, want an integrity failure in globex", n, err)
		}
		if h, _ := s.Head(ctx, "acme"); h.Size != 0 {
			t.Errorf("batch of %d: acme's head moved to %d in a failed transaction", n, h.Size)
		}
	}
}

// TestReadOnly: a read-only open (stele check) applies no migration and
// writes nothing, yet reads what a read-write open wrote.
func TestReadOnly(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	if _, err := Open(ctx, url, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "schema version 0") {
		t.Fatalf("read-only open of an empty database: %v, want a schema version error", err)
	}
	rw := open(t, url)
	if err := rw.CreateWorkspace(ctx, stele.Workspace{ID: "acme", Name: "Acme", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(ctx, url, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Workspace(ctx, "acme"); err != nil {
		t.Errorf("read through the read-only store: %v", err)
	}
	if err := ro.CreateWorkspace(ctx, stele.Workspace{ID: "other", Name: "Other", CreatedAt: time.Now()}); err == nil {
		t.Error("a read-only store created a workspace")
	}
}
