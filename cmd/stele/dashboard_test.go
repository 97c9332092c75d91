package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/export"
)

// seededEvent is an event the test put in the log through the API.
type seededEvent struct {
	ID   string
	Seq  int64
	Body stele.EventBody
}

// hostileActor is an actor id that would run script if it reached the page
// as markup.
const hostileActor = `<img src=x onerror=alert(1)>`

// dashboardEvents are the seed's sample events, one hostile event, and a
// bulk of older node events (more than a page) for paging.
func dashboardEvents(now time.Time) []stele.EventBody {
	bodies := eventgen.Demo(now)
	bodies = append(bodies, stele.EventBody{
		Time: now.Add(-20 * time.Minute).UTC().Truncate(time.Second), Type: "ioc_pattern.added",
		Actor: stele.Actor{Type: stele.ActorUser, ID: hostileActor},
		Node:  "edge\r\nadmin logged in", IP: "198.51.100.9",
		Resource: &stele.Resource{Type: "file", ID: "r1", Name: "\u202Egnp.exe"},
		Context:  json.RawMessage(`{"html":"<script>alert(2)</script>","n":[1e21,1.5,-0.0,0.1,1e-7,9007199254740991],"s":"é😀\u2028\u0000\u001b[31m","é":1,"😀":2,"\ue000":3}`),
	})
	for i := range 60 {
		bodies = append(bodies, stele.EventBody{
			Time: now.Add(-72*time.Hour - time.Duration(i)*time.Hour).UTC().Truncate(time.Second), Type: "node.config_changed",
			Actor: stele.Actor{Type: stele.ActorService, ID: "terraform"}, Node: "load-test-01",
			Context: json.RawMessage(fmt.Sprintf(`{"revision":%d}`, i)),
		})
	}
	return bodies
}

// seed appends bodies through the API with the operator key, waiting for a
// checkpoint that covers them.
func seed(t *testing.T, ts *testServer, bodies []stele.EventBody) []seededEvent {
	t.Helper()
	drafts := make([]map[string]any, len(bodies))
	for i, b := range bodies {
		d := map[string]any{"time": b.Time.Format(time.RFC3339Nano), "type": b.Type, "actor": b.Actor}
		if b.Node != "" {
			d["node"] = b.Node
		}
		if b.Resource != nil {
			d["resource"] = b.Resource
		}
		if b.IP != "" {
			d["ip"] = b.IP
		}
		if b.Outcome != "" {
			d["outcome"] = b.Outcome
		}
		if b.Context != nil {
			d["context"] = b.Context
		}
		drafts[i] = d
	}
	body, _ := json.Marshal(map[string]any{"events": drafts})
	status, resp, _ := call(t, "POST", ts.URL+"/v1/events?wait=checkpoint", ts.Key, "application/json", body)
	if status != 201 {
		t.Fatalf("seeding: %d %s", status, resp)
	}
	var r struct {
		Events []struct {
			ID  string
			Seq int64
		}
	}
	json.Unmarshal(resp, &r)
	out := make([]seededEvent, len(bodies))
	for i, rc := range r.Events {
		out[i] = seededEvent{ID: rc.ID, Seq: rc.Seq, Body: bodies[i]}
	}
	return out
}

// matching returns the ids of the seeded events that f selects, newest
// first, as the table lists them.
func matching(events []seededEvent, f stele.Filter) []string {
	var sel []seededEvent
	for _, e := range events {
		if f.Match(&e.Body) {
			sel = append(sel, e)
		}
	}
	slices.SortFunc(sel, func(a, b seededEvent) int {
		if c := b.Body.Time.Compare(a.Body.Time); c != 0 {
			return c
		}
		return int(b.Seq - a.Seq)
	})
	ids := make([]string, len(sel))
	for i, e := range sel {
		ids[i] = e.ID
	}
	return ids
}

func find(events []seededEvent, pred func(*stele.EventBody) bool) seededEvent {
	for _, e := range events {
		if pred(&e.Body) {
			return e
		}
	}
	panic("no such seeded event")
}

// tableRow is a row of the audit log table as the page shows it.
type tableRow struct {
	ID    string   `json:"id"`
	Cells []string `json:"cells"`
}

