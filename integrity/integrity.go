// Package integrity is the operator's full check of stored logs (stele
// check): for every workspace it re-derives every leaf from the stored
// event, rebuilds the whole Merkle tree from those leaves, and holds the
// result against every stored tree hash, the log's head and every stored
// signed checkpoint (RELIABILITY.md C1–C5, C8), and it asks the store
// whether its database guards are in place (TAM-22).
//
// It reads through the stele store interfaces only, so it runs on any
// backend, and it never writes. It trusts nothing it reads: not the stored
// leaf hashes, not the stored tree, not the head; only the log's public key
// (and, when given, the instance's row MAC key and checkpoints saved outside
// the database).
//
// stele check runs it on demand; stele serve runs it in the background
// (--full-check-every). It is not the offline verifier of exports (stele
// verify) nor the start-up self-check (sequencer.Recover), which checks only
// the right edge of each tree and the unsigned tail.
package integrity

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/stele-log/stele"
)

// Store is what the check reads.
type Store interface {
	Workspaces(ctx context.Context) ([]stele.Workspace, error)
	Head(ctx context.Context, ws string) (stele.Head, error)
	ScanLeaves(ctx context.Context, ws string, from int64, fn func(stele.Leaf) error) error
	Count(ctx context.Context, ws string, q stele.Query) (int64, error)
	Scan(ctx context.Context, ws string, q stele.Query, fn func(stele.StoredEvent) error) error
	Checkpoints(ctx context.Context, ws string, fn func(stele.Checkpoint) error) error
}

// IndexChecker is implemented by stores that keep query columns derived
// from each event beside its canonical bytes (store/sqlite). CheckIndexes
// calls fn for every event of ws whose columns differ from what its bytes
// say: an edit that hides an event from filtered queries without touching
// the signed bytes.
type IndexChecker interface {
	CheckIndexes(ctx context.Context, ws string, fn func(seq int64, detail string) error) error
}

// PhysicalChecker is implemented by stores that can check their own files
// (SQLite's PRAGMA integrity_check). CheckPhysical returns nil, or what is
// damaged.
type PhysicalChecker interface {
	CheckPhysical(ctx context.Context) error
}

// Check names one of the checks, by its RELIABILITY.md number where it has one.
type Check string

// The checks.
const (
	// C1: each stored event hashes to its stored leaf hash, and names the
	// workspace whose log holds it (emitter.workspace).
	CheckLeaf Check = "C1 leaf"
	// C2: the tree rebuilt from the recomputed leaves has the stored tree
	// hashes, the head's root and every signed checkpoint's root.
	CheckRoot Check = "C2 root"
	// C3: every stored checkpoint is signed by the log's key for this
	// workspace's origin, and its stored columns say what its text says.
	CheckSignature Check = "C3 signature"
	// C4: positions are exactly 0..N-1, each with its event; the event count,
	// the head's size and every checkpoint's size agree with N.
	CheckSequence Check = "C4 sequence"
	// C5: the log is consistent with checkpoints saved outside the database:
	// not smaller (rollback), and the same root at their size (no fork).
	CheckConsistency Check = "C5 consistency"
	// C8: checkpoint sizes and times strictly increase, received_at never
	// decreases along the log, and no checkpoint is older than the last
	// event it covers.
	CheckTime Check = "C8 time"
	// Row MAC: each row carries the MAC the instance computes over
	// (workspace, seq, leaf hash); checked only with the signing key.
	CheckMAC Check = "row MAC"
	// D8: the stored bytes are exactly the canonical form of a valid event
	// (Options.Canonical).
	CheckCanonical Check = "D8 canonical"
	// Index: the store's query columns say what the stored event says
	// (Options.Canonical, stores that implement IndexChecker).
	CheckIndex Check = "index"
	// TAM-22: the database's own append-only guards are in place.
	CheckGuards Check = "guards"
	// TAM-17: the database engine finds its files consistent
	// (Options.Physical, stores that implement PhysicalChecker).
	CheckPhysical Check = "physical"
)

// Options configure Run.
type Options struct {
	// Instance is the instance name: workspace ws's checkpoints have the
	// origin Instance + "/" + ws.
	Instance string
	// PublicKey is the instance's Ed25519 log key.
	PublicKey ed25519.PublicKey
	// MACKey, when set, is the instance's row MAC key (checkpoint.Key.MACKey):
	// every row's MAC is checked too. Without it rows after the latest
	// checkpoint are reported as unverified only.
	MACKey []byte
	// Trusted are signed checkpoints saved outside the database (by a
	// monitor, an archive or a witness), for C5. Each must verify with
	// PublicKey; its origin names the workspace.
	Trusted [][]byte
	// Canonical re-derives every event through stele's parser and
	// canonicalizer (D8), and, on stores that implement IndexChecker, the
	// query columns; several times slower than hashing the bytes.
	Canonical bool
	// Physical asks the store to check its own files too (PhysicalChecker).
	Physical bool
	// Workspaces, when set, limits the check to these workspaces.
	Workspaces []string
	// Progress, when set, is called about every Options.ProgressEvery events
	// and at the end of each workspace, from the check's goroutines, one
	// call at a time.
	Progress      func(Progress)
	ProgressEvery int64
	// MaxFindings bounds the findings kept per workspace (default 20); the
	// rest are counted.
	MaxFindings int
	// Chunk is how many positions one read transaction covers (default
	// 100,000), so that a long check beside a live server does not pin an
	// old snapshot (and the SQLite WAL) for its whole run.
	Chunk int64
}

