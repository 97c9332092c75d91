package verify_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/bundle"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/export"
	"github.com/stele-log/stele/tree"
	"github.com/stele-log/stele/verify"
	fproof "github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// testLog is a log built with tlog alone and signed with x/mod's note: code
// independent of the server's write path.
type testLog struct {
	origin string
	skey   string
	vkey   string
	lines  [][]byte // export form
	canon  [][]byte
	stored []tlog.Hash
}

func newTestLog(t *testing.T, n int) *testLog { return newTestLogSeed(t, n, 42) }

func newTestLogSeed(t *testing.T, n int, seed uint64) *testLog {
	t.Helper()
	l := &testLog{origin: "verify.test/ws1"}
	var err error
	if l.skey, l.vkey, err = note.GenerateKey(rand.Reader, l.origin); err != nil {
		t.Fatal(err)
	}
	g := eventgen.New(seed)
	start := time.Now().Add(-time.Hour)
	for i := range n {
		d := stele.Draft{Body: g.Event(start, false)}
		_, canon, leaf, err := stele.Seal(&d, start.Add(time.Duration(i)*time.Millisecond), stele.Emitter{Workspace: "ws1"})
		if err != nil {
			t.Fatal(err)
		}
		hs, err := tlog.StoredHashes(int64(i), canon, l)
		if err != nil {
			t.Fatal(err)
		}
		l.stored = append(l.stored, hs...)
		l.canon = append(l.canon, canon)
		l.lines = append(l.lines, export.AppendEvent(nil, stele.StoredEvent{Seq: int64(i), Canonical: canon, LeafHash: leaf}))
	}
	return l
}

func (l *testLog) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = l.stored[x]
	}
	return out, nil
}

