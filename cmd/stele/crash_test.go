package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// process is a stele serve running as a child process, so that it can be
// killed with SIGKILL like a crashing machine.
type process struct {
	t      *testing.T
	bin    string
	dir    string
	addr   string
	args   []string // more serve flags (--db, --signing-key, ...)
	cmd    *exec.Cmd
	stderr *syncBuffer
	logs   *syncBuffer // stderr of every run, for integrity alarms
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (p *process) start() {
	p.t.Helper()
	p.stderr = &syncBuffer{}
	p.cmd = exec.Command(p.bin, append([]string{"serve", "--data", p.dir, "--listen", p.addr, "--name", "stele.test"}, p.args...)...)
	p.cmd.Env = append(os.Environ(), "STELE_ADMIN_KEY="+fixedOperatorKey, "STELE_ADMIN_EMAIL="+adminEmail, "STELE_ADMIN_PASSWORD="+adminPassword)
	p.cmd.Stdout = &bytes.Buffer{}
	p.cmd.Stderr = multiWriter{p.stderr, p.logs}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("server did not become ready:\n%s", p.stderr.String())
}

// kill SIGKILLs the process, like a crashing machine.
func (p *process) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *process) url() string { return "http://" + p.addr }

type multiWriter []interface{ Write([]byte) (int, error) }

func (m multiWriter) Write(b []byte) (int, error) {
	for _, w := range m {
		w.Write(b)
	}
	return len(b), nil
}

// op is one append as a client saw it (the history a Jepsen-style checker
// reads).
type op struct {
	writer  int
	ws      string
	events  []map[string]any // as sent, with ids
	outcome string           // ok, fail, indeterminate
	seqs    []int64
}

