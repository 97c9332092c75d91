// Package postgres is Stele's PostgreSQL store: the same log as the embedded
// SQLite store, on a server that several `stele serve` processes may share.
//
// It implements stele.Store; store/storetest is its contract. An append
// transaction locks the head row of each workspace it extends (SELECT … FOR
// UPDATE on logs), so appends to one workspace are serialized across every
// process and appends to different workspaces run in parallel; no advisory
// locks are used. Events and tree hashes are written with COPY, one
// transaction per batch.
//
// Every operation is bounded in time (Options): when the server is down,
// unreachable or too slow, methods return errors wrapping
// stele.ErrUnavailable instead of hanging, and the service answers 503. The
// pool reconnects on its own when the server is back.
//
// The schema is versioned in the table stele_schema and migrated at Open from
// the embedded migrations directory; concurrent starts serialize on a lock of
// that table. A role that may only read and append (least_privilege.sql)
// runs the service once the schema is in place.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stele-log/stele"
)

//go:embed migrations/*.sql
var migrations embed.FS

// LeastPrivilege is the SQL that creates grants for a role named stele_app
// that may read everything and append to the log, but never update or
// delete events, tree hashes or checkpoints (docs/postgres.md).
//
//go:embed least_privilege.sql
var LeastPrivilege string

// Options tune Open. Zero values take the defaults.
type Options struct {
	// MaxConns bounds the connection pool (default 16, or the URL's
	// pool_max_conns).
	MaxConns int32
	// ConnectTimeout bounds establishing a connection (default 2s, or the
	// URL's connect_timeout).
	ConnectTimeout time.Duration
	// WriteTimeout bounds a whole write transaction, commit included
	// (default 5s).
	WriteTimeout time.Duration
	// LookupTimeout bounds a read of one row: a key, a session, a head
	// (default 2s). Every authenticated request starts with one, so a
	// database that does not answer turns into 503s this fast.
	LookupTimeout time.Duration
	// ReadTimeout bounds a read of many rows: a page, a count (default 30s).
	// Scan, which streams exports for as long as the client reads, is bounded
	// only by its context and the connect timeout.
	ReadTimeout time.Duration
	// ReadOnly opens for reading only (stele check beside a live server):
	// every transaction is read-only (default_transaction_read_only), and
	// no migration is applied — a schema of another version is an error.
	ReadOnly bool
}

func (o *Options) defaults() {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 2 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.LookupTimeout <= 0 {
		o.LookupTimeout = 2 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 30 * time.Second
	}
}

// Store is the PostgreSQL implementation of stele.Store.
type Store struct {
	pool *pgxpool.Pool
	opts Options

	wsMu  sync.RWMutex
	wsNum map[string]int64 // workspace id → internal number; workspaces are never deleted
}

var _ stele.Store = (*Store)(nil)

// Open connects to the database that url names (postgres://…), migrates it to
// the current schema, and returns the store. The server must be reachable.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	opts.defaults()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("bad PostgreSQL URL: %w", redact(err))
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if !strings.Contains(url, "connect_timeout") {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	rp := cfg.ConnConfig.RuntimeParams
	if _, ok := rp["lock_timeout"]; !ok {
		// A head lock held by a stuck process fails the waiting batch (503)
		// instead of piling requests up behind it.
		rp["lock_timeout"] = fmt.Sprint(opts.WriteTimeout.Milliseconds())
	}
	if _, ok := rp["idle_in_transaction_session_timeout"]; !ok {
		// A process that stops mid-transaction releases its locks.
		rp["idle_in_transaction_session_timeout"] = fmt.Sprint((2 * opts.WriteTimeout).Milliseconds())
	}
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = "stele"
	}
	if opts.ReadOnly {
		rp["default_transaction_read_only"] = "on"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("couldn't connect to PostgreSQL: %w", redact(err))
	}
	s := &Store{pool: pool, opts: opts, wsNum: map[string]int64{}}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// redact drops what a connection error may quote of the URL's password.
