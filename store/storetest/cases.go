package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/sequencer"
	"golang.org/x/mod/sumdb/tlog"
)

func mac(key []byte, ws string, seq int64, leaf tlog.Hash) []byte {
	return sequencer.MAC(key, ws, seq, leaf)
}

var t0 = time.Date(2026, 3, 9, 14, 0, 0, 0, time.UTC)

func testWorkspaces(t *testing.T, open Open) {
	h, ctx := harness(t, open)
	s := h.Store
	mustCreate(t, s, "acme")
	mustCreate(t, s, "globex")
	if err := s.CreateWorkspace(ctx, stele.Workspace{ID: "acme", Name: "again", CreatedAt: t0}); !errors.Is(err, stele.ErrConflict) {
		t.Errorf("creating a taken workspace id: err = %v, want ErrConflict", err)
	}
	w, err := s.Workspace(ctx, "acme")
	if err != nil || w.ID != "acme" || w.Name != "acme" {
		t.Errorf("Workspace(acme) = %+v, %v", w, err)
	}
	if _, err := s.Workspace(ctx, "nope"); !errors.Is(err, stele.ErrNotFound) {
		t.Errorf("Workspace(nope): err = %v, want ErrNotFound", err)
	}
	all, err := s.Workspaces(ctx)
	if err != nil || len(all) != 2 || all[0].ID != "acme" || all[1].ID != "globex" {
		t.Errorf("Workspaces = %+v, %v", all, err)
	}
	head, err := s.Head(ctx, "acme")
	empty, _ := tlog.TreeHash(0, nil)
	if err != nil || head.Size != 0 || head.Root != empty {
		t.Errorf("new log head = %+v, %v; want size 0 and the empty root", head, err)
	}
	if _, err := s.Head(ctx, "nope"); !errors.Is(err, stele.ErrNotFound) {
		t.Errorf("Head(nope): err = %v, want ErrNotFound", err)
	}
}

