package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestIngestEndToEnd(t *testing.T) {
	ts := startServer(t, "")
	post := func(body, contentType string) (int, map[string]any) {
		t.Helper()
		status, b, _ := call(t, "POST", ts.URL+"/v1/events", ts.Key, contentType, []byte(body))
		var m map[string]any
		json.Unmarshal(b, &m)
		return status, m
	}
	// One event, a batch, NDJSON.
	status, m := post(`{"type":"incident.opened","actor":{"type":"system","id":"system","name":"system (auto)"},"node":"nyc-edge-01","resource":{"type":"incident","id":"a3f7c2b1"},"context":{"peak_bps":48200000000}}`, "application/json")
	if status != 201 || len(m["events"].([]any)) != 1 {
		t.Fatalf("single event: %d %v", status, m)
	}
	status, m = post(`{"events":[{"type":"pcap.started","actor":{"type":"system","id":"system"}},{"type":"pcap.downloaded","actor":{"type":"user","id":"alice@acme.com"},"ip":"203.0.113.42"}]}`, "application/json")
	if status != 201 || len(m["events"].([]any)) != 2 {
		t.Fatalf("batch: %d %v", status, m)
	}
	status, m = post("{\"type\":\"node.added\",\"actor\":{\"type\":\"user\",\"id\":\"bob@acme.com\"}}\n{\"type\":\"node.renamed\",\"actor\":{\"type\":\"user\",\"id\":\"bob@acme.com\"}}\n", "application/x-ndjson")
	if status != 201 || len(m["events"].([]any)) != 2 {
		t.Fatalf("ndjson: %d %v", status, m)
	}
	seqs := map[float64]bool{}
	for _, e := range m["events"].([]any) {
		seqs[e.(map[string]any)["seq"].(float64)] = true
	}

	// Idempotency: same id and content → the original; other content → 409.
	ev := `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","type":"api_key.rotated","actor":{"type":"service","id":"deploy-bot"}}`
	s1, m1 := post(ev, "application/json")
	s2, m2 := post(ev, "application/json")
	r1, r2 := m1["events"].([]any)[0].(map[string]any), m2["events"].([]any)[0].(map[string]any)
	if s1 != 201 || s2 != 201 || r1["seq"] != r2["seq"] || r1["leaf_hash"] != r2["leaf_hash"] || r2["replayed"] != true {
		t.Fatalf("replay: %d %v / %d %v", s1, r1, s2, r2)
	}
	s3, m3 := post(strings.Replace(ev, "deploy-bot", "other-bot", 1), "application/json")
	if s3 != 409 || m3["error"].(map[string]any)["field"] != "id" {
		t.Fatalf("same id, other content: %d %v", s3, m3)
	}

	// ?wait=checkpoint returns a signed checkpoint covering the events.
	status, b, _ := call(t, "POST", ts.URL+"/v1/events?wait=checkpoint", ts.Key, "application/json", []byte(`{"type":"user.login","actor":{"type":"user","id":"carol@acme.com"}}`))
	var waited struct {
		Events     []struct{ Seq int64 }
		Checkpoint string
	}
	json.Unmarshal(b, &waited)
	if status != 201 || !strings.HasPrefix(waited.Checkpoint, "stele.test/default\n") {
		t.Fatalf("wait=checkpoint: %d %s", status, b)
	}
	var cpSize int64
	fmt.Sscan(strings.Split(waited.Checkpoint, "\n")[1], &cpSize)
	if cpSize <= waited.Events[0].Seq {
		t.Fatalf("checkpoint of size %d does not cover seq %d", cpSize, waited.Events[0].Seq)
	}

	// Everything verifies independently.
	size := verifyLog(t, ts.URL, ts.Key, "default")
	if size < 8 {
		t.Errorf("checkpoint covers %d events, want at least 8", size)
	}
}

