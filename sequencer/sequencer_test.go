package sequencer_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/sequencer"
	"github.com/stele-log/stele/store/sqlite"
	"github.com/stele-log/stele/store/storetest"
	"golang.org/x/mod/sumdb/tlog"
)

func openStore(t *testing.T, workspaces ...string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "stele.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, ws := range workspaces {
		if err := s.CreateWorkspace(context.Background(), stele.Workspace{ID: ws, Name: ws, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func drafts(g *eventgen.Gen, n int, withID bool) []stele.Draft {
	out := make([]stele.Draft, n)
	for i := range out {
		out[i].Body = g.Event(time.Now().Add(-time.Minute), withID)
	}
	return out
}

var macKey = []byte("test mac key")

// TestConcurrentAppends: many goroutines over three workspaces; every log
// ends up gap-free with the leaves its receipts named, and the stored tree
// equals tlog's tree over those leaves.
func TestConcurrentAppends(t *testing.T) {
	store := openStore(t, "a", "b", "c")
	seq := sequencer.New(store, macKey, sequencer.Config{})
	defer seq.Close()
	var mu sync.Mutex
	got := map[string]map[int64]tlog.Hash{"a": {}, "b": {}, "c": {}}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := eventgen.New(uint64(w))
			for i := range 30 {
				ws := []string{"a", "b", "c"}[(w+i)%3]
				rs, err := seq.Append(context.Background(), ws, drafts(g, 1+i%7, i%2 == 0), stele.Emitter{Workspace: ws})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, r := range rs {
					if _, dup := got[ws][r.Seq]; dup {
						t.Errorf("%s: seq %d acknowledged twice", ws, r.Seq)
					}
					got[ws][r.Seq] = r.LeafHash
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	ctx := context.Background()
	for ws, leaves := range got {
		head, err := store.Head(ctx, ws)
		if err != nil {
			t.Fatal(err)
		}
		if head.Size != int64(len(leaves)) {
			t.Errorf("%s: head %d, %d receipts", ws, head.Size, len(leaves))
		}
		var hashes []tlog.Hash
		r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for i, x := range idx {
				out[i] = hashes[x]
			}
			return out, nil
		})
		var prev time.Time
		err = store.ScanLeaves(ctx, ws, 0, func(l stele.Leaf) error {
			if leaves[l.Seq] != l.LeafHash || stele.LeafHash(l.Canonical) != l.LeafHash {
				return fmt.Errorf("seq %d: stored leaf differs from its receipt or its body", l.Seq)
			}
			var b stele.EventBody
			if err := jsonUnmarshal(l.Canonical, &b); err != nil {
				return err
			}
			if b.ReceivedAt.Before(prev) {
				return fmt.Errorf("seq %d: received_at went back (%v after %v)", l.Seq, b.ReceivedAt, prev)
			}
			prev = b.ReceivedAt
			hs, err := tlog.StoredHashes(l.Seq, l.Canonical, r)
			hashes = append(hashes, hs...)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", ws, err)
		}
		root, err := tlog.TreeHash(head.Size, r)
		if err != nil || root != head.Root {
			t.Errorf("%s: tlog root %v, stored head root %v", ws, root, head.Root)
		}
	}
}

func TestIdempotency(t *testing.T) {
	store := openStore(t, "a", "b")
	seq := sequencer.New(store, macKey, sequencer.Config{})
	defer seq.Close()
	ctx := context.Background()
	g := eventgen.New(1)
	d := drafts(g, 3, true)
	first, err := seq.Append(ctx, "a", d, stele.Emitter{Workspace: "a", KeyID: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	// The same request again, from another key: the original receipts.
	again, err := seq.Append(ctx, "a", d, stele.Emitter{Workspace: "a", KeyID: "k2"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if again[i].Seq != first[i].Seq || again[i].LeafHash != first[i].LeafHash || !again[i].Replayed || first[i].Replayed {
			t.Errorf("event %d: first %+v, again %+v", i, first[i], again[i])
		}
	}
	// Same id, other content: the whole request is refused, nothing appended.
	other := drafts(g, 2, true)
	other[1].Body.ID = d[1].Body.ID
	_, err = seq.Append(ctx, "a", other, stele.Emitter{Workspace: "a"})
	var conflict *sequencer.ConflictError
	if !errors.As(err, &conflict) || conflict.Index != 1 || stele.KindOf(err) != stele.KindConflict {
		t.Fatalf("conflicting id: err = %v", err)
	}
	if head, _ := store.Head(ctx, "a"); head.Size != 3 {
		t.Errorf("head %d after a refused request, want 3", head.Size)
	}
	// Duplicates inside one request: logged once.
	dup := drafts(g, 1, true)
	dup = append(dup, dup[0])
	rs, err := seq.Append(ctx, "a", dup, stele.Emitter{Workspace: "a"})
	if err != nil || rs[0].Seq != rs[1].Seq || rs[0].Seq != 3 {
		t.Errorf("duplicate within a request: %+v, %v", rs, err)
	}
	// Ids are per workspace (AUT-08): the same id in b is a new event.
	rb, err := seq.Append(ctx, "b", d[:1], stele.Emitter{Workspace: "b"})
	if err != nil || rb[0].Seq != 0 || rb[0].Replayed {
		t.Errorf("same id in another workspace: %+v, %v", rb, err)
	}
}

// blockingStore holds every Update until released, to fill the queue.
type blockingStore struct {
	stele.LogWriter
	release chan struct{}
	fail    error
	mu      sync.Mutex
}

func (b *blockingStore) Update(ctx context.Context, fn func(stele.AppendTx) error) error {
	<-b.release
	b.mu.Lock()
	fail := b.fail
	b.mu.Unlock()
	if fail != nil {
		return fail
	}
	return b.LogWriter.Update(ctx, fn)
}

func TestPushbackWhenQueueFull(t *testing.T) {
	bs := &blockingStore{LogWriter: openStore(t, "a"), release: make(chan struct{})}
	seq := sequencer.New(bs, macKey, sequencer.Config{MaxQueued: 10})
	g := eventgen.New(2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		d := drafts(eventgen.New(uint64(10+i)), 4, false)
		go func() {
			defer wg.Done()
			if _, err := seq.Append(context.Background(), "a", d, stele.Emitter{Workspace: "a"}); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // 8 events queued behind the blocked commit
	_, err := seq.Append(context.Background(), "a", drafts(g, 5, false), stele.Emitter{Workspace: "a"})
	var e *stele.Error
	if !errors.As(err, &e) || e.Kind != stele.KindPushback || e.RetryAfter == 0 {
		t.Errorf("13 queued events with room for 10: err = %v, want pushback with Retry-After", err)
	}
	close(bs.release)
	wg.Wait()
	seq.Close()
}

// TestFailClosed: a failed commit acknowledges nothing, and the write path
// recovers (re-reading the head) once the store works again.
func TestFailClosed(t *testing.T) {
	inner := openStore(t, "a")
	bs := &blockingStore{LogWriter: inner, release: make(chan struct{}), fail: errors.New("disk on fire")}
	close(bs.release)
	seq := sequencer.New(bs, macKey, sequencer.Config{})
	defer seq.Close()
	g := eventgen.New(3)
	rs, err := seq.Append(context.Background(), "a", drafts(g, 3, false), stele.Emitter{Workspace: "a"})
	if rs != nil || stele.KindOf(err) != stele.KindUnavailable {
		t.Fatalf("failed commit: receipts %v, err %v; want none and KindUnavailable", rs, err)
	}
	if head, _ := inner.Head(context.Background(), "a"); head.Size != 0 {
		t.Fatalf("a failed commit left %d events", head.Size)
	}
	bs.mu.Lock()
	bs.fail = nil
	bs.mu.Unlock()
	rs, err = seq.Append(context.Background(), "a", drafts(g, 2, false), stele.Emitter{Workspace: "a"})
	if err != nil || rs[0].Seq != 0 || rs[1].Seq != 1 {
		t.Fatalf("after recovery: %+v, %v", rs, err)
	}
}

// TestForeignRowStopsTheLog: a row appended behind the write path's back,
// with valid hashes but no valid MAC (an attacker with SQL access, T1), stops
// appends to that workspace instead of being built upon (TAM-05b).
func TestForeignRowStopsTheLog(t *testing.T) {
	store := openStore(t, "a", "b")
	key := testKey(t)
	seq := sequencer.New(store, key.MACKey(), sequencer.Config{})
	defer seq.Close()
	ctx := context.Background()
	g := eventgen.New(4)
	if _, err := seq.Append(ctx, "a", drafts(g, 5, false), stele.Emitter{Workspace: "a"}); err != nil {
		t.Fatal(err)
	}
	// The attacker appends position 5 with correct tree hashes and a MAC
	// under a key they guessed.
	forger := storetest.NewLog("a")
	forger.MACKey = []byte("guessed key")
	var leaves []stele.Leaf
	store.ScanLeaves(ctx, "a", 0, func(l stele.Leaf) error { leaves = append(leaves, l); return nil })
	for _, l := range leaves {
		forger.Frontier.Append(l.LeafHash)
	}
	forger.Append(t, store, []stele.EventBody{g.Event(time.Now(), true)})

	_, err := seq.Append(ctx, "a", drafts(g, 1, false), stele.Emitter{Workspace: "a"})
	if stele.KindOf(err) != stele.KindUnavailable {
		t.Fatalf("append after a forged row: err = %v, want KindUnavailable", err)
	}
	if _, err := seq.Append(ctx, "a", drafts(g, 1, false), stele.Emitter{Workspace: "a"}); stele.KindOf(err) != stele.KindUnavailable {
		t.Errorf("the workspace accepted appends again: %v", err)
	}
	// Other workspaces carry on.
	if _, err := seq.Append(ctx, "b", drafts(g, 1, false), stele.Emitter{Workspace: "b"}); err != nil {
		t.Errorf("workspace b: %v", err)
	}
	// The start-up self-check names the forged row.
	_, _, err = sequencer.Recover(ctx, store, key, "a")
	var integrity *stele.ErrIntegrity
	if !errors.As(err, &integrity) || integrity.Seq != 5 {
		t.Errorf("Recover: %v, want an integrity failure at seq 5", err)
	}
}

func testKey(t *testing.T) *checkpoint.Key {
	skey, err := checkpoint.GenerateKey("stele.test")
	if err != nil {
		t.Fatal(err)
	}
	k, err := checkpoint.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCheckpointer: a checkpoint within about a second of appends, verified
// with x/mod's note, consistent with the previous one, times increasing.
func TestCheckpointer(t *testing.T) {
	store := openStore(t, "a")
	key := testKey(t)
	cps := sequencer.NewCheckpointer(store, key, nil, nil, nil)
	seq := sequencer.New(store, key.MACKey(), sequencer.Config{OnCommit: cps.Committed})
	defer seq.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go cps.Run(ctx)
	g := eventgen.New(5)
	var sizes []int64
	var roots []tlog.Hash
	for range 3 {
		rs, err := seq.Append(ctx, "a", drafts(g, 10, false), stele.Emitter{Workspace: "a"})
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		cp, err := cps.Wait(wctx, "a", rs[len(rs)-1].Seq+1)
		wcancel()
		if err != nil {
			t.Fatalf("no checkpoint within 5s: %v", err)
		}
		opened, err := checkpoint.Open(cp.Note, key.VerifierKey(key.Origin("a")))
		if err != nil || opened.Size != cp.Size || opened.Root != cp.Root || !opened.Time.Equal(cp.Time) {
			t.Fatalf("checkpoint size %d root %v time %v does not open as %+v: %v", cp.Size, cp.Root, cp.Time, opened, err)
		}
		sizes = append(sizes, cp.Size)
		roots = append(roots, cp.Root)
	}
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return store.TreeHashes(ctx, "a", idx) })
	for i := 1; i < len(sizes); i++ {
		proof, err := tlog.ProveTree(sizes[i], sizes[i-1], reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(proof, sizes[i], roots[i], sizes[i-1], roots[i-1]); err != nil {
			t.Errorf("checkpoint %d is not consistent with %d: %v", sizes[i], sizes[i-1], err)
		}
	}
	var times []time.Time
	store.Checkpoints(ctx, "a", func(cp stele.Checkpoint) error { times = append(times, cp.Time); return nil })
	for i := 1; i < len(times); i++ {
		if !times[i].After(times[i-1]) {
			t.Errorf("checkpoint times do not increase: %v", times)
		}
	}
}

// TestCheckpointerRefusesClockGoingBack: with the clock behind the last
// checkpoint, nothing is signed (TAM-20), and signing resumes when it
// catches up.
func TestCheckpointerRefusesClockGoingBack(t *testing.T) {
	store := openStore(t, "a")
	key := testKey(t)
	var mu sync.Mutex
	now := time.Now().Add(time.Hour)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cps := sequencer.NewCheckpointer(store, key, clock, nil, nil)
	seq := sequencer.New(store, key.MACKey(), sequencer.Config{OnCommit: cps.Committed, Now: clock})
	defer seq.Close()
	ctx := context.Background()
	g := eventgen.New(6)
	if _, err := seq.Append(ctx, "a", drafts(g, 2, false), stele.Emitter{Workspace: "a"}); err != nil {
		t.Fatal(err)
	}
	cps.SignDue(ctx)
	first, err := store.LatestCheckpoint(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(-30 * time.Minute) // NTP step back
	mu.Unlock()
	if _, err := seq.Append(ctx, "a", drafts(g, 2, false), stele.Emitter{Workspace: "a"}); err != nil {
		t.Fatal(err)
	}
	if pending := cps.SignDue(ctx); pending != 1 {
		t.Errorf("SignDue with the clock behind: %d pending, want 1", pending)
	}
	if cp, _ := store.LatestCheckpoint(ctx, "a"); cp.Size != first.Size {
		t.Errorf("a checkpoint was signed with the clock behind the last one")
	}
	mu.Lock()
	now = now.Add(31 * time.Minute)
	mu.Unlock()
	if pending := cps.SignDue(ctx); pending != 0 {
		t.Errorf("after the clock caught up: %d pending", pending)
	}
	if cp, _ := store.LatestCheckpoint(ctx, "a"); cp.Size != 4 || !cp.Time.After(first.Time) {
		t.Errorf("latest checkpoint %+v", cp)
	}
}