func (tb *tab) rows() []tableRow {
	tb.t.Helper()
	return eval[[]tableRow](tb, `[...document.querySelectorAll('#events-body tr[data-id]')].map(tr => ({id: tr.dataset.id, cells: [...tr.cells].map(td => td.innerText)}))`)
}

func rowIDs(rows []tableRow) []string {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids
}

// waitLog waits until the log page shows the filters want (the page URL's
// parameters) with its rows, count and chart drawn.
func (tb *tab) waitLog(want url.Values) {
	tb.t.Helper()
	wantJSON, _ := json.Marshal(want.Encode())
	tb.waitJS("the log page with "+want.Encode(), fmt.Sprintf(`(() => {
		const t = document.querySelector('#events');
		if (!t || t.dataset.state !== 'ready' || location.pathname !== '/') return false;
		const got = new URLSearchParams(location.search); got.sort();
		const want = new URLSearchParams(%s); want.sort();
		return got.toString() === want.toString();
	})()`, wantJSON))
}

func (tb *tab) login(email, password string) {
	tb.t.Helper()
	tb.do("sign in", chromedp.WaitVisible(chromedp.ID("login-email")))
	// (chromedp's SetValue cannot set an empty value.)
	eval[chromedp.Void](tb, `document.querySelector('#login-email').value = ''; document.querySelector('#login-password').value = ''`)
	tb.do("sign in",
		chromedp.SendKeys(chromedp.ID("login-email"), email),
		chromedp.SendKeys(chromedp.ID("login-password"), password),
		chromedp.Click(chromedp.ID("login-submit")))
}

// TestDashboard walks through the dashboard as a person would: a failed
// sign-in, the log, filters, paging, the event detail verified in the
// browser, an export, hostile text, and signing out.
func TestDashboard(t *testing.T) {
	ts := startServer(t, "")
	events := seed(t, ts, dashboardEvents(time.Now()))
	tb := newTab(t, ts)
	tb.do("open the dashboard", chromedp.Navigate(ts.URL+"/"))

	run := &dashboardRun{tb: tb, ts: ts, events: events}
	for _, step := range []struct {
		name string
		run  func(*dashboardRun, *testing.T)
	}{
		{"failed login", (*dashboardRun).failedLogin},
		{"login and see the seeded events", (*dashboardRun).loginSeesEvents},
		{"table cells", (*dashboardRun).tableCells},
		{"filter by actor", (*dashboardRun).filterByActor},
		{"filter by type", (*dashboardRun).filterByType},
		{"free text, custom range and the chart, by keyboard", (*dashboardRun).textRangeChart},
		{"empty and error states", (*dashboardRun).emptyAndErrors},
		{"count and load more", (*dashboardRun).countAndLoadMore},
		{"detail verified", (*dashboardRun).detailVerified},
		{"hostile text renders inert", (*dashboardRun).hostileText},
		{"logout", (*dashboardRun).logout},
	} {
		// Each step builds on the one before: stop at the first that fails.
		if !t.Run(step.name, func(t *testing.T) { step.run(run, t) }) {
			break
		}
	}
}

// failedLogin: a wrong password shows an error, and user.login_failed is
// logged with the source address.
func (r *dashboardRun) failedLogin(t *testing.T) {
	tb, ts := r.tab(t), r.ts
	tb.login(adminEmail, "not the password")
	tb.waitJS("the login error", `document.querySelector('#login-error')?.textContent !== ''`)
	if got := tb.text("#login-error"); got != "Wrong email or password." {
		t.Errorf("login error = %q", got)
	}
	tb.screenshot("login-failed.png")
	if u := tb.unlabeled(); len(u) > 0 {
		t.Errorf("form controls without a label: %v", u)
	}
	// The failure is in the log, with the source address.
	var failed []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for len(failed) == 0 && time.Now().Before(deadline) {
		_, body, _ := call(t, "GET", ts.URL+"/v1/events?type=user.login_failed&actor="+url.QueryEscape(adminEmail), ts.Key, "", nil)
		var page struct{ Events []map[string]any }
		json.Unmarshal(body, &page)
		failed = page.Events
		time.Sleep(50 * time.Millisecond)
	}
	if len(failed) != 1 || failed[0]["ip"] != "127.0.0.1" || failed[0]["outcome"] != "failure" {
		t.Fatalf("user.login_failed events: %v", failed)
	}
}

