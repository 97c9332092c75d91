package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stele-log/stele/store/postgres/pgtest"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TestPostgresTwoProcesses is the scale-out test: two `stele serve`
// processes on one PostgreSQL database and one signing key, eight clients
// appending concurrently into the same three workspaces through both, each
// process SIGKILLed in turn mid-way while its clients fail over to the other
// and retry with the same event ids, then restarted under load. Afterwards,
// for every workspace: every acknowledged event is present exactly once, at
// the seq it was acknowledged with; seqs are gap-free from 0; every event
// sent is present at most once; the whole log verifies against the latest
// checkpoint with x/mod/sumdb/tlog and note; and every checkpoint either
// process signed (stored ones, and those handed to ?wait=checkpoint callers)
// is the root of a prefix of that one log (DUR-01 and DUR-12 across
// processes).
func TestPostgresTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test skipped in -short mode")
	}
	db := pgtest.NewDatabase(t)
	bin := buildBinary(t)
	shared := t.TempDir()
	logs := &syncBuffer{}
	procs := make([]*process, 2)
	for i := range procs {
		procs[i] = &process{t: t, bin: bin, dir: t.TempDir(), addr: freeAddr(t), logs: logs,
			args: []string{"--db", db, "--signing-key", filepath.Join(shared, "signing.key"), "--rate-ingest", "0", "--rate-read", "0"}}
	}
	procs[0].start() // the first start creates the key, the schema and the default workspace
	procs[1].start()
	defer func() {
		for _, p := range procs {
			p.kill()
		}
	}()

	keys, workspaces := createTestWorkspaces(t, procs[1].url())

	var mu sync.Mutex
	var history []*op
	var handedOut []string // checkpoints returned to ?wait=checkpoint callers
	failovers := 0
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 20 * time.Second}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for n := 0; ctx.Err() == nil; n++ {
				target := (w + n) % 2 // both processes take every workspace's appends
				ws := workspaces[(w+n)%len(workspaces)]
				o := &op{writer: w, ws: ws}
				for i := range 1 + r.IntN(20) {
					o.events = append(o.events, map[string]any{
						"id":      uuid.Must(uuid.NewV7()).String(),
						"type":    "node.config_changed",
						"actor":   map[string]any{"type": "service", "id": fmt.Sprintf("writer-%d", w)},
						"node":    fmt.Sprintf("n-%d-%d-%d", w, n, i),
						"context": map[string]any{"writer": w, "n": n, "i": i},
					})
				}
				wait := n%7 == 0
				// Send until the outcome is known, failing over to the other
				// process on no answer; the same ids make retries safe.
				for attempt := 0; attempt < 200; attempt++ {
					var cp string
					o.outcome, o.seqs, cp = sendOpWait(hc, procs[target].url(), keys[ws], o.events, wait)
					if o.outcome != "indeterminate" {
						if cp != "" {
							mu.Lock()
							handedOut = append(handedOut, cp)
							mu.Unlock()
						}
						break
					}
					target = 1 - target
					mu.Lock()
					failovers++
					mu.Unlock()
					time.Sleep(20 * time.Millisecond)
				}
				mu.Lock()
				history = append(history, o)
				mu.Unlock()
			}
		}()
	}
	pause := func() { time.Sleep(2 * time.Second) }
	pause()
	for _, victim := range procs {
		victim.kill()
		pause() // the survivor carries every client
		victim.start()
		pause() // both again, the restarted one after its self-check under load
	}
	stop()
	wg.Wait()

	if strings.Contains(logs.String(), "INTEGRITY ALARM") {
		t.Fatalf("an integrity alarm was raised:\n%s", logs.String())
	}
	counts := map[string]int{}
	for _, o := range history {
		counts[o.outcome]++
	}
	t.Logf("history: %d ops %v, %d failovers, %d checkpoints handed out", len(history), counts, failovers, len(handedOut))
	if counts["ok"] < 100 || failovers == 0 {
		t.Fatalf("%d acknowledged ops and %d failovers: the test did not exercise two processes", counts["ok"], failovers)
	}
	if counts["indeterminate"] > 0 {
		t.Fatalf("%d ops stayed without an answer from either process", counts["indeterminate"])
	}

	for _, ws := range workspaces {
		status, b, _ := call(t, "POST", procs[0].url()+"/v1/events?wait=checkpoint", keys[ws], "application/json",
			[]byte(`{"type":"test.finished","actor":{"type":"system","id":"test"}}`))
		if status != 201 {
			t.Fatalf("final append to %s: %d %s", ws, status, b)
		}
	}
	// The checkpoints before the exports: reading the log appends to it
	// (auditlog.exported), and later checkpoints cover those events too.
	stored := storedCheckpoints(t, db)
	origins := map[string][]tlog.Hash{} // origin → the recomputed leaf hashes of its log
	for _, ws := range workspaces {
		p := procs[len(ws)%2] // read through either process
		events := exportAll(t, p.url(), keys[ws])
		checkHistory(t, ws, events, history)
		leaves := make([]tlog.Hash, len(events))
		for i, e := range events {
			leaves[i] = recomputeLeaf(t, e)
		}
		origins["stele.test/"+ws] = leaves
	}

	// Every checkpoint either process signed is the root of a prefix of the
	// one log, checked with x/mod only.
	verifiers := map[string]note.Verifier{}
	verifierFor := func(origin string) note.Verifier {
		if v, ok := verifiers[origin]; ok {
			return v
		}
		ws := strings.TrimPrefix(origin, "stele.test/")
		_, k, _ := call(t, "GET", procs[0].url()+"/v1/log/key", keys[ws], "", nil)
		v, err := note.NewVerifier(strings.TrimSpace(string(k)))
		if err != nil {
			t.Fatalf("log key of %s %q: %v", ws, k, err)
		}
		verifiers[origin] = v
		return v
	}
	if len(stored) < len(workspaces) {
		t.Fatalf("%d stored checkpoints", len(stored))
	}
	for _, cp := range append(stored, handedOut...) {
		origin, _, _ := strings.Cut(cp, "\n")
		leaves, ok := origins[origin]
		if !ok {
			continue // the system log
		}
		n, err := note.Open([]byte(cp), note.VerifierList(verifierFor(origin)))
		if err != nil {
			t.Errorf("checkpoint does not verify: %v\n%s", err, cp)
			continue
		}
		lines := strings.Split(n.Text, "\n")
		var size int64
		fmt.Sscan(lines[1], &size)
		root, err := tlog.ParseHash(lines[2])
		if err != nil || size > int64(len(leaves)) {
			t.Errorf("checkpoint %q: size %d of a log of %d (%v)", n.Text, size, len(leaves), err)
			continue
		}
		if got := rootOf(t, leaves[:size]); got != root {
			t.Errorf("INCONSISTENT: %s signed size %d with root %v; the log's first %d leaves hash to %v", origin, size, root, size, got)
		}
	}
	for _, ws := range workspaces {
		verifyLog(t, procs[1].url(), keys[ws], ws)
	}
}