// Progress is the state of a running check.
type Progress struct {
	Workspace string
	Done      int64 // positions checked in this workspace
	Total     int64 // the head's size when the workspace's check began
	Events    int64 // positions checked in all workspaces so far
	Elapsed   time.Duration
}

// Finding is one contradiction in the stored data.
type Finding struct {
	Workspace string
	Seq       int64 // first position concerned; -1 when none
	Check     Check
	Detail    string
}

func (f Finding) String() string {
	at := "-"
	if f.Seq >= 0 {
		at = fmt.Sprintf("seq %d", f.Seq)
	}
	ws := f.Workspace
	if ws == "" {
		ws = "(database)"
	}
	return fmt.Sprintf("workspace %s %s: %s: %s", ws, at, f.Check, f.Detail)
}

// Workspace is the outcome for one workspace.
type Workspace struct {
	ID          string
	Events      int64 // positions stored
	Checkpoints int   // stored checkpoints
	// Latest is the size of the largest stored checkpoint whose signature
	// verified (0: none), LatestTime its signing time.
	Latest     int64
	LatestTime time.Time
	// Matched is the size of the largest of those whose root the rebuilt
	// tree has: Latest when the workspace is OK.
	Matched int64
	// Unsigned counts the positions after Latest: verified against the
	// stored head (and row MACs, with the MAC key) but by no signed
	// checkpoint yet (RELIABILITY.md I8).
	Unsigned int64
	Findings []Finding
	// Dropped counts findings beyond Options.MaxFindings.
	Dropped int
}

// OK reports whether the workspace passed every check.
func (w *Workspace) OK() bool { return len(w.Findings) == 0 }

// Report is the outcome of Run.
type Report struct {
	Workspaces []Workspace
	// Guards is nil when the store's guards are in place, or the store's
	// account of those that are not; GuardsChecked is false when the store
	// cannot tell (it does not implement stele.GuardChecker).
	Guards        error
	GuardsChecked bool
	// Physical is nil when the store finds its files consistent, or what it
	// found; PhysicalChecked is false when it was not asked or cannot tell.
	Physical        error
	PhysicalChecked bool
	// IndexesChecked reports whether the query columns were compared with
	// the events (Options.Canonical on an IndexChecker store).
	IndexesChecked bool
	Events         int64
	Elapsed        time.Duration
	// Trusted counts the external checkpoints held against the logs (C5).
	Trusted int
}

// OK reports whether everything passed.
func (r *Report) OK() bool {
	if r.Guards != nil || r.Physical != nil {
		return false
	}
	for i := range r.Workspaces {
		if !r.Workspaces[i].OK() {
			return false
		}
	}
	return true
}

// First returns the first finding, in workspace order and then seq order
// as found; ok is false when there is none.
func (r *Report) First() (f Finding, ok bool) {
	for _, w := range r.Workspaces {
		if len(w.Findings) > 0 {
			return w.Findings[0], true
		}
	}
	if r.Physical != nil {
		return Finding{Seq: -1, Check: CheckPhysical, Detail: r.Physical.Error()}, true
	}
	if r.Guards != nil {
		return Finding{Seq: -1, Check: CheckGuards, Detail: r.Guards.Error()}, true
	}
	return Finding{}, false
}

// Run checks every workspace of store (or those opts names) and the
// store's guards. It returns an error only when it could not read; what it
// found is in the report.
func Run(ctx context.Context, store Store, opts Options) (*Report, error) {
	if opts.MaxFindings <= 0 {
		opts.MaxFindings = 20
	}
	if opts.Chunk <= 0 {
		opts.Chunk = 100_000
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 100_000
	}
	if len(opts.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("no log key to check checkpoints with")
	}
	start := time.Now()
	rep := &Report{}
	trusted, err := openTrusted(opts)
	if err != nil {
		return nil, err
	}
	rep.Trusted = len(opts.Trusted)
	ids := opts.Workspaces
	if len(ids) == 0 {
		all, err := store.Workspaces(ctx)
		if err != nil {
			return nil, fmt.Errorf("couldn't list workspaces: %w", err)
		}
		for _, w := range all {
			ids = append(ids, w.ID)
		}
	}
	if len(opts.Workspaces) == 0 {
		// Saved checkpoints of workspaces the database no longer has.
		for _, ws := range slices.Sorted(maps.Keys(trusted)) {
			if !slices.Contains(ids, ws) {
				ids = append(ids, ws)
			}
		}
	}
	for _, ws := range ids {
		c := &wsCheck{store: store, opts: &opts, ws: ws, rep: rep, start: start, trusted: trusted[ws]}
		res, err := c.run(ctx)
		if err != nil {
			return nil, fmt.Errorf("couldn't check workspace %s: %w", ws, err)
		}
		rep.Workspaces = append(rep.Workspaces, res)
	}
	if p, ok := store.(PhysicalChecker); ok && opts.Physical {
		rep.PhysicalChecked = true
		rep.Physical = p.CheckPhysical(ctx)
	}
	_, rep.IndexesChecked = store.(IndexChecker)
	rep.IndexesChecked = rep.IndexesChecked && opts.Canonical
	if g, ok := store.(stele.GuardChecker); ok {
		rep.GuardsChecked = true
		rep.Guards = g.CheckGuards(ctx)
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}