// loginSeesEvents: signing in shows the seeded events, newest first, with
// the count and the chart.
func (r *dashboardRun) loginSeesEvents(t *testing.T) {
	tb, events := r.tab(t), r.events
	tb.login(adminEmail, adminPassword)
	tb.waitLog(url.Values{})
	rows := tb.rows()
	shown := rowIDs(rows)
	for _, e := range events[:len(events)-60] {
		if !slices.Contains(shown, e.ID) {
			t.Errorf("seeded %s (%s) is not in the table", e.Body.Type, e.ID)
		}
	}
	// Newest first.
	times := make([]string, len(rows))
	for i, r := range rows {
		times[i] = r.Cells[0]
	}
	if !slices.IsSortedFunc(times, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("rows are not newest first: %v", times)
	}
	if got := tb.text(".who"); !strings.Contains(got, adminEmail) {
		t.Errorf("top bar shows %q, want the signed-in user", got)
	}
	if n := eval[int](tb, `document.querySelectorAll('#chart svg rect').length`); n == 0 {
		t.Errorf("the chart has no bars")
	}
	if got := tb.text("#event-count"); !strings.HasSuffix(got, " events") {
		t.Errorf("count = %q", got)
	}
	tb.screenshot("log-view.png")
	if u := tb.unlabeled(); len(u) > 0 {
		t.Errorf("form controls without a label: %v", u)
	}
}

// tableCells: the columns show time (UTC), display name, actor, node ·
// resource and IP.
func (r *dashboardRun) tableCells(t *testing.T) {
	tb, events := r.tab(t), r.events
	opened := find(events, func(b *stele.EventBody) bool { return b.Type == "incident.opened" && b.Node == "nyc-edge-01" })
	started := find(events, func(b *stele.EventBody) bool { return b.Type == "pcap.started" })
	downloaded := find(events, func(b *stele.EventBody) bool { return b.Type == "pcap.downloaded" })
	want := map[string][]string{
		opened.ID:     {opened.Body.Time.UTC().Format("2006-01-02 15:04:05"), "Incident Opened", "system", "nyc-edge-01 · a3f7c2b1", ""},
		started.ID:    {started.Body.Time.UTC().Format("2006-01-02 15:04:05"), "PCAP Started", "system (auto)", "nyc-edge-01 · p-5e21b9", ""},
		downloaded.ID: {downloaded.Body.Time.UTC().Format("2006-01-02 15:04:05"), "PCAP Downloaded", "Alice Chen", "nyc-edge-01 · p-5e21b9", "203.0.113.42"},
	}
	for _, r := range tb.rows() {
		if w, ok := want[r.ID]; ok {
			if !slices.Equal(r.Cells, w) {
				t.Errorf("row %s = %q, want %q", r.ID, r.Cells, w)
			}
			delete(want, r.ID)
		}
	}
	if len(want) > 0 {
		t.Errorf("rows not found: %v", want)
	}
}

// filterByActor: the actor filter shows exactly that actor's events, and
// Export CSV downloads exactly them.
func (r *dashboardRun) filterByActor(t *testing.T) {
	tb, events := r.tab(t), r.events
	tb.do("filter by actor", chromedp.SendKeys(chromedp.ID("f-actor"), "alice@acme.com"), chromedp.Click(chromedp.ID("f-apply")))
	tb.waitLog(url.Values{"actor": {"alice@acme.com"}})
	want := matching(events, stele.Filter{Actor: "alice@acme.com"})
	if got := rowIDs(tb.rows()); !slices.Equal(got, want) || len(want) != 3 {
		t.Errorf("rows %v, want %v", got, want)
	}
	if got := tb.text("#event-count"); got != "3 events" {
		t.Errorf("count = %q, want 3 events", got)
	}

	// Export CSV exports exactly these rows.
	dir := t.TempDir()
	download := tb.allowDownloads(dir)
	path := download(chromedp.Click(chromedp.ID("export-csv")))
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("downloaded CSV: %v", err)
	}
	if !slices.Equal(records[0], export.Columns) {
		t.Fatalf("CSV header %v", records[0])
	}
	idCol := slices.Index(export.Columns, "id")
	var got []string
	for _, rec := range records[1:] {
		got = append(got, rec[idCol])
		if rec[slices.Index(export.Columns, "actor_id")] != "alice@acme.com" {
			t.Errorf("exported row of actor %q", rec[4])
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("exported ids %v, want %v", got, want)
	}
	if href := eval[string](tb, `document.querySelector('#export-json').getAttribute('href')`); href != "/v1/export?actor=alice%40acme.com&format=json" {
		t.Errorf("Export JSON links to %q", href)
	}
}

