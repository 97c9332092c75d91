package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stele-log/stele"
	"golang.org/x/mod/sumdb/tlog"
)

// CreateWorkspace creates w and its empty log.
func (s *Store) CreateWorkspace(ctx context.Context, w stele.Workspace) error {
	empty, _ := tlog.TreeHash(0, nil)
	return s.write(ctx, func(tx pgx.Tx) error {
		var wsn int64
		err := tx.QueryRow(ctx, "INSERT INTO workspaces (id, name, created_ns) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING n",
			w.ID, w.Name, w.CreatedAt.UnixNano()).Scan(&wsn)
		if errors.Is(err, pgx.ErrNoRows) {
			return stele.ErrConflict
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "INSERT INTO logs (ws, size, root, last_received_ns) VALUES ($1, 0, $2, 0)", wsn, empty[:])
		return err
	})
}

// Workspace returns one workspace.
func (s *Store) Workspace(ctx context.Context, id string) (stele.Workspace, error) {
	ctx, cancel := s.lookup(ctx)
	defer cancel()
	var w stele.Workspace
	var created int64
	err := s.pool.QueryRow(ctx, "SELECT id, name, created_ns FROM workspaces WHERE id = $1", id).Scan(&w.ID, &w.Name, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return stele.Workspace{}, stele.ErrNotFound
	}
	w.CreatedAt = time.Unix(0, created).UTC()
	return w, wrap(err)
}

// Workspaces lists all workspaces.
func (s *Store) Workspaces(ctx context.Context) ([]stele.Workspace, error) {
	ctx, cancel := s.read(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT id, name, created_ns FROM workspaces ORDER BY id")
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []stele.Workspace
	for rows.Next() {
		var w stele.Workspace
		var created int64
		if err := rows.Scan(&w.ID, &w.Name, &created); err != nil {
			return nil, wrap(err)
		}
		w.CreatedAt = time.Unix(0, created).UTC()
		out = append(out, w)
	}
	return out, wrap(rows.Err())
}

// AddCheckpoint stores cp if it extends the latest stored checkpoint. The
// workspace's row is locked (FOR NO KEY UPDATE, which appends do not take)
// so that two processes signing at once serialize: one stores, the other
// gets ErrConflict and reloads.
func (s *Store) AddCheckpoint(ctx context.Context, cp stele.Checkpoint, prevSize int64) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		wsn, err := s.wsNumber(ctx, tx, cp.Workspace)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT 1 FROM workspaces WHERE n = $1 FOR NO KEY UPDATE", wsn); err != nil {
			return err
		}
		latest, latestTime := int64(-1), int64(0)
		err = tx.QueryRow(ctx, "SELECT size, time_s FROM checkpoints WHERE ws = $1 ORDER BY size DESC LIMIT 1", wsn).Scan(&latest, &latestTime)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if latest != prevSize || cp.Size <= latest || (latest >= 0 && cp.Time.Unix() <= latestTime) {
			return stele.ErrConflict
		}
		_, err = tx.Exec(ctx, "INSERT INTO checkpoints (ws, size, root, time_s, note) VALUES ($1, $2, $3, $4, $5)",
			wsn, cp.Size, cp.Root[:], cp.Time.Unix(), cp.Note)
		return err
	})
}

// LatestCheckpoint returns the largest stored checkpoint of ws.
func (s *Store) LatestCheckpoint(ctx context.Context, ws string) (stele.Checkpoint, error) {
	ctx, cancel := s.lookup(ctx)
	defer cancel()
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
	wsn, err := s.wsNumber(ctx, s.pool, ws)
	if err != nil {
		return err
	}
	rows, err := s.pool.Query(ctx, "SELECT size, root, time_s, note FROM checkpoints WHERE ws = $1 "+tail, wsn)
	if err != nil {
		return wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		cp := stele.Checkpoint{Workspace: ws}
		var root []byte
		var ts int64
		if err := rows.Scan(&cp.Size, &root, &ts, &cp.Note); err != nil {
			return wrap(err)
		}
		copy(cp.Root[:], root)
		cp.Time = time.Unix(ts, 0).UTC()
		if err := fn(cp); err != nil {
			return err
		}
	}
	return wrap(rows.Err())
}