// TestBadInputStoresNothing sends each kind of bad input and checks the
// status, the field named, and that the log did not grow (INP-01…INP-14).
func TestBadInputStoresNothing(t *testing.T) {
	ts := startServer(t, "")
	head := func() string {
		_, b, _ := call(t, "GET", ts.URL+"/v1/events?limit=1000&type=incident.opened", ts.Key, "", nil)
		return string(b)
	}
	valid := `{"type":"incident.opened","actor":{"type":"system","id":"system"}}`
	deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	cases := []struct {
		name, body, contentType string
		status                  int
		field                   string
	}{
		{"bad type syntax", `{"type":"Incident Opened","actor":{"type":"system","id":"system"}}`, "application/json", 400, "type"},
		{"one-segment type", `{"type":"incident","actor":{"type":"system","id":"system"}}`, "application/json", 400, "type"},
		{"missing type", `{"actor":{"type":"system","id":"system"}}`, "application/json", 400, "type"},
		{"missing actor", `{"type":"incident.opened"}`, "application/json", 400, "actor"},
		{"bad actor type", `{"type":"incident.opened","actor":{"type":"robot","id":"r"}}`, "application/json", 400, "actor.type"},
		{"unknown actor field", `{"type":"incident.opened","actor":{"type":"user","id":"a","email":"x"}}`, "application/json", 400, "actor.email"},
		{"invalid ip", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"ip":"999.1.1.1"}`, "application/json", 400, "ip"},
		{"octal-looking ip", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"ip":"010.0.0.1"}`, "application/json", 400, "ip"},
		{"zoned ip", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"ip":"fe80::1%eth0"}`, "application/json", 400, "ip"},
		{"future time", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"time":"` + future + `"}`, "application/json", 400, "time"},
		{"unparsable time", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"time":"2026-02-30T10:00:00Z"}`, "application/json", 400, "time"},
		{"time without zone", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"time":"2026-03-09T14:02:11"}`, "application/json", 400, "time"},
		{"year 1", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"time":"0001-01-01T00:00:00Z"}`, "application/json", 400, "time"},
		{"context not an object", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"context":[1,2]}`, "application/json", 400, "context"},
		{"context too big", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"context":{"x":"` + strings.Repeat("a", 70000) + `"}}`, "application/json", 400, "context"},
		{"unknown field", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"severity":"high"}`, "application/json", 400, "severity"},
		{"workspace override", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"workspace_id":"other"}`, "application/json", 400, "workspace_id"},
		{"client seq", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"seq":5}`, "application/json", 400, "seq"},
		{"client received_at", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"received_at":"2026-01-01T00:00:00Z"}`, "application/json", 400, "received_at"},
		{"client emitter", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"emitter":{"key_id":"x"}}`, "application/json", 400, "emitter"},
		{"client leaf_hash", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"leaf_hash":"x"}`, "application/json", 400, "leaf_hash"},
		{"duplicate key", `{"type":"incident.opened","type":"pcap.started","actor":{"type":"system","id":"system"}}`, "application/json", 400, "type"},
		{"duplicate nested key", `{"type":"incident.opened","actor":{"type":"system","id":"a","id":"b"}}`, "application/json", 400, "actor.id"},
		{"invalid utf-8", "{\"type\":\"incident.opened\",\"actor\":{\"type\":\"system\",\"id\":\"\xff\"}}", "application/json", 400, "actor.id"},
		{"lone surrogate", `{"type":"incident.opened","actor":{"type":"system","id":"\ud800"}}`, "application/json", 400, "actor.id"},
		{"too deep", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"context":` + deep + `}`, "application/json", 400, "context" + strings.Repeat(".a", 31)},
		{"huge integer", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"context":{"n":12345678901234567890}}`, "application/json", 400, "context.n"},
		{"number overflow", `{"type":"incident.opened","actor":{"type":"system","id":"system"},"context":{"n":1e400}}`, "application/json", 400, "context.n"},
		{"bad id", `{"id":"not-a-uuid","type":"incident.opened","actor":{"type":"system","id":"system"}}`, "application/json", 400, "id"},
		{"batch with one bad element", `{"events":[` + valid + `,` + valid + `,{"type":"x","actor":{"type":"system","id":"system"}}]}`, "application/json", 400, "events[2].type"},
		{"ndjson with one bad line", valid + "\n" + `{"type":"incident.opened"}` + "\n", "application/x-ndjson", 400, "events[1].actor"},
		{"empty batch", `{"events":[]}`, "application/json", 400, "events"},
		{"trailing garbage", valid + " x", "application/json", 400, ""},
		{"not json", `hello`, "application/json", 400, ""},
		{"wrong content type", valid, "text/plain", 415, ""},
		{"no content type", valid, "", 415, ""},
	}
	before := head()
	for _, c := range cases {
		status, b, _ := call(t, "POST", ts.URL+"/v1/events", ts.Key, c.contentType, []byte(c.body))
		var e struct {
			Error struct{ Code, Message, Field string }
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Errorf("%s: body is not a JSON error: %s", c.name, b)
		}
		if status != c.status || e.Error.Field != c.field {
			t.Errorf("%s: %d field %q, want %d field %q (%s)", c.name, status, e.Error.Field, c.status, c.field, e.Error.Message)
		}
	}
	// A batch of more than 1000 events.
	many := "{\"events\":[" + strings.TrimSuffix(strings.Repeat(valid+",", 1001), ",") + "]}"
	if status, _, _ := call(t, "POST", ts.URL+"/v1/events", ts.Key, "application/json", []byte(many)); status != 400 {
		t.Errorf("1001 events: %d, want 400", status)
	}
	if after := head(); after != before {
		t.Errorf("bad input changed the log")
	}
}

// TestBodyLimits checks that oversized bodies get 413 without the server
// reading them whole, with and without Content-Length, and gzip bombs.
func TestBodyLimits(t *testing.T) {
	ts := startServer(t, "")
	big := bytes.Repeat([]byte("a"), 6<<20)
	status, _, _ := call(t, "POST", ts.URL+"/v1/events", ts.Key, "application/json", big)
	if status != 413 {
		t.Errorf("6 MiB body with Content-Length: %d, want 413", status)
	}
	// Chunked: no Content-Length.
	req, _ := http.NewRequest("POST", ts.URL+"/v1/events", struct{ *bytes.Reader }{bytes.NewReader(big)})
	req.Header.Set("Authorization", "Bearer "+ts.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		if resp.StatusCode != 413 {
			t.Errorf("chunked 6 MiB body: %d, want 413", resp.StatusCode)
		}
		resp.Body.Close()
	}
	// A gzip bomb: 1 MB that inflates to 1 GB.
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	chunk := make([]byte, 1<<20)
	for range 64 {
		zw.Write(chunk)
	}
	zw.Close()
	req, _ = http.NewRequest("POST", ts.URL+"/v1/events", bytes.NewReader(z.Bytes()))
	req.Header.Set("Authorization", "Bearer "+ts.Key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("gzip bomb: %d, want 413", resp.StatusCode)
	}
	// One event over 256 KiB inside an acceptable body.
	huge := `{"type":"incident.opened","actor":{"type":"system","id":"system","name":"` + strings.Repeat("n", 300<<10) + `"}}`
	if status, _, _ := call(t, "POST", ts.URL+"/v1/events", ts.Key, "application/json", []byte(huge)); status != 413 {
		t.Errorf("300 KiB event: %d, want 413", status)
	}
}

func TestAuthAndScopes(t *testing.T) {
	ts := startServer(t, "")
	ev := []byte(`{"type":"incident.opened","actor":{"type":"system","id":"system"}}`)
	// Every kind of bad credential gets the same 401 body.
	var bodies []string
	for _, key := range []string{"", "garbage", "stl_default_aaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", flipLast(ts.Key)} {
		status, b, h := call(t, "POST", ts.URL+"/v1/events", key, "application/json", ev)
		if status != 401 || h.Get("WWW-Authenticate") == "" {
			t.Errorf("key %q: %d", key, status)
		}
		bodies = append(bodies, string(b))
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("401 bodies differ: %q vs %q", b, bodies[0])
		}
	}
	// A write-only key cannot read; a read-only key cannot write.
	mk := func(scopes string) string {
		status, b, _ := call(t, "POST", ts.URL+"/v1/keys", ts.Key, "application/json", []byte(`{"name":"k","scopes":`+scopes+`}`))
		var k struct{ Key string }
		json.Unmarshal(b, &k)
		if status != 201 || k.Key == "" {
			t.Fatalf("create key: %d %s", status, b)
		}
		return k.Key
	}
	w, r := mk(`["events:write"]`), mk(`["events:read"]`)
	if status, _, _ := call(t, "GET", ts.URL+"/v1/events", w, "", nil); status != 403 {
		t.Errorf("write key reading: %d, want 403", status)
	}
	if status, _, _ := call(t, "POST", ts.URL+"/v1/events", r, "application/json", ev); status != 403 {
		t.Errorf("read key writing: %d, want 403", status)
	}
	if status, _, _ := call(t, "POST", ts.URL+"/v1/workspaces", r, "application/json", []byte(`{"id":"x"}`)); status != 403 {
		t.Errorf("workspace key creating a workspace: %d, want 403", status)
	}
	if status, _, _ := call(t, "POST", ts.URL+"/v1/events", w, "application/json", ev); status != 201 {
		t.Errorf("write key writing: %d", status)
	}
	// Keys are listed without secrets.
	_, b, _ := call(t, "GET", ts.URL+"/v1/keys", ts.Key, "", nil)
	if strings.Contains(string(b), strings.Split(w, "_")[3]) || strings.Contains(string(b), "secret") || strings.Contains(string(b), `"key"`) {
		t.Errorf("key listing exposes secrets: %s", b)
	}
}

func TestWorkspacesAreSeparateLogs(t *testing.T) {
	ts := startServer(t, "")
	status, b, _ := call(t, "POST", ts.URL+"/v1/workspaces", ts.Key, "application/json", []byte(`{"id":"acme","name":"Acme"}`))
	var created struct {
		Workspace struct {
			ID, Origin string
			LogKey     string `json:"log_key"`
		}
		Key struct{ Key string }
	}
	json.Unmarshal(b, &created)
	if status != 201 || created.Key.Key == "" || created.Workspace.Origin != "stele.test/acme" {
		t.Fatalf("create workspace: %d %s", status, b)
	}
	if status, _, _ := call(t, "POST", ts.URL+"/v1/workspaces", ts.Key, "application/json", []byte(`{"id":"acme"}`)); status != 409 {
		t.Errorf("taken workspace id: %d, want 409", status)
	}
	acme := created.Key.Key
	for range 3 {
		call(t, "POST", ts.URL+"/v1/events", acme, "application/json", []byte(`{"type":"incident.opened","actor":{"type":"system","id":"system"}}`))
	}
	_, b, _ = call(t, "POST", ts.URL+"/v1/events?wait=checkpoint", acme, "application/json", []byte(`{"type":"incident.resolved","actor":{"type":"system","id":"system"}}`))
	// acme's events start at 1 (0 is the creation of its admin key) and stay in acme.
	if !strings.Contains(string(b), `"seq":4`) {
		t.Errorf("acme's fifth event: %s", b)
	}
	verifyLog(t, ts.URL, acme, "acme")
	_, b, _ = call(t, "GET", ts.URL+"/v1/events?type=incident.resolved", ts.Key, "", nil)
	if strings.Contains(string(b), "incident.resolved") {
		t.Errorf("default sees acme's events: %s", b)
	}
}

func TestGracefulShutdownSignsEverything(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	var last int64
	for i := range 20 {
		status, b, _ := call(t, "POST", ts.URL+"/v1/events", ts.Key, "application/json", []byte(fmt.Sprintf(`{"type":"node.added","actor":{"type":"system","id":"system"},"node":"n%d"}`, i)))
		var r struct{ Events []struct{ Seq int64 } }
		json.Unmarshal(b, &r)
		if status != 201 {
			t.Fatal(status)
		}
		last = r.Events[0].Seq
	}
	ts.stop(t)
	// After a restart, the stored checkpoint (from the final flush) covers
	// every acknowledged event, and the stop is in the system log.
	ts2 := startServer(t, dir)
	_, cp, _ := call(t, "GET", ts2.URL+"/v1/checkpoint", ts2.Key, "", nil)
	var size int64
	fmt.Sscan(strings.Split(string(cp), "\n")[1], &size)
	if size <= last {
		t.Errorf("after a graceful stop the checkpoint covers %d events; seq %d was acknowledged", size, last)
	}
	verifyLog(t, ts2.URL, ts2.Key, "default")
}

// flipLast changes the last character of a key's secret.
func flipLast(key string) string {
	last := key[len(key)-1]
	if last == 'a' {
		return key[:len(key)-1] + "b"
	}
	return key[:len(key)-1] + "a"
}
