package stele

import (
	"context"
	"errors"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Tenant is the store as one workspace sees it: every read and write acts
// in that workspace, which comes from the caller's credential, so that no
// handler can forget it or take it from the request. A reference to another
// workspace's event, key or user is answered as not found — with a
// *ForeignError, so that the attempt can be recorded (RELIABILITY.md D7),
// while the caller learns nothing it could not learn from a random id.
type Tenant struct {
	s  Store
	ws string
}

// In returns the view of s for workspace ws.
func In(s Store, ws string) Tenant { return Tenant{s: s, ws: ws} }

// ForeignError is a reference to something that exists in another
// workspace. Its kind is KindNotFound: the caller sees exactly what a
// missing id produces.
type ForeignError struct {
	Target string // the workspace that holds it
	Kind   string // "event", "key", "user"
	ID     string
}

func (e *ForeignError) Error() string { return e.Kind + " " + e.ID + " belongs to another workspace" }

// Unwrap makes the error classify as not found.
func (e *ForeignError) Unwrap() error { return ErrNotFound }

// Workspace returns the workspace the tenant acts in.
func (t Tenant) Workspace() string { return t.ws }

func (t Tenant) Head(ctx context.Context) (Head, error) { return t.s.Head(ctx, t.ws) }

func (t Tenant) TreeHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	return t.s.TreeHashes(ctx, t.ws, indexes)
}

// HashReader returns a tlog.HashReader over the workspace's stored tree.
func (t Tenant) HashReader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return t.TreeHashes(ctx, idx) })
}

// EventByID returns the workspace's event with id. If no such event is
// here but one is in another workspace, the error is a *ForeignError.
func (t Tenant) EventByID(ctx context.Context, id string) (StoredEvent, error) {
	e, err := t.s.EventByID(ctx, t.ws, id)
	if !errors.Is(err, ErrNotFound) {
		return e, err
	}
	holders, lerr := t.s.EventWorkspaces(ctx, id)
	if lerr != nil {
		return e, err
	}
	for _, w := range holders {
		if w != t.ws {
			return StoredEvent{}, &ForeignError{Target: w, Kind: "event", ID: id}
		}
	}
	return e, err
}

func (t Tenant) Query(ctx context.Context, q Query) ([]StoredEvent, error) {
	return t.s.Query(ctx, t.ws, q)
}

func (t Tenant) Scan(ctx context.Context, q Query, fn func(StoredEvent) error) error {
	return t.s.Scan(ctx, t.ws, q, fn)
}

func (t Tenant) Count(ctx context.Context, q Query) (int64, error) { return t.s.Count(ctx, t.ws, q) }

// ScanLeaves calls fn for every position of the workspace's log from from
// on, in order (see LogReader.ScanLeaves).
func (t Tenant) ScanLeaves(ctx context.Context, from int64, fn func(Leaf) error) error {
	return t.s.ScanLeaves(ctx, t.ws, from, fn)
}

func (t Tenant) Histogram(ctx context.Context, f Filter, interval time.Duration) ([]Bucket, error) {
	return t.s.Histogram(ctx, t.ws, f, interval)
}

func (t Tenant) LatestCheckpoint(ctx context.Context) (Checkpoint, error) {
	return t.s.LatestCheckpoint(ctx, t.ws)
}

// Keys lists the workspace's API keys.
func (t Tenant) Keys(ctx context.Context) ([]APIKey, error) { return t.s.Keys(ctx, t.ws) }

// Key returns the workspace's key with id (*ForeignError if it is another's).
func (t Tenant) Key(ctx context.Context, id string) (APIKey, error) {
	k, err := t.s.Key(ctx, id)
	if err != nil {
		return APIKey{}, err
	}
	if k.Workspace != t.ws {
		return APIKey{}, &ForeignError{Target: k.Workspace, Kind: "key", ID: id}
	}
	return k, nil
}

// CreateKey stores k in the workspace (its Workspace field is set here).
func (t Tenant) CreateKey(ctx context.Context, k APIKey) error {
	k.Workspace = t.ws
	return t.s.CreateKey(ctx, k)
}

// UpdateKey updates the workspace's key k.ID.
func (t Tenant) UpdateKey(ctx context.Context, k APIKey) error {
	k.Workspace = t.ws
	return t.s.UpdateKey(ctx, k)
}

// Users lists the workspace's users.
func (t Tenant) Users(ctx context.Context) ([]User, error) { return t.s.Users(ctx, t.ws) }

// User returns the workspace's user with id (*ForeignError if another's).
func (t Tenant) User(ctx context.Context, id string) (User, error) {
	u, err := t.s.User(ctx, id)
	if err != nil {
		return User{}, err
	}
	if u.Workspace != t.ws {
		return User{}, &ForeignError{Target: u.Workspace, Kind: "user", ID: id}
	}
	return u, nil
}

// CreateUser stores u in the workspace.
func (t Tenant) CreateUser(ctx context.Context, u User) error {
	u.Workspace = t.ws
	return t.s.CreateUser(ctx, u)
}

// UpdateUser updates the workspace's user u.ID.
func (t Tenant) UpdateUser(ctx context.Context, u User) error {
	u.Workspace = t.ws
	return t.s.UpdateUser(ctx, u)
}

// RevokeSessions ends sessions of the workspace's user (see SessionStore).
func (t Tenant) RevokeSessions(ctx context.Context, userID, id string, at time.Time) error {
	if _, err := t.User(ctx, userID); err != nil {
		return err
	}
	return t.s.RevokeSessions(ctx, userID, id, at)
}