// rootOf computes the RFC 6962 root of leaves with x/mod/sumdb/tlog.
func rootOf(t *testing.T, leaves []tlog.Hash) tlog.Hash {
	t.Helper()
	var hashes []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hashes[x]
		}
		return out, nil
	})
	for i, l := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(int64(i), l, reader)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
	}
	root, err := tlog.TreeHash(int64(len(leaves)), reader)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// storedCheckpoints reads every stored checkpoint note from the database.
func storedCheckpoints(t *testing.T, db string) []string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, "SELECT note FROM checkpoints ORDER BY ws, size")
	if err != nil {
		t.Fatal(err)
	}
	notes, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(notes))
	for i, n := range notes {
		out[i] = string(n)
	}
	return out
}

// sendOpWait is sendOp, optionally with ?wait=checkpoint; it also returns
// the checkpoint the server handed out.
func sendOpWait(hc *http.Client, url, key string, events []map[string]any, wait bool) (string, []int64, string) {
	body, _ := json.Marshal(map[string]any{"events": events})
	path := "/v1/events"
	if wait {
		path += "?wait=checkpoint"
	}
	req, _ := http.NewRequest("POST", url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "indeterminate", nil, ""
	}
	defer resp.Body.Close()
	var r struct {
		Events     []struct{ Seq int64 }
		Checkpoint string
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil && resp.StatusCode == 201 {
		return "indeterminate", nil, ""
	}
	switch {
	case resp.StatusCode == 201:
		seqs := make([]int64, len(r.Events))
		for i, e := range r.Events {
			seqs[i] = e.Seq
		}
		return "ok", seqs, r.Checkpoint
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 429:
		return "fail", nil, ""
	}
	return "indeterminate", nil, ""
}
