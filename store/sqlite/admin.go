package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stele-log/stele"
	"golang.org/x/mod/sumdb/tlog"
)

// CreateWorkspace creates w and its empty log.
func (s *Store) CreateWorkspace(ctx context.Context, w stele.Workspace) error {
	empty, _ := tlog.TreeHash(0, nil)
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "INSERT INTO workspaces (id, name, created_ns) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
			w.ID, w.Name, w.CreatedAt.UnixNano())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return stele.ErrConflict
		}
		wsn, _ := res.LastInsertId()
		if wsn >= 1<<(63-posBits) {
			return fmt.Errorf("too many workspaces")
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO logs (ws, size, root, last_received_ns) VALUES (?, 0, ?, 0)", wsn, empty[:])
		return err
	})
}

// Workspace returns one workspace.
func (s *Store) Workspace(ctx context.Context, id string) (stele.Workspace, error) {
	var w stele.Workspace
	var created int64
	err := s.r.QueryRowContext(ctx, "SELECT id, name, created_ns FROM workspaces WHERE id = ?", id).Scan(&w.ID, &w.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return stele.Workspace{}, stele.ErrNotFound
	}
	w.CreatedAt = time.Unix(0, created).UTC()
	return w, err
}

// Workspaces lists all workspaces.
func (s *Store) Workspaces(ctx context.Context) ([]stele.Workspace, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT id, name, created_ns FROM workspaces ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []stele.Workspace
	for rows.Next() {
		var w stele.Workspace
		var created int64
		if err := rows.Scan(&w.ID, &w.Name, &created); err != nil {
			return nil, err
		}
		w.CreatedAt = time.Unix(0, created).UTC()
		out = append(out, w)
	}
	return out, rows.Err()
}

// AddCheckpoint stores cp if it extends the latest stored checkpoint.
func (s *Store) AddCheckpoint(ctx context.Context, cp stele.Checkpoint, prevSize int64) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		wsn, err := s.wsNumber(ctx, tx, cp.Workspace)
		if err != nil {
			return err
		}
		latest, latestTime := int64(-1), int64(0)
		err = tx.QueryRowContext(ctx, "SELECT size, time_s FROM checkpoints WHERE ws = ? ORDER BY size DESC LIMIT 1", wsn).Scan(&latest, &latestTime)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if latest != prevSize || cp.Size <= latest || (latest >= 0 && cp.Time.Unix() <= latestTime) {
			return stele.ErrConflict
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO checkpoints (ws, size, root, time_s, note) VALUES (?, ?, ?, ?, ?)",
			wsn, cp.Size, cp.Root[:], cp.Time.Unix(), cp.Note)
		return err
	})
}

// LatestCheckpoint returns the largest stored checkpoint of ws.
func (s *Store) LatestCheckpoint(ctx context.Context, ws string) (stele.Checkpoint, error) {
	var out stele.Checkpoint
	found := false
	err := s.checkpoints(ctx, ws, "ORDER BY size DESC LIMIT 1", func(cp stele.Checkpoint) error {
		out, found = cp, true
		return nil
	})
	if err == nil && !found {
		err = stele.ErrNotFound
	}
	return out, err
}

// Checkpoints calls fn for every checkpoint of ws by size.
func (s *Store) Checkpoints(ctx context.Context, ws string, fn func(stele.Checkpoint) error) error {
	return s.checkpoints(ctx, ws, "ORDER BY size", fn)
}

func (s *Store) checkpoints(ctx context.Context, ws, tail string, fn func(stele.Checkpoint) error) error {
	wsn, err := s.wsNumber(ctx, s.r, ws)
	if err != nil {
		return err
	}
	rows, err := s.r.QueryContext(ctx, "SELECT size, root, time_s, note FROM checkpoints WHERE ws = ? "+tail, wsn)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		cp := stele.Checkpoint{Workspace: ws}
		var root []byte
		var ts int64
		if err := rows.Scan(&cp.Size, &root, &ts, &cp.Note); err != nil {
			return err
		}
		copy(cp.Root[:], root)
		cp.Time = time.Unix(ts, 0).UTC()
		if err := fn(cp); err != nil {
			return err
		}
	}
	return rows.Err()
}