func (l *testLog) root(t *testing.T, size int64) tlog.Hash {
	h, err := tlog.TreeHash(size, l)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// sign returns a C2SP checkpoint of the first size leaves signed with x/mod's note.
func (l *testLog) sign(t *testing.T, size int64) string {
	t.Helper()
	s, err := note.NewSigner(l.skey)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%d\n%s\n", l.origin, size, l.root(t, size))}, s)
	if err != nil {
		t.Fatal(err)
	}
	return string(msg)
}

// rangeBundle encodes positions [from, to) against a checkpoint of size.
func (l *testLog) rangeBundle(t *testing.T, from, to, size int64) []byte {
	t.Helper()
	rg := &bundle.Range{From: from, To: to, Left: []tlog.Hash{}, Consistency: []tlog.Hash{}}
	if from > 0 {
		rg.Left, _ = l.ReadHashes(tree.FrontierIndexes(from))
	}
	if to > 0 && to < size {
		p, err := tlog.ProveTree(size, to, l)
		if err != nil {
			t.Fatal(err)
		}
		rg.Consistency = p
	}
	var b bytes.Buffer
	enc, err := bundle.NewEncoder(&b, bundle.Header{Origin: l.origin, Checkpoint: l.sign(t, size), Range: rg})
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i++ {
		enc.WriteEvent(l.lines[i], nil)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// proofsBundle encodes the events at seqs (in that order) with inclusion
// proofs against a checkpoint of size.
func (l *testLog) proofsBundle(t *testing.T, size int64, seqs ...int64) []byte {
	t.Helper()
	var b bytes.Buffer
	enc, err := bundle.NewEncoder(&b, bundle.Header{Origin: l.origin, Checkpoint: l.sign(t, size), Filters: map[string]string{"type": "x.*"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range seqs {
		p, err := tlog.ProveRecord(size, s, l)
		if err != nil {
			t.Fatal(err)
		}
		enc.WriteEvent(l.lines[s], &bundle.Proof{Index: s, Hashes: p})
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func check(t *testing.T, data []byte, vkey string, cp []byte) (*verify.Report, []verify.Result) {
	t.Helper()
	var results []verify.Result
	rep, err := verify.File(bytes.NewReader(data), verify.Options{Key: vkey, Checkpoint: cp, OnEvent: func(r verify.Result) { results = append(results, r) }})
	if err != nil {
		t.Fatalf("File: %v", err)
	}
	// The same verdicts without OnEvent (no per-event state kept).
	quiet, err := verify.File(bytes.NewReader(data), verify.Options{Key: vkey, Checkpoint: cp})
	if err != nil {
		t.Fatal(err)
	}
	if quiet.Verified != rep.Verified || quiet.Failed != rep.Failed || quiet.Unverified != rep.Unverified || quiet.OK() != rep.OK() {
		t.Errorf("counts differ with and without OnEvent: %+v / %+v", quiet, rep)
	}
	failed := 0
	onlyFailed, err := verify.File(bytes.NewReader(data), verify.Options{Key: vkey, Checkpoint: cp, FailuresOnly: true, OnEvent: func(r verify.Result) {
		if r.Status != verify.Failed {
			t.Errorf("FailuresOnly reported %+v", r)
		}
		failed++
	}})
	if err != nil || onlyFailed.Verified != rep.Verified || onlyFailed.Failed != rep.Failed || int64(failed) != rep.Failed {
		t.Errorf("FailuresOnly: %+v, %d reported; full run %+v", onlyFailed, failed, rep)
	}
	return rep, results
}

func TestRangeBundles(t *testing.T) {
	l := newTestLog(t, 37)
	for _, c := range []struct{ from, to, size int64 }{{0, 37, 37}, {0, 20, 37}, {5, 37, 37}, {13, 29, 37}, {16, 32, 33}, {7, 7, 37}, {0, 1, 1}} {
		rep, results := check(t, l.rangeBundle(t, c.from, c.to, c.size), l.vkey, nil)
		if !rep.OK() || rep.Verified != c.to-c.from || int64(len(results)) != c.to-c.from {
			t.Errorf("range [%d,%d) of %d: %+v", c.from, c.to, c.size, rep)
		}
	}
}

func TestProofsBundles(t *testing.T) {
	l := newTestLog(t, 37)
	rep, _ := check(t, l.proofsBundle(t, 37, 0, 3, 4, 17, 36), l.vkey, nil)
	if !rep.OK() || rep.Verified != 5 {
		t.Fatalf("%+v", rep)
	}
	// Each line is a C2SP tlog-proof@v1 once the header's checkpoint is
	// attached: transparency-dev's parser reads it, and tlog checks it.
	data := l.proofsBundle(t, 30, 11)
	dec := bundle.NewDecoder(bytes.NewReader(data))
	h, _ := dec.Header()
	line, err := dec.Next()
	if err != nil {
		t.Fatal(err)
	}
	var tp fproof.TLogProof
	if err := tp.Unmarshal(line.Proof.TLogProof([]byte(h.Checkpoint))); err != nil {
		t.Fatal(err)
	}
	if tp.Index != 11 || string(tp.Checkpoint) != h.Checkpoint {
		t.Fatalf("tlog-proof: index %d, checkpoint %q", tp.Index, tp.Checkpoint)
	}
	hashes := make([]tlog.Hash, len(tp.Hashes))
	for i, x := range tp.Hashes {
		hashes[i] = x
	}
	if err := tlog.CheckRecord(hashes, 30, l.root(t, 30), 11, tlog.RecordHash(l.canon[11])); err != nil {
		t.Fatalf("tlog-proof does not verify: %v", err)
	}
}

// TestNDJSONExport: a complete export 0..N-1 proves itself against the
// checkpoint of N by its root; events beyond it are not covered; a missing
// position leaves everything unverified; an edit fails.
func TestNDJSONExport(t *testing.T) {
	l := newTestLog(t, 20)
	cp := []byte(l.sign(t, 16))
	var lines []string
	for i := 19; i >= 0; i-- { // newest first, as the export orders by default
		lines = append(lines, string(l.lines[i]))
	}
	full := []byte(strings.Join(lines, "\n") + "\n")
	rep, _ := check(t, full, l.vkey, cp)
	if !rep.OK() || rep.Verified != 16 || rep.Uncovered != 4 {
		t.Errorf("complete export: %+v", rep)
	}
	missing := []byte(strings.Join(append(append([]string{}, lines[:10]...), lines[11:]...), "\n"))
	rep, results := check(t, missing, l.vkey, cp)
	if rep.OK() || rep.Failed != 0 || rep.Unverified != 15 || !strings.Contains(results[len(results)-1].Detail, "seq 9 is missing") {
		t.Errorf("export without seq 9: %+v %+v", rep, results[len(results)-1])
	}
	edited := bytes.Replace(full, []byte(`"seq":3,`), []byte(`"seq":3,"note":"approved",`), 1)
	rep, _ = check(t, edited, l.vkey, cp)
	if rep.Failed != 1 || rep.OK() {
		t.Errorf("export with an added member: %+v", rep)
	}
	if _, err := verify.File(bytes.NewReader(full), verify.Options{Key: l.vkey}); err == nil {
		t.Error("an NDJSON export without a checkpoint was accepted")
	}
}

// TestTamperedBundles: each alteration of a bundle is caught by the check
// that names it.
func TestTamperedBundles(t *testing.T) {
	l := newTestLog(t, 24)
	rangeB := l.rangeBundle(t, 4, 20, 24)
	fullB := l.rangeBundle(t, 0, 24, 24)
	proofsB := l.proofsBundle(t, 24, 2, 5, 9, 14)
	otherSkey, otherVkey, _ := note.GenerateKey(rand.Reader, l.origin)
	other := *l
	other.skey = otherSkey
	lines := func(b []byte) []string { return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") }
	join := func(ls []string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }
	edit := func(b []byte, line int, old, new string) []byte {
		ls := lines(b)
		if !strings.Contains(ls[line], old) {
			t.Fatalf("line %d has no %q", line, old)
		}
		ls[line] = strings.Replace(ls[line], old, new, 1)
		return join(ls)
	}
	cases := []struct {
		name  string
		data  []byte
		vkey  string
		check string // a failed check, in an event result or the report
		seq   int64  // the event named, or -1
	}{
		{"edited field (range)", edit(rangeB, 3, `"outcome":"`, `"outcome":"x`), l.vkey, verify.CheckLeaf, 6},
		{"edited field (proofs)", edit(proofsB, 2, `"outcome":"`, `"outcome":"x`), l.vkey, verify.CheckLeaf, 5},
		{"edited leaf_hash too (proofs)", fixLeaf(t, edit(proofsB, 2, `"outcome":"`, `"outcome":"x`), 2), l.vkey, verify.CheckInclusion, 5},
		{"edited leaf_hash too (range)", fixLeaf(t, edit(rangeB, 3, `"outcome":"`, `"outcome":"x`), 3), l.vkey, verify.CheckRange, -1},
		{"edited leaf_hash too (whole log)", fixLeaf(t, edit(fullB, 3, `"outcome":"`, `"outcome":"x`), 3), l.vkey, verify.CheckRange, -1},
		{"removed last line (whole log)", join(append(lines(fullB)[:24:24], lines(fullB)[25:]...)), l.vkey, verify.CheckSequence, -1},
		{"removed line (range)", join(append(lines(rangeB)[:3:3], lines(rangeB)[4:]...)), l.vkey, verify.CheckSequence, 7},
		{"removed line (proofs)", join(append(lines(proofsB)[:2:2], lines(proofsB)[3:]...)), l.vkey, verify.CheckEnd, -1},
		{"duplicated line (range)", join(append(lines(rangeB)[:4:4], lines(rangeB)[3:]...)), l.vkey, verify.CheckSequence, 6},
		{"duplicated line (proofs)", join(append(lines(proofsB)[:3:3], lines(proofsB)[2:]...)), l.vkey, verify.CheckOrder, 5},
		{"reordered lines (range)", swap(lines(rangeB), 2, 5), l.vkey, verify.CheckSequence, 8},
		{"altered proof hash", alterHash(t, proofsB, 3, `"hashes":["`), l.vkey, verify.CheckInclusion, 9},
		{"altered left hash", alterHash(t, rangeB, 0, `"left":["`), l.vkey, verify.CheckRange, -1},
		{"altered consistency hash", alterHash(t, rangeB, 0, `"consistency":["`), l.vkey, verify.CheckRange, -1},
		{"altered checkpoint", edit(rangeB, 0, `\n24\n`, `\n25\n`), l.vkey, verify.CheckSignature, -1},
		{"checkpoint by another key", other.rangeBundle(t, 4, 20, 24), l.vkey, verify.CheckSignature, -1},
		{"wrong key", rangeB, otherVkey, verify.CheckSignature, -1},
		{"wrong origin in header", edit(rangeB, 0, `"origin":"verify.test/ws1"`, `"origin":"verify.test/ws2"`), l.vkey, verify.CheckOrigin, -1},
		{"cut short", join(lines(rangeB)[:len(lines(rangeB))-1]), l.vkey, verify.CheckEnd, -1},
		{"duplicate member name", edit(rangeB, 2, `"outcome":`, `"outcome":"failure","outcome":`), l.vkey, verify.CheckFormat, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, results := check(t, c.data, c.vkey, nil)
			if rep.OK() {
				t.Fatalf("accepted: %+v", rep)
			}
			found := false
			for _, r := range results {
				if r.Status == verify.Failed && r.Check == c.check && (c.seq < 0 || r.Seq == c.seq) {
					found = true
				}
			}
			for _, f := range rep.Failures {
				if c.seq < 0 && f.Check == c.check {
					found = true
				}
			}
			if !found {
				t.Errorf("no %q failure naming seq %d; results %+v, failures %v", c.check, c.seq, failedOnly(results), rep.Failures)
			}
		})
	}
}

func failedOnly(rs []verify.Result) []verify.Result {
	var out []verify.Result
	for _, r := range rs {
		if r.Status == verify.Failed {
			out = append(out, r)
		}
	}
	return out
}

func swap(ls []string, i, j int) []byte {
	ls[i], ls[j] = ls[j], ls[i]
	return []byte(strings.Join(ls, "\n") + "\n")
}

// alterHash flips a character of the first hash after marker on line.
func alterHash(t *testing.T, b []byte, line int, marker string) []byte {
	t.Helper()
	ls := strings.Split(string(b), "\n")
	i := strings.Index(ls[line], marker)
	if i < 0 {
		t.Fatalf("line %d has no %q", line, marker)
	}
	at := i + len(marker)
	c := byte('A')
	if ls[line][at] == 'A' {
		c = 'B'
	}
	ls[line] = ls[line][:at] + string(c) + ls[line][at+1:]
	return []byte(strings.Join(ls, "\n"))
}

// fixLeaf recomputes the leaf_hash of the event on line, as an attacker
// who edits an event would.
func fixLeaf(t *testing.T, b []byte, line int) []byte {
	t.Helper()
	ls := strings.Split(string(b), "\n")
	start := strings.Index(ls[line], `{"seq"`)
	end := strings.Index(ls[line], `,"leaf_hash":"`)
	ev, err := verify.ParseEvent([]byte(ls[line][start:end] + `,"leaf_hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	if err != nil {
		t.Fatal(err)
	}
	rest := ls[line][end+len(`,"leaf_hash":"`)+44:]
	ls[line] = ls[line][:end] + `,"leaf_hash":"` + ev.Leaf.String() + rest
	return []byte(strings.Join(ls, "\n"))
}

// TestParseEventIsTheLeafRule: the leaf recomputed from an exported line
// is the one the write path computed, for random events; members the
// server does not know are covered; duplicate names are refused.
func TestParseEventIsTheLeafRule(t *testing.T) {
	g := eventgen.New(7)
	for i := range 500 {
		d := stele.Draft{Body: g.Event(time.Now().Add(-time.Hour), i%2 == 0)}
		_, canon, leaf, err := stele.Seal(&d, time.Now(), stele.Emitter{Workspace: "w", KeyID: "k", IP: "192.0.2.1"})
		if err != nil {
			t.Fatal(err)
		}
		line := export.AppendEvent(nil, stele.StoredEvent{Seq: int64(i), Canonical: canon, LeafHash: leaf})
		ev, err := verify.ParseEvent(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if !bytes.Equal(ev.Canonical, canon) || ev.Leaf != leaf || ev.Claimed != leaf || ev.Seq != int64(i) {
			t.Fatalf("event %d: canonical %s, want %s", i, ev.Canonical, canon)
		}
		// Reformatted (members reordered, whitespace) it is the same leaf.
		pretty := bytes.ReplaceAll(line, []byte(`,"`), []byte(", \n \""))
		if ev2, err := verify.ParseEvent(pretty); err != nil || ev2.Leaf != leaf {
			t.Fatalf("reformatted event %d: %v", i, err)
		}
	}
	added, _ := verify.ParseEvent([]byte(`{"seq":0,"id":"x","extra":1,"leaf_hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	plain, _ := verify.ParseEvent([]byte(`{"seq":0,"id":"x","leaf_hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	if added.Leaf == plain.Leaf {
		t.Error("an added member does not change the leaf")
	}
	for _, bad := range []string{
		`{"seq":0,"id":"x","id":"y","leaf_hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		`{"seq":0,"context":{"a":1,"a":2},"leaf_hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		`{"seq":0,"id":"x"}`,
		`{"seq":-1,"leaf_hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		"{\"seq\":0,\"id\":\"\xff\",\"leaf_hash\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}",
		`[1]`,
	} {
		if _, err := verify.ParseEvent([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// TestPrunedPositions: a range whose bodies retention removed still proves
// the rest; the pruned positions are reported as such.
func TestPrunedPositions(t *testing.T) {
	l := newTestLog(t, 10)
	var b bytes.Buffer
	enc, _ := bundle.NewEncoder(&b, bundle.Header{Origin: l.origin, Checkpoint: l.sign(t, 10), Range: &bundle.Range{From: 0, To: 10, Left: []tlog.Hash{}, Consistency: []tlog.Hash{}}})
	for i := range 10 {
		if i < 4 {
			enc.WritePruned(int64(i), tlog.RecordHash(l.canon[i]))
		} else {
			enc.WriteEvent(l.lines[i], nil)
		}
	}
	enc.Close()
	rep, _ := check(t, b.Bytes(), l.vkey, nil)
	if !rep.OK() || rep.Pruned != 4 || rep.Verified != 6 {
		t.Fatalf("%+v", rep)
	}
}
