package integrity

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/checkpoint"
	"golang.org/x/mod/sumdb/tlog"
)

// wsCheck is the check of one workspace's log. Its fields belong to the
// goroutine of run, except while scan runs: then leaf and what it calls use
// them on scan's checking goroutine, and run's goroutine only reads rows.
type wsCheck struct {
	store   Store
	opts    *Options
	ws      string
	rep     *Report
	start   time.Time
	trusted []*checkpoint.Opened

	res Workspace

	signed []claim // verified stored checkpoints, by size
	saved  []claim // trusted external checkpoints, by size
	si, ti int     // next claim to meet in signed and saved

	next     int64     // the next position expected
	f        *frontier // the tree rebuilt from recomputed leaves
	broken   bool      // a gap: the tree cannot be rebuilt past it
	bodies   int64     // positions whose event is stored
	lastRecv time.Time // received_at of the latest event
	matched  int64     // size of the latest checkpoint whose root matched

	treeBad, rootBad int // C2 mismatches after the first, which only echo it

	mac *rowMAC // nil without the MAC key
}

// claim is a signed statement about the tree at one size.
type claim struct {
	size int64
	root tlog.Hash
	time time.Time
}

var errChunk = errors.New("chunk done")

func (c *wsCheck) find(seq int64, check Check, format string, args ...any) {
	if len(c.res.Findings) >= c.opts.MaxFindings {
		c.res.Dropped++
		return
	}
	c.res.Findings = append(c.res.Findings, Finding{Workspace: c.ws, Seq: seq, Check: check, Detail: fmt.Sprintf(format, args...)})
}

func (c *wsCheck) run(ctx context.Context) (Workspace, error) {
	c.res.ID = c.ws
	for _, t := range c.trusted {
		c.saved = append(c.saved, claim{size: t.Size, root: t.Root, time: t.Time})
	}
	slices.SortFunc(c.saved, func(a, b claim) int { return cmp.Compare(a.size, b.size) })
	before, err := c.store.Head(ctx, c.ws)
	if errors.Is(err, stele.ErrNotFound) {
		if len(c.saved) > 0 {
			c.find(0, CheckConsistency, "the database has no log for this workspace, but a checkpoint saved outside it covers %d events: the log was removed", c.saved[len(c.saved)-1].size)
		} else {
			c.find(-1, CheckSequence, "the workspace has no log head")
		}
		return c.res, nil
	}
	if err != nil {
		return Workspace{}, err
	}
	if err := c.loadCheckpoints(ctx); err != nil {
		return Workspace{}, err
	}
	c.f = &frontier{}
	c.mac = newMAC(c.opts.MACKey, c.ws)
	c.meetClaims() // checkpoints of the empty tree
	if err := c.scan(ctx, before.Size); err != nil {
		return Workspace{}, fmt.Errorf("couldn't read the stored leaves: %w", err)
	}
	if err := c.finish(ctx, before); err != nil {
		return Workspace{}, err
	}
	if ic, ok := c.store.(IndexChecker); ok && c.opts.Canonical {
		err := ic.CheckIndexes(ctx, c.ws, func(seq int64, detail string) error {
			c.find(seq, CheckIndex, "%s", detail)
			return nil
		})
		if err != nil {
			return Workspace{}, fmt.Errorf("couldn't compare the query columns: %w", err)
		}
	}
	c.progress(before.Size)
	return c.res, nil
}

// scan reads the stored positions on this goroutine, one read transaction
// per Options.Chunk positions, and hands them in batches to a second
// goroutine that checks them (leaf), so that reading and checking overlap.
func (c *wsCheck) scan(ctx context.Context, total int64) error {
	const batchSize = 512
	batches := make(chan []stele.Leaf, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var since int64
		for b := range batches {
			for _, l := range b {
				c.leaf(l)
			}
			if since += int64(len(b)); since >= c.opts.ProgressEvery {
				c.progress(total)
				since = 0
			}
		}
	}()
	batch := make([]stele.Leaf, 0, batchSize)
	var from int64
	var err error
	for {
		var n int64
		err = c.store.ScanLeaves(ctx, c.ws, from, func(l stele.Leaf) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if batch = append(batch, l); len(batch) == batchSize {
				batches <- batch
				batch = make([]stele.Leaf, 0, batchSize)
			}
			from = l.Seq + 1
			if n++; n >= c.opts.Chunk {
				return errChunk
			}
			return nil
		})
		if !errors.Is(err, errChunk) {
			break
		}
	}
	if len(batch) > 0 {
		batches <- batch
	}
	close(batches)
	<-done
	return err
}

func (c *wsCheck) progress(total int64) {
	if c.opts.Progress == nil {
		return
	}
	c.opts.Progress(Progress{Workspace: c.ws, Done: c.next, Total: total, Events: c.rep.Events + c.next, Elapsed: time.Since(c.start)})
}

