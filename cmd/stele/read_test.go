package main

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/client"
	"github.com/stele-log/stele/eventgen"
)

// sentEvent is an event as the test sent it, with the seq the server
// acknowledged: the oracle's view of the log.
type sentEvent struct {
	seq  int64
	body stele.EventBody
}

// ingest appends bodies to the key's log in batches and returns them with
// their seqs.
func ingest(t *testing.T, ts *testServer, key string, bodies []stele.EventBody) []sentEvent {
	t.Helper()
	var out []sentEvent
	for start := 0; start < len(bodies); start += stele.MaxBatch {
		batch := bodies[start:min(start+stele.MaxBatch, len(bodies))]
		events := make([]client.Event, len(batch))
		for i, b := range batch {
			tm := b.Time
			events[i] = client.Event{ID: b.ID, Time: &tm, Type: b.Type, Actor: b.Actor, Node: b.Node, Resource: b.Resource, IP: b.IP, Outcome: b.Outcome, Context: b.Context}
		}
		body, _ := json.Marshal(map[string]any{"events": events})
		status, resp, _ := call(t, "POST", ts.URL+"/v1/events", key, "application/json", body)
		if status != 201 {
			t.Fatalf("append: %d %s", status, resp)
		}
		var res client.AppendResult
		if err := json.Unmarshal(resp, &res); err != nil {
			t.Fatal(err)
		}
		for i, r := range res.Events {
			if r.ID != batch[i].ID {
				t.Fatalf("receipt %d is for %s, sent %s", i, r.ID, batch[i].ID)
			}
			out = append(out, sentEvent{seq: r.Seq, body: batch[i]})
		}
	}
	return out
}

// listedEvent is an event of an answer: its seq and body.
type listedEvent struct {
	Seq  int64
	Body stele.EventBody
	Raw  json.RawMessage
}

func parseListed(t *testing.T, raw json.RawMessage) listedEvent {
	t.Helper()
	var e listedEvent
	var m struct {
		Seq int64 `json:"seq"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("event %s: %v", raw, err)
	}
	if err := json.Unmarshal(raw, &e.Body); err != nil {
		t.Fatalf("event %s: %v", raw, err)
	}
	e.Seq, e.Raw = m.Seq, raw
	return e
}

// walk pages through GET /v1/events with params and page size, and returns
// every event with the log size the walk was pinned to. between runs after
// each page.
func walk(t *testing.T, ts *testServer, key string, params url.Values, size int, between func()) ([]listedEvent, int64) {
	t.Helper()
	params = cloneValues(params)
	params.Set("limit", strconv.Itoa(size))
	var all []listedEvent
	var logSize int64 = -1
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
		status, body, _ := call(t, "GET", ts.URL+"/v1/events?"+params.Encode(), key, "", nil)
		if status != 200 {
			t.Fatalf("GET /v1/events?%s: %d %s", params.Encode(), status, body)
		}
		var page struct {
			Events     []json.RawMessage `json:"events"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Events) > size {
			t.Fatalf("page of %d events, limit %d", len(page.Events), size)
		}
		for _, raw := range page.Events {
			all = append(all, parseListed(t, raw))
		}
		if page.NextCursor == "" {
			return all, logSize // -1 for a single page
		}
		if len(page.Events) != size {
			t.Fatalf("a page of %d events (limit %d) has a next cursor", len(page.Events), size)
		}
		params.Set("cursor", page.NextCursor)
		if logSize < 0 {
			logSize = pinnedSize(t, ts, key, params)
		}
		if between != nil {
			between()
		}
	}
}