func redact(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("cannot parse the connection string")
	}
	return err
}

// migrate applies the embedded migrations above the stored schema version,
// all in one transaction that holds an exclusive lock on stele_schema, so
// that processes starting together migrate once.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	slices.Sort(names)
	version, err := s.schemaVersion(ctx)
	if err != nil {
		return err
	}
	if version == len(names) {
		return nil // nothing to do: a role without DDL rights starts here
	}
	if version > len(names) {
		return fmt.Errorf("the database has schema version %d, newer than this binary's %d", version, len(names))
	}
	if s.opts.ReadOnly {
		return fmt.Errorf("the database has schema version %d and this binary expects %d: open it once read-write (stele serve) to migrate it", version, len(names))
	}
	// CREATE TABLE IF NOT EXISTS can still collide with a concurrent creator
	// (unique violation in the catalog); the second attempt sees the table.
	for attempt := 0; ; attempt++ {
		_, err := s.pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS stele_schema (version integer NOT NULL)")
		if err == nil {
			break
		}
		if attempt > 0 {
			return fmt.Errorf("couldn't create stele_schema: %w", err)
		}
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE stele_schema IN ACCESS EXCLUSIVE MODE"); err != nil {
			return fmt.Errorf("couldn't lock stele_schema: %w", err)
		}
		var v int
		err := tx.QueryRow(ctx, "SELECT version FROM stele_schema").Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			if _, err := tx.Exec(ctx, "INSERT INTO stele_schema (version) VALUES (0)"); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		for i := v; i < len(names); i++ {
			body, err := migrations.ReadFile(names[i])
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fmt.Errorf("couldn't apply migration %s: %w", names[i], err)
			}
		}
		_, err = tx.Exec(ctx, "UPDATE stele_schema SET version = $1", len(names))
		return err
	})
}

// schemaVersion reads the stored schema version; 0 when there is none yet.
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass('stele_schema') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("couldn't read the schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	err := s.pool.QueryRow(ctx, "SELECT version FROM stele_schema").Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("couldn't read the schema version: %w", err)
	}
	return v, nil
}

// Setting returns the server's current value of a run-time setting, such as
// synchronous_commit.
func (s *Store) Setting(ctx context.Context, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadTimeout)
	defer cancel()
	var v string
	err := s.pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v)
	return v, wrap(err)
}

// DurabilityWarning returns why an acknowledged event might be lost in a
// crash of the database server, or "" when commits wait for durable storage:
// synchronous_commit off (the server acknowledges before its WAL flush) or
// local (it does not wait for a synchronous standby that is configured).
func (s *Store) DurabilityWarning(ctx context.Context) (string, error) {
	sc, err := s.Setting(ctx, "synchronous_commit")
	if err != nil {
		return "", err
	}
	standbys, err := s.Setting(ctx, "synchronous_standby_names")
	if err != nil {
		return "", err
	}
	fsync, err := s.Setting(ctx, "fsync")
	if err != nil {
		return "", err
	}
	switch {
	case fsync == "off":
		return "PostgreSQL runs with fsync=off: a crash of the database server can lose or corrupt acknowledged events", nil
	case sc == "off":
		return "PostgreSQL runs with synchronous_commit=off: a crash of the database server can lose the last acknowledged events", nil
	case sc == "local" && standbys != "":
		return "PostgreSQL runs with synchronous_commit=local while synchronous standbys are configured: a failover can lose acknowledged events", nil
	case sc == "local":
		return "PostgreSQL runs with synchronous_commit=local: commits never wait for a standby, so a failover to one can lose acknowledged events", nil
	}
	return "", nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping reports whether the server answers within the context's deadline.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	defer cancel()
	return wrap(s.pool.Ping(ctx))
}

