package sequencer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// lane commits the requests of the workspaces that hash to it. Only its
// goroutine (run) reads or writes logs and broken.
type lane struct {
	s      *Sequencer
	queue  chan *request
	logs   map[string]*logState // verified state of each workspace's log
	broken map[string]error     // workspaces that stopped after an integrity failure
}

// logState is what a lane knows of a workspace's log at its last commit.
type logState struct {
	head     stele.Head
	frontier *tree.Frontier
}

func (l *lane) run() {
	defer l.s.wg.Done()
	for first := range l.queue {
		batch := []*request{first}
		events := len(first.entries)
	gather:
		for events < l.s.cfg.MaxBatch {
			select {
			case r, ok := <-l.queue:
				if !ok {
					break gather
				}
				batch = append(batch, r)
				events += len(r.entries)
			default:
				break gather
			}
		}
		l.commit(batch)
	}
}

// wsBatch is the part of a batch that goes to one workspace.
type wsBatch struct {
	ws       string
	requests []*request
	replies  map[*request]result // decided before the commit (conflicts)
	state    *logState           // the state after this batch, installed on commit
	entries  []stele.Entry
	receipts map[*request][]Receipt
}

func (l *lane) commit(batch []*request) {
	start := time.Now()
	byWS := map[string]*wsBatch{}
	for _, r := range batch {
		switch {
		case r.prime != nil:
			l.logs[r.ws] = r.prime
			delete(l.broken, r.ws)
			close(r.primed)
			continue
		case r.primed != nil:
			l.broken[r.ws] = r.breakErr
			delete(l.logs, r.ws)
			close(r.primed)
			continue
		}
		if err := l.broken[r.ws]; err != nil {
			l.reply(r, result{err: brokenError()})
			continue
		}
		w := byWS[r.ws]
		if w == nil {
			w = &wsBatch{ws: r.ws, replies: map[*request]result{}, receipts: map[*request][]Receipt{}}
			byWS[r.ws] = w
		}
		w.requests = append(w.requests, r)
	}
	if len(byWS) == 0 {
		return
	}
	order := sortedKeys(byWS) // lock heads in one global order: no deadlocks between processes
	ctx := context.Background()
	err := l.s.store.Update(ctx, func(tx stele.AppendTx) error {
		for _, ws := range order {
			w := byWS[ws]
			w.entries, w.state = nil, nil
			clear(w.replies)
			clear(w.receipts)
			if err := l.stage(ctx, tx, w); err != nil {
				return err
			}
		}
		return nil
	})
	m := l.s.cfg.Metrics
	m.commitSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		var integrity *stele.ErrIntegrity
		if errors.As(err, &integrity) {
			l.alarm(integrity)
		}
		l.s.cfg.Logger.Error("commit failed; nothing in this batch was acknowledged", "err", err, "requests", len(batch))
		m.commitFailures.Inc()
		for _, w := range byWS {
			delete(l.logs, w.ws) // reload and re-verify the head before the next append
			for _, r := range w.requests {
				if rep, ok := w.replies[r]; ok && rep.err != nil {
					l.reply(r, rep) // rejected before the commit: the rejection stands
					continue
				}
				l.reply(r, result{err: unavailable(err)})
			}
		}
		return
	}
	appended := 0
	for _, ws := range order {
		w := byWS[ws]
		if w.state != nil {
			l.logs[ws] = w.state
			appended += len(w.entries)
			if len(w.entries) > 0 && l.s.cfg.OnCommit != nil {
				l.s.cfg.OnCommit(ws, w.state.head)
			}
		}
		for _, r := range w.requests {
			if rep, ok := w.replies[r]; ok {
				l.reply(r, rep)
			} else {
				l.reply(r, result{receipts: w.receipts[r]})
			}
		}
	}
	m.appended.Add(float64(appended))
	m.batchEvents.Observe(float64(appended))
}

func (l *lane) reply(r *request, res result) {
	l.s.queued.Add(-int64(len(r.entries)))
	l.s.cfg.Metrics.queued.Set(float64(l.s.queued.Load()))
	r.done <- res
}

