package integrity

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/sequencer"
	"github.com/stele-log/stele/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// memStore is an in-memory log store, built honestly by memBuilder and then
// altered by each test the way an attacker with database access would.
type memStore struct {
	order  []string
	logs   map[string]*memLog
	guards error
}

type memLog struct {
	leaves []stele.Leaf        // by seq; remove entries to make gaps
	stray  []stele.StoredEvent // event rows without a tree row
	head   stele.Head
	cps    []stele.Checkpoint
}

func (m *memStore) Workspaces(ctx context.Context) ([]stele.Workspace, error) {
	var out []stele.Workspace
	for _, id := range m.order {
		out = append(out, stele.Workspace{ID: id})
	}
	return out, nil
}

func (m *memStore) log(ws string) (*memLog, error) {
	l, ok := m.logs[ws]
	if !ok {
		return nil, stele.ErrNotFound
	}
	return l, nil
}

func (m *memStore) Head(ctx context.Context, ws string) (stele.Head, error) {
	l, err := m.log(ws)
	if err != nil {
		return stele.Head{}, err
	}
	return l.head, nil
}

func (m *memStore) ScanLeaves(ctx context.Context, ws string, from int64, fn func(stele.Leaf) error) error {
	l, err := m.log(ws)
	if err != nil {
		return err
	}
	for _, lf := range l.leaves {
		if lf.Seq >= from {
			if err := fn(lf); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *memStore) events(ws string) []stele.StoredEvent {
	l := m.logs[ws]
	var out []stele.StoredEvent
	for _, lf := range l.leaves {
		if lf.Canonical != nil {
			out = append(out, stele.StoredEvent{Seq: lf.Seq, Canonical: lf.Canonical, LeafHash: lf.LeafHash})
		}
	}
	return append(out, l.stray...)
}

func (m *memStore) Count(ctx context.Context, ws string, q stele.Query) (int64, error) {
	var n int64
	err := m.Scan(ctx, ws, q, func(stele.StoredEvent) error { n++; return nil })
	return n, err
}

func (m *memStore) Scan(ctx context.Context, ws string, q stele.Query, fn func(stele.StoredEvent) error) error {
	if _, err := m.log(ws); err != nil {
		return err
	}
	for _, e := range m.events(ws) {
		if q.Below > 0 && e.Seq >= q.Below {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Checkpoints(ctx context.Context, ws string, fn func(stele.Checkpoint) error) error {
	l, err := m.log(ws)
	if err != nil {
		return err
	}
	for _, cp := range l.cps {
		if err := fn(cp); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) CheckGuards(ctx context.Context) error { return m.guards }

// memBuilder writes logs as the service would.
type memBuilder struct {
	t     *testing.T
	key   *checkpoint.Key
	store *memStore
	gen   *eventgen.Gen
	clock time.Time
	f     map[string]*tree.Frontier
}

func newBuilder(t *testing.T) *memBuilder {
	skey, err := checkpoint.GenerateKey("stele.test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := checkpoint.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &memBuilder{t: t, key: key, store: &memStore{logs: map[string]*memLog{}}, gen: eventgen.New(7),
		clock: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), f: map[string]*tree.Frontier{}}
}

// append logs n events to ws, received 300 ms apart.
func (b *memBuilder) append(ws string, n int) {
	l, ok := b.store.logs[ws]
	if !ok {
		l = &memLog{}
		b.store.logs[ws] = l
		b.store.order = append(b.store.order, ws)
		b.f[ws], _ = tree.NewFrontier(0, nil)
		l.head.Root = b.f[ws].Root()
	}
	for range n {
		b.clock = b.clock.Add(300 * time.Millisecond)
		body := b.gen.Event(b.clock.Add(-time.Second), true)
		body.ReceivedAt = b.clock
		body.Emitter = stele.Emitter{Workspace: ws, KeyID: "k1", IP: "192.0.2.1"}
		b.put(ws, body)
	}
}

// put appends body to ws as is.
func (b *memBuilder) put(ws string, body stele.EventBody) {
	l := b.store.logs[ws]
	canon, err := stele.Canonical(&body)
	if err != nil {
		b.t.Fatal(err)
	}
	leaf := stele.LeafHash(canon)
	seq := b.f[ws].Size()
	hashes, err := b.f[ws].Append(leaf)
	if err != nil {
		b.t.Fatal(err)
	}
	l.leaves = append(l.leaves, stele.Leaf{Seq: seq, Canonical: canon, LeafHash: leaf, TreeHashes: hashes,
		MAC: sequencer.MAC(b.key.MACKey(), ws, seq, leaf)})
	l.head = stele.Head{Size: seq + 1, Root: b.f[ws].Root(), LastReceived: body.ReceivedAt}
}

// sign stores a checkpoint of ws's current tree.
func (b *memBuilder) sign(ws string) []byte {
	l := b.store.logs[ws]
	b.clock = b.clock.Add(time.Second)
	t := b.clock.Truncate(time.Second)
	note, err := b.key.Sign(b.key.Origin(ws), l.head.Size, l.head.Root, t)
	if err != nil {
		b.t.Fatal(err)
	}
	l.cps = append(l.cps, stele.Checkpoint{Workspace: ws, Size: l.head.Size, Root: l.head.Root, Time: t, Note: note})
	return note
}

func (b *memBuilder) opts() Options {
	return Options{Instance: b.key.Name(), PublicKey: b.key.PublicKey(), MACKey: b.key.MACKey()}
}

// standard builds two workspaces: "a" with 40 events signed at 10, 25 and
// 40 and a tail of 3 unsigned; "b" with 7 events signed at 7.
func standard(t *testing.T) *memBuilder {
	b := newBuilder(t)
	b.append("a", 10)
	b.sign("a")
	b.append("b", 7)
	b.sign("b")
	b.append("a", 15)
	b.sign("a")
	b.append("a", 15)
	b.sign("a")
	b.append("a", 3)
	return b
}

func run(t *testing.T, store Store, opts Options) *Report {
	t.Helper()
	rep, err := Run(context.Background(), store, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestCleanLog(t *testing.T) {
	b := standard(t)
	var calls int
	opts := b.opts()
	opts.Canonical = true
	opts.Progress = func(Progress) { calls++ }
	opts.Chunk = 7 // several read transactions per log
	rep := run(t, b.store, opts)
	if !rep.OK() {
		t.Fatalf("clean log: findings %v, guards %v", rep.Workspaces, rep.Guards)
	}
	if len(rep.Workspaces) != 2 || rep.Events != 50 {
		t.Fatalf("checked %d workspaces, %d events; want 2, 50", len(rep.Workspaces), rep.Events)
	}
	a := rep.Workspaces[0]
	if a.ID != "a" || a.Events != 43 || a.Checkpoints != 3 || a.Latest != 40 || a.Matched != 40 || a.Unsigned != 3 {
		t.Errorf("workspace a: %+v; want 43 events, 3 checkpoints, latest 40, 3 unsigned", a)
	}
	if calls == 0 {
		t.Error("no progress reported")
	}
	if !rep.GuardsChecked {
		t.Error("guards not checked although the store implements GuardChecker")
	}
}

// want asserts that the first finding of ws is check at seq.
func want(t *testing.T, rep *Report, ws string, check Check, seq int64) {
	t.Helper()
	for _, w := range rep.Workspaces {
		if w.ID != ws {
			if !w.OK() {
				t.Errorf("workspace %s, untouched, has findings %v", w.ID, w.Findings)
			}
			continue
		}
		if w.OK() {
			t.Fatalf("workspace %s: no finding, want %s at seq %d", ws, check, seq)
		}
		if f := w.Findings[0]; f.Check != check || f.Seq != seq {
			t.Fatalf("workspace %s: first finding %v; want %s at seq %d (all: %v)", ws, f, check, seq, w.Findings)
		}
		return
	}
	t.Fatalf("workspace %s not in the report", ws)
}

func has(rep *Report, ws string, check Check) bool {
	for _, w := range rep.Workspaces {
		for _, f := range w.Findings {
			if w.ID == ws && f.Check == check {
				return true
			}
		}
	}
	return false
}

func TestTamper(t *testing.T) {
	other, err := checkpoint.GenerateKey("stele.test")
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := checkpoint.ParseKey(other)
	for _, tc := range []struct {
		name   string
		mutate func(b *memBuilder, l *memLog)
		noMAC  bool
		check  Check
		seq    int64
		also   []Check
	}{
		{name: "edit event", check: CheckLeaf, seq: 12, also: []Check{CheckRoot, CheckMAC}, mutate: func(b *memBuilder, l *memLog) {
			l.leaves[12].Canonical = []byte(strings.Replace(string(l.leaves[12].Canonical), `"outcome":"success"`, `"outcome":"failure"`, 1))
		}},
		{name: "edit event and leaf hash, with MAC key", check: CheckMAC, seq: 12, also: []Check{CheckRoot}, mutate: editWithHash},
		{name: "edit event and leaf hash, without MAC key", noMAC: true, check: CheckRoot, seq: 12, mutate: editWithHash},
		{name: "delete event row", check: CheckSequence, seq: 5, mutate: func(b *memBuilder, l *memLog) {
			l.leaves[5].Canonical = nil
		}},
		{name: "delete position", check: CheckSequence, seq: 5, mutate: func(b *memBuilder, l *memLog) {
			l.leaves = slices.Delete(l.leaves, 5, 6)
		}},
		{name: "delete tail", check: CheckSequence, seq: 30, mutate: func(b *memBuilder, l *memLog) {
			l.leaves = l.leaves[:30]
		}},
		{name: "swap events", check: CheckMAC, seq: 3, also: []Check{CheckRoot}, mutate: func(b *memBuilder, l *memLog) {
			x, y := &l.leaves[3], &l.leaves[8]
			x.Canonical, y.Canonical = y.Canonical, x.Canonical
			x.LeafHash, y.LeafHash = y.LeafHash, x.LeafHash
		}},
		{name: "stray event row", check: CheckSequence, seq: 43, mutate: func(b *memBuilder, l *memLog) {
			l.stray = append(l.stray, stele.StoredEvent{Seq: 43, Canonical: l.leaves[0].Canonical, LeafHash: l.leaves[0].LeafHash})
		}},
		{name: "forged position after the head", check: CheckMAC, seq: 43, also: []Check{CheckSequence}, mutate: func(b *memBuilder, l *memLog) {
			lf := l.leaves[42]
			hashes, _ := b.f["a"].Append(lf.LeafHash)
			l.leaves = append(l.leaves, stele.Leaf{Seq: 43, Canonical: lf.Canonical, LeafHash: lf.LeafHash, TreeHashes: hashes, MAC: []byte("guess")})
		}},
		{name: "edit checkpoint root column", check: CheckSignature, seq: 24, mutate: func(b *memBuilder, l *memLog) {
			l.cps[1].Root = tlog.Hash{1}
		}},
		{name: "edit checkpoint note", check: CheckSignature, seq: 24, mutate: func(b *memBuilder, l *memLog) {
			l.cps[1].Note = []byte(strings.Replace(string(l.cps[1].Note), "\n25\n", "\n24\n", 1))
		}},
		{name: "another workspace's checkpoint", check: CheckSignature, seq: 6, mutate: func(b *memBuilder, l *memLog) {
			cp := b.store.logs["b"].cps[0]
			cp.Workspace = "a"
			l.cps = append([]stele.Checkpoint{cp}, l.cps...)
		}},
		{name: "checkpoint by another key", check: CheckSignature, seq: 39, mutate: func(b *memBuilder, l *memLog) {
			cp := &l.cps[2]
			cp.Note, _ = otherKey.Sign(b.key.Origin("a"), cp.Size, cp.Root, cp.Time)
		}},
		{name: "checkpoint time goes backwards", check: CheckTime, seq: 39, mutate: func(b *memBuilder, l *memLog) {
			cp := &l.cps[2]
			cp.Time = l.cps[1].Time
			cp.Note, _ = b.key.Sign(b.key.Origin("a"), cp.Size, cp.Root, cp.Time)
		}},
		{name: "head root", check: CheckRoot, seq: 42, mutate: func(b *memBuilder, l *memLog) {
			l.head.Root = tlog.Hash{2}
		}},
		{name: "head beyond the stored positions", check: CheckSequence, seq: 43, mutate: func(b *memBuilder, l *memLog) {
			l.head.Size = 45
		}},
		{name: "rewritten and the latest checkpoint re-signed with the real key", check: CheckRoot, seq: 10, mutate: func(b *memBuilder, l *memLog) {
			resign(b, l, 20)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := standard(t)
			tc.mutate(b, b.store.logs["a"])
			opts := b.opts()
			if tc.noMAC {
				opts.MACKey = nil
			}
			rep := run(t, b.store, opts)
			want(t, rep, "a", tc.check, tc.seq)
			for _, c := range tc.also {
				if !has(rep, "a", c) {
					t.Errorf("no %s finding; findings: %v", c, rep.Workspaces[0].Findings)
				}
			}
		})
	}
}

// resign rewrites event seq and re-signs the latest checkpoint over the
// rewritten tree, as only a holder of the signing key (T3) can.
func resign(b *memBuilder, l *memLog, seq int) {
	f, _ := tree.NewFrontier(0, nil)
	for i := range l.leaves {
		if i == seq {
			l.leaves[i].Canonical = []byte(strings.Replace(string(l.leaves[i].Canonical), `"outcome":"success"`, `"outcome":"failure"`, 1))
			l.leaves[i].LeafHash = stele.LeafHash(l.leaves[i].Canonical)
			l.leaves[i].MAC = sequencer.MAC(b.key.MACKey(), "a", int64(seq), l.leaves[i].LeafHash)
		}
		l.leaves[i].TreeHashes, _ = f.Append(l.leaves[i].LeafHash)
		if f.Size() == 40 {
			cp := &l.cps[2]
			cp.Root = f.Root()
			cp.Note, _ = b.key.Sign(b.key.Origin("a"), 40, cp.Root, cp.Time)
		}
	}
	l.head.Root = f.Root()
}

// TestKeyHolderRewriteAfterLastCheckpoint documents the limit of a check of
// stored data (RELIABILITY.md T3, TAM-09): whoever holds the signing key and
// the database can rewrite events after the last checkpoint that escaped
// and re-sign; only a checkpoint saved outside the database shows it.
func TestKeyHolderRewriteAfterLastCheckpoint(t *testing.T) {
	b := standard(t)
	saved := b.store.logs["a"].cps[2].Note
	resign(b, b.store.logs["a"], 30)
	if rep := run(t, b.store, b.opts()); !rep.OK() {
		t.Fatalf("a re-signed rewrite after the checkpoint of size 25 was found without saved state: %v", rep.Workspaces)
	}
	opts := b.opts()
	opts.Trusted = [][]byte{saved}
	want(t, run(t, b.store, opts), "a", CheckConsistency, 39)
}

func editWithHash(b *memBuilder, l *memLog) {
	lf := &l.leaves[12]
	lf.Canonical = []byte(strings.Replace(string(lf.Canonical), `"outcome":"success"`, `"outcome":"failure"`, 1))
	lf.LeafHash = stele.LeafHash(lf.Canonical)
}

// TestEventBindings covers what the leaf binds besides its hash: an event
// carried into another workspace's log (even one re-signed there, as only
// the key holder could) and a receipt time that goes backwards.
func TestEventBindings(t *testing.T) {
	b := newBuilder(t)
	b.append("a", 3)
	b.append("b", 3)
	stolen := b.store.logs["a"].leaves[1]
	var body stele.EventBody
	if err := jsonUnmarshal(stolen.Canonical, &body); err != nil {
		t.Fatal(err)
	}
	body.ReceivedAt = b.clock.Add(time.Second)
	b.put("b", body) // transplanted: emitter.workspace says "a"
	early := body
	early.Emitter.Workspace = "b"
	early.ReceivedAt = b.clock.Add(-time.Hour)
	b.put("b", early)
	b.sign("a")
	b.sign("b")
	rep := run(t, b.store, b.opts())
	want(t, rep, "b", CheckLeaf, 3)
	if !has(rep, "b", CheckTime) {
		t.Errorf("received_at going backwards not found: %v", rep.Workspaces[1].Findings)
	}
}

func TestCheckpointTooOldForItsEvents(t *testing.T) {
	b := newBuilder(t)
	b.append("a", 4)
	l := b.store.logs["a"]
	at := b.clock.Add(-10 * time.Second).Truncate(time.Second)
	note, err := b.key.Sign(b.key.Origin("a"), 4, l.head.Root, at)
	if err != nil {
		t.Fatal(err)
	}
	l.cps = append(l.cps, stele.Checkpoint{Workspace: "a", Size: 4, Root: l.head.Root, Time: at, Note: note})
	want(t, run(t, b.store, b.opts()), "a", CheckTime, 3)
}

// TestTrusted holds the log against checkpoints saved outside the database
// (C5): a rollback that also removed the stored checkpoints, and a fork.
func TestTrusted(t *testing.T) {
	t.Run("rollback", func(t *testing.T) {
		b := standard(t)
		saved := b.sign("a") // size 43
		l := b.store.logs["a"]
		// The attacker cuts the log back to 25 events, head and checkpoints included.
		l.leaves, l.cps = l.leaves[:25], l.cps[:2]
		l.head = stele.Head{Size: 25, Root: l.cps[1].Root}
		if rep := run(t, b.store, b.opts()); !rep.OK() {
			t.Fatalf("without saved state the cut log is self-consistent, yet: %v", rep.Workspaces)
		}
		opts := b.opts()
		opts.Trusted = [][]byte{saved}
		want(t, run(t, b.store, opts), "a", CheckConsistency, 25)
	})
	t.Run("fork", func(t *testing.T) {
		b := standard(t)
		other := newBuilder(t)
		other.key = b.key
		other.gen = eventgen.New(99)
		other.append("a", 10)
		fork := other.sign("a")
		opts := b.opts()
		opts.Trusted = [][]byte{fork}
		want(t, run(t, b.store, opts), "a", CheckConsistency, 9)
	})
	t.Run("log removed", func(t *testing.T) {
		b := standard(t)
		saved := b.sign("b")
		delete(b.store.logs, "b")
		b.store.order = b.store.order[:1]
		opts := b.opts()
		opts.Trusted = [][]byte{saved}
		want(t, run(t, b.store, opts), "b", CheckConsistency, 0)
	})
	t.Run("not verifying", func(t *testing.T) {
		b := standard(t)
		saved := b.sign("a")
		opts := b.opts()
		opts.Trusted = [][]byte{[]byte(strings.Replace(string(saved), "\n43\n", "\n44\n", 1))}
		if _, err := Run(context.Background(), b.store, opts); err == nil {
			t.Error("a saved checkpoint that does not verify was accepted")
		}
	})
}

func TestGuardsReported(t *testing.T) {
	b := standard(t)
	b.store.guards = errors.New("trigger events_append_only_delete missing")
	rep := run(t, b.store, b.opts())
	if rep.OK() {
		t.Fatal("missing guards: report OK")
	}
	if f, _ := rep.First(); f.Check != CheckGuards {
		t.Errorf("first finding %v, want the guards", f)
	}
}

func TestParseLogKey(t *testing.T) {
	b := newBuilder(t)
	for _, ws := range []string{"default", "ops"} {
		inst, pub, err := ParseLogKey(b.key.VerifierKey(b.key.Origin(ws)) + "\n")
		if err != nil || inst != "stele.test" || !pub.Equal(b.key.PublicKey()) {
			t.Errorf("ParseLogKey(%s key) = %q, %x, %v", ws, inst, pub, err)
		}
	}
	for _, bad := range []string{"", "stele.test+00000000+AAAA", "nope"} {
		if _, _, err := ParseLogKey(bad); err == nil {
			t.Errorf("ParseLogKey(%q) succeeded", bad)
		}
	}
}