// Update runs fn in one transaction (READ COMMITTED; the heads fn locks
// serialize appends) and commits it, all within WriteTimeout. The
// transaction's BEGIN travels with its first head lock, and an append's
// rows and head update travel with the COMMIT: a batch costs three round
// trips (BEGIN and lock, the id lookup, rows and COMMIT), whatever its size.
func (s *Store) Update(ctx context.Context, fn func(stele.AppendTx) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.WriteTimeout)
	defer cancel()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("%w: couldn't get a connection: %v", stele.ErrUnavailable, err)
	}
	defer conn.Release() // a connection left inside a transaction is closed, not reused
	t := &appendTx{s: s, conn: conn.Conn()}
	if err := fn(t); err != nil {
		if t.begun {
			rctx, cancel := context.WithTimeout(context.Background(), s.opts.ConnectTimeout)
			t.conn.Exec(rctx, "ROLLBACK")
			cancel()
		}
		return err // the transaction's methods classified their own failures
	}
	if !t.begun {
		return nil // fn wrote nothing
	}
	return t.commit(ctx)
}

// write runs fn in a transaction for the store's administrative writes
// (workspaces, keys, users, sessions, checkpoints).
func (s *Store) write(ctx context.Context, fn func(pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.WriteTimeout)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%w: couldn't begin: %v", stele.ErrUnavailable, err)
	}
	if err := fn(tx); err != nil {
		s.rollback(tx)
		return wrap(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%w: commit failed, its outcome is unknown: %v", stele.ErrUnavailable, err)
	}
	return nil
}

func (s *Store) rollback(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ConnectTimeout)
	defer cancel()
	tx.Rollback(ctx) // a broken connection is closed by pgx instead
}

// read bounds a read of many rows by ReadTimeout.
func (s *Store) read(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.ReadTimeout)
}

// lookup bounds a read of one row by LookupTimeout.
func (s *Store) lookup(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.LookupTimeout)
}

// wrap classifies err: the store's own kinds pass unchanged; failures of the
// connection, timeouts, cancellations and an overloaded or restarting server
// wrap stele.ErrUnavailable (the caller may retry; nothing was acknowledged).
func wrap(err error) error {
	if err == nil || errors.Is(err, stele.ErrNotFound) || errors.Is(err, stele.ErrConflict) || errors.Is(err, stele.ErrUnavailable) {
		return err
	}
	var integrity *stele.ErrIntegrity
	var e *stele.Error
	if errors.As(err, &integrity) || errors.As(err, &e) {
		return err
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %v", stele.ErrUnavailable, err)
	}
	return err
}

// unavailable reports whether err means "the database cannot serve this now"
// rather than "this statement is wrong".
func unavailable(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true // whatever the server said, it did not take a connection
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources
			"57", // operator intervention: query_canceled (timeouts), admin_shutdown, cannot_connect_now
			"58": // system error
			return true
		}
		switch pgErr.Code {
		case "40001", "40P01", // serialization failure, deadlock
			"55P03", // lock_not_available (lock_timeout)
			"25P03": // idle_in_transaction_session_timeout
			return true
		}
		return false
	}
	// Not an answer from the server: the network, a timeout, a closed pool.
	return true
}

// isUniqueViolation reports a unique or primary-key violation.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// dbtx is what both the pool and a transaction offer.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// wsNumber resolves a workspace id to its internal number.
func (s *Store) wsNumber(ctx context.Context, q dbtx, ws string) (int64, error) {
	s.wsMu.RLock()
	n, ok := s.wsNum[ws]
	s.wsMu.RUnlock()
	if ok {
		return n, nil
	}
	err := q.QueryRow(ctx, "SELECT n FROM workspaces WHERE id = $1", ws).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, stele.ErrNotFound
	}
	if err != nil {
		return 0, wrap(err)
	}
	s.wsMu.Lock()
	s.wsNum[ws] = n
	s.wsMu.Unlock()
	return n, nil
}
