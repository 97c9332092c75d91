package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/eventgen"
)

// TestReadBadParameters sends every kind of invalid read parameter: each is
// a 400 naming the parameter, and changes nothing (no access event).
func TestReadBadParameters(t *testing.T) {
	ts := startServer(t, "")
	now := time.Now().UTC()
	ingest(t, ts, ts.Key, eventgen.New(5).Stream(30, now, time.Hour, true))
	_, body, _ := call(t, "GET", ts.URL+"/v1/events?limit=5", ts.Key, "", nil)
	var page struct {
		NextCursor string `json:"next_cursor"`
	}
	json.Unmarshal(body, &page)
	if page.NextCursor == "" {
		t.Fatal("no cursor")
	}
	c := []byte(page.NextCursor)
	c[len(c)/3] ^= 1 // a flipped bit in the payload
	tampered := url.QueryEscape(string(c))
	c = []byte(page.NextCursor)
	c[len(c)-2] = map[bool]byte{true: 'B', false: 'A'}[c[len(c)-2] == 'A'] // a changed signature
	resigned := url.QueryEscape(string(c))
	cursor := url.QueryEscape(page.NextCursor)
	tests := []struct{ path, field string }{
		{"/v1/events?since=yesterday", "since"},
		{"/v1/events?until=2026-13-01T00:00:00Z", "until"},
		{"/v1/events?since=2026-03-09", "since"},
		{"/v1/events?since=-5m", "since"},
		{"/v1/events?since=2026-03-09T00:00:00Z&until=2026-03-08T00:00:00Z", "until"},
		{"/v1/events?ip=203.0.113.300", "ip"},
		{"/v1/events?ip=203.0.113.0/33", "ip"},
		{"/v1/events?ip=2001:db8::/129", "ip"},
		{"/v1/events?ip=fe80::1%25eth0", "ip"},
		{"/v1/events?ip=example.com", "ip"},
		{"/v1/events?limit=0", "limit"},
		{"/v1/events?limit=1001", "limit"},
		{"/v1/events?limit=-1", "limit"},
		{"/v1/events?limit=1e9", "limit"},
		{"/v1/events?limit=ten", "limit"},
		{"/v1/events?limit=", "limit"},
		{"/v1/events?outcome=maybe", "outcome"},
		{"/v1/events?outcome=SUCCESS", "outcome"},
		{"/v1/events?order=sideways", "order"},
		{"/v1/events?order=seq%3BDROP", "order"},
		{"/v1/events?type=Incident.Opened", "type"},
		{"/v1/events?type=*", "type"},
		{"/v1/events?category=no%20such", "category"},
		{"/v1/events?resource=:a3f7", "resource"},
		{"/v1/events?actor=", "actor"},
		{"/v1/events?q=%20%2B%2B%20", "q"},
		{"/v1/events?cursor=garbage", "cursor"},
		{"/v1/events?cursor=", "cursor"},
		{"/v1/events?cursor=" + tampered, "cursor"},
		{"/v1/events?cursor=" + resigned, "cursor"},
		{"/v1/events?node=other&cursor=" + cursor, "cursor"},
		{"/v1/events?order=asc&cursor=" + cursor, "cursor"},
		{"/v1/events?workspace_id=other", "workspace_id"},
		{"/v1/events?order_by=seq", "order_by"},
		{"/v1/events?offset=10", "offset"},
		{"/v1/events?actor=a&actor=b", "actor"},
		{"/v1/events?limit=5&limit=6", "limit"},
		{"/v1/events?q=%FF", "q"},
		{"/v1/export?format=xml", "format"},
		{"/v1/export?format=csv&limit=10", "limit"},
		{"/v1/export?format=csv&cursor=" + cursor, "cursor"},
		{"/v1/export?format=csv&ip=10.0.0.0/40", "ip"},
		{"/v1/export?format=json&since=tomorrow", "since"},
		{"/v1/stats/histogram?interval=week", "interval"},
		{"/v1/stats/histogram?interval=minute&since=30d", "interval"},
		{"/v1/stats/histogram?outcome=none", "outcome"},
		{"/v1/stats/histogram?limit=5", "limit"},
	}
	before := accessEvents(t, ts, "auditlog.queried")
	for _, tt := range tests {
		status, body, _ := call(t, "GET", ts.URL+tt.path, ts.Key, "", nil)
		var e struct {
			Error struct{ Code, Message, Field string }
		}
		json.Unmarshal(body, &e)
		if status != 400 || e.Error.Field != tt.field || e.Error.Code == "" || e.Error.Message == "" {
			t.Errorf("GET %s: %d %s, want 400 naming %s", tt.path, status, body, tt.field)
		}
	}
	after := accessEvents(t, ts, "auditlog.queried")
	if len(after) != len(before)+1 { // the first listing's own event
		t.Errorf("%d access events after the bad requests, want %d: a refused read was recorded", len(after), len(before)+1)
	}
	if n := len(accessEvents(t, ts, "auditlog.exported")); n != 0 {
		t.Errorf("%d export events after refused exports", n)
	}
}

// accessEvents lists the log's access events of typ, oldest first.
func accessEvents(t *testing.T, ts *testServer, typ string) []listedEvent {
	t.Helper()
	got, _ := walk(t, ts, ts.Key, url.Values{"type": {typ}, "order": {"asc"}}, 1000, nil)
	return got
}