// loadCheckpoints reads every stored checkpoint and keeps those that verify
// (C3), checking that sizes and times strictly increase (C8).
func (c *wsCheck) loadCheckpoints(ctx context.Context) error {
	origin := c.opts.origin(c.ws)
	vkey, err := c.opts.VerifierKey(c.ws)
	if err != nil {
		return err
	}
	return c.store.Checkpoints(ctx, c.ws, func(cp stele.Checkpoint) error {
		c.res.Checkpoints++
		at := max(cp.Size-1, 0)
		text, _, _ := strings.Cut(string(cp.Note), "\n\n")
		if parsed, err := checkpoint.ParseBody(text + "\n"); err == nil && parsed.Origin != origin {
			c.find(at, CheckSignature, "the checkpoint stored at size %d is for origin %q, not this log's %q", cp.Size, parsed.Origin, origin)
			return nil
		}
		opened, err := checkpoint.Open(cp.Note, vkey)
		if err != nil {
			c.find(at, CheckSignature, "the checkpoint stored at size %d does not verify with the log key: %v", cp.Size, err)
			return nil
		}
		if opened.Size != cp.Size || opened.Root != cp.Root || !opened.Time.Equal(cp.Time) {
			c.find(at, CheckSignature, "the checkpoint's stored columns (size %d, root %v, time %v) differ from its signed text (size %d, root %v, time %v)",
				cp.Size, cp.Root, cp.Time.Format(time.RFC3339), opened.Size, opened.Root, opened.Time.Format(time.RFC3339))
			return nil
		}
		if opened.Time.IsZero() {
			c.find(at, CheckTime, "the checkpoint of size %d carries no signed time", opened.Size)
			return nil
		}
		if n := len(c.signed); n > 0 {
			prev := c.signed[n-1]
			if opened.Size <= prev.size {
				c.find(at, CheckTime, "checkpoint sizes go backwards: %d after %d", opened.Size, prev.size)
				return nil
			}
			if !opened.Time.After(prev.time) {
				c.find(at, CheckTime, "the checkpoint of size %d was signed at %v, not after the one of size %d (%v)",
					opened.Size, opened.Time.Format(time.RFC3339), prev.size, prev.time.Format(time.RFC3339))
			}
		}
		c.signed = append(c.signed, claim{size: opened.Size, root: opened.Root, time: opened.Time})
		return nil
	})
}

// leaf checks one stored position and adds its recomputed leaf to the tree.
func (c *wsCheck) leaf(l stele.Leaf) {
	if l.Seq < c.next {
		c.find(l.Seq, CheckSequence, "position %d is stored twice", l.Seq)
		return
	}
	if l.Seq > c.next {
		c.find(c.next, CheckSequence, "positions %d..%d are missing", c.next, l.Seq-1)
		c.broken = true
		c.next = l.Seq
	}
	seq := l.Seq
	var leaf tlog.Hash
	if l.Canonical == nil {
		c.find(seq, CheckSequence, "the event at this position is missing (its tree hashes are stored)")
		leaf = l.LeafHash // the tree's own record: nothing else is left to hash
	} else {
		c.bodies++
		leaf = stele.LeafHash(l.Canonical)
		if leaf != l.LeafHash {
			c.find(seq, CheckLeaf, "the stored event hashes to %v, but its stored leaf hash is %v", leaf, l.LeafHash)
		}
		c.eventFields(seq, l.Canonical)
	}
	if c.mac != nil && !c.mac.valid(seq, leaf, l.MAC) {
		c.find(seq, CheckMAC, "the row was not written by this instance: its MAC does not match (workspace, seq, leaf hash)")
	}
	if !c.broken {
		hashes, err := c.f.Append(leaf)
		if err != nil || !slices.Equal(hashes, l.TreeHashes) {
			if c.treeBad++; c.treeBad == 1 {
				c.find(seq, CheckRoot, "the stored tree hashes differ from those the stored events produce")
			}
		}
	}
	c.next = seq + 1
	c.meetClaims()
}

// eventFields checks what the leaf binds besides the hash: the workspace
// and the receipt time.
func (c *wsCheck) eventFields(seq int64, body []byte) {
	recv, ws, err := eventFields(body)
	if err != nil {
		c.find(seq, CheckLeaf, "the stored event is not a well-formed event: %v", err)
		return
	}
	if ws != c.ws {
		c.find(seq, CheckLeaf, "the event was logged in workspace %q (emitter.workspace), not in this one", ws)
	}
	if recv.Before(c.lastRecv) {
		c.find(seq, CheckTime, "received_at %v is earlier than the previous event's %v", recv.Format(time.RFC3339Nano), c.lastRecv.Format(time.RFC3339Nano))
	} else {
		c.lastRecv = recv
	}
	if c.opts.Canonical {
		var b stele.EventBody
		if err := json.Unmarshal(body, &b); err != nil {
			c.find(seq, CheckCanonical, "the stored event does not decode: %v", err)
			return
		}
		canon, err := stele.Canonical(&b)
		if err != nil || !bytes.Equal(canon, body) {
			c.find(seq, CheckCanonical, "the stored bytes are not the canonical form of the event they hold")
		}
	}
}

