package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stele-log/stele/api"
	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/sequencer"
	"github.com/stele-log/stele/store/sqlite"
)

// TestWaitCheckpointPending: when no checkpoint covers the events within
// the bound (signing stalled: nothing runs the checkpointer here), the
// answer is still 201 with the receipts, says the checkpoint is pending,
// and the events are in the log.
func TestWaitCheckpointPending(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "stele.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	skey, _ := checkpoint.GenerateKey("stele.test")
	key, _ := checkpoint.ParseKey(skey)
	cps := sequencer.NewCheckpointer(store, key, nil, nil, nil) // never run: signing is stalled
	seq := sequencer.New(store, key.MACKey(), sequencer.Config{})
	defer seq.Close()
	srv := api.New(api.Config{Store: store, Sequencer: seq, Checkpointer: cps, Key: key, CheckpointWait: 50 * time.Millisecond})
	defer srv.Close()
	_, _, opKey := api.NewKeySecret("default")
	if _, err := api.Bootstrap(ctx, srv, api.BootstrapConfig{AdminKey: opKey, AdminPassword: "correct horse battery staple"}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	post := func(query string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", hs.URL+"/v1/events"+query, strings.NewReader(`{"type":"user.login","actor":{"type":"user","id":"carol@acme.com"}}`))
		req.Header.Set("Authorization", "Bearer "+opKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	before, _ := store.Head(ctx, "default")
	status, m := post("?wait=checkpoint")
	if status != 201 || m["checkpoint_status"] != "pending" || m["checkpoint"] != nil || len(m["events"].([]any)) != 1 {
		t.Fatalf("wait=checkpoint with signing stalled: %d %v", status, m)
	}
	if after, _ := store.Head(ctx, "default"); after.Size != before.Size+1 {
		t.Errorf("the log grew from %d to %d, want one event", before.Size, after.Size)
	}
	status, m = post("?wait=forever")
	if e, _ := m["error"].(map[string]any); status != 400 || e["field"] != "wait" {
		t.Errorf("wait=forever: %d %v", status, m)
	}
	if status, m = post(""); status != 201 || m["checkpoint_status"] != nil {
		t.Errorf("no wait: %d %v", status, m)
	}
}