// filterByType: the type filter, and bookmarked URLs with a type prefix or a
// category.
func (r *dashboardRun) filterByType(t *testing.T) {
	tb, ts, events := r.tab(t), r.ts, r.events
	tb.do("clear the filters", chromedp.Click(chromedp.ID("f-clear")))
	tb.waitLog(url.Values{})
	if v := eval[string](tb, `document.querySelector('#f-actor').value`); v != "" {
		t.Errorf("actor field still holds %q", v)
	}
	tb.do("choose a type", chromedp.SetValue(chromedp.ID("f-type"), "type:incident.opened"), chromedp.Click(chromedp.ID("f-apply")))
	tb.waitLog(url.Values{"type": {"incident.opened"}})
	want := matching(events, stele.Filter{Type: "incident.opened"})
	if got := rowIDs(tb.rows()); !slices.Equal(got, want) || len(want) != 2 {
		t.Errorf("rows %v, want %v", got, want)
	}
	// A prefix from the API and a category, from a bookmarked URL.
	tb.do("open a bookmark", chromedp.Navigate(ts.URL+"/?type=pcap.*&node=nyc-edge-01"))
	tb.waitLog(url.Values{"type": {"pcap.*"}, "node": {"nyc-edge-01"}})
	want = matching(events, stele.Filter{Type: "pcap.*", Node: "nyc-edge-01"})
	if got := rowIDs(tb.rows()); !slices.Equal(got, want) || len(want) != 2 {
		t.Errorf("bookmarked rows %v, want %v", got, want)
	}
	if v := eval[string](tb, `document.querySelector('#f-node').value + '|' + document.querySelector('#f-type').value`); v != "nyc-edge-01|type:pcap.*" {
		t.Errorf("the form shows %q", v)
	}
	tb.do("open a category", chromedp.Navigate(ts.URL+"/?category=incidents&since=24h"))
	tb.waitLog(url.Values{"category": {"incidents"}, "since": {"24h"}})
	want = matching(events, stele.Filter{Category: "incidents", Since: time.Now().Add(-24 * time.Hour)})
	if got := rowIDs(tb.rows()); !slices.Equal(got, want) || len(want) != 3 {
		t.Errorf("category rows %v, want %v", got, want)
	}
	if v := eval[string](tb, `document.querySelector('#f-range').value`); v != "24h" {
		t.Errorf("time range shows %q", v)
	}
}

