package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/stele-log/stele"
)

// CreateUser stores a new user.
func (s *Store) CreateUser(ctx context.Context, u stele.User) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		wsn, err := s.wsNumber(ctx, tx, u.Workspace)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO users (id, ws, email, name, role, password_hash, created_ns, disabled_ns)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, u.ID, wsn, u.Email, u.Name, u.Role, u.PasswordHash, nanos(u.CreatedAt), nanos(u.DisabledAt))
		if err != nil && isConstraint(err) {
			return stele.ErrConflict
		}
		return err
	})
}

const userColumns = "u.id, w.id, u.email, u.name, u.role, u.password_hash, u.created_ns, u.disabled_ns"

func scanUser(sc interface{ Scan(...any) error }) (stele.User, error) {
	var u stele.User
	var created, disabled int64
	err := sc.Scan(&u.ID, &u.Workspace, &u.Email, &u.Name, &u.Role, &u.PasswordHash, &created, &disabled)
	u.CreatedAt, u.DisabledAt = fromNanos(created), fromNanos(disabled)
	return u, err
}

func (s *Store) userWhere(ctx context.Context, cond string, arg any) (stele.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users u JOIN workspaces w ON w.n = u.ws WHERE "+cond, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return stele.User{}, stele.ErrNotFound
	}
	return u, err
}

// User returns the user with id.
func (s *Store) User(ctx context.Context, id string) (stele.User, error) {
	return s.userWhere(ctx, "u.id = ?", id)
}

// UserByEmail returns the user with email.
func (s *Store) UserByEmail(ctx context.Context, email string) (stele.User, error) {
	return s.userWhere(ctx, "u.email = ?", email)
}

// Users lists ws's users.
func (s *Store) Users(ctx context.Context, ws string) ([]stele.User, error) {
	wsn, err := s.wsNumber(ctx, s.r, ws)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+userColumns+" FROM users u JOIN workspaces w ON w.n = u.ws WHERE u.ws = ? ORDER BY u.email", wsn)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []stele.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UpdateUser replaces a user's mutable fields.
func (s *Store) UpdateUser(ctx context.Context, u stele.User) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		wsn, err := s.wsNumber(ctx, tx, u.Workspace)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "UPDATE users SET name = ?, role = ?, password_hash = ?, disabled_ns = ? WHERE id = ? AND ws = ?",
			u.Name, u.Role, u.PasswordHash, nanos(u.DisabledAt), u.ID, wsn)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return stele.ErrNotFound
		}
		return nil
	})
}

// CreateSession stores a session.
func (s *Store) CreateSession(ctx context.Context, se stele.Session) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		wsn, err := s.wsNumber(ctx, tx, se.Workspace)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO sessions (token_hash, id, user_id, ws, csrf_token, ip, created_ns, expires_ns, revoked_ns)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, se.TokenHash, se.ID, se.UserID, wsn, se.CSRFToken, se.IP,
			nanos(se.CreatedAt), nanos(se.ExpiresAt), nanos(se.RevokedAt))
		if err != nil && isConstraint(err) {
			return stele.ErrConflict
		}
		return err
	})
}

// SessionByToken returns the session with the token hash.
func (s *Store) SessionByToken(ctx context.Context, tokenHash []byte) (stele.Session, error) {
	var se stele.Session
	var created, expires, revoked int64
	err := s.r.QueryRowContext(ctx, `SELECT s.token_hash, s.id, s.user_id, w.id, s.csrf_token, s.ip, s.created_ns, s.expires_ns, s.revoked_ns
		FROM sessions s JOIN workspaces w ON w.n = s.ws WHERE s.token_hash = ?`, tokenHash).
		Scan(&se.TokenHash, &se.ID, &se.UserID, &se.Workspace, &se.CSRFToken, &se.IP, &created, &expires, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return stele.Session{}, stele.ErrNotFound
	}
	se.CreatedAt, se.ExpiresAt, se.RevokedAt = fromNanos(created), fromNanos(expires), fromNanos(revoked)
	return se, err
}

// RevokeSessions ends one session of a user, or all of them.
func (s *Store) RevokeSessions(ctx context.Context, userID, id string, t time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var err error
		if id != "" {
			_, err = tx.ExecContext(ctx, "UPDATE sessions SET revoked_ns = ? WHERE user_id = ? AND id = ? AND revoked_ns = 0", t.UnixNano(), userID, id)
		} else {
			_, err = tx.ExecContext(ctx, "UPDATE sessions SET revoked_ns = ? WHERE user_id = ? AND revoked_ns = 0", t.UnixNano(), userID)
		}
		return err
	})
}
