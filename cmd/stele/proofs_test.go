package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// openedCheckpoint is a checkpoint opened with x/mod's note alone.
type openedCheckpoint struct {
	Size int64
	Root tlog.Hash
	Note string
	// LastSeq, from appendWaiting, is the seq of the last event appended.
	LastSeq int64
}

// openCheckpoint verifies a signed checkpoint with note.Open against vkey
// and parses its C2SP body.
func openCheckpoint(t *testing.T, vkey, msg string) openedCheckpoint {
	t.Helper()
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		t.Fatalf("log key %q: %v", vkey, err)
	}
	n, err := note.Open([]byte(msg), note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint does not verify: %v\n%s", err, msg)
	}
	lines := strings.Split(n.Text, "\n")
	var size int64
	fmt.Sscan(lines[1], &size)
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	return openedCheckpoint{Size: size, Root: root, Note: msg}
}

// appendWaiting posts n events with ?wait=checkpoint and returns the
// checkpoint of the answer, opened.
func appendWaiting(t *testing.T, ts *testServer, key, vkey string, n int, typ string) openedCheckpoint {
	t.Helper()
	var evs []string
	for i := range n {
		evs = append(evs, fmt.Sprintf(`{"type":%q,"actor":{"type":"user","id":"u%d@acme.com"},"node":"nyc-edge-0%d","ip":"203.0.113.%d"}`, typ, i, i%4, i+1))
	}
	status, b, _ := call(t, "POST", ts.URL+"/v1/events?wait=checkpoint", key, "application/json", []byte(`{"events":[`+strings.Join(evs, ",")+`]}`))
	var resp struct {
		Events           []struct{ Seq int64 }
		Checkpoint       string
		CheckpointStatus string `json:"checkpoint_status"`
	}
	if err := json.Unmarshal(b, &resp); err != nil || status != 201 {
		t.Fatalf("append: %d %s", status, b)
	}
	if resp.CheckpointStatus != "included" {
		t.Fatalf("wait=checkpoint: checkpoint_status %q", resp.CheckpointStatus)
	}
	cp := openCheckpoint(t, vkey, resp.Checkpoint)
	if last := resp.Events[len(resp.Events)-1].Seq; cp.Size <= last {
		t.Fatalf("the checkpoint of %d does not cover seq %d", cp.Size, last)
	}
	cp.LastSeq = resp.Events[len(resp.Events)-1].Seq
	return cp
}

func getText(t *testing.T, url, key string) string {
	t.Helper()
	status, b, _ := call(t, "GET", url, key, "", nil)
	if status != 200 {
		t.Fatalf("GET %s: %d %s", url, status, b)
	}
	return string(b)
}