// textRangeChart: free text by keyboard, a custom time range, and a chart
// bar narrowing the range.
func (r *dashboardRun) textRangeChart(t *testing.T) {
	tb, ts, events := r.tab(t), r.ts, r.events
	tb.do("open the log", chromedp.Navigate(ts.URL+"/"))
	tb.waitLog(url.Values{})
	tb.do("press /", chromedp.KeyEvent("/"))
	tb.waitJS("focus in the search field", `document.activeElement.id === 'f-q'`)
	// chromedp sends the character as its own event, which the page's
	// preventDefault on keydown cannot cancel as it does for a person.
	eval[chromedp.Void](tb, `document.querySelector('#f-q').value = ''`)
	tb.do("search", chromedp.KeyEvent("udp\r"))
	tb.waitLog(url.Values{"q": {"udp"}})
	want := matching(events, stele.Filter{Text: []string{"udp"}})
	if got := rowIDs(tb.rows()); !slices.Equal(got, want) || len(want) != 3 {
		t.Errorf("q=udp rows %v, want %v", got, want)
	}
	now := time.Now().UTC()
	since, until := now.Add(-4*time.Hour).Truncate(time.Second), now.Add(-2*time.Hour).Truncate(time.Second)
	eval[chromedp.Void](tb, `(() => { const r = document.querySelector('#f-range'); r.value = 'custom'; r.dispatchEvent(new Event('change')); })()`)
	tb.do("choose a custom range", chromedp.WaitVisible(chromedp.ID("f-since")),
		chromedp.SetValue(chromedp.ID("f-since"), since.Format("2006-01-02T15:04:05")),
		chromedp.SetValue(chromedp.ID("f-until"), until.Format("2006-01-02T15:04:05")),
		chromedp.Click(chromedp.ID("f-apply")))
	tb.waitLog(url.Values{"q": {"udp"}, "since": {since.Format(time.RFC3339)}, "until": {until.Format(time.RFC3339)}})
	want = matching(events, stele.Filter{Text: []string{"udp"}, Since: since, Until: until})
	if got := rowIDs(tb.rows()); !slices.Equal(got, want) || len(want) != 2 {
		t.Errorf("custom range rows %v, want %v", got, want)
	}
	if got := tb.text("#chart figcaption"); !strings.HasPrefix(got, "Events per minute, ") {
		t.Errorf("chart caption %q", got)
	}
	// A bar narrows the range to its minute.
	tb.do("click a bar", chromedp.Click(chromedp.CSS("#chart svg .bars rect")))
	tb.waitJS("the bar's range", `new URLSearchParams(location.search).get('since') !== `+jsString(since.Format(time.RFC3339))+
		` && document.querySelector('#events').dataset.state === 'ready'`)
	q := eval[string](tb, `location.search`)
	v, _ := url.ParseQuery(strings.TrimPrefix(q, "?"))
	from, err1 := time.Parse(time.RFC3339, v.Get("since"))
	to, err2 := time.Parse(time.RFC3339, v.Get("until"))
	if err1 != nil || err2 != nil || to.Sub(from) != time.Minute || v.Get("q") != "udp" {
		t.Fatalf("after clicking a bar: %s", q)
	}
	want = matching(events, stele.Filter{Text: []string{"udp"}, Since: from, Until: to})
	if got := rowIDs(tb.rows()); !slices.Equal(got, want) || len(want) == 0 {
		t.Errorf("bar rows %v, want %v", got, want)
	}
}

// emptyAndErrors: a filter that matches nothing, and a bad filter in the URL.
func (r *dashboardRun) emptyAndErrors(t *testing.T) {
	tb, ts := r.tab(t), r.ts
	tb.do("filter on nobody", chromedp.Navigate(ts.URL+"/?actor=nobody%40acme.com"))
	tb.waitLog(url.Values{"actor": {"nobody@acme.com"}})
	if got := tb.text("#events-body"); !strings.Contains(got, "No events match these filters.") {
		t.Errorf("empty table shows %q", got)
	}
	if got := tb.text("#event-count") + " | " + tb.text("#chart"); got != "0 events | Events over time\nNo events to chart." {
		t.Errorf("empty count and chart: %q", got)
	}
	tb.do("a bad filter from a URL", chromedp.Navigate(ts.URL+"/?ip=not-an-ip"))
	tb.waitJS("the error state", `document.querySelector('#events')?.dataset.state === 'error'`)
	if got := tb.text("#events-body [role=alert]"); !strings.Contains(got, "The events could not be loaded.") || !strings.Contains(got, "ip: must be an IP address") {
		t.Errorf("error state shows %q", got)
	}
	if got := strings.Join(strings.Fields(tb.text("#extra-filters")), " "); !strings.Contains(got, "ip = not-an-ip") {
		t.Errorf("the filter from the URL is not shown: %q", got)
	}
	if href := eval[bool](tb, `document.querySelector('#export-csv').hasAttribute('href')`); href {
		t.Error("Export CSV is offered for filters the API refuses")
	}
	tb.do("remove it", chromedp.Click(chromedp.CSS("#extra-filters .chip-remove")))
	tb.waitLog(url.Values{})
}

