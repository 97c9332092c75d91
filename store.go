package stele

import (
	"context"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Store is everything Stele keeps: the per-workspace logs (events and Merkle
// tree hashes), their signed checkpoints, workspaces and API keys.
//
// # Durability
//
// A write method returns nil only after its effects are durable: committed
// and flushed to stable storage as configured (SQLite synchronous=FULL,
// PostgreSQL synchronous_commit=on). If it returns an error, none of its
// effects are visible, unless the error is ambiguous (the commit was sent but
// its outcome is unknown); stores report ambiguity by wrapping ErrUnavailable,
// and callers treat it as "maybe committed": they re-read the log head before
// writing again and never acknowledge the operation.
//
// After a failed flush (fsync) a store must not accept further writes until it
// is reopened: the page cache may no longer match the disk. It then returns
// ErrUnavailable from every write.
//
// # Concurrency
//
// All methods are safe for concurrent use. Update transactions are
// serializable with respect to each other for the workspaces whose heads they
// lock: two transactions that lock the same head never interleave, whether
// they run in one process or in several sharing the database. Reads see a
// consistent snapshot of committed data.
//
// # Immutability
//
// Events, tree hashes and checkpoints are append-only. A store refuses, in the
// database itself where the engine allows it, any UPDATE or DELETE of them.
//
// # Tenancy
//
// Every method that touches a workspace's data takes the workspace id and
// never returns data of another workspace.
type Store interface {
	LogWriter
	LogReader
	CheckpointStore
	WorkspaceStore
	KeyStore
	UserStore
	SessionStore
	// Ping reports whether the store can take writes now: nil, or why not
	// (database unreachable, or poisoned by a failed flush).
	Ping(ctx context.Context) error
	// Close releases the store. Writes in flight fail; committed data stays.
	Close() error
}

// GuardChecker is implemented by stores that enforce immutability in the
// database itself (triggers, privileges). CheckGuards returns nil when every
// guard is in place, and otherwise an error naming each one that is missing
// or altered; stele check and the start-up self-check report it
// (RELIABILITY.md TAM-22). It only reads. Guards are a second line of
// defence: tamper evidence comes from the signed tree.
type GuardChecker interface {
	CheckGuards(ctx context.Context) error
}

// LogWriter appends to workspaces' logs.
type LogWriter interface {
	// Update runs fn in one write transaction and commits it durably when fn
	// returns nil. If fn returns an error, or the commit fails, nothing fn
	// wrote is kept and Update returns that error.
	Update(ctx context.Context, fn func(AppendTx) error) error
}

// AppendTx is the view of a write transaction. It is used by one goroutine.
type AppendTx interface {
	// LockHead returns the head of ws's log and holds it until the
	// transaction ends, so that no other transaction appends to ws meanwhile.
	// ErrNotFound if ws does not exist.
	LockHead(ctx context.Context, ws string) (Head, error)
	// Priors returns what is stored for those of ids already logged in ws.
	Priors(ctx context.Context, ws string, ids []string) (map[string]Prior, error)
	// TreeHashes reads stored tree hashes by tlog stored-hash index.
	TreeHashes(ctx context.Context, ws string, indexes []int64) ([]tlog.Hash, error)
	// Leaves returns the leaf records of positions [from, to) in order.
	Leaves(ctx context.Context, ws string, from, to int64) ([]Leaf, error)
	// Append stores entries, which occupy positions head.Size-len(entries)
	// to head.Size-1 consecutively, and sets ws's head to head. A position
	// or id that is already taken is an integrity failure, returned as an
	// *ErrIntegrity.
	Append(ctx context.Context, ws string, entries []Entry, head Head) error
}

// LogReader reads workspaces' logs from committed data.
type LogReader interface {
	// Head returns the head of ws's log; ErrNotFound if ws does not exist.
	Head(ctx context.Context, ws string) (Head, error)
	// TreeHashes reads stored tree hashes by tlog stored-hash index; with it
	// callers build tlog proofs. An index beyond the log is ErrNotFound.
	TreeHashes(ctx context.Context, ws string, indexes []int64) ([]tlog.Hash, error)
	// EventByID returns the event with id in ws; ErrNotFound if none.
	EventByID(ctx context.Context, ws, id string) (StoredEvent, error)
	// EventWorkspaces returns the workspaces holding an event with id (ids
	// are unique per workspace only), in one statement whatever their
	// number: it tells a reference to another workspace's event from a
	// random id (RELIABILITY.md D7) without a query per workspace. An id
	// that is not a UUID is in none.
	EventWorkspaces(ctx context.Context, id string) ([]string, error)
	// Query returns up to q.Limit events of ws matching q, in q's order,
	// strictly after q.After when it is set.
	Query(ctx context.Context, ws string, q Query) ([]StoredEvent, error)
	// Scan calls fn for every event of ws matching q (q.Limit 0 means all),
	// streaming rows from the database; it stops at fn's first error or when
	// ctx is done.
	Scan(ctx context.Context, ws string, q Query, fn func(StoredEvent) error) error
	// Count returns how many events of ws match q (ignoring Limit and After).
	Count(ctx context.Context, ws string, q Query) (int64, error)
	// Histogram counts the events of ws matching f per time bucket.
	Histogram(ctx context.Context, ws string, f Filter, interval time.Duration) ([]Bucket, error)
	// ScanLeaves calls fn for every position of ws's log from from on, in
	// order, with what is stored for it, for integrity checks.
	ScanLeaves(ctx context.Context, ws string, from int64, fn func(Leaf) error) error
}

// CheckpointStore keeps every signed checkpoint of every log.
type CheckpointStore interface {
	// AddCheckpoint stores cp if the latest stored checkpoint of its
	// workspace has size prevSize (-1: none stored yet), cp is larger, and
	// cp.Time is later; otherwise it stores nothing and returns ErrConflict.
	AddCheckpoint(ctx context.Context, cp Checkpoint, prevSize int64) error
	// LatestCheckpoint returns the largest checkpoint of ws; ErrNotFound if none.
	LatestCheckpoint(ctx context.Context, ws string) (Checkpoint, error)
	// Checkpoints calls fn for every stored checkpoint of ws by size.
	Checkpoints(ctx context.Context, ws string, fn func(Checkpoint) error) error
}

// WorkspaceStore keeps workspaces.
type WorkspaceStore interface {
	// CreateWorkspace creates w with an empty log; ErrConflict if its id is taken.
	CreateWorkspace(ctx context.Context, w Workspace) error
	// Workspace returns the workspace id; ErrNotFound if none.
	Workspace(ctx context.Context, id string) (Workspace, error)
	// Workspaces lists all workspaces by id.
	Workspaces(ctx context.Context) ([]Workspace, error)
}

// KeyStore keeps API keys. Secrets are never stored, only their hashes.
type KeyStore interface {
	// CreateKey stores k; ErrConflict if its id is taken.
	CreateKey(ctx context.Context, k APIKey) error
	// Key returns the key with id, in any workspace (authentication starts
	// from the key alone); ErrNotFound if none.
	Key(ctx context.Context, id string) (APIKey, error)
	// Keys lists the keys of ws by creation time.
	Keys(ctx context.Context, ws string) ([]APIKey, error)
	// UpdateKey replaces the mutable fields of the key k.ID in k.Workspace
	// (secret hashes, name, revocation, expiry); ErrNotFound if none.
	UpdateKey(ctx context.Context, k APIKey) error
	// TouchKey records that the key was used at t; it may be lossy.
	TouchKey(ctx context.Context, id string, t time.Time) error
}

// UserStore keeps the people who sign in to the dashboard. Emails are
// unique across the instance (a login names no workspace); passwords are
// stored only as argon2id hashes.
type UserStore interface {
	// CreateUser stores u; ErrConflict if its id or email is taken.
	CreateUser(ctx context.Context, u User) error
	// User returns the user with id, in any workspace; ErrNotFound if none.
	User(ctx context.Context, id string) (User, error)
	// UserByEmail returns the user with email (lowercase); ErrNotFound if none.
	UserByEmail(ctx context.Context, email string) (User, error)
	// Users lists the users of ws by email.
	Users(ctx context.Context, ws string) ([]User, error)
	// UpdateUser replaces the mutable fields of user u.ID in u.Workspace
	// (name, role, password hash, disabled); ErrNotFound if none.
	UpdateUser(ctx context.Context, u User) error
}

// SessionStore keeps dashboard sessions. The cookie's token is never
// stored, only its SHA-256.
type SessionStore interface {
	// CreateSession stores a new session.
	CreateSession(ctx context.Context, s Session) error
	// SessionByToken returns the session whose token hashes to tokenHash,
	// revoked or expired ones included; ErrNotFound if none.
	SessionByToken(ctx context.Context, tokenHash []byte) (Session, error)
	// RevokeSessions ends, at t, the session with id, or every session of
	// userID when id is empty.
	RevokeSessions(ctx context.Context, userID, id string, t time.Time) error
}

// Head is the state of a workspace's log after its last committed append.
type Head struct {
	Size int64     // number of events; the next event's seq
	Root tlog.Hash // RFC 6962 root of the tree of Size leaves
	// LastReceived is the received_at of the event at Size-1; the write path
	// never stamps an event earlier, so received_at never decreases along a log.
	LastReceived time.Time
}

// Entry is one event as the write path hands it to a store.
type Entry struct {
	Seq       int64
	Body      *EventBody // parsed form, for the store's index columns
	Canonical []byte     // the leaf bytes
	// TreeHashes are the hashes tlog.StoredHashes returned for this leaf;
	// the first is the leaf hash.
	TreeHashes []tlog.Hash
	// RequestHash identifies the emitter's request when it supplied the id
	// (see RequestHash); nil otherwise.
	RequestHash []byte
	// MAC binds (workspace, seq, leaf hash) to the instance's secret, so that
	// rows written by anyone else are recognized (see sequencer).
	MAC []byte
}

// LeafHash returns the entry's leaf hash.
func (e *Entry) LeafHash() tlog.Hash { return e.TreeHashes[0] }

// Leaf is what a store holds for one position of a log, as read back for
// verification. Canonical is nil when retention has removed the event body.
type Leaf struct {
	Seq        int64
	Canonical  []byte
	LeafHash   tlog.Hash // as stored beside the event
	TreeHashes []tlog.Hash
	MAC        []byte
}

// Prior is what a store holds for an id already logged.
type Prior struct {
	Seq         int64
	LeafHash    tlog.Hash
	RequestHash []byte
}

// StoredEvent is an event as read back: its position, leaf bytes and hash.
type StoredEvent struct {
	Seq       int64
	Canonical []byte
	LeafHash  tlog.Hash
}

// Checkpoint is a signed tree head of one workspace's log.
type Checkpoint struct {
	Workspace string
	Size      int64
	Root      tlog.Hash
	// Time is the signing time, with the one-second resolution of the
	// timestamped signature that carries it.
	Time time.Time
	// Note is the signed note: the C2SP tlog-checkpoint text and signatures.
	Note []byte
}

// Workspace is a tenant: it owns one log, keys and users.
type Workspace struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Bucket is one bar of an events-over-time histogram.
type Bucket struct {
	Start time.Time
	Count int64
}

// Scopes an API key may hold.
const (
	ScopeWrite    = "events:write" // append events
	ScopeRead     = "events:read"  // query, export, proofs
	ScopeAdmin    = "admin"        // manage the workspace's keys, users and settings
	ScopeOperator = "operator"     // instance-wide: create workspaces, read the system log
)

// Scopes lists the scopes in the order they are documented.
var Scopes = []string{ScopeWrite, ScopeRead, ScopeAdmin, ScopeOperator}

// APIKey is a credential of one workspace. Its secret is never stored:
// SecretHash is SHA-256 of the secret, compared in constant time.
type APIKey struct {
	ID         string
	Workspace  string
	Name       string
	Scopes     []string
	SecretHash []byte
	// PrevSecretHash stays valid until PrevValidUntil after a rotation.
	PrevSecretHash []byte
	PrevValidUntil time.Time
	CreatedAt      time.Time
	CreatedBy      string
	ExpiresAt      time.Time // zero: never
	RevokedAt      time.Time // zero: active
	LastUsedAt     time.Time
}

// Roles a user may hold in a workspace.
const (
	RoleOwner  = "owner"  // everything in the workspace, including other owners
	RoleAdmin  = "admin"  // keys, users (not owners) and settings; reads the log
	RoleViewer = "viewer" // reads the log
)

// Roles lists the roles from most to least powerful.
var Roles = []string{RoleOwner, RoleAdmin, RoleViewer}

// User is a person who signs in to the dashboard of one workspace.
type User struct {
	ID           string
	Workspace    string
	Email        string // lowercase, unique across the instance
	Name         string
	Role         string
	PasswordHash string // argon2id, PHC string format
	CreatedAt    time.Time
	DisabledAt   time.Time // zero: active
}

// Session is a signed-in user's dashboard session.
type Session struct {
	ID        string // public id, for listing and revocation
	TokenHash []byte // SHA-256 of the cookie's token
	UserID    string
	Workspace string
	CSRFToken string // required in X-CSRF-Token on state-changing requests
	IP        string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero: live
}