// CreateKey stores a new API key.
func (s *Store) CreateKey(ctx context.Context, k stele.APIKey) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		wsn, err := s.wsNumber(ctx, tx, k.Workspace)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO api_keys (id, ws, name, scopes, secret_hash, prev_secret_hash, prev_valid_ns,
			created_ns, created_by, expires_ns, revoked_ns, last_used_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT (id) DO NOTHING`,
			k.ID, wsn, k.Name, strings.Join(k.Scopes, " "), k.SecretHash, k.PrevSecretHash, nanos(k.PrevValidUntil),
			nanos(k.CreatedAt), k.CreatedBy, nanos(k.ExpiresAt), nanos(k.RevokedAt), nanos(k.LastUsedAt))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return stele.ErrConflict
		}
		return nil
	})
}

const keyColumns = `k.id, w.id, k.name, k.scopes, k.secret_hash, k.prev_secret_hash, k.prev_valid_ns,
	k.created_ns, k.created_by, k.expires_ns, k.revoked_ns, k.last_used_ns`

func scanKey(sc pgx.Row) (stele.APIKey, error) {
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

// Key returns the key with id.
func (s *Store) Key(ctx context.Context, id string) (stele.APIKey, error) {
	ctx, cancel := s.lookup(ctx)
	defer cancel()
	k, err := scanKey(s.pool.QueryRow(ctx, "SELECT "+keyColumns+" FROM api_keys k JOIN workspaces w ON w.n = k.ws WHERE k.id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return stele.APIKey{}, stele.ErrNotFound
	}
	return k, wrap(err)
}

// Keys lists ws's keys.
func (s *Store) Keys(ctx context.Context, ws string) ([]stele.APIKey, error) {
	ctx, cancel := s.read(ctx)
	defer cancel()
	wsn, err := s.wsNumber(ctx, s.pool, ws)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT "+keyColumns+" FROM api_keys k JOIN workspaces w ON w.n = k.ws WHERE k.ws = $1 ORDER BY k.created_ns, k.id", wsn)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []stele.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, wrap(err)
		}
		out = append(out, k)
	}
	return out, wrap(rows.Err())
}

// UpdateKey replaces the mutable fields of a key.
func (s *Store) UpdateKey(ctx context.Context, k stele.APIKey) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		wsn, err := s.wsNumber(ctx, tx, k.Workspace)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE api_keys SET name = $1, scopes = $2, secret_hash = $3, prev_secret_hash = $4, prev_valid_ns = $5,
			expires_ns = $6, revoked_ns = $7 WHERE id = $8 AND ws = $9`,
			k.Name, strings.Join(k.Scopes, " "), k.SecretHash, k.PrevSecretHash, nanos(k.PrevValidUntil),
			nanos(k.ExpiresAt), nanos(k.RevokedAt), k.ID, wsn)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return stele.ErrNotFound
		}
		return nil
	})
}

// TouchKey records the key's last use; it never moves it back.
func (s *Store) TouchKey(ctx context.Context, id string, t time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.WriteTimeout)
	defer cancel()
	_, err := s.pool.Exec(ctx, "UPDATE api_keys SET last_used_ns = $1 WHERE id = $2 AND last_used_ns < $1", t.UnixNano(), id)
	return wrap(err)
}

// CreateUser stores a new user.
func (s *Store) CreateUser(ctx context.Context, u stele.User) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		wsn, err := s.wsNumber(ctx, tx, u.Workspace)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO users (id, ws, email, name, role, password_hash, created_ns, disabled_ns)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, u.ID, wsn, u.Email, u.Name, u.Role, u.PasswordHash, nanos(u.CreatedAt), nanos(u.DisabledAt))
		if isUniqueViolation(err) {
			return stele.ErrConflict
		}
		return err
	})
}

const userColumns = "u.id, w.id, u.email, u.name, u.role, u.password_hash, u.created_ns, u.disabled_ns"

func scanUser(sc pgx.Row) (stele.User, error) {
	var u stele.User
	var created, disabled int64
	err := sc.Scan(&u.ID, &u.Workspace, &u.Email, &u.Name, &u.Role, &u.PasswordHash, &created, &disabled)
	u.CreatedAt, u.DisabledAt = fromNanos(created), fromNanos(disabled)
	return u, err
}

