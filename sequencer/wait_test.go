package sequencer_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/sequencer"
)

// TestCheckpointerWait: Wait answers with a checkpoint covering the size
// asked for — at once when the latest covers it, after the next signing when
// not, from the store for a checkpointer that never saw the commits (another
// process, or after a restart) — and gives up with ctx's error.
func TestCheckpointerWait(t *testing.T) {
	store := openStore(t, "a")
	key := testKey(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tick := func() { mu.Lock(); now = now.Add(time.Second); mu.Unlock() }
	cps := sequencer.NewCheckpointer(store, key, clock, nil, nil)
	seq := sequencer.New(store, key.MACKey(), sequencer.Config{OnCommit: cps.Committed, Now: clock})
	defer seq.Close()
	ctx := context.Background()
	g := eventgen.New(9)
	append3 := func() {
		t.Helper()
		if _, err := seq.Append(ctx, "a", drafts(g, 3, false), stele.Emitter{Workspace: "a"}); err != nil {
			t.Fatal(err)
		}
	}

	append3()
	got := make(chan stele.Checkpoint, 1)
	go func() {
		cp, err := cps.Wait(ctx, "a", 3)
		if err != nil {
			t.Error(err)
		}
		got <- cp
	}()
	tick()
	cps.SignDue(ctx)
	if cp := <-got; cp.Size < 3 {
		t.Fatalf("Wait(3) returned a checkpoint of size %d", cp.Size)
	}

	// Already covered: answered from the checkpointer's state.
	cp, err := cps.Wait(ctx, "a", 2)
	if err != nil || cp.Size != 3 {
		t.Fatalf("Wait(2) after a checkpoint of 3: %+v, %v", cp, err)
	}

	// Not covered and nothing signs: the caller's deadline ends the wait.
	append3()
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := cps.Wait(short, "a", 6); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v", err)
	}

	// A checkpointer of another process answers from the store.
	tick()
	cps.SignDue(ctx)
	other := sequencer.NewCheckpointer(store, key, clock, nil, nil)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go other.Run(runCtx)
	bounded, cancel2 := context.WithTimeout(ctx, time.Minute)
	defer cancel2()
	cp, err = other.Wait(bounded, "a", 6)
	if err != nil || cp.Size != 6 {
		t.Fatalf("a fresh checkpointer's Wait(6): %+v, %v", cp, err)
	}
	if _, err := store.LatestCheckpoint(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}