func testAppendReadBack(t *testing.T, open Open) {
	h, ctx := harness(t, open)
	s := h.Store
	mustCreate(t, s, "acme")
	l := NewLog("acme")
	g := eventgen.New(1)
	var all []stele.Entry
	for _, n := range []int{1, 2, 5, 64, 100} { // batches straddling subtree boundaries
		all = append(all, l.Append(t, s, g.Stream(n, t0.Add(time.Duration(len(all))*time.Minute), time.Minute, len(all)%2 == 0))...)
	}
	head, err := s.Head(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if head.Size != int64(len(all)) || head.Root != l.Frontier.Root() || !head.LastReceived.Equal(l.Last) {
		t.Fatalf("head = %+v; want size %d root %v last %v", head, len(all), l.Frontier.Root(), l.Last)
	}
	// The stored tree is exactly tlog's tree over the stored leaves.
	root, err := tlog.TreeHash(head.Size, hashReader(ctx, s, "acme"))
	if err != nil || root != head.Root {
		t.Fatalf("tlog root over stored hashes = %v, %v; want %v", root, err, head.Root)
	}
	for _, i := range []int64{0, 1, 7, 63, head.Size - 1} {
		p, err := tlog.ProveRecord(head.Size, i, hashReader(ctx, s, "acme"))
		if err != nil {
			t.Fatalf("ProveRecord(%d): %v", i, err)
		}
		if err := tlog.CheckRecord(p, head.Size, head.Root, i, all[i].LeafHash()); err != nil {
			t.Errorf("inclusion proof of %d does not verify: %v", i, err)
		}
	}
	var seqs []int64
	err = s.ScanLeaves(ctx, "acme", 0, func(lf stele.Leaf) error {
		e := all[lf.Seq]
		if !bytes.Equal(lf.Canonical, e.Canonical) || lf.LeafHash != e.LeafHash() || !slices.Equal(lf.TreeHashes, e.TreeHashes) || !bytes.Equal(lf.MAC, e.MAC) {
			t.Errorf("leaf %d reads back differently", lf.Seq)
		}
		seqs = append(seqs, lf.Seq)
		return nil
	})
	if err != nil || len(seqs) != len(all) || seqs[0] != 0 || seqs[len(seqs)-1] != int64(len(all)-1) {
		t.Fatalf("ScanLeaves: %d leaves, err %v", len(seqs), err)
	}
	for _, e := range []stele.Entry{all[0], all[len(all)/2], all[len(all)-1]} {
		got, err := s.EventByID(ctx, "acme", e.Body.ID)
		if err != nil || got.Seq != e.Seq || !bytes.Equal(got.Canonical, e.Canonical) || got.LeafHash != e.LeafHash() {
			t.Errorf("EventByID(%s) = seq %d, %v", e.Body.ID, got.Seq, err)
		}
	}
	if _, err := s.EventByID(ctx, "acme", "0190b1e2-0000-7000-8000-000000000000"); !errors.Is(err, stele.ErrNotFound) {
		t.Errorf("unknown id: err = %v", err)
	}
	if _, err := s.TreeHashes(ctx, "acme", []int64{tlog.StoredHashIndex(0, head.Size)}); !errors.Is(err, stele.ErrNotFound) {
		t.Errorf("hash beyond the log: err = %v, want ErrNotFound", err)
	}
}

func testRollback(t *testing.T, open Open) {
	h, ctx := harness(t, open)
	s := h.Store
	mustCreate(t, s, "acme")
	l := NewLog("acme")
	l.Append(t, s, eventgen.New(2).Stream(3, t0, time.Minute, true))
	before, _ := s.Head(ctx, "acme")
	entries, head, _ := l.Entries(eventgen.New(3).Stream(4, t0.Add(time.Hour), time.Minute, true))
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx stele.AppendTx) error {
		if _, err := tx.LockHead(ctx, "acme"); err != nil {
			return err
		}
		if err := tx.Append(ctx, "acme", entries, head); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	after, _ := s.Head(ctx, "acme")
	if after != before {
		t.Errorf("head moved after a failed transaction: %+v → %+v", before, after)
	}
	if _, err := s.EventByID(ctx, "acme", entries[0].Body.ID); !errors.Is(err, stele.ErrNotFound) {
		t.Errorf("an event of the failed transaction is visible: %v", err)
	}
	n := 0
	if err := s.ScanLeaves(ctx, "acme", 0, func(stele.Leaf) error { n++; return nil }); err != nil || n != 3 {
		t.Errorf("%d leaves after a failed transaction (err %v), want 3", n, err)
	}
	// The same positions are free for the next transaction.
	l.Append(t, s, eventgen.New(3).Stream(4, t0.Add(time.Hour), time.Minute, true))
}

func testTakenPosition(t *testing.T, open Open) {
	h, ctx := harness(t, open)
	s := h.Store
	mustCreate(t, s, "acme")
	l := NewLog("acme")
	first := l.Append(t, s, eventgen.New(4).Stream(2, t0, time.Minute, true))
	// Re-appending position 1 (another body) must fail as an integrity error.
	entries, _, _ := NewLog("acme").Entries(eventgen.New(5).Stream(2, t0, time.Minute, true))
	err := s.Update(ctx, func(tx stele.AppendTx) error {
		if _, err := tx.LockHead(ctx, "acme"); err != nil {
			return err
		}
		return tx.Append(ctx, "acme", entries[1:], stele.Head{Size: 2, Root: first[1].TreeHashes[0]})
	})
	var integrity *stele.ErrIntegrity
	if !errors.As(err, &integrity) {
		t.Errorf("appending at a taken position: err = %v, want *stele.ErrIntegrity", err)
	}
	// So must reusing an id at a new position.
	dup := first[0].Body
	again, head, _ := l.Entries([]stele.EventBody{*dup})
	err = s.Update(ctx, func(tx stele.AppendTx) error {
		if _, err := tx.LockHead(ctx, "acme"); err != nil {
			return err
		}
		return tx.Append(ctx, "acme", again, head)
	})
	if !errors.As(err, &integrity) {
		t.Errorf("reusing an id: err = %v, want *stele.ErrIntegrity", err)
	}
}

func testPriors(t *testing.T, open Open) {
	h, ctx := harness(t, open)
	s := h.Store
	mustCreate(t, s, "acme")
	l := NewLog("acme")
	bodies := eventgen.New(6).Stream(3, t0, time.Minute, true)
	entries, head, f := l.Entries(bodies)
	entries[1].RequestHash = []byte("request-hash-1")
	err := s.Update(ctx, func(tx stele.AppendTx) error {
		if _, err := tx.LockHead(ctx, "acme"); err != nil {
			return err
		}
		return tx.Append(ctx, "acme", entries, head)
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Frontier = f
	err = s.Update(ctx, func(tx stele.AppendTx) error {
		priors, err := tx.Priors(ctx, "acme", []string{entries[0].Body.ID, entries[1].Body.ID, "0190b1e2-0000-7000-8000-000000000001"})
		if err != nil {
			return err
		}
		if len(priors) != 2 {
			t.Errorf("Priors found %d ids, want 2", len(priors))
		}
		p := priors[entries[1].Body.ID]
		if p.Seq != 1 || p.LeafHash != entries[1].LeafHash() || string(p.RequestHash) != "request-hash-1" {
			t.Errorf("prior of entry 1 = %+v", p)
		}
		if p := priors[entries[0].Body.ID]; p.RequestHash != nil {
			t.Errorf("prior without request hash came back with %q", p.RequestHash)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testIsolation(t *testing.T, open Open) {
	h, ctx := harness(t, open)
	s := h.Store
	mustCreate(t, s, "acme")
	mustCreate(t, s, "globex")
	a, b := NewLog("acme"), NewLog("globex")
	ea := a.Append(t, s, eventgen.New(7).Stream(5, t0, time.Minute, true))
	eb := b.Append(t, s, eventgen.New(8).Stream(3, t0, time.Minute, true))
	if _, err := s.EventByID(ctx, "globex", ea[0].Body.ID); !errors.Is(err, stele.ErrNotFound) {
		t.Errorf("acme's event is visible in globex: %v", err)
	}
	// Which workspaces hold an id: acme's event only in acme; an unknown
	// UUID and a non-UUID in none.
	for id, want := range map[string][]string{ea[0].Body.ID: {"acme"}, eb[1].Body.ID: {"globex"},
		"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978": nil, "not-a-uuid": nil} {
		got, err := s.EventWorkspaces(ctx, id)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("EventWorkspaces(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	if _, err := stele.In(s, "globex").EventByID(ctx, ea[0].Body.ID); !errors.As(err, new(*stele.ForeignError)) {
		t.Errorf("globex asking for acme's event: %v, want a ForeignError", err)
	}
	got, err := s.Query(ctx, "globex", stele.Query{Limit: 100})
	if err != nil || len(got) != 3 {
		t.Fatalf("globex query = %d events, %v", len(got), err)
	}
	for _, e := range got {
		if !slices.ContainsFunc(eb, func(x stele.Entry) bool { return bytes.Equal(x.Canonical, e.Canonical) }) {
			t.Errorf("globex query returned a foreign event at seq %d", e.Seq)
		}
	}
	// Both logs count from 0.
	ha, _ := s.Head(ctx, "acme")
	hb, _ := s.Head(ctx, "globex")
	if ha.Size != 5 || hb.Size != 3 {
		t.Errorf("heads %d and %d, want 5 and 3", ha.Size, hb.Size)
	}
}

func testCheckpoints(t *testing.T, open Open) {
	h, ctx := harness(t, open)
	s := h.Store
	mustCreate(t, s, "acme")
	if _, err := s.LatestCheckpoint(ctx, "acme"); !errors.Is(err, stele.ErrNotFound) {
		t.Errorf("LatestCheckpoint of a new log: err = %v", err)
	}
	cp := func(size int64, sec int64) stele.Checkpoint {
		return stele.Checkpoint{Workspace: "acme", Size: size, Root: tlog.RecordHash([]byte(fmt.Sprint(size))), Time: time.Unix(sec, 0).UTC(), Note: []byte(fmt.Sprintf("note %d\n", size))}
	}
	steps := []struct {
		cp   stele.Checkpoint
		prev int64
		ok   bool
	}{
		{cp(0, 100), -1, true},
		{cp(5, 101), -1, false}, // stale prevSize
		{cp(5, 101), 0, true},
		{cp(5, 102), 5, false}, // not larger
		{cp(4, 103), 5, false}, // smaller
		{cp(9, 101), 5, false}, // time did not advance
		{cp(9, 104), 5, true},
	}
	for i, st := range steps {
		err := s.AddCheckpoint(ctx, st.cp, st.prev)
		if st.ok && err != nil || !st.ok && !errors.Is(err, stele.ErrConflict) {
			t.Errorf("step %d: AddCheckpoint(size %d, prev %d) = %v, want ok=%v", i, st.cp.Size, st.prev, err, st.ok)
		}
	}
	latest, err := s.LatestCheckpoint(ctx, "acme")
	if err != nil || latest.Size != 9 || latest.Root != cp(9, 0).Root || latest.Time.Unix() != 104 || string(latest.Note) != "note 9\n" {
		t.Errorf("latest = %+v, %v", latest, err)
	}
	var sizes []int64
	s.Checkpoints(ctx, "acme", func(c stele.Checkpoint) error { sizes = append(sizes, c.Size); return nil })
	if !slices.Equal(sizes, []int64{0, 5, 9}) {
		t.Errorf("checkpoint history %v, want [0 5 9]", sizes)
	}
}

func testKeys(t *testing.T, open Open) {
	h, ctx := harness(t, open)
	s := h.Store
	mustCreate(t, s, "acme")
	mustCreate(t, s, "globex")
	k := stele.APIKey{ID: "k1", Workspace: "acme", Name: "ingest", Scopes: []string{stele.ScopeWrite}, SecretHash: []byte("h1"),
		CreatedAt: t0, CreatedBy: "test", ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, k); !errors.Is(err, stele.ErrConflict) {
		t.Errorf("duplicate key id: err = %v", err)
	}
	got, err := s.Key(ctx, "k1")
	if err != nil || got.Workspace != "acme" || !slices.Equal(got.Scopes, k.Scopes) || string(got.SecretHash) != "h1" || !got.ExpiresAt.Equal(k.ExpiresAt) || !got.RevokedAt.IsZero() {
		t.Errorf("Key = %+v, %v", got, err)
	}
	got.RevokedAt = t0.Add(time.Minute)
	got.PrevSecretHash, got.PrevValidUntil = []byte("h0"), t0.Add(2*time.Minute)
	if err := s.UpdateKey(ctx, got); err != nil {
		t.Fatal(err)
	}
	// UpdateKey never crosses workspaces.
	foreign := got
	foreign.Workspace = "globex"
	if err := s.UpdateKey(ctx, foreign); !errors.Is(err, stele.ErrNotFound) {
		t.Errorf("updating acme's key as globex: err = %v, want ErrNotFound", err)
	}
	if err := s.TouchKey(ctx, "k1", t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	again, _ := s.Key(ctx, "k1")
	if !again.RevokedAt.Equal(got.RevokedAt) || string(again.PrevSecretHash) != "h0" || !again.LastUsedAt.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("after update and touch: %+v", again)
	}
	list, _ := s.Keys(ctx, "acme")
	other, _ := s.Keys(ctx, "globex")
	if len(list) != 1 || len(other) != 0 {
		t.Errorf("Keys: acme %d, globex %d; want 1 and 0", len(list), len(other))
	}
	if _, err := s.Key(ctx, "nope"); !errors.Is(err, stele.ErrNotFound) {
		t.Errorf("Key(nope): err = %v", err)
	}
}

func testImmutability(t *testing.T, open Open) {
	h, ctx := harness(t, open)
	s := h.Store
	mustCreate(t, s, "acme")
	l := NewLog("acme")
	l.Append(t, s, eventgen.New(9).Stream(3, t0, time.Minute, true))
	s.AddCheckpoint(ctx, stele.Checkpoint{Workspace: "acme", Size: 3, Root: l.Frontier.Root(), Time: time.Unix(100, 0), Note: []byte("n\n")}, -1)
	for _, stmt := range []string{
		"UPDATE events SET outcome = 'failure'",
		"DELETE FROM events",
		"UPDATE tree SET mac = mac",
		"DELETE FROM tree",
		"UPDATE checkpoints SET size = size + 1",
		"DELETE FROM checkpoints",
		"UPDATE logs SET size = 0",
		"DELETE FROM logs",
	} {
		if err := h.Exec(ctx, stmt); err == nil {
			t.Errorf("the database accepted %q", stmt)
		}
	}
	head, _ := s.Head(ctx, "acme")
	if head.Size != 3 || head.Root != l.Frontier.Root() {
		t.Errorf("head changed: %+v", head)
	}
}