// TestCrashDurability is RELIABILITY.md DUR-01: concurrent writers over
// three workspaces while the server is SIGKILLed at random moments and
// restarted. Afterwards every acknowledged event is present exactly once at
// the seq it was acknowledged with; unacknowledged ones are present once or
// absent; seqs are gap-free; every log verifies against its signed
// checkpoint with x/mod/sumdb; and no start-up self-check raised an alarm.
// STELE_CRASH_CYCLES sets the number of kills (default 8).
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	cycles := 8
	if v, err := strconv.Atoi(os.Getenv("STELE_CRASH_CYCLES")); err == nil && v > 0 {
		cycles = v
	}
	p := &process{t: t, bin: buildBinary(t), dir: t.TempDir(), addr: freeAddr(t), logs: &syncBuffer{}}
	p.start()
	defer p.kill()

	keys, workspaces := createTestWorkspaces(t, p.url())

	var mu sync.Mutex
	var history []*op
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 5 * time.Second}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 99))
			for n := 0; ctx.Err() == nil; n++ {
				ws := workspaces[(w+n)%len(workspaces)]
				o := &op{writer: w, ws: ws}
				for i := range 1 + r.IntN(5) {
					o.events = append(o.events, map[string]any{
						"id":      uuid.Must(uuid.NewV7()).String(),
						"type":    "node.config_changed",
						"actor":   map[string]any{"type": "service", "id": fmt.Sprintf("writer-%d", w)},
						"node":    fmt.Sprintf("n-%d-%d-%d", w, n, i),
						"context": map[string]any{"writer": w, "n": n, "i": i},
					})
				}
				o.outcome, o.seqs = sendOp(hc, p.url(), keys[ws], o.events)
				mu.Lock()
				history = append(history, o)
				mu.Unlock()
				if o.outcome != "ok" {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	r := rand.New(rand.NewPCG(7, 7))
	for c := range cycles {
		time.Sleep(time.Duration(500+r.IntN(1500)) * time.Millisecond)
		p.kill()
		mu.Lock()
		t.Logf("cycle %d: killed with %d ops so far", c+1, len(history))
		mu.Unlock()
		p.start()
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()

	if strings.Contains(p.logs.String(), "INTEGRITY ALARM") {
		t.Fatalf("a start-up self-check raised an integrity alarm:\n%s", p.logs.String())
	}
	counts := map[string]int{}
	for _, o := range history {
		counts[o.outcome]++
	}
	t.Logf("history: %d ops: %v", len(history), counts)
	if counts["ok"] < 50 {
		t.Fatalf("only %d acknowledged ops: the test did not exercise the server", counts["ok"])
	}

	for _, ws := range workspaces {
		// A final signed checkpoint covering everything, then the check.
		status, b, _ := call(t, "POST", p.url()+"/v1/events?wait=checkpoint", keys[ws], "application/json",
			[]byte(`{"type":"test.finished","actor":{"type":"system","id":"test"}}`))
		if status != 201 {
			t.Fatalf("final append to %s: %d %s", ws, status, b)
		}
		byID := checkHistory(t, ws, exportAll(t, p.url(), keys[ws]), history)
		// Indeterminate ops resolve: retrying them with the same ids is
		// answered from the log (replayed) or appends them now, once.
		for _, o := range history {
			if o.ws != ws || o.outcome != "indeterminate" {
				continue
			}
			outcome, seqs := sendOp(hc, p.url(), keys[ws], o.events)
			if outcome != "ok" {
				t.Fatalf("%s: retrying an indeterminate op: %s", ws, outcome)
			}
			for i, ev := range o.events {
				if e, present := byID[ev["id"].(string)]; present && e.Seq != seqs[i] {
					t.Errorf("%s: retry of %s answered seq %d, stored at %d", ws, ev["id"], seqs[i], e.Seq)
				}
			}
		}
		verifyLog(t, p.url(), keys[ws], ws)
	}
}

// createTestWorkspaces makes workspaces ws-a and ws-b beside default and
// returns the three with an admin key of each.
func createTestWorkspaces(t *testing.T, url string) (map[string]string, []string) {
	t.Helper()
	keys := map[string]string{"default": fixedOperatorKey}
	for _, ws := range []string{"ws-a", "ws-b"} {
		status, b, _ := call(t, "POST", url+"/v1/workspaces", fixedOperatorKey, "application/json", []byte(`{"id":"`+ws+`"}`))
		var created struct{ Key struct{ Key string } }
		json.Unmarshal(b, &created)
		if status != 201 {
			t.Fatalf("create %s: %d %s", ws, status, b)
		}
		keys[ws] = created.Key.Key
	}
	return keys, []string{"default", "ws-a", "ws-b"}
}

// checkHistory checks ws's exported log against the history of appends
// that clients saw: positions gap-free, no id twice, every acknowledged
// event present once at its acknowledged seq with its content, each
// writer's acknowledged events in order, nothing of a rejected request,
// nothing that was never sent. It returns the log's events by id.
func checkHistory(t *testing.T, ws string, events []exportedEvent, history []*op) map[string]exportedEvent {
	t.Helper()
	byID := map[string]exportedEvent{}
	for i, e := range events {
		if e.Seq != int64(i) {
			t.Fatalf("%s: gap: position %d holds seq %d", ws, i, e.Seq)
		}
		if _, dup := byID[e.ID]; dup {
			t.Fatalf("%s: id %s logged twice", ws, e.ID)
		}
		byID[e.ID] = e
	}
	sent := map[string]bool{}
	lastSeq := map[int]int64{}
	for _, o := range history {
		if o.ws != ws {
			continue
		}
		for i, ev := range o.events {
			id := ev["id"].(string)
			sent[id] = true
			got, present := byID[id]
			switch o.outcome {
			case "ok":
				if !present {
					t.Errorf("%s: LOST: acknowledged event %s (seq %d) is missing", ws, id, o.seqs[i])
					continue
				}
				if got.Seq != o.seqs[i] {
					t.Errorf("%s: event %s acknowledged at seq %d but stored at %d", ws, id, o.seqs[i], got.Seq)
				}
				if got.Raw["node"] != ev["node"] {
					t.Errorf("%s: event %s content differs", ws, id)
				}
				if lastSeq[o.writer] != 0 && got.Seq <= lastSeq[o.writer] {
					t.Errorf("%s: REORDERED: writer %d's event %s at seq %d after one at %d", ws, o.writer, id, got.Seq, lastSeq[o.writer])
				}
				lastSeq[o.writer] = got.Seq
			case "fail":
				if present {
					t.Errorf("%s: event %s of a rejected request is in the log", ws, id)
				}
			}
		}
	}
	for id, e := range byID {
		if e.Type == "node.config_changed" && !sent[id] {
			t.Errorf("%s: UNEXPECTED: event %s was never sent", ws, id)
		}
	}
	return byID
}

// sendOp posts events and classifies the outcome: ok (201), fail (a 4xx:
// nothing was logged), or indeterminate (no answer, or 5xx).
func sendOp(hc *http.Client, url, key string, events []map[string]any) (string, []int64) {
	body, _ := json.Marshal(map[string]any{"events": events})
	req, _ := http.NewRequest("POST", url+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "indeterminate", nil
	}
	defer resp.Body.Close()
	var r struct{ Events []struct{ Seq int64 } }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil && resp.StatusCode == 201 {
		return "indeterminate", nil
	}
	switch {
	case resp.StatusCode == 201:
		seqs := make([]int64, len(r.Events))
		for i, e := range r.Events {
			seqs[i] = e.Seq
		}
		return "ok", seqs
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 429:
		return "fail", nil
	}
	return "indeterminate", nil
}