// stage adds w's events to the transaction: it locks and verifies the head,
// settles idempotent replays and conflicts, then assigns positions and tree
// hashes to the new events on a copy of the frontier.
func (l *lane) stage(ctx context.Context, tx stele.AppendTx, w *wsBatch) error {
	head, err := tx.LockHead(ctx, w.ws)
	if errors.Is(err, stele.ErrNotFound) {
		for _, r := range w.requests {
			w.replies[r] = result{err: stele.Errorf(stele.KindNotFound, "workspace not found")}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("couldn't lock the head of %s: %w", w.ws, err)
	}
	st, err := l.verifiedState(ctx, tx, w.ws, head)
	if err != nil {
		return err
	}
	priors, err := l.priors(ctx, tx, w)
	if err != nil {
		return err
	}
	f := st.frontier.Clone()
	next := stele.Head{Size: head.Size, LastReceived: head.LastReceived}
	staged := map[string]*stagedID{} // ids taken within this batch
	for _, r := range w.requests {
		if err := settle(r, priors, staged); err != nil {
			w.replies[r] = result{err: err}
			continue
		}
		receipts := make([]Receipt, len(r.entries))
		for i := range r.entries {
			p := &r.entries[i]
			id := p.body.ID
			if prior, ok := priors[id]; ok {
				receipts[i] = Receipt{ID: id, Seq: prior.Seq, LeafHash: prior.LeafHash, Replayed: true}
				continue
			}
			if s, ok := staged[id]; ok {
				receipts[i] = Receipt{ID: id, Seq: s.seq, LeafHash: s.leaf, Replayed: true}
				continue
			}
			if p.body.ReceivedAt.Before(next.LastReceived) {
				if err := p.restamp(next.LastReceived); err != nil {
					return err
				}
			}
			hashes, err := f.Append(p.leaf)
			if err != nil {
				return fmt.Errorf("couldn't extend the tree of %s: %w", w.ws, err)
			}
			seq := next.Size
			w.entries = append(w.entries, stele.Entry{
				Seq:         seq,
				Body:        &p.body,
				Canonical:   p.canonical,
				TreeHashes:  hashes,
				RequestHash: p.requestHash,
				MAC:         MAC(l.s.macKey, w.ws, seq, p.leaf),
			})
			if p.requestHash != nil {
				staged[id] = &stagedID{seq: seq, leaf: p.leaf, requestHash: p.requestHash}
			}
			receipts[i] = Receipt{ID: id, Seq: seq, LeafHash: p.leaf}
			next.Size++
			next.LastReceived = p.body.ReceivedAt
		}
		w.receipts[r] = receipts
	}
	next.Root = f.Root()
	if len(w.entries) > 0 {
		if err := tx.Append(ctx, w.ws, w.entries, next); err != nil {
			return err
		}
	}
	w.state = &logState{head: next, frontier: f}
	return nil
}

// stagedID is an id already placed in the current batch.
type stagedID struct {
	seq         int64
	leaf        tlog.Hash
	requestHash []byte
}

// settle decides whether request r can be appended: each emitter-supplied id
// must be new, or already logged (or staged) with the same content.
func settle(r *request, priors map[string]stele.Prior, staged map[string]*stagedID) error {
	mine := map[string][]byte{}
	for i := range r.entries {
		p := &r.entries[i]
		if p.requestHash == nil {
			continue
		}
		id := p.body.ID
		var have []byte
		if prior, ok := priors[id]; ok {
			have = prior.RequestHash
			if have == nil {
				have = []byte{} // logged with a server-assigned id: never equal
			}
		} else if s, ok := staged[id]; ok {
			have = s.requestHash
		} else if h, ok := mine[id]; ok {
			have = h
		}
		if have != nil && !bytes.Equal(have, p.requestHash) {
			return &ConflictError{Index: i, ID: id}
		}
		mine[id] = p.requestHash
	}
	return nil
}

func (l *lane) priors(ctx context.Context, tx stele.AppendTx, w *wsBatch) (map[string]stele.Prior, error) {
	var ids []string
	for _, r := range w.requests {
		for i := range r.entries {
			if r.entries[i].requestHash != nil {
				ids = append(ids, r.entries[i].body.ID)
			}
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	priors, err := tx.Priors(ctx, w.ws, ids)
	if err != nil {
		return nil, fmt.Errorf("couldn't look up event ids: %w", err)
	}
	return priors, nil
}

// verifiedState returns the lane's state of ws at head, extending or loading
// it when the head moved without this lane (see the package comment).
func (l *lane) verifiedState(ctx context.Context, tx stele.AppendTx, ws string, head stele.Head) (*logState, error) {
	st := l.logs[ws]
	if st == nil {
		hashes, err := tx.TreeHashes(ctx, ws, tree.FrontierIndexes(head.Size))
		if err != nil {
			return nil, fmt.Errorf("couldn't load the frontier of %s: %w", ws, err)
		}
		f, err := tree.NewFrontier(head.Size, hashes)
		if err != nil {
			return nil, err
		}
		if f.Root() != head.Root {
			return nil, &stele.ErrIntegrity{Workspace: ws, Seq: head.Size - 1, Check: "head", Detail: "the stored tree does not lead to the stored head root"}
		}
		return &logState{head: head, frontier: f}, nil
	}
	switch {
	case head.Size == st.head.Size && head.Root == st.head.Root:
		return st, nil
	case head.Size <= st.head.Size:
		return nil, &stele.ErrIntegrity{Workspace: ws, Seq: head.Size, Check: "head",
			Detail: fmt.Sprintf("the log went from %d to %d events with root %v under the running service", st.head.Size, head.Size, head.Root)}
	}
	leaves, err := tx.Leaves(ctx, ws, st.head.Size, head.Size)
	if err != nil {
		return nil, fmt.Errorf("couldn't read new leaves of %s: %w", ws, err)
	}
	f, err := ExtendVerified(l.s.macKey, ws, st.frontier, st.head.Size, leaves)
	if err != nil {
		return nil, err
	}
	if f.Root() != head.Root {
		return nil, &stele.ErrIntegrity{Workspace: ws, Seq: head.Size - 1, Check: "head", Detail: "new leaves do not lead to the stored head root"}
	}
	return &logState{head: head, frontier: f}, nil
}

// ExtendVerified extends a copy of f, the frontier of a tree of size leaves,
// by leaves, which must be positions size, size+1, … each carrying a valid MAC
// and the tree hashes the extension produces. It returns the extended
// frontier or an *stele.ErrIntegrity naming the first bad position.
func ExtendVerified(macKey []byte, ws string, f *tree.Frontier, size int64, leaves []stele.Leaf) (*tree.Frontier, error) {
	f = f.Clone()
	for i, lf := range leaves {
		seq := size + int64(i)
		bad := func(check, detail string) error {
			return &stele.ErrIntegrity{Workspace: ws, Seq: seq, Check: check, Detail: detail}
		}
		if lf.Seq != seq {
			return nil, bad("sequence", fmt.Sprintf("position %d is missing", seq))
		}
		if !hmacEqual(lf.MAC, MAC(macKey, ws, seq, lf.LeafHash)) {
			return nil, bad("row authentication", "the row was not written by this service (MAC mismatch)")
		}
		if lf.Canonical == nil {
			return nil, bad("sequence", fmt.Sprintf("the event at position %d is missing", seq))
		}
		if stele.LeafHash(lf.Canonical) != lf.LeafHash {
			return nil, bad("leaf", "the event does not hash to its leaf hash")
		}
		hashes, err := f.Append(lf.LeafHash)
		if err != nil {
			return nil, err
		}
		if len(lf.TreeHashes) != len(hashes) || !equalHashes(lf.TreeHashes, hashes) {
			return nil, bad("tree", "stored tree hashes differ from the ones the leaf produces")
		}
	}
	return f, nil
}

func equalHashes(a, b []tlog.Hash) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (l *lane) alarm(err *stele.ErrIntegrity) {
	l.broken[err.Workspace] = err
	delete(l.logs, err.Workspace)
	l.s.cfg.Metrics.integrityAlarms.WithLabelValues(err.Workspace).Inc()
	l.s.cfg.Logger.Error("INTEGRITY ALARM: appends to this workspace are stopped until an operator has checked it (stele check)",
		"workspace", err.Workspace, "seq", err.Seq, "check", err.Check, "detail", err.Detail)
}

func brokenError() error {
	return &stele.Error{Kind: stele.KindUnavailable, Message: "this workspace's log failed an integrity check and accepts no appends until an operator has checked it"}
}

func unavailable(cause error) error {
	return &stele.Error{Kind: stele.KindUnavailable, Message: "the events could not be made durable; nothing was acknowledged", RetryAfter: 1, Err: cause}
}
