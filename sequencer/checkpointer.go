package sequencer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// CheckpointStore is what the checkpointer needs of a store.
type CheckpointStore interface {
	stele.CheckpointStore
	TreeHashes(ctx context.Context, ws string, indexes []int64) ([]tlog.Hash, error)
}

// Checkpointer signs a checkpoint for each workspace whose log grew, at most
// one per second per workspace (the resolution of checkpoint timestamps), so
// that every acknowledged event is covered within about a second (D1).
//
// Before signing it proves, from stored hashes, that the new tree is
// consistent with the latest stored checkpoint, and it signs only heads that
// the write path computed itself; a checkpoint time never repeats or goes
// back, and is never earlier than the receipt time of an event it covers
// (C8). When any of this cannot hold (the clock went back, a proof fails, the
// store refuses) it does not sign: appends go on, checkpoints stall, and the
// stall is logged and counted (D2).
type Checkpointer struct {
	store  CheckpointStore
	key    *checkpoint.Key
	now    func() time.Time
	log    *slog.Logger
	m      *Metrics
	wakeCh chan struct{}

	mu   sync.Mutex // guards logs
	logs map[string]*cpState
}

// cpState is the checkpointer's view of one workspace.
type cpState struct {
	head      stele.Head        // latest head committed by this process
	known     bool              // head was reported; only such heads are signed
	since     time.Time         // when head first went unsigned
	signed    *stele.Checkpoint // latest stored checkpoint; nil until loaded
	waiters   []waiter
	lastStall string
}

type waiter struct {
	size int64
	ch   chan stele.Checkpoint
}

// NewCheckpointer returns a checkpointer; Run drives it.
func NewCheckpointer(store CheckpointStore, key *checkpoint.Key, now func() time.Time, log *slog.Logger, m *Metrics) *Checkpointer {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Checkpointer{store: store, key: key, now: now, log: log, m: m, wakeCh: make(chan struct{}, 1), logs: map[string]*cpState{}}
}

// Committed tells the checkpointer that ws's log has head h. It is the
// sequencer's OnCommit.
func (c *Checkpointer) Committed(ws string, h stele.Head) {
	c.mu.Lock()
	st := c.state(ws)
	if !st.known || h.Size > st.head.Size {
		if st.since.IsZero() {
			st.since = c.now()
		}
		st.head, st.known = h, true
	}
	c.mu.Unlock()
	c.wake()
}

func (c *Checkpointer) wake() {
	select {
	case c.wakeCh <- struct{}{}:
	default:
	}
}

func (c *Checkpointer) state(ws string) *cpState {
	st := c.logs[ws]
	if st == nil {
		st = &cpState{}
		c.logs[ws] = st
	}
	return st
}

// Wait returns a signed checkpoint of ws of at least size events: the
// latest one if it already covers them, otherwise the first one signed that
// does. It blocks on a channel the signing path closes over (no polling of
// the store) until then or until ctx is done, and then returns ctx's error;
// callers bound the wait with ctx. A checkpoint already stored by an earlier
// process answers too: the checkpointer loads it on the waiter's behalf.
func (c *Checkpointer) Wait(ctx context.Context, ws string, size int64) (stele.Checkpoint, error) {
	c.mu.Lock()
	st := c.state(ws)
	if st.signed != nil && st.signed.Size >= size {
		cp := *st.signed
		c.mu.Unlock()
		return cp, nil
	}
	ch := make(chan stele.Checkpoint, 1)
	st.waiters = append(st.waiters, waiter{size: size, ch: ch})
	c.mu.Unlock()
	c.wake()
	select {
	case cp := <-ch:
		return cp, nil
	case <-ctx.Done():
		c.mu.Lock() // forget the waiter, so that a stalled log keeps none
		kept := st.waiters[:0]
		for _, w := range st.waiters {
			if w.ch != ch {
				kept = append(kept, w)
			}
		}
		st.waiters = kept
		c.mu.Unlock()
		select {
		case cp := <-ch: // answered meanwhile
			return cp, nil
		default:
		}
		return stele.Checkpoint{}, ctx.Err()
	}
}

// Run signs checkpoints until ctx is done.
func (c *Checkpointer) Run(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		c.SignDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-c.wakeCh:
		case <-tick.C:
		}
	}
}