// CreateKey stores a new API key.
func (s *Store) CreateKey(ctx context.Context, k stele.APIKey) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		wsn, err := s.wsNumber(ctx, tx, k.Workspace)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, ws, name, scopes, secret_hash, prev_secret_hash, prev_valid_ns,
			created_ns, created_by, expires_ns, revoked_ns, last_used_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			k.ID, wsn, k.Name, strings.Join(k.Scopes, " "), k.SecretHash, nullBytes(k.PrevSecretHash), nanos(k.PrevValidUntil),
			nanos(k.CreatedAt), k.CreatedBy, nanos(k.ExpiresAt), nanos(k.RevokedAt), nanos(k.LastUsedAt))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return stele.ErrConflict
		}
		return nil
	})
}

const keyColumns = `k.id, w.id, k.name, k.scopes, k.secret_hash, k.prev_secret_hash, k.prev_valid_ns,
	k.created_ns, k.created_by, k.expires_ns, k.revoked_ns, k.last_used_ns`

func scanKey(sc interface{ Scan(...any) error }) (stele.APIKey, error) {
	var k stele.APIKey
	var scopes string
	var prevValid, created, expires, revoked, used int64
	err := sc.Scan(&k.ID, &k.Workspace, &k.Name, &scopes, &k.SecretHash, &k.PrevSecretHash, &prevValid,
		&created, &k.CreatedBy, &expires, &revoked, &used)
	if err != nil {
		return k, err
	}
	k.Scopes = strings.Fields(scopes)
	k.PrevValidUntil, k.CreatedAt, k.ExpiresAt = fromNanos(prevValid), fromNanos(created), fromNanos(expires)
	k.RevokedAt, k.LastUsedAt = fromNanos(revoked), fromNanos(used)
	return k, nil
}

const selectKey = "SELECT " + keyColumns + " FROM api_keys k JOIN workspaces w ON w.n = k.ws WHERE k.id = ?"

// Key returns the key with id. It serves it from memory while no process
// has changed any key since it was read (see keyCache): a revocation or
// rotation takes effect at once, whichever process made it.
func (s *Store) Key(ctx context.Context, id string) (stele.APIKey, error) {
	gen, genErr := s.keys.generation()
	if genErr == nil {
		if k, ok := s.keys.get(id, gen); ok {
			return k, nil
		}
	}
	read := time.Now()
	k, err := scanKey(s.readStmt(selectKey).QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return stele.APIKey{}, stele.ErrNotFound
	}
	if err == nil && genErr == nil {
		s.keys.put(k, gen, read)
	}
	return k, err
}

// Keys lists ws's keys.
func (s *Store) Keys(ctx context.Context, ws string) ([]stele.APIKey, error) {
	wsn, err := s.wsNumber(ctx, s.r, ws)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+keyColumns+" FROM api_keys k JOIN workspaces w ON w.n = k.ws WHERE k.ws = ? ORDER BY k.created_ns, k.id", wsn)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []stele.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// UpdateKey replaces the mutable fields of a key.
func (s *Store) UpdateKey(ctx context.Context, k stele.APIKey) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		wsn, err := s.wsNumber(ctx, tx, k.Workspace)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE api_keys SET name = ?, scopes = ?, secret_hash = ?, prev_secret_hash = ?, prev_valid_ns = ?,
			expires_ns = ?, revoked_ns = ? WHERE id = ? AND ws = ?`,
			k.Name, strings.Join(k.Scopes, " "), k.SecretHash, nullBytes(k.PrevSecretHash), nanos(k.PrevValidUntil),
			nanos(k.ExpiresAt), nanos(k.RevokedAt), k.ID, wsn)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return stele.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.keys.changed(k.ID); err != nil {
		return fmt.Errorf("the key was updated, but other processes could not be told (retry): %w", err)
	}
	return nil
}

// TouchKey records the key's last use. It does not wait behind appends for
// long: it is bookkeeping, not evidence (the audit events are the evidence).
func (s *Store) TouchKey(ctx context.Context, id string, t time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE api_keys SET last_used_ns = ? WHERE id = ? AND last_used_ns < ?", t.UnixNano(), id, t.UnixNano())
		return err
	})
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