// meetClaims holds the rebuilt tree, now of size c.next, against the
// stored (C2) and saved (C5) checkpoints of that size.
func (c *wsCheck) meetClaims() {
	for c.si < len(c.signed) && c.signed[c.si].size <= c.next {
		cp := c.signed[c.si]
		c.si++
		if cp.size < c.next || c.broken {
			continue // passed over by a gap
		}
		if c.f.Root() != cp.root {
			if c.rootBad++; c.rootBad == 1 {
				c.find(c.matched, CheckRoot, "the first %d events do not hash to the root signed at size %d; the difference lies in seq %d..%d",
					cp.size, cp.size, c.matched, cp.size-1)
			}
			continue
		}
		if c.rootBad == 0 {
			c.matched = cp.size
		}
		if cp.size > 0 && cp.time.Before(c.lastRecv.Truncate(time.Second)) {
			c.find(cp.size-1, CheckTime, "the checkpoint of size %d was signed at %v, before the event it covers was received (%v)",
				cp.size, cp.time.Format(time.RFC3339), c.lastRecv.Format(time.RFC3339Nano))
		}
		c.res.Matched = cp.size
	}
	for c.ti < len(c.saved) && c.saved[c.ti].size <= c.next {
		cp := c.saved[c.ti]
		c.ti++
		if cp.size < c.next || c.broken {
			continue
		}
		if c.f.Root() != cp.root {
			c.find(max(cp.size-1, 0), CheckConsistency, "fork: a checkpoint saved outside the database has root %v at size %d, the stored log has %v",
				cp.root, cp.size, c.f.Root())
		}
	}
}

// finish checks what only the whole scan tells: checkpoints beyond the
// stored positions, the head, and event rows without a position.
func (c *wsCheck) finish(ctx context.Context, before stele.Head) error {
	n := c.next
	c.res.Events = n
	c.rep.Events += n
	if c.si < len(c.signed) {
		cp := c.signed[len(c.signed)-1]
		c.find(n, CheckSequence, "a checkpoint is signed for %d events, but only %d positions are stored: events were removed", cp.size, n)
	}
	if c.ti < len(c.saved) {
		cp := c.saved[len(c.saved)-1]
		c.find(n, CheckConsistency, "rollback: a checkpoint saved outside the database covers %d events, the database holds %d", cp.size, n)
	}
	if n < before.Size {
		c.find(n, CheckSequence, "the log's head records %d events, but only %d positions are stored", before.Size, n)
	}
	all, err := c.store.Count(ctx, c.ws, stele.Query{})
	if err != nil {
		return err
	}
	after, err := c.store.Head(ctx, c.ws)
	if err != nil {
		return err
	}
	switch {
	case after.Size < n:
		c.find(after.Size, CheckSequence, "positions %d..%d lie beyond the log's head (size %d): rows the service did not commit", after.Size, n-1, after.Size)
	case after.Size == n && !c.broken && c.f.Root() != after.Root:
		c.find(max(n-1, 0), CheckRoot, "the log's head records root %v for %d events; the stored events hash to %v", after.Root, n, c.f.Root())
	}
	// Every event row has its tree row; on a log that did not grow while it
	// was checked, the rows counted are exactly the positions with events.
	if before.Size == n && after.Size == n && all != c.bodies {
		first, extra := c.strayEvents(ctx)
		c.find(first, CheckSequence, "%d event rows are stored, %d positions hold one: %s", all, c.bodies, extra)
	}
	if c.treeBad > 1 || c.rootBad > 1 {
		c.find(-1, CheckRoot, "(%d more positions with differing tree hashes and %d more checkpoints with differing roots follow from the first)",
			max(c.treeBad-1, 0), max(c.rootBad-1, 0))
	}
	if k := len(c.signed); k > 0 {
		c.res.Latest, c.res.LatestTime = c.signed[k-1].size, c.signed[k-1].time
	}
	if c.res.Latest <= n {
		c.res.Unsigned = n - c.res.Latest
	}
	return nil
}

// strayEvents names the event rows that have no position in the tree.
func (c *wsCheck) strayEvents(ctx context.Context) (int64, string) {
	var stray []int64
	err := c.store.Scan(ctx, c.ws, stele.Query{Order: stele.OldestFirst}, func(e stele.StoredEvent) error {
		if e.Seq >= c.next {
			stray = append(stray, e.Seq)
		}
		return nil
	})
	if err != nil || len(stray) == 0 {
		return -1, "some event rows have no tree position"
	}
	slices.Sort(stray)
	return stray[0], fmt.Sprintf("event rows at seq %v have no tree position", stray[:min(len(stray), 5)])
}