// pinnedSize asks GET /v1/stats/count for the log size a cursor's walk is
// pinned to.
func pinnedSize(t *testing.T, ts *testServer, key string, params url.Values) int64 {
	t.Helper()
	p := cloneValues(params)
	p.Del("limit")
	status, body, _ := call(t, "GET", ts.URL+"/v1/stats/count?"+p.Encode(), key, "", nil)
	if status != 200 {
		t.Fatalf("count: %d %s", status, body)
	}
	var c struct {
		LogSize int64 `json:"log_size"`
	}
	json.Unmarshal(body, &c)
	return c.LogSize
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// expect is the oracle: the sent events that f matches, in order.
func expect(events []sentEvent, f stele.Filter, order stele.Order) []int64 {
	var match []sentEvent
	for _, e := range events {
		if f.Match(&e.body) {
			match = append(match, e)
		}
	}
	slices.SortFunc(match, func(a, b sentEvent) int {
		c := cmp.Or(a.body.Time.Compare(b.body.Time), cmp.Compare(a.seq, b.seq))
		if order == stele.NewestFirst {
			return -c
		}
		return c
	})
	seqs := make([]int64, len(match))
	for i, e := range match {
		seqs[i] = e.seq
	}
	return seqs
}

// randomParams draws one to three filters from values present in events,
// as API parameters.
func randomParams(r *rand.Rand, events []sentEvent) url.Values {
	v := url.Values{}
	for len(v) == 0 {
		for range 1 + r.IntN(3) {
			b := &events[r.IntN(len(events))].body
			switch r.IntN(12) {
			case 0:
				v.Set("actor", b.Actor.ID)
			case 1:
				v.Set("type", b.Type)
			case 2:
				root, _, _ := strings.Cut(b.Type, ".")
				v.Set("type", root+".*")
			case 3:
				v.Set("category", b.Category)
			case 4:
				if b.Node != "" {
					v.Set("node", b.Node)
				}
			case 5:
				if b.Resource != nil {
					if r.IntN(2) == 0 {
						v.Set("resource", b.Resource.Type)
					} else {
						v.Set("resource", b.Resource.Type+":"+b.Resource.ID)
					}
				}
			case 6:
				if a, err := netip.ParseAddr(b.IP); err == nil {
					switch r.IntN(3) {
					case 0:
						v.Set("ip", a.String())
					case 1:
						bits := map[int]int{32: 24, 128: 48}[a.BitLen()]
						v.Set("ip", netip.PrefixFrom(a, bits).Masked().String())
					default:
						bits := map[int]int{32: 30, 128: 126}[a.BitLen()]
						v.Set("ip", netip.PrefixFrom(a, bits).Masked().String())
					}
				}
			case 7:
				v.Set("outcome", []string{stele.OutcomeSuccess, stele.OutcomeFailure}[r.IntN(2)])
			case 8:
				v.Set("since", b.Time.Add(-time.Duration(r.IntN(6*3600))*time.Second).Format(time.RFC3339))
			case 9:
				v.Set("until", b.Time.Add(time.Duration(r.IntN(6*3600))*time.Second).Format(time.RFC3339Nano))
			case 10, 11:
				if words := stele.Tokens(b); len(words) > 0 {
					q := words[r.IntN(len(words))]
					if r.IntN(3) == 0 {
						q += " " + words[r.IntN(len(words))]
					}
					v.Set("q", strings.ToUpper(q[:1])+q[1:]) // case does not matter
				}
			}
		}
		if v.Has("since") && v.Has("until") && v.Get("since") >= v.Get("until") {
			v.Del("until")
		}
	}
	if r.IntN(2) == 0 {
		v.Set("order", "asc")
	}
	return v
}

// TestReadFiltersProperty ingests thousands of random events over HTTP and
// checks GET /v1/events for every filter and random combinations, in both
// orders, paged with odd page sizes, against the reference semantics
// (stele.Filter.Match) applied to the events as sent. The service's own
// events (start-up, and the auditlog.queried events the walks append) must
// match the filter too when they show up.
func TestReadFiltersProperty(t *testing.T) {
	ts := startServer(t, "")
	g := eventgen.New(7)
	now := time.Now().UTC()
	bodies := g.Stream(2500, now.Add(-time.Minute), 72*time.Hour, true)
	r := g.Rand()
	for i := range bodies {
		if r.IntN(5) == 0 { // event time and seq orders differ
			bodies[i].Time = bodies[i].Time.Add(-time.Duration(r.IntN(7200)) * time.Second)
		}
		if i > 0 && r.IntN(40) == 0 { // exact ties, broken by seq
			bodies[i].Time = bodies[i-1].Time
		}
	}
	events := ingest(t, ts, ts.Key, bodies)
	sent := map[int64]bool{}
	for _, e := range events {
		sent[e.seq] = true
	}
	check := func(name string, params url.Values, size int) {
		t.Helper()
		f, err := stele.ParseFilter(params, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		order := stele.NewestFirst
		if params.Get("order") == "asc" {
			order = stele.OldestFirst
		}
		want := expect(events, f, order)
		// Pages hold at most ~25 requests' worth, so that the test stays quick.
		size = max(size, len(want)/25+1)
		got, _ := walk(t, ts, ts.Key, params, size, nil)
		var seqs []int64
		for _, e := range got {
			if !f.Match(&e.Body) {
				t.Errorf("%s: seq %d does not match the filter", name, e.Seq)
			}
			if !sent[e.Seq] {
				continue // the service's own events: start-up, and the walks' reads
			}
			seqs = append(seqs, e.Seq)
		}
		if !slices.Equal(seqs, want) {
			t.Errorf("%s, page size %d: %d events, want %d\n got  %v\n want %v", name, size, len(seqs), len(want), firstSeqs(seqs), firstSeqs(want))
		}
	}
	// limit: 50 by default, up to 1000.
	for _, tt := range []struct {
		query string
		n     int
	}{{"", 50}, {"limit=1000", 1000}, {"limit=1", 1}} {
		status, body, _ := call(t, "GET", ts.URL+"/v1/events?"+tt.query, ts.Key, "", nil)
		var page struct {
			Events     []json.RawMessage `json:"events"`
			NextCursor string            `json:"next_cursor"`
		}
		if json.Unmarshal(body, &page); status != 200 || len(page.Events) != tt.n || page.NextCursor == "" {
			t.Errorf("GET /v1/events?%s: %d, %d events, cursor %q; want %d events and a cursor", tt.query, status, len(page.Events), page.NextCursor, tt.n)
		}
	}
	check("everything", url.Values{}, 997)
	check("everything oldest first", url.Values{"order": {"asc"}}, 1000)
	sizes := []int{1, 3, 7, 50, 333}
	for i := range 100 {
		params := randomParams(r, events)
		check(fmt.Sprintf("case %d %s", i, params.Encode()), params, sizes[r.IntN(len(sizes))])
	}
	// Filter values are data, never SQL or FTS syntax (INP-10).
	for _, v := range []string{"' OR 1=1--", "%", "_", "alice%", `"; DROP TABLE events; --`, "*"} {
		check("injection actor "+v, url.Values{"actor": {v}}, 10)
		check("injection node "+v, url.Values{"node": {v}}, 10)
		check("injection resource "+v, url.Values{"resource": {"incident:" + v}}, 10)
		if len(stele.Words(v)) > 0 {
			check("injection text "+v, url.Values{"q": {v + " alice"}}, 10)
		}
	}
}

func firstSeqs(xs []int64) []int64 {
	if len(xs) > 10 {
		return xs[:10]
	}
	return xs
}

// TestReadCursorUnderConcurrentAppends walks the log a page at a time while
// another client appends matching events with times all over the walked
// range: the walk returns exactly the matching events that existed when it
// began, none skipped, none repeated (DUR-13), in both orders.
func TestReadCursorUnderConcurrentAppends(t *testing.T) {
	ts := startServer(t, "")
	g := eventgen.New(9)
	now := time.Now().UTC()
	mark := func(bodies []stele.EventBody) []stele.EventBody {
		for i := range bodies {
			bodies[i].Node = "walk-01"
		}
		return bodies
	}
	var mu sync.Mutex
	events := ingest(t, ts, ts.Key, mark(g.Stream(600, now.Add(-time.Minute), 24*time.Hour, true)))
	for _, order := range []string{"desc", "asc"} {
		params := url.Values{"node": {"walk-01"}, "order": {order}}
		var appended []sentEvent
		got, pinned := walk(t, ts, ts.Key, params, 37, func() {
			mu.Lock()
			defer mu.Unlock()
			more := ingest(t, ts, ts.Key, mark(g.Stream(9, now.Add(-2*time.Minute), 24*time.Hour, true)))
			appended = append(appended, more...)
		})
		if pinned <= 0 || len(appended) == 0 {
			t.Fatalf("order %s: walk pinned at %d with %d appends", order, pinned, len(appended))
		}
		seen := map[int64]bool{}
		for _, e := range got {
			if seen[e.Seq] {
				t.Fatalf("order %s: seq %d repeated", order, e.Seq)
			}
			if e.Seq >= pinned {
				t.Fatalf("order %s: seq %d, appended after the walk began (at %d), showed up", order, e.Seq, pinned)
			}
			seen[e.Seq] = true
		}
		for _, e := range append(slices.Clone(events), appended...) {
			if e.seq < pinned && !seen[e.seq] {
				t.Fatalf("order %s: seq %d skipped", order, e.seq)
			}
		}
		for _, e := range appended {
			if e.seq < pinned {
				t.Fatalf("order %s: an event appended during the walk got seq %d, below the pinned size %d", order, e.seq, pinned)
			}
		}
		events = append(events, appended...)
	}
}

// exportBody downloads /v1/export?params and returns body and headers.
func exportBody(t *testing.T, ts *testServer, key string, params url.Values) ([]byte, map[string]string) {
	t.Helper()
	status, body, h := call(t, "GET", ts.URL+"/v1/export?"+params.Encode(), key, "", nil)
	if status != 200 {
		t.Fatalf("export %s: %d %s", params.Encode(), status, body)
	}
	return body, map[string]string{"type": h.Get("Content-Type"), "disposition": h.Get("Content-Disposition"), "rows": h.Get("X-Stele-Rows")}
}

// hostileEvents are events whose fields a spreadsheet would read as
// formulas, or that hold quotes, separators, newlines and control
// characters (INP-06, INP-07).
func hostileEvents(now time.Time) []stele.EventBody {
	values := []string{"=HYPERLINK(\"http://evil.example\",\"click\")", "+1+1", "-5", "-2+3", "@SUM(A1:A9)", "\tTAB", "\rCR", "\x00NUL",
		"a,b", `say "hi"`, "line1\nline2", "alice\r\n2026-03-09 admin logged in", "\x1b[31mred", "\u202eevil", "'quoted", " =space"}
	var out []stele.EventBody
	for i, v := range values {
		ctx, _ := json.Marshal(map[string]any{"note": v, "n": i})
		out = append(out, stele.EventBody{
			ID: fmt.Sprintf("0192d6e0-0000-7000-8000-%012d", i), Time: now.Add(-time.Duration(i) * time.Minute).UTC(),
			Type: "threshold.changed", Actor: stele.Actor{Type: stele.ActorUser, ID: v, Name: v},
			Node: v, Resource: &stele.Resource{Type: "threshold", ID: v, Name: v}, IP: "198.51.100.9",
			Outcome: stele.OutcomeSuccess, Context: ctx,
		})
	}
	return out
}

// TestExportFormats checks the three export formats of one filtered export
// against each other and the list API: the JSON array and NDJSON carry the
// same events as GET /v1/events, every leaf recomputes from its NDJSON
// line, CSV parsed back with encoding/csv has exactly the documented columns
// and equals the JSON export cell by cell, formula cells neutralized.
func TestExportFormats(t *testing.T) {
	ts := startServer(t, "")
	now := time.Now().UTC().Truncate(time.Second)
	ingest(t, ts, ts.Key, eventgen.New(3).Stream(400, now, 48*time.Hour, true))
	ingest(t, ts, ts.Key, hostileEvents(now))
	params := url.Values{"type": {"threshold.*"}}
	listed, _ := walk(t, ts, ts.Key, params, 1000, nil)
	var wantSeqs []int64
	for _, e := range listed {
		wantSeqs = append(wantSeqs, e.Seq)
	}

	// NDJSON: one event per line, each leaf recomputed independently.
	params.Set("format", "ndjson")
	nd, h := exportBody(t, ts, ts.Key, params)
	if h["type"] != "application/x-ndjson" || h["rows"] != strconv.Itoa(len(listed)) {
		t.Errorf("ndjson headers %v, want application/x-ndjson and %d rows", h, len(listed))
	}
	lines := strings.Split(strings.TrimSuffix(string(nd), "\n"), "\n")
	var ndSeqs []int64
	for _, line := range lines {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("ndjson line %q: %v", line, err)
		}
		seq, _ := m["seq"].(json.Number).Int64()
		e := exportedEvent{Seq: seq, Raw: m, LeafHash: m["leaf_hash"].(string)}
		if leaf := recomputeLeaf(t, e); leaf.String() != e.LeafHash {
			t.Errorf("seq %d: leaf recomputed from the NDJSON line is %v, exported %s", seq, leaf, e.LeafHash)
		}
		ndSeqs = append(ndSeqs, seq)
	}
	if !slices.Equal(ndSeqs, wantSeqs) {
		t.Errorf("ndjson seqs %v, listed %v", firstSeqs(ndSeqs), firstSeqs(wantSeqs))
	}

	// JSON: one valid array of the same events, byte for byte as listed.
	params.Set("format", "json")
	js, h := exportBody(t, ts, ts.Key, params)
	if h["type"] != "application/json" {
		t.Errorf("json content type %q", h["type"])
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(js, &arr); err != nil {
		t.Fatalf("JSON export is not one valid JSON value: %v", err)
	}
	if len(arr) != len(listed) {
		t.Fatalf("json export has %d events, listed %d", len(arr), len(listed))
	}
	for i := range arr {
		if !bytes.Equal(arr[i], listed[i].Raw) || string(arr[i]) != lines[i] {
			t.Errorf("event %d differs between JSON export, NDJSON and the list:\n%s\n%s\n%s", i, arr[i], lines[i], listed[i].Raw)
		}
	}

	// CSV: documented columns; each cell is the JSON value, or ' and the value
	// when a spreadsheet would evaluate it.
	params.Set("format", "csv")
	cs, h := exportBody(t, ts, ts.Key, params)
	if h["type"] != "text/csv; charset=utf-8" {
		t.Errorf("csv content type %q", h["type"])
	}
	rows, err := csv.NewReader(bytes.NewReader(cs)).ReadAll()
	if err != nil {
		t.Fatalf("CSV export does not parse: %v", err)
	}
	wantCols := []string{"time", "type", "category", "actor_type", "actor_id", "actor_name", "node", "resource_type",
		"resource_id", "resource_name", "ip", "outcome", "context", "id", "seq", "received_at", "leaf_hash"}
	if !slices.Equal(rows[0], wantCols) {
		t.Fatalf("CSV header %v, want %v", rows[0], wantCols)
	}
	if len(rows)-1 != len(listed) {
		t.Fatalf("CSV has %d records, want %d (a value broke a record)", len(rows)-1, len(listed))
	}
	neutralized := 0
	for i, e := range listed {
		b := e.Body
		want := []string{b.Time.Format(time.RFC3339Nano), b.Type, b.Category, b.Actor.Type, b.Actor.ID, b.Actor.Name, b.Node,
			b.Resource.Type, b.Resource.ID, b.Resource.Name, b.IP, b.Outcome, string(b.Context), b.ID, strconv.FormatInt(e.Seq, 10),
			b.ReceivedAt.Format(time.RFC3339Nano), ""}
		var lh struct {
			LeafHash string `json:"leaf_hash"`
		}
		json.Unmarshal(e.Raw, &lh)
		want[16] = lh.LeafHash
		for j, cell := range rows[i+1] {
			w := want[j]
			if w != "" && strings.ContainsRune("=+-@\t\r\x00", rune(w[0])) {
				w = "'" + w
				neutralized++
			}
			// encoding/csv reads a quoted CRLF as LF.
			if cell != strings.ReplaceAll(w, "\r\n", "\n") {
				t.Errorf("seq %d column %s: %q, want %q", e.Seq, wantCols[j], cell, w)
			}
		}
	}
	if neutralized < 8*5 {
		t.Errorf("only %d neutralized cells; the hostile events hold at least 40", neutralized)
	}
	for _, f := range []string{"csv", "json", "ndjson"} {
		params.Set("format", f)
		_, h := exportBody(t, ts, ts.Key, params)
		want := `attachment; filename="stele-default-`
		if !strings.HasPrefix(h["disposition"], want) || !strings.HasSuffix(h["disposition"], "Z."+f+`"`) {
			t.Errorf("Content-Disposition %q, want %s<UTC time>.%s\"", h["disposition"], want, f)
		}
	}
}

// TestReadCursorPinsRelativeTimes walks since=6s a page at a time while the
// clock moves on: the window stays where the first page put it, so events
// that were in it are not lost from later pages.
func TestReadCursorPinsRelativeTimes(t *testing.T) {
	ts := startServer(t, "")
	now := time.Now().UTC()
	var bodies []stele.EventBody
	g := eventgen.New(13)
	for i := range 5 {
		b := g.Event(now.Add(-5*time.Second+time.Duration(i)*500*time.Millisecond), true)
		b.Node = "window-01"
		bodies = append(bodies, b)
	}
	ingest(t, ts, ts.Key, bodies)
	params := url.Values{"node": {"window-01"}, "since": {"6s"}, "order": {"asc"}}
	got, _ := walk(t, ts, ts.Key, params, 1, func() {
		time.Sleep(1500 * time.Millisecond) // the clock passes the oldest events' window
	})
	if len(got) != len(bodies) {
		t.Fatalf("the walk returned %d events of %d: the window slid under it", len(got), len(bodies))
	}
	// A new walk starts a new window.
	if later, _ := walk(t, ts, ts.Key, params, 50, nil); len(later) >= len(bodies) {
		t.Errorf("a new walk %v later still sees %d events", time.Since(now), len(later))
	}
}