// TestProofAPI checks every inclusion proof of every checkpoint, and the
// consistency proof of every pair of checkpoints, with tlog against roots
// from checkpoints opened with note and leaves recomputed from the export
// (JCS + RFC 6962) — none of it the server's code. Bad parameters are 400s
// naming the parameter.
func TestProofAPI(t *testing.T) {
	ts := startServer(t, "")
	vkey := getText(t, ts.URL+"/v1/log/key", ts.Key)
	var cps []openedCheckpoint
	for step := range 5 {
		cps = append(cps, appendWaiting(t, ts, ts.Key, vkey, 2*step+1, "incident.opened"))
	}
	events := exportAll(t, ts.URL, ts.Key)
	leaves := make([]tlog.Hash, len(events))
	for i, e := range events {
		leaves[i] = recomputeLeaf(t, e)
	}
	for _, cp := range cps {
		for i := int64(0); i < cp.Size; i++ {
			var p struct {
				Index, Size int64
				Hashes      []tlog.Hash
			}
			body := getText(t, fmt.Sprintf("%s/v1/proofs/inclusion?index=%d&size=%d", ts.URL, i, cp.Size), ts.Key)
			if err := json.Unmarshal([]byte(body), &p); err != nil || p.Index != i || p.Size != cp.Size {
				t.Fatalf("inclusion %d in %d: %s", i, cp.Size, body)
			}
			if err := tlog.CheckRecord(p.Hashes, cp.Size, cp.Root, i, leaves[i]); err != nil {
				t.Errorf("inclusion of %d in %d does not verify: %v", i, cp.Size, err)
			}
			if i > 0 && tlog.CheckRecord(p.Hashes, cp.Size, cp.Root, i, leaves[i-1]) == nil {
				t.Errorf("the proof of %d in %d also proves another leaf", i, cp.Size)
			}
		}
	}
	for a := range cps {
		for b := a; b < len(cps); b++ {
			var p struct {
				From, To int64
				Hashes   []tlog.Hash
			}
			body := getText(t, fmt.Sprintf("%s/v1/proofs/consistency?from=%d&to=%d", ts.URL, cps[a].Size, cps[b].Size), ts.Key)
			if err := json.Unmarshal([]byte(body), &p); err != nil || p.From != cps[a].Size || p.To != cps[b].Size {
				t.Fatalf("consistency %d→%d: %s", cps[a].Size, cps[b].Size, body)
			}
			if err := tlog.CheckTree(p.Hashes, cps[b].Size, cps[b].Root, cps[a].Size, cps[a].Root); err != nil {
				t.Errorf("consistency %d→%d does not verify: %v", cps[a].Size, cps[b].Size, err)
			}
		}
	}

	// GET /v1/events/{id}: the event with its proof against the latest checkpoint.
	var got struct {
		Event map[string]any
		Proof struct {
			Index, Size int64
			Hashes      []tlog.Hash
		}
		Checkpoint string
	}
	json.Unmarshal([]byte(getText(t, ts.URL+"/v1/events/"+events[3].ID, ts.Key)), &got)
	cp := openCheckpoint(t, vkey, got.Checkpoint)
	if got.Proof.Index != 3 || got.Proof.Size != cp.Size || tlog.CheckRecord(got.Proof.Hashes, cp.Size, cp.Root, 3, leaves[3]) != nil {
		t.Errorf("GET /v1/events/{id}: proof %+v does not verify against %d", got.Proof, cp.Size)
	}

	size := cps[len(cps)-1].Size
	head := size + 10 // generous: reads logged meanwhile
	for _, c := range []struct{ query, field string }{
		{"inclusion", "index"},
		{"inclusion?index=1", "size"},
		{"inclusion?size=3", "index"},
		{"inclusion?index=x&size=3", "index"},
		{"inclusion?index=-1&size=3", "index"},
		{"inclusion?index=01&size=3", "index"},
		{"inclusion?index=1&index=2&size=3", "index"},
		{"inclusion?index=3&size=3", "index"},
		{"inclusion?index=0&size=0", "size"},
		{fmt.Sprintf("inclusion?index=0&size=%d", head*100), "size"},
		{"inclusion?index=0&size=3&workspace=other", "workspace"},
		{"consistency?from=0&to=3", "from"},
		{"consistency?from=4&to=3", "from"},
		{"consistency?from=1", "to"},
		{"consistency?to=3", "from"},
		{"consistency?from=1.5&to=3", "from"},
		{fmt.Sprintf("consistency?from=1&to=%d", head*100), "to"},
		{"consistency?from=1&to=3&x=1", "x"},
	} {
		status, b, _ := call(t, "GET", ts.URL+"/v1/proofs/"+c.query, ts.Key, "", nil)
		var e struct{ Error struct{ Field string } }
		json.Unmarshal(b, &e)
		if status != 400 || e.Error.Field != c.field {
			t.Errorf("%s: %d %s, want 400 naming %s", c.query, status, b, c.field)
		}
	}
	// The same size is an empty consistency proof.
	if body := getText(t, fmt.Sprintf("%s/v1/proofs/consistency?from=%d&to=%d", ts.URL, size, size), ts.Key); !strings.Contains(body, `"hashes":[]`) {
		t.Errorf("consistency of a tree with itself: %s", body)
	}
}