// TestReadsAreLogged checks that the log watches itself (AUT-13): every
// query, event fetch, count, histogram and export appends exactly one
// access event — with the key as actor, the source address, the filters,
// the format and the row count — and reading those events appends one
// more each time, not a cascade.
func TestReadsAreLogged(t *testing.T) {
	ts := startServer(t, "")
	now := time.Now().UTC()
	sent := ingest(t, ts, ts.Key, eventgen.New(6).Stream(200, now, 24*time.Hour, true))
	reads := []string{
		"/v1/events?type=incident.*&limit=7",
		"/v1/events?actor=alice%40acme.com&since=24h",
		"/v1/events/" + sent[3].body.ID,
		"/v1/stats/count?node=nyc-edge-01",
		"/v1/stats/histogram?interval=hour&outcome=failure",
	}
	base := len(accessEvents(t, ts, "auditlog.queried"))
	for _, p := range reads {
		if status, body, _ := call(t, "GET", ts.URL+p, ts.Key, "", nil); status != 200 {
			t.Fatalf("GET %s: %d %s", p, status, body)
		}
	}
	queried := accessEvents(t, ts, "auditlog.queried")
	if len(queried) != base+1+len(reads) {
		t.Fatalf("%d auditlog.queried events, want %d (one per request)", len(queried), base+1+len(reads))
	}
	// Reading the access events adds exactly one each time.
	for i := range 3 {
		again := accessEvents(t, ts, "auditlog.queried")
		if len(again) != len(queried)+1+i {
			t.Fatalf("reading the access events: %d of them, want %d", len(again), len(queried)+1+i)
		}
	}
	second := queried[base+2].Body // actor=alice... since=24h
	var ctx struct {
		Kind    string            `json:"kind"`
		Filters map[string]string `json:"filters"`
		Rows    int               `json:"rows"`
	}
	json.Unmarshal(second.Context, &ctx)
	if second.Actor.Type != stele.ActorAPIKey || second.Actor.ID == "" || second.IP != "127.0.0.1" ||
		ctx.Kind != "events" || ctx.Filters["actor"] != "alice@acme.com" || ctx.Filters["since"] != "24h" {
		t.Errorf("access event %+v context %+v", second, ctx)
	}

	// Exports: one event each, with format and the number of rows sent.
	for _, f := range []string{"csv", "ndjson"} {
		body, h := exportBody(t, ts, ts.Key, url.Values{"format": {f}, "type": {"pcap.*"}})
		exported := accessEvents(t, ts, "auditlog.exported")
		e := exported[len(exported)-1].Body
		var ec struct {
			Format  string            `json:"format"`
			Rows    int               `json:"rows"`
			Filters map[string]string `json:"filters"`
		}
		json.Unmarshal(e.Context, &ec)
		lines := strings.Count(string(body), "\n")
		if f == "csv" {
			lines-- // header; no pcap event holds a newline
		}
		if ec.Format != f || ec.Rows != lines || h["rows"] != strconv.Itoa(lines) || ec.Filters["type"] != "pcap.*" || e.Actor.Type != stele.ActorAPIKey || e.IP != "127.0.0.1" {
			t.Errorf("%s export of %d rows logged as %+v (header rows %s)", f, lines, ec, h["rows"])
		}
	}
	if n := len(accessEvents(t, ts, "auditlog.exported")); n != 2 {
		t.Errorf("%d auditlog.exported events, want 2", n)
	}
}

// TestReadRefusedWhenUnrecorded holds the database's write lock from
// another connection, as a stuck maintenance job would: the access event
// of a read cannot be recorded, so the read is refused with 503 and no
// event is served (D3, AVL-09). Once the lock is gone, reads work again.
func TestReadRefusedWhenUnrecorded(t *testing.T) {
	ts := startServer(t, "")
	ingest(t, ts, ts.Key, eventgen.New(8).Stream(20, time.Now().UTC(), time.Hour, true))
	db, err := sql.Open("sqlite", "file:"+filepath.Join(ts.DataDir, "stele.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/events?limit=5", "/v1/export?format=ndjson"} {
		status, body, _ := call(t, "GET", ts.URL+p, ts.Key, "", nil)
		if status != 503 || strings.Contains(string(body), `"seq"`) {
			t.Errorf("GET %s with the log unwritable: %d %.200s, want 503 and no events", p, status, body)
		}
	}
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if status, body, _ := call(t, "GET", ts.URL+"/v1/events?limit=5", ts.Key, "", nil); status != 200 {
		t.Errorf("after the lock: %d %s", status, body)
	}
}

// TestExportStopsWhenClientLeaves starts an export larger than the
// socket buffers, reads only the answer's headers and hangs up: the server
// stops the query (it logs the interrupted export) instead of streaming the
// rest into the void.
func TestExportStopsWhenClientLeaves(t *testing.T) {
	ts := startServer(t, "")
	g := eventgen.New(10)
	ingest(t, ts, ts.Key, g.Stream(5000, time.Now().UTC(), 7*24*time.Hour, true))
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/v1/export?format=ndjson", nil)
	req.Header.Set("Authorization", "Bearer "+ts.Key)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("X-Stele-Rows") == "" {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	conn.Close()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(ts.stderr.String(), "export interrupted") {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not stop the export after the client left; its log:\n%s", ts.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
