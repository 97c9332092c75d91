// Package sequencer is Stele's write path. Handlers hand it validated drafts;
// it seals them (received_at, emitter, canonical bytes, leaf hash) in the
// caller's goroutine, queues them for one of its lanes, and waits. A lane
// drains its queue into one batch, assigns positions, extends each
// workspace's Merkle tree from the frontier it keeps in memory, writes
// everything in one store transaction (one fsync for the whole batch: group
// commit), and only then answers every waiting caller. After each commit the
// checkpointer (checkpointer.go) signs the new heads.
//
// # Ownership
//
// Each workspace maps to one lane, and only that lane's goroutine touches the
// workspace's in-memory state (its frontier, size and last receipt time).
// SQLite runs one lane; PostgreSQL may run several, and several processes,
// since every transaction locks the heads it extends and re-checks them.
//
// # The commit point
//
// The store's commit is the commit point. If the process dies before it,
// nothing of the batch exists and no caller was acknowledged. If it dies after
// it but before the answers are written, the events are in the log,
// unacknowledged: a retry that carries the same event ids is answered with the
// original positions (idempotency), and the next start re-verifies the
// unsigned tail before signing it. See docs/write-path.md.
//
// # Foreign rows
//
// Every stored leaf carries a MAC (HMAC-SHA-256 under a key derived from the
// signing key) over its workspace, position and leaf hash. When a lane finds
// that a head moved without it — another process appended, or someone wrote
// to the database directly — it reads the new leaves, checks their MACs and
// recomputes the tree through them before extending it. A row the service did
// not write never reaches a signed checkpoint: the workspace stops accepting
// appends and an integrity alarm fires instead (RELIABILITY.md TAM-05b).
package sequencer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// Config tunes the write path.
type Config struct {
	// Lanes is the number of committing goroutines. SQLite has one writer,
	// so one lane; PostgreSQL commits lanes in parallel. Default 1.
	Lanes int
	// MaxBatch bounds the events of one transaction. Default 5000.
	MaxBatch int
	// MaxQueued bounds the events accepted but not yet committed, across
	// lanes; beyond it Append answers KindPushback (503, Retry-After).
	// It bounds memory: at most MaxQueued × stele.MaxEventBytes. Default 20000.
	MaxQueued int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives integrity alarms and commit failures.
	Logger *slog.Logger
	// OnCommit, when set, is called by the lane after each commit with the
	// new head of each workspace it extended (the checkpointer's feed).
	OnCommit func(ws string, h stele.Head)
	// Metrics, when set, receives the write path's measurements.
	Metrics *Metrics
}

// Receipt acknowledges one event: its id, position and leaf hash. Replayed
// marks an id that was already in the log with the same content.
type Receipt struct {
	ID       string
	Seq      int64
	LeafHash tlog.Hash
	Replayed bool
}

// ConflictError rejects a request whose event Index carries an id already
// logged (or staged) with other content. Its kind is KindConflict.
type ConflictError struct {
	Index int
	ID    string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("event %d: id %s is already logged with different content", e.Index, e.ID)
}

// Unwrap makes the error classify as stele.KindConflict.
func (e *ConflictError) Unwrap() error { return stele.ErrConflict }

// Sequencer is the write path. Its methods are safe for concurrent use.
type Sequencer struct {
	store  stele.LogWriter
	macKey []byte
	cfg    Config
	lanes  []*lane
	clock  monotonicClock

	queued atomic.Int64 // events accepted and not yet answered

	mu     sync.Mutex // guards closed
	closed bool
	wg     sync.WaitGroup
}

