// Package sqlite is Stele's embedded store: one SQLite database file in WAL
// mode with synchronous=FULL, so that a commit has reached stable storage
// before it returns (RELIABILITY.md D4). One connection writes, serialized
// by the store; a pool of read-only connections serves queries and exports
// from consistent snapshots without blocking the writer.
//
// It implements stele.Store; store/storetest is its contract. The schema is
// versioned by PRAGMA user_version and migrated at Open from the embedded
// migrations directory.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/stele-log/stele"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune Open.
type Options struct {
	// Readers is the size of the read-only connection pool. Default 8.
	Readers int
	// ReadOnly opens an existing database for reading only, as stele check
	// does beside a live server: no migration, no writer connection, every
	// connection opened with mode=ro and query_only. Every write method
	// returns an error. The database must exist and have this binary's
	// schema version.
	ReadOnly bool
}

// Store is the SQLite implementation of stele.Store.
type Store struct {
	path string
	w    *sql.DB // exactly one connection: the writer
	r    *sql.DB // read-only connections

	wmu sync.Mutex // serializes Update; guards nothing else

	// poisoned holds the error of a failed commit. After it the store refuses
	// every write: the database file may no longer match what SQLite's page
	// cache believes (fsyncgate), so only a reopen is safe.
	poisoned atomic.Pointer[error]

	wsMu  sync.RWMutex
	wsNum map[string]int64 // workspace id → internal number; workspaces are never deleted

	// prepared holds the hot path's statements, prepared once at Open on
	// the writer or on the readers (see hotWrites, hotReads): parsing SQL
	// costs more than executing these one-row statements.
	prepared map[string]*sql.Stmt

	keys *keyCache    // serves Key between key changes
	text *textIndexer // moves staged words into the text index; nil when read-only
}

// hotWrites are prepared on the writer connection at Open and used inside
// transactions through Tx.StmtContext, which reuses the connection's
// prepared statement.
var hotWrites = []string{selectPrior, insertEvent, insertTextPending, insertTree, selectHead, updateHead}

// hotReads are prepared on the read pool (each connection prepares them on
// first use).
var hotReads = []string{selectHead, selectKey}

var _ stele.Store = (*Store)(nil)

// Open opens or creates the database at path and migrates it to the
// current schema.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.Readers <= 0 {
		opts.Readers = 8
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if opts.ReadOnly {
		return openReadOnly(ctx, abs, opts)
	}
	w, err := sql.Open("sqlite", dsn(abs, roleWriter))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	s := &Store{path: abs, w: w, wsNum: map[string]int64{}, keys: newKeyCache(abs)}
	if err := s.checkPragmas(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(abs, roleReader))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(opts.Readers)
	r.SetMaxIdleConns(opts.Readers)
	s.r = r
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.flushText(ctx); err != nil { // words a crash left staged
		s.Close()
		return nil, err
	}
	s.startTextIndexer()
	return s, nil
}

func (s *Store) prepare(ctx context.Context) error {
	s.prepared = map[string]*sql.Stmt{}
	for _, pool := range []struct {
		db      *sql.DB
		queries []string
	}{{s.w, hotWrites}, {s.r, hotReads}} {
		if pool.db == nil {
			continue // read-only: no writer
		}
		for _, q := range pool.queries {
			st, err := pool.db.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("couldn't prepare %q: %w", q, err)
			}
			if pool.db == s.r {
				q = "r:" + q
			}
			s.prepared[q] = st
		}
	}
	return nil
}

// readStmt returns the prepared read statement q (one of hotReads).
func (s *Store) readStmt(q string) *sql.Stmt { return s.prepared["r:"+q] }

// Connection roles of dsn.
const (
	roleWriter   = iota // the one writer: durability settings, immediate transactions
	roleReader          // the server's readers: query_only beside the writer
	roleReadOnly        // Options.ReadOnly: mode=ro, and no pragma that could write
)

func dsn(path string, role int) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	switch role {
	case roleWriter:
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "journal_size_limit(67108864)")
		q.Set("_txlock", "immediate")
	case roleReader:
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "journal_size_limit(67108864)")
		q.Add("_pragma", "query_only(1)")
	case roleReadOnly:
		q.Add("_pragma", "query_only(1)")
		q.Add("_pragma", "mmap_size(1073741824)") // long scans read pages without a copy per page
		q.Set("mode", "ro")
	}
	return "file:" + path + "?" + q.Encode()
}