// countAndLoadMore: the count covers every page, and Load more fetches the
// rest by cursor.
func (r *dashboardRun) countAndLoadMore(t *testing.T) {
	tb, ts, events := r.tab(t), r.ts, r.events
	tb.do("filter by node", chromedp.Navigate(ts.URL+"/?node=load-test-01"))
	tb.waitLog(url.Values{"node": {"load-test-01"}})
	if got := tb.text("#event-count"); got != "60 events" {
		t.Errorf("count = %q, want 60 events", got)
	}
	if n := len(tb.rows()); n != 50 {
		t.Errorf("first page has %d rows, want 50", n)
	}
	tb.do("load more", chromedp.Click(chromedp.ID("load-more")))
	tb.waitJS("60 rows", `document.querySelectorAll('#events-body tr[data-id]').length === 60`)
	want := matching(events, stele.Filter{Node: "load-test-01"})
	if got := rowIDs(tb.rows()); !slices.Equal(got, want) {
		t.Errorf("rows after load more %v, want %v", got, want)
	}
	if hidden := eval[bool](tb, `document.querySelector('#load-more').hidden`); !hidden {
		t.Error("Load more is still offered after the last page")
	}
	if got := tb.text("#shown"); got != "Showing 60 of 60 events" {
		t.Errorf("shown = %q", got)
	}
}

// detailVerified: the detail shows the event and verifies it in the browser.
func (r *dashboardRun) detailVerified(t *testing.T) {
	tb, ts, events := r.tab(t), r.ts, r.events
	opened := find(events, func(b *stele.EventBody) bool { return b.Type == "incident.opened" && b.Node == "nyc-edge-01" })
	tb.do("filter", chromedp.Navigate(ts.URL+"/?type=incident.opened"))
	tb.waitLog(url.Values{"type": {"incident.opened"}})
	tb.do("open the event", chromedp.Click(chromedp.CSS(`#events-body tr[data-id="`+opened.ID+`"] button`)))
	title := tb.verifyTitle()
	var size int64
	if _, err := fmt.Sscanf(title, "Verified against checkpoint %d", &size); err != nil || size <= opened.Seq {
		t.Fatalf("verification: %q (event seq %d)\n%s", title, opened.Seq, tb.text("#verify-status"))
	}
	_, body, _ := call(t, "GET", ts.URL+"/v1/events/"+opened.ID, ts.Key, "", nil)
	var api struct{ Event map[string]any }
	json.Unmarshal(body, &api)
	if got := tb.text("#detail-leaf"); got != api.Event["leaf_hash"] {
		t.Errorf("leaf hash shown %q, API says %v", got, api.Event["leaf_hash"])
	}
	if got := tb.text("#detail-seq"); got != fmt.Sprint(opened.Seq) {
		t.Errorf("seq shown %q, want %d", got, opened.Seq)
	}
	if got := tb.text("#detail-context"); !strings.Contains(got, `"peak_bps": 48200000000`) {
		t.Errorf("context shown as %q", got)
	}
	if h := eval[string](tb, `location.hash`); h != "#event="+opened.ID {
		t.Errorf("URL hash %q", h)
	}
	tb.screenshot("event-detail-verified.png")
	tb.do("close with Escape", chromedp.KeyEvent(kb.Escape))
	tb.waitJS("the drawer to close", `!document.querySelector('#detail')`)
	if h := eval[string](tb, `location.hash + '|' + document.activeElement.textContent`); h != "|Incident Opened" {
		t.Errorf("after closing: hash and focus %q", h)
	}
	// A bookmarked detail opens on load.
	tb.do("open the detail's URL", chromedp.Navigate(ts.URL+"/?type=incident.opened#event="+opened.ID))
	if title := tb.verifyTitle(); !strings.HasPrefix(title, "Verified against checkpoint") {
		t.Errorf("bookmarked detail: %q", title)
	}
}