// New returns a sequencer appending to store, authenticating rows with
// macKey. It starts its lanes; Close stops them.
func New(store stele.LogWriter, macKey []byte, cfg Config) *Sequencer {
	if cfg.Lanes <= 0 {
		cfg.Lanes = 1
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 5000
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 20000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	s := &Sequencer{store: store, macKey: macKey, cfg: cfg, clock: monotonicClock{now: cfg.Now}}
	for range cfg.Lanes {
		l := &lane{
			s:      s,
			queue:  make(chan *request, cfg.MaxQueued),
			logs:   map[string]*logState{},
			broken: map[string]error{},
		}
		s.lanes = append(s.lanes, l)
		s.wg.Add(1)
		go l.run()
	}
	return s
}

// Prime installs the verified state of ws's log (see Recover) in its lane.
// It must be called before the first Append for ws, or not at all (the lane
// then loads the frontier from the store on first use).
func (s *Sequencer) Prime(ws string, head stele.Head, frontier *tree.Frontier) {
	l := s.lane(ws)
	done := make(chan struct{})
	l.queue <- &request{prime: &logState{head: head, frontier: frontier}, ws: ws, primed: done}
	<-done
}

// Break stops appends to ws after an integrity failure found outside the
// write path (the start-up self-check).
func (s *Sequencer) Break(ws string, err error) {
	l := s.lane(ws)
	done := make(chan struct{})
	l.queue <- &request{ws: ws, breakErr: err, primed: done}
	<-done
}

// Append seals drafts as events of workspace ws submitted by emitter and
// returns their receipts once they are durably in the log, in order. A
// request is all or nothing: if an id is already logged with other content,
// nothing is appended and the error (KindConflict) names its index.
//
// An error of KindPushback or KindUnavailable means nothing was acknowledged;
// if ctx ends first the outcome is unknown (the batch may still commit), and
// a retry with the same ids is answered from the log.
func (s *Sequencer) Append(ctx context.Context, ws string, drafts []stele.Draft, emitter stele.Emitter) ([]Receipt, error) {
	if len(drafts) == 0 {
		return nil, nil
	}
	req := &request{ws: ws, done: make(chan result, 1), entries: make([]pending, len(drafts))}
	now := s.clock.Now()
	for i := range drafts {
		if err := req.entries[i].seal(&drafts[i], now, emitter); err != nil {
			return nil, fmt.Errorf("couldn't seal event %d: %w", i, err)
		}
	}
	n := int64(len(drafts))
	if s.queued.Add(n) > int64(s.cfg.MaxQueued) {
		s.queued.Add(-n)
		s.cfg.Metrics.pushback.Inc()
		return nil, &stele.Error{Kind: stele.KindPushback, Message: "the write queue is full; retry shortly", RetryAfter: 1}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.queued.Add(-n)
		return nil, &stele.Error{Kind: stele.KindUnavailable, Message: "the server is shutting down", RetryAfter: 1}
	}
	s.lane(ws).queue <- req // never blocks: the queue holds MaxQueued requests
	s.mu.Unlock()
	s.cfg.Metrics.queued.Set(float64(s.queued.Load()))
	select {
	case r := <-req.done:
		return r.receipts, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops accepting appends, commits everything already accepted, and
// returns when every lane has finished.
func (s *Sequencer) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		for _, l := range s.lanes {
			close(l.queue)
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Sequencer) lane(ws string) *lane {
	h := fnv.New32a()
	h.Write([]byte(ws))
	return s.lanes[int(h.Sum32()%uint32(len(s.lanes)))]
}

// MAC returns the row authentication code of the leaf at seq in ws.
func MAC(key []byte, ws string, seq int64, leaf tlog.Hash) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ws))
	m.Write([]byte{0})
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(seq)))
	m.Write(leaf[:])
	return m.Sum(nil)
}

// pending is one sealed event waiting in a request.
type pending struct {
	draft         *stele.Draft
	body          stele.EventBody
	canonical     []byte
	leaf          tlog.Hash
	requestHash   []byte // set when the emitter supplied the id
	timeDefaulted bool
}

func (p *pending) seal(d *stele.Draft, now time.Time, emitter stele.Emitter) error {
	p.draft = d
	p.timeDefaulted = d.Body.Time.IsZero()
	if d.ClientID() {
		h, err := stele.RequestHash(d)
		if err != nil {
			return err
		}
		p.requestHash = h[:]
	}
	var err error
	p.body, p.canonical, p.leaf, err = stele.Seal(d, now, emitter)
	return err
}

// restamp moves the event's received_at to t (later than the stamp it got),
// keeping received_at non-decreasing along the log.
func (p *pending) restamp(t time.Time) error {
	p.body.ReceivedAt = t
	if p.timeDefaulted {
		p.body.Time = t
	}
	var err error
	p.canonical, err = stele.Canonical(&p.body)
	p.leaf = stele.LeafHash(p.canonical)
	return err
}

type request struct {
	ws      string
	entries []pending
	done    chan result

	// Control messages for the lane, instead of entries.
	prime    *logState
	breakErr error
	primed   chan struct{}
}

type result struct {
	receipts []Receipt
	err      error
}

// monotonicClock never returns a time at or before one it returned.
type monotonicClock struct {
	now  func() time.Time
	last atomic.Int64
}

func (c *monotonicClock) Now() time.Time {
	for {
		last := c.last.Load()
		t := c.now().UnixNano()
		if t <= last {
			t = last + 1
		}
		if c.last.CompareAndSwap(last, t) {
			return time.Unix(0, t).UTC()
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