// Flush signs every pending head, waiting for the next second where a
// checkpoint was just signed, and returns when all are signed, one cannot be,
// or ctx is done. It is the last step of a graceful shutdown.
func (c *Checkpointer) Flush(ctx context.Context) error {
	for {
		pending := c.SignDue(ctx)
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d workspaces left without a final checkpoint: %w", pending, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// SignDue signs a checkpoint for every workspace whose head is ahead of its
// latest checkpoint and whose last checkpoint is from an earlier second. It
// returns how many workspaces remain unsigned.
func (c *Checkpointer) SignDue(ctx context.Context) int {
	c.mu.Lock()
	var due []string
	for ws, st := range c.logs {
		if st.known && (st.signed == nil || st.head.Size > st.signed.Size) || len(st.waiters) > 0 {
			due = append(due, ws)
		}
	}
	c.mu.Unlock()
	pending := 0
	for _, ws := range due {
		if !c.signOne(ctx, ws) {
			pending++
		}
	}
	return pending
}

// signOne brings ws's checkpoint up to its head; it reports whether ws is
// now fully covered.
func (c *Checkpointer) signOne(ctx context.Context, ws string) bool {
	c.mu.Lock()
	st := c.state(ws)
	head, known, signed := st.head, st.known, st.signed
	c.mu.Unlock()

	if signed == nil {
		latest, err := c.store.LatestCheckpoint(ctx, ws)
		switch {
		case errors.Is(err, stele.ErrNotFound):
			latest = stele.Checkpoint{Workspace: ws, Size: -1}
		case err != nil:
			c.stall(ws, "store", err)
			return false
		}
		signed = &latest
		c.setSigned(ws, signed) // answers waiters covered by what is stored
	}
	if !known {
		return true // only heads the write path reported are signed
	}
	if head.Size <= signed.Size {
		c.setSigned(ws, signed) // answers waiters covered by what is stored
		return true
	}
	now := c.now().UTC()
	t := now.Truncate(time.Second)
	if !t.After(signed.Time) || t.Before(head.LastReceived.Truncate(time.Second)) {
		if signed.Time.Sub(now) > 2*time.Second || head.LastReceived.Sub(now) > 2*time.Second {
			c.stall(ws, "clock", fmt.Errorf("the clock (%v) is behind the last checkpoint (%v) or event (%v)", now, signed.Time, head.LastReceived))
		}
		return false // wait for the next second
	}
	if signed.Size > 0 {
		if err := c.proveConsistent(ctx, ws, signed, head); err != nil {
			c.stall(ws, "inconsistent", err)
			return false
		}
	}
	origin := c.key.Origin(ws)
	msg, err := c.key.Sign(origin, head.Size, head.Root, t)
	if err != nil {
		c.stall(ws, "sign", err)
		return false
	}
	cp := stele.Checkpoint{Workspace: ws, Size: head.Size, Root: head.Root, Time: t, Note: msg}
	if err := c.store.AddCheckpoint(ctx, cp, signed.Size); err != nil {
		if errors.Is(err, stele.ErrConflict) {
			// Another process stored a checkpoint meanwhile: reload and retry.
			c.mu.Lock()
			st.signed = nil
			c.mu.Unlock()
			return false
		}
		c.stall(ws, "store", err)
		return false
	}
	c.m.checkpoints.Inc()
	c.setSigned(ws, &cp)
	return true
}

// proveConsistent checks, with a tlog consistency proof read from stored
// hashes, that head's tree extends the signed one.
func (c *Checkpointer) proveConsistent(ctx context.Context, ws string, signed *stele.Checkpoint, head stele.Head) error {
	reader := tree.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return c.store.TreeHashes(ctx, ws, idx) })
	proof, err := tlog.ProveTree(head.Size, signed.Size, reader)
	if err != nil {
		return fmt.Errorf("couldn't build a consistency proof from %d to %d: %w", signed.Size, head.Size, err)
	}
	if err := tlog.CheckTree(proof, head.Size, head.Root, signed.Size, signed.Root); err != nil {
		return &stele.ErrIntegrity{Workspace: ws, Seq: signed.Size, Check: "consistency",
			Detail: fmt.Sprintf("the tree of %d events is not consistent with the checkpoint of %d", head.Size, signed.Size)}
	}
	return nil
}

func (c *Checkpointer) setSigned(ws string, cp *stele.Checkpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state(ws)
	if st.signed == nil || cp.Size >= st.signed.Size {
		st.signed = cp
	}
	if st.head.Size <= st.signed.Size {
		st.since = time.Time{}
	}
	kept := st.waiters[:0]
	for _, w := range st.waiters {
		if cp.Size >= w.size && cp.Size >= 0 {
			w.ch <- *cp
		} else {
			kept = append(kept, w)
		}
	}
	st.waiters = kept
	st.lastStall = ""
}

func (c *Checkpointer) stall(ws, reason string, err error) {
	if errors.Is(err, context.Canceled) {
		return // shutting down
	}
	c.m.checkpointStall.WithLabelValues(ws, reason).Inc()
	c.mu.Lock()
	st := c.state(ws)
	repeat := st.lastStall == reason
	st.lastStall = reason
	c.mu.Unlock()
	var integrity *stele.ErrIntegrity
	if errors.As(err, &integrity) {
		c.m.integrityAlarms.WithLabelValues(ws).Inc()
	}
	if !repeat {
		c.log.Error("checkpoint not signed; appends continue, checkpoints stall", "workspace", ws, "reason", reason, "err", err)
	}
}

// Lag returns, per workspace, how long its oldest unsigned commit has waited
// for a checkpoint (zero when all are covered).
func (c *Checkpointer) Lag() map[string]time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]time.Duration, len(c.logs))
	now := c.now()
	for ws, st := range c.logs {
		if !st.since.IsZero() {
			out[ws] = now.Sub(st.since)
		} else {
			out[ws] = 0
		}
	}
	return out
}
