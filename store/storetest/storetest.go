// Package storetest is the conformance suite that every stele.Store backend
// must pass: storetest.Run(t, open). It checks the contract written on
// stele.Store — appends read back exactly, positions are gap-free per
// workspace, a failed transaction leaves no trace, taken positions and ids
// are integrity failures, checkpoints only grow, the database refuses edits
// of the log, and every filter, order and cursor agrees with stele.Filter's
// reference semantics.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// Harness is one fresh, empty store under test.
type Harness struct {
	Store stele.Store
	// Exec runs a statement directly on the database, bypassing the store,
	// as an attacker with SQL access would. Tables and columns named in the
	// tests (events, tree, checkpoints, logs) exist in every backend.
	Exec func(ctx context.Context, statement string) error
}

// Open returns a fresh, empty store; the suite closes it.
type Open func(t *testing.T) Harness

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	t.Run("Workspaces", func(t *testing.T) { testWorkspaces(t, open) })
	t.Run("AppendReadBack", func(t *testing.T) { testAppendReadBack(t, open) })
	t.Run("FailedTransactionLeavesNoTrace", func(t *testing.T) { testRollback(t, open) })
	t.Run("TakenPositionIsIntegrityFailure", func(t *testing.T) { testTakenPosition(t, open) })
	t.Run("Priors", func(t *testing.T) { testPriors(t, open) })
	t.Run("WorkspacesAreIsolated", func(t *testing.T) { testIsolation(t, open) })
	t.Run("Checkpoints", func(t *testing.T) { testCheckpoints(t, open) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, open) })
	t.Run("UsersAndSessions", func(t *testing.T) { testUsers(t, open) })
	t.Run("Immutability", func(t *testing.T) { testImmutability(t, open) })
	t.Run("Filters", func(t *testing.T) { testFilters(t, open) })
	t.Run("CursorStableUnderAppends", func(t *testing.T) { testCursorUnderAppends(t, open) })
	t.Run("Histogram", func(t *testing.T) { testHistogram(t, open) })
}

func harness(t *testing.T, open Open) (Harness, context.Context) {
	t.Helper()
	h := open(t)
	t.Cleanup(func() { h.Store.Close() })
	return h, context.Background()
}

func mustCreate(t *testing.T, s stele.Store, ws string) {
	t.Helper()
	if err := s.CreateWorkspace(context.Background(), stele.Workspace{ID: ws, Name: ws, CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatalf("CreateWorkspace(%s): %v", ws, err)
	}
}

// Log builds valid appends for one workspace the way the write path does,
// keeping its own frontier so that tests can predict heads and roots.
type Log struct {
	WS       string
	Frontier *tree.Frontier
	Last     time.Time
	MACKey   []byte
}

// NewLog starts a builder for an empty log.
func NewLog(ws string) *Log {
	f, _ := tree.NewFrontier(0, nil)
	return &Log{WS: ws, Frontier: f, MACKey: []byte("storetest mac key")}
}

// Entries seals bodies into entries at the next positions and returns them
// with the head they lead to. It does not change the builder; Commit does.
func (l *Log) Entries(bodies []stele.EventBody) ([]stele.Entry, stele.Head, *tree.Frontier) {
	f := l.Frontier.Clone()
	var entries []stele.Entry
	last := l.Last
	for i := range bodies {
		b := bodies[i]
		b.Emitter.Workspace = l.WS
		if b.ID == "" {
			b.ID = uuid.Must(uuid.NewV7()).String()
		}
		if b.ReceivedAt.IsZero() {
			b.ReceivedAt = b.Time
		}
		canon, err := stele.Canonical(&b)
		if err != nil {
			panic(err)
		}
		leaf := stele.LeafHash(canon)
		seq := f.Size()
		hashes, err := f.Append(leaf)
		if err != nil {
			panic(err)
		}
		entries = append(entries, stele.Entry{Seq: seq, Body: &b, Canonical: canon, TreeHashes: hashes, MAC: mac(l.MACKey, l.WS, seq, leaf)})
		if b.ReceivedAt.After(last) {
			last = b.ReceivedAt
		}
	}
	return entries, stele.Head{Size: f.Size(), Root: f.Root(), LastReceived: last}, f
}

// Append writes bodies in one transaction and advances the builder.
func (l *Log) Append(t *testing.T, s stele.Store, bodies []stele.EventBody) []stele.Entry {
	t.Helper()
	entries, head, f := l.Entries(bodies)
	err := s.Update(context.Background(), func(tx stele.AppendTx) error {
		h, err := tx.LockHead(context.Background(), l.WS)
		if err != nil {
			return err
		}
		if h.Size != l.Frontier.Size() {
			t.Fatalf("head size %d, builder at %d", h.Size, l.Frontier.Size())
		}
		return tx.Append(context.Background(), l.WS, entries, head)
	})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	l.Frontier, l.Last = f, head.LastReceived
	return entries
}

// hashReader reads stored hashes from a store for tlog.
func hashReader(ctx context.Context, s stele.Store, ws string) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return s.TreeHashes(ctx, ws, idx) })
}