// openReadOnly opens the reader pool alone over an existing database.
func openReadOnly(ctx context.Context, abs string, opts Options) (*Store, error) {
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("no database to open read-only: %w", err)
	}
	r, err := sql.Open("sqlite", dsn(abs, roleReadOnly))
	if err != nil {
		return nil, err
	}
	r.SetMaxOpenConns(opts.Readers)
	r.SetMaxIdleConns(opts.Readers)
	s := &Store{path: abs, r: r, wsNum: map[string]int64{}, keys: newKeyCache(abs)}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		r.Close()
		return nil, err
	}
	var version int
	if err := r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		r.Close()
		return nil, fmt.Errorf("couldn't open %s: %w", abs, err)
	}
	if version != len(names) {
		r.Close()
		return nil, fmt.Errorf("database %s has schema version %d, this binary reads version %d (start stele serve once to migrate it)", abs, version, len(names))
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// errReadOnly is returned by every write to a store opened read-only.
var errReadOnly = errors.New("the store is open read-only")

// checkPragmas makes sure the durability settings took effect: a driver that
// silently ignored them would acknowledge writes that a power cut can undo.
func (s *Store) checkPragmas(ctx context.Context) error {
	var mode string
	var sync int
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("couldn't open %s: %w", s.path, err)
	}
	if err := s.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return err
	}
	if strings.ToLower(mode) != "wal" || sync != 2 {
		return fmt.Errorf("sqlite durability settings not in effect (journal_mode=%s synchronous=%d, want wal and 2=FULL)", mode, sync)
	}
	return nil
}

// migrate applies the embedded migrations above PRAGMA user_version, each in
// its own transaction.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	slices.Sort(names)
	var version int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > len(names) {
		return fmt.Errorf("database %s has schema version %d, newer than this binary's %d", s.path, version, len(names))
	}
	for i := version; i < len(names); i++ {
		body, err := migrations.ReadFile(names[i])
		if err != nil {
			return err
		}
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("couldn't apply migration %s: %w", names[i], err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("couldn't commit migration %s: %w", names[i], err)
		}
	}
	return nil
}

// Close closes both connection pools, the readers first, so that the
// writer's connection is the last and folds the WAL back into the database
// file: a cleanly closed database is one self-contained file.
func (s *Store) Close() error {
	err := s.stopTextIndexer()
	for _, st := range s.prepared {
		st.Close()
	}
	if s.r != nil {
		err = errors.Join(err, s.r.Close())
	}
	if s.w != nil {
		err = errors.Join(err, s.w.Close())
	}
	return err
}

// Ping reports whether the store can take writes: nil, or the reason it
// cannot (a failed commit poisoned it, or the database does not answer).
func (s *Store) Ping(ctx context.Context) error {
	if p := s.poisoned.Load(); p != nil {
		return fmt.Errorf("a commit failed earlier (%v); restart to recover", *p)
	}
	if s.w == nil {
		return errReadOnly
	}
	return s.w.PingContext(ctx)
}

// Update runs fn in a write transaction (BEGIN IMMEDIATE) and commits it.
func (s *Store) Update(ctx context.Context, fn func(stele.AppendTx) error) error {
	if s.w == nil {
		return errReadOnly
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if p := s.poisoned.Load(); p != nil {
		return fmt.Errorf("%w (store poisoned by an earlier failed commit)", stele.ErrUnavailable)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: couldn't begin: %v", stele.ErrUnavailable, err)
	}
	atx := &appendTx{s: s, tx: tx}
	if err := fn(atx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		s.poisoned.CompareAndSwap(nil, &err)
		return fmt.Errorf("%w: commit failed: %v", stele.ErrUnavailable, err)
	}
	if s.text != nil {
		s.text.add(atx.texts)
	}
	return nil
}

// write runs fn in a write transaction for the store's administrative writes
// (workspaces, keys, checkpoints).
func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	if s.w == nil {
		return errReadOnly
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if p := s.poisoned.Load(); p != nil {
		return fmt.Errorf("%w (store poisoned by an earlier failed commit)", stele.ErrUnavailable)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: couldn't begin: %v", stele.ErrUnavailable, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		s.poisoned.CompareAndSwap(nil, &err)
		return fmt.Errorf("%w: commit failed: %v", stele.ErrUnavailable, err)
	}
	return nil
}

// queryer is what both *sql.DB and *sql.Tx offer.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// wsNumber resolves a workspace id to its internal number.
func (s *Store) wsNumber(ctx context.Context, q queryer, ws string) (int64, error) {
	s.wsMu.RLock()
	n, ok := s.wsNum[ws]
	s.wsMu.RUnlock()
	if ok {
		return n, nil
	}
	err := q.QueryRowContext(ctx, "SELECT n FROM workspaces WHERE id = ?", ws).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, stele.ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	s.wsMu.Lock()
	s.wsNum[ws] = n
	s.wsMu.Unlock()
	return n, nil
}

// Positions: rowid = ws<<posBits | seq.
const (
	posBits = 40
	posMask = 1<<posBits - 1
	// MaxEvents is the most events a workspace's log can hold.
	MaxEvents = 1 << posBits
)

func rowid(wsn, seq int64) int64 { return wsn<<posBits + seq }