// hostileText: markup, control and bidi characters in events render as
// inert, visible text.
func (r *dashboardRun) hostileText(t *testing.T) {
	tb, ts, events := r.tab(t), r.ts, r.events
	hostile := find(events, func(b *stele.EventBody) bool { return b.Actor.ID == hostileActor })
	tb.do("filter by the hostile actor", chromedp.Navigate(ts.URL+"/?actor="+url.QueryEscape(hostileActor)))
	tb.waitLog(url.Values{"actor": {hostileActor}})
	rows := tb.rows()
	if len(rows) != 1 || rows[0].ID != hostile.ID {
		t.Fatalf("rows %v", rows)
	}
	if got := rows[0].Cells[2]; got != hostileActor {
		t.Errorf("actor cell = %q, want the markup as text", got)
	}
	if got := rows[0].Cells[3]; got != `edge\r\nadmin logged in · r1` {
		t.Errorf("node cell = %q, want CR LF shown as \\r\\n", got)
	}
	if n := eval[int](tb, `document.querySelectorAll('img, script:not([src])').length`); n != 0 {
		t.Errorf("the page holds %d img or inline script elements", n)
	}
	tb.do("open it", chromedp.Click(chromedp.CSS(`#events-body tr[data-id="`+hostile.ID+`"] button`)))
	if title := tb.verifyTitle(); !strings.HasPrefix(title, "Verified against checkpoint") {
		t.Errorf("hostile event (unicode, 1e21, -0, escapes): %q\n%s", title, tb.text("#verify-status"))
	}
	detail := tb.text("#detail-body")
	for _, want := range []string{`\u202Egnp.exe`, `\u2028`, `<script>alert(2)</script>`, `1e+21`, `é😀\u2028\u0000\u001b[31m"`} {
		if !strings.Contains(detail, want) {
			t.Errorf("detail does not show %q:\n%s", want, detail)
		}
	}
	if n := eval[int](tb, `document.querySelectorAll('img').length`); n != 0 {
		t.Errorf("the detail created %d img elements", n)
	}
	tb.screenshot("hostile-event-detail.png")
	tb.do("close", chromedp.Click(chromedp.ID("detail-close")))
}

// logout: signing out ends the session on the server.
func (r *dashboardRun) logout(t *testing.T) {
	tb, ts := r.tab(t), r.ts
	tb.do("sign out", chromedp.Click(chromedp.ID("sign-out")), chromedp.WaitVisible(chromedp.ID("login-form")))
	if got := eval[int](tb, `fetch('/v1/auth/session').then(r => r.status)`); got != 401 {
		t.Errorf("session after sign-out answers %d, want 401", got)
	}
	tb.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("login-form")))
	_, body, _ := call(t, "GET", ts.URL+"/v1/events?type=user.logout&actor="+url.QueryEscape(adminEmail), ts.Key, "", nil)
	if !strings.Contains(string(body), `"user.logout"`) {
		t.Errorf("no user.logout event: %s", body)
	}
}

// verifyTitle waits for the drawer's verification to finish and returns
// its title.
func (tb *tab) verifyTitle() string {
	tb.t.Helper()
	tb.waitJS("the verification", `(() => { const s = document.querySelector('#verify-status'); return !!(s && !s.classList.contains("verify-running") && s.querySelector("#verify-title")); })()`)
	return tb.text("#verify-title")
}

// TestServeMountsDashboard checks the wiring: stele serve answers the
// dashboard's pages and assets beside the API, with the dashboard's
// security headers, and the API keeps its own answers.
func TestServeMountsDashboard(t *testing.T) {
	ts := startServer(t, "")
	for _, path := range []string{"/", "/admin/keys", "/ui/js/verify.js", "/ui/catalog.json"} {
		status, body, h := call(t, "GET", ts.URL+path, "", "", nil)
		if status != 200 || len(body) == 0 || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("GET %s: %d, CSP %q", path, status, h.Get("Content-Security-Policy"))
		}
	}
	status, body, h := call(t, "GET", ts.URL+"/v1/nothing", "", "", nil)
	if status != 404 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Errorf("GET /v1/nothing: %d %s", status, body)
	}
	status, _, _ = call(t, "GET", ts.URL+"/v1/events", "", "", nil)
	if status != 401 {
		t.Errorf("GET /v1/events without a credential: %d", status)
	}
}

// dashboardRun is the state TestDashboard's steps share: one server, its
// seeded events, and one signed-in tab.
type dashboardRun struct {
	tb     *tab
	ts     *testServer
	events []seededEvent
}

// tab returns the shared tab, reporting to the running step's t.
func (r *dashboardRun) tab(t *testing.T) *tab {
	r.tb.t = t
	return r.tb
}