func (s *Store) userWhere(ctx context.Context, cond string, arg any) (stele.User, error) {
	ctx, cancel := s.lookup(ctx)
	defer cancel()
	u, err := scanUser(s.pool.QueryRow(ctx, "SELECT "+userColumns+" FROM users u JOIN workspaces w ON w.n = u.ws WHERE "+cond, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return stele.User{}, stele.ErrNotFound
	}
	return u, wrap(err)
}

// User returns the user with id.
func (s *Store) User(ctx context.Context, id string) (stele.User, error) {
	return s.userWhere(ctx, "u.id = $1", id)
}

// UserByEmail returns the user with email.
func (s *Store) UserByEmail(ctx context.Context, email string) (stele.User, error) {
	return s.userWhere(ctx, "u.email = $1", email)
}

// Users lists ws's users.
func (s *Store) Users(ctx context.Context, ws string) ([]stele.User, error) {
	ctx, cancel := s.read(ctx)
	defer cancel()
	wsn, err := s.wsNumber(ctx, s.pool, ws)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT "+userColumns+" FROM users u JOIN workspaces w ON w.n = u.ws WHERE u.ws = $1 ORDER BY u.email", wsn)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []stele.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, wrap(err)
		}
		out = append(out, u)
	}
	return out, wrap(rows.Err())
}

// UpdateUser replaces a user's mutable fields.
func (s *Store) UpdateUser(ctx context.Context, u stele.User) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		wsn, err := s.wsNumber(ctx, tx, u.Workspace)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "UPDATE users SET name = $1, role = $2, password_hash = $3, disabled_ns = $4 WHERE id = $5 AND ws = $6",
			u.Name, u.Role, u.PasswordHash, nanos(u.DisabledAt), u.ID, wsn)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return stele.ErrNotFound
		}
		return nil
	})
}

// CreateSession stores a session.
func (s *Store) CreateSession(ctx context.Context, se stele.Session) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		wsn, err := s.wsNumber(ctx, tx, se.Workspace)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO sessions (token_hash, id, user_id, ws, csrf_token, ip, created_ns, expires_ns, revoked_ns)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, se.TokenHash, se.ID, se.UserID, wsn, se.CSRFToken, se.IP,
			nanos(se.CreatedAt), nanos(se.ExpiresAt), nanos(se.RevokedAt))
		if isUniqueViolation(err) {
			return stele.ErrConflict
		}
		return err
	})
}

// SessionByToken returns the session with the token hash.
func (s *Store) SessionByToken(ctx context.Context, tokenHash []byte) (stele.Session, error) {
	ctx, cancel := s.lookup(ctx)
	defer cancel()
	var se stele.Session
	var created, expires, revoked int64
	err := s.pool.QueryRow(ctx, `SELECT s.token_hash, s.id, s.user_id, w.id, s.csrf_token, s.ip, s.created_ns, s.expires_ns, s.revoked_ns
		FROM sessions s JOIN workspaces w ON w.n = s.ws WHERE s.token_hash = $1`, tokenHash).
		Scan(&se.TokenHash, &se.ID, &se.UserID, &se.Workspace, &se.CSRFToken, &se.IP, &created, &expires, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return stele.Session{}, stele.ErrNotFound
	}
	se.CreatedAt, se.ExpiresAt, se.RevokedAt = fromNanos(created), fromNanos(expires), fromNanos(revoked)
	return se, wrap(err)
}

// RevokeSessions ends one session of a user, or all of them.
func (s *Store) RevokeSessions(ctx context.Context, userID, id string, t time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.WriteTimeout)
	defer cancel()
	var err error
	if id != "" {
		_, err = s.pool.Exec(ctx, "UPDATE sessions SET revoked_ns = $1 WHERE user_id = $2 AND id = $3 AND revoked_ns = 0", t.UnixNano(), userID, id)
	} else {
		_, err = s.pool.Exec(ctx, "UPDATE sessions SET revoked_ns = $1 WHERE user_id = $2 AND revoked_ns = 0", t.UnixNano(), userID)
	}
	return wrap(err)
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
