package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gowebpki/jcs"
	"github.com/stele-log/stele/api"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// steleBin is the stele binary built once for tests that run it as a
// separate process (crash tests); empty until needed.
var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stele-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "stele")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// testServer is a stele serve running in this process.
type testServer struct {
	URL     string
	Key     string // operator key of the default workspace
	DataDir string
	stdout  *syncBuffer
	stderr  *syncBuffer
	cancel  context.CancelFunc
	done    chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs serve on a free port over dataDir (a new temp dir when
// empty) and stops it at the end of the test. Under TestOnPostgres the log
// lives in a PostgreSQL database of the test's own, one per dataDir.
func startServer(t *testing.T, dataDir string, extra ...func(*serveConfig)) *testServer {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	key := fixedOperatorKey
	cfg := serveConfig{DataDir: dataDir, Listen: "127.0.0.1:0", Name: "stele.test", SigningKey: filepath.Join(dataDir, "signing.key"),
		Limits:    api.Limits{LoginsPerMinutePerIP: 1000, LoginFreeFailures: 5, LoginMaxLockout: time.Minute, FailuresPerMinute: 1000},
		Bootstrap: api.BootstrapConfig{AdminKey: key, AdminEmail: adminEmail, AdminPassword: adminPassword}}
	if onPostgres(t) {
		cfg.DB = postgresFor(t, dataDir) // see postgres_e2e_test.go
	}
	for _, f := range extra {
		f(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Key: key, DataDir: dataDir, stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() { ts.done <- serve(ctx, cfg, ts.stdout, ts.stderr, func(addr string) { ready <- addr }) }()
	select {
	case addr := <-ready:
		ts.URL = "http://" + addr
	case err := <-ts.done:
		t.Fatalf("serve failed to start: %v\nstderr:\n%s", err, ts.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start within 30s")
	}
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down gracefully and waits for it.
func (ts *testServer) stop(t *testing.T) {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	ts.cancel = nil
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("serve did not stop within 60s")
	}
}

// The bootstrap admin user of test servers.
const (
	adminEmail    = "admin@stele.test"
	adminPassword = "correct horse battery staple"
)

// fixedOperatorKey is installed through STELE_ADMIN_KEY in tests.
var fixedOperatorKey = func() string {
	_, _, k := api.NewKeySecret("default")
	return k
}()

// call sends a request with key and returns status and body.
func call(t *testing.T, method, url, key, contentType string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// exportedEvent is an event as exported (NDJSON), with the leaf recomputed.
type exportedEvent struct {
	Seq      int64
	ID       string
	Type     string
	KeyID    string
	Raw      map[string]any
	LeafHash string
}

// exportAll downloads ws's whole log as NDJSON in seq order and recomputes
// every leaf hash independently of the server (JCS of the event without
// seq and leaf_hash, RFC 6962 leaf hash by x/mod/sumdb/tlog).
func exportAll(t *testing.T, baseURL, key string) []exportedEvent {
	t.Helper()
	status, body, _ := call(t, "GET", baseURL+"/v1/export?format=ndjson&order=asc", key, "", nil)
	if status != 200 {
		t.Fatalf("export: %d %s", status, body)
	}
	var out []exportedEvent
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		seq, _ := m["seq"].(json.Number).Int64()
		e := exportedEvent{Seq: seq, ID: m["id"].(string), Type: m["type"].(string), LeafHash: m["leaf_hash"].(string), Raw: m}
		if em, ok := m["emitter"].(map[string]any); ok {
			e.KeyID, _ = em["key_id"].(string)
		}
		out = append(out, e)
	}
	// Export orders by event time; the log's order is seq.
	sortBySeq(out)
	return out
}

func sortBySeq(es []exportedEvent) {
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].Seq < es[j-1].Seq; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// recomputeLeaf canonicalizes the exported event without seq and leaf_hash.
func recomputeLeaf(t *testing.T, e exportedEvent) tlog.Hash {
	t.Helper()
	m := map[string]any{}
	for k, v := range e.Raw {
		if k != "seq" && k != "leaf_hash" {
			m[k] = v
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	canon, err := jcs.Transform(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tlog.RecordHash(canon)
}

// verifyLog checks a whole exported log against the latest checkpoint with
// x/mod's note and tlog only: contiguous seqs, every leaf recomputed, and the
// root of the recomputed leaves equal to the signed root. It returns the
// checkpoint's size.
func verifyLog(t *testing.T, baseURL, key, ws string) int64 {
	t.Helper()
	// The checkpoint first: the export logs its own access event after it.
	_, vkeyBody, _ := call(t, "GET", baseURL+"/v1/log/key", key, "", nil)
	_, cpBody, _ := call(t, "GET", baseURL+"/v1/checkpoint", key, "", nil)
	events := exportAll(t, baseURL, key)
	v, err := note.NewVerifier(strings.TrimSpace(string(vkeyBody)))
	if err != nil {
		t.Fatalf("log key %q: %v", vkeyBody, err)
	}
	n, err := note.Open(cpBody, note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint does not verify: %v\n%s", err, cpBody)
	}
	lines := strings.Split(n.Text, "\n")
	if lines[0] != "stele.test/"+ws {
		t.Fatalf("checkpoint origin %q", lines[0])
	}
	var size int64
	fmt.Sscan(lines[1], &size)
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	var hashes []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hashes[x]
		}
		return out, nil
	})
	for i, e := range events {
		if e.Seq != int64(i) {
			t.Fatalf("seq %d missing (found %d)", i, e.Seq)
		}
		leaf := recomputeLeaf(t, e)
		if leaf.String() != e.LeafHash {
			t.Fatalf("seq %d: recomputed leaf %v, exported %s", e.Seq, leaf, e.LeafHash)
		}
		hs, err := tlog.StoredHashesForRecordHash(int64(i), leaf, reader)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
	}
	if int64(len(events)) < size {
		t.Fatalf("export has %d events, checkpoint covers %d", len(events), size)
	}
	got, err := tlog.TreeHash(size, reader)
	if err != nil || got != root {
		t.Fatalf("root of the first %d recomputed leaves = %v (%v), checkpoint says %v", size, got, err, root)
	}
	return size
}

// waitRefusalsRecorded waits until the server has appended every refusal
// it queued: denials, rejected keys and failed logins are recorded off the
// request path (api/failures.go), so a test reads them only after this.
func waitRefusalsRecorded(t *testing.T, ts *testServer) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		_, b, _ := call(t, "GET", ts.URL+"/metrics", "", "", nil)
		if regexp.MustCompile(`(?m)^stele_refusals_pending 0$`).Match(b) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("refusals still queued after a minute")
		}
	}
}
