package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// `stele bench query` and `stele bench export` measure the read path end to
// end — HTTP request, authentication, the query, encoding, and the access
// event that every read commits first (D3) — on a generated log (see
// bench_query_data.go), each figure beside its baseline measured in the
// same run on the same database file: the bare SQL statement of the same
// page, or for exports the bare SELECT of the same rows written out with
// encoding/csv (or as NDJSON lines). Stele and baseline samples alternate,
// so that the noise of a shared machine falls on both.

// readBenchFlags are the flags both read benchmarks share.
type readBenchFlags struct {
	events int
	data   string
	keep   bool
}

func (f *readBenchFlags) register(fs interface {
	IntVar(*int, string, int, string)
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.IntVar(&f.events, "events", 1_000_000, "events in the generated log")
	fs.StringVar(&f.data, "data", "", "data directory of the log; reused when it holds one from an earlier run (default: a new temporary directory, removed afterwards)")
	fs.BoolVar(&f.keep, "keep", false, "keep the temporary data directory")
}

// readBench is a running server over a generated log, and a direct
// read-only connection to its database for the baselines.
type readBench struct {
	srv  *benchServer
	key  string
	db   *sql.DB
	wsn  int64
	http *http.Client
	done func()
}

func openReadBench(ctx context.Context, f readBenchFlags, stderr io.Writer) (*readBench, error) {
	dir, cleanup := f.data, func() {}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "stele-bench-read-")
		if err != nil {
			return nil, err
		}
		dir = tmp
		if !f.keep {
			cleanup = func() { os.RemoveAll(tmp); os.Remove(tmp + ".log") }
		} else {
			fmt.Fprintf(stderr, "keeping the log in %s\n", tmp)
		}
	}
	fail := func(err error) (*readBench, error) { cleanup(); return nil, err }
	key, err := benchData(ctx, dir, f.events, stderr)
	if err != nil {
		return fail(err)
	}
	srv, err := startBenchServer(ctx, benchServe{DataDir: dir, Key: key, Args: []string{"--name", benchName}})
	if err != nil {
		return fail(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "stele.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		srv.stop()
		return fail(err)
	}
	b := &readBench{srv: srv, key: key, db: db, http: &http.Client{}}
	b.done = func() { db.Close(); srv.stop(); cleanup() }
	if err := db.QueryRowContext(ctx, "SELECT n FROM workspaces WHERE id = 'default'").Scan(&b.wsn); err != nil {
		b.done()
		return nil, err
	}
	return b, nil
}

// get sends GET path and reads the whole answer; it returns the body.
func (b *readBench) get(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, "GET", b.srv.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.key)
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, msg)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// queryCase is one filter: its API parameters and the bare SQL condition
// of the same rows.
type queryCase struct {
	name   string
	params url.Values
	cond   string
	args   []any
}

func ip16(s string) []byte {
	a := netip.MustParseAddr(s).As16()
	return a[:]
}

func benchQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench query", stderr)
	var f readBenchFlags
	f.register(fs)
	samples := fs.Int("samples", 40, "first pages measured per filter (p50 and p99 over them)")
	if err := parse(fs, args); err != nil {
		return err
	}
	b, err := openReadBench(ctx, f, stderr)
	if err != nil {
		return err
	}
	defer b.done()
	now := time.Now().UTC()
	since, until := now.Add(-72*time.Hour).Truncate(time.Second), now.Add(-48*time.Hour).Truncate(time.Second)
	rare, err := b.rareWord(ctx)
	if err != nil {
		return err
	}
	lo, hi := netip.MustParseAddr("203.0.113.0").As16(), netip.MustParseAddr("203.0.113.255").As16()
	cases := []queryCase{
		{"no filter (newest first)", url.Values{}, "", nil},
		{"actor", url.Values{"actor": {"alice@acme.com"}}, "actor_id = ?", []any{"alice@acme.com"}},
		{"type", url.Values{"type": {"pcap.downloaded"}}, "type = ?", []any{"pcap.downloaded"}},
		{"type prefix pcap.*", url.Values{"type": {"pcap.*"}}, "type_root = ?", []any{"pcap"}},
		{"node", url.Values{"node": {"nyc-edge-01"}}, "node = ?", []any{"nyc-edge-01"}},
		{"time range (1 day)", url.Values{"since": {since.Format(time.RFC3339)}, "until": {until.Format(time.RFC3339)}}, "time_ns >= ? AND time_ns < ?", []any{since.UnixNano(), until.UnixNano()}},
		{"ip", url.Values{"ip": {"203.0.113.1"}}, "ip = ?", []any{ip16("203.0.113.1")}},
		{"CIDR /24", url.Values{"ip": {"203.0.113.0/24"}}, "ip BETWEEN ? AND ?", []any{lo[:], hi[:]}},
		{"free text, common word", url.Values{"q": {"ntp"}}, "rowid IN (SELECT rowid FROM events_text WHERE events_text MATCH ?)", []any{`"ntp"`}},
		{"free text, rare word", url.Values{"q": {rare}}, "rowid IN (SELECT rowid FROM events_text WHERE events_text MATCH ?)", []any{`"` + rare + `"`}},
		{"actor + type prefix + since", url.Values{"actor": {"alice@acme.com"}, "type": {"pcap.*"}, "since": {"30d"}},
			"actor_id = ? AND type_root = ? AND time_ns >= ?", []any{"alice@acme.com", "pcap", now.Add(-30 * 24 * time.Hour).UnixNano()}},
	}
	// The fixed cost of a read: authentication and the access event's commit.
	floor, _, _, err := b.measurePage(ctx, "/v1/stats/count?node=no-such-node", "node = ?", []any{"no-such-node"}, nil, *samples)
	if err != nil {
		return err
	}
	fixed := percentile(floor, 50)
	fmt.Fprintf(stdout, "First page (limit 50), %d samples per filter, log of %d events\n\n", *samples, f.events)
	fmt.Fprintf(stdout, "Fixed cost of any read (a count of nothing: authentication, and committing the access event durably): p50 %.2f ms, p99 %.2f ms\n\n",
		ms(fixed), ms(percentile(floor, 99)))
	fmt.Fprintln(stdout, "| filter | rows | Stele p50 ms | Stele p99 ms | bare SQL p50 ms | bare SQL p99 ms | p50 ratio | p50 ratio without the fixed cost |")
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|---|---|")
	for _, c := range cases {
		params := cloneParams(c.params)
		params.Set("limit", "50")
		stele, bare, rows, err := b.measurePage(ctx, "/v1/events?"+params.Encode(), c.cond, c.args, nil, *samples)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		printPageRow(stdout, c.name, rows, stele, bare, fixed)
	}
	// Deep pages: the 41st page of 50 for actor and for no filter.
	for _, c := range cases[:2] {
		params := cloneParams(c.params)
		params.Set("limit", "50")
		pos, cursor, err := b.deepCursor(ctx, params, 40)
		if err != nil {
			return err
		}
		params.Set("cursor", cursor)
		stele, bare, rows, err := b.measurePage(ctx, "/v1/events?"+params.Encode(), c.cond, c.args, pos, *samples)
		if err != nil {
			return err
		}
		printPageRow(stdout, c.name+", page 41", rows, stele, bare, fixed)
	}
	return nil
}

func cloneParams(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

func printPageRow(w io.Writer, name string, rows int, stele, bare []time.Duration, fixed time.Duration) {
	s50, s99, b50, b99 := percentile(stele, 50), percentile(stele, 99), percentile(bare, 50), percentile(bare, 99)
	fmt.Fprintf(w, "| %s | %d | %.2f | %.2f | %.2f | %.2f | %.1f× | %.1f× |\n", name, rows, ms(s50), ms(s99), ms(b50), ms(b99),
		float64(s50)/float64(max(b50, 1)), float64(max(s50-fixed, 0))/float64(max(b50, 1)))
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, (len(s)*p+99)/100-1)]
}

// measurePage times GET path and the bare SQL page of cond (after pos, when
// set) alternately, after two warm-up rounds; it returns the Stele and
// baseline durations and the page's row count.
func (b *readBench) measurePage(ctx context.Context, path, cond string, args []any, pos *[2]int64, samples int) (stele, bare []time.Duration, rows int, err error) {
	query := "SELECT rowid, body, leaf_hash FROM events WHERE ws = ?"
	qargs := []any{b.wsn}
	if cond != "" {
		query += " AND " + cond
		qargs = append(qargs, args...)
	}
	if pos != nil {
		query += " AND (time_ns, rowid) < (?, ?)"
		qargs = append(qargs, pos[0], b.wsn<<40|pos[1])
	}
	query += " ORDER BY time_ns DESC, rowid DESC LIMIT 50"
	var body bytes.Buffer
	for i := range samples + 2 {
		body.Reset()
		t0 := time.Now()
		if err := b.get(ctx, path, &body); err != nil {
			return nil, nil, 0, err
		}
		ts := time.Since(t0)
		t0 = time.Now()
		n, err := bareRows(ctx, b.db, query, qargs)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("bare query %s: %w", query, err)
		}
		tb := time.Since(t0)
		if i >= 2 {
			stele, bare, rows = append(stele, ts), append(bare, tb), n
		}
	}
	return stele, bare, rows, nil
}

func bareRows(ctx context.Context, db *sql.DB, query string, args []any) (int, error) {
	rs, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	defer rs.Close()
	n := 0
	for rs.Next() {
		var rid int64
		var body, leaf []byte
		if err := rs.Scan(&rid, &body, &leaf); err != nil {
			return 0, err
		}
		n++
	}
	return n, rs.Err()
}

// deepCursor walks pages-1 pages and returns the cursor of the next one and
// the position (time_ns, seq) it continues after.
func (b *readBench) deepCursor(ctx context.Context, params url.Values, pages int) (*[2]int64, string, error) {
	params = cloneParams(params)
	var pos [2]int64
	for range pages {
		var buf bytes.Buffer
		if err := b.get(ctx, "/v1/events?"+params.Encode(), &buf); err != nil {
			return nil, "", err
		}
		var page struct {
			Events []struct {
				Seq  int64     `json:"seq"`
				Time time.Time `json:"time"`
			} `json:"events"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(buf.Bytes(), &page); err != nil {
			return nil, "", err
		}
		if page.NextCursor == "" {
			return nil, "", errors.New("the log is too small for deep pages")
		}
		last := page.Events[len(page.Events)-1]
		pos = [2]int64{last.Time.UnixNano(), last.Seq}
		params.Set("cursor", page.NextCursor)
	}
	return &pos, params.Get("cursor"), nil
}

// rareWord returns a word that occurs in one event: the hex half of the
// newest event's request id.
func (b *readBench) rareWord(ctx context.Context) (string, error) {
	var buf bytes.Buffer
	if err := b.get(ctx, "/v1/events?limit=20&actor=bob%40acme.com", &buf); err != nil {
		return "", err
	}
	var page struct {
		Events []struct {
			Context struct {
				RequestID string `json:"request_id"`
			} `json:"context"`
		} `json:"events"`
	}
	json.Unmarshal(buf.Bytes(), &page)
	for _, e := range page.Events {
		if _, hex, ok := strings.Cut(e.Context.RequestID, "-"); ok && strings.IndexFunc(hex, unicode.IsLetter) >= 0 {
			return hex, nil
		}
	}
	return "", errors.New("no request id to search for")
}

// countingDiscard counts bytes thrown away.
type countingDiscard struct{ n int64 }

func (c *countingDiscard) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func benchExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench export", stderr)
	var f readBenchFlags
	f.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	b, err := openReadBench(ctx, f, stderr)
	if err != nil {
		return err
	}
	defer b.done()
	fmt.Fprintf(stdout, "Whole-log export of %d events, newest first\n\n", f.events)
	fmt.Fprintln(stdout, "| format | side | events | MB | seconds | MB/s | events/s | peak RSS MB | Stele events/s ÷ this |")
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|---|---|---|")
	type result struct {
		events, bytes int64
		secs          float64
		rss           int64
	}
	run := func(side, format string) (result, error) {
		stele := side == "stele"
		pid := os.Getpid()
		if stele {
			pid = b.srv.pid()
		}
		if err := resetPeakRSS(pid); err != nil {
			return result{}, err
		}
		fmt.Fprintf(stderr, "exporting %s (%s)...\n", format, side)
		var r result
		var cd countingDiscard
		t0 := time.Now()
		var err error
		if stele {
			cw := &countingWriter{w: &cd, format: format}
			err = b.get(ctx, "/v1/export?format="+format, cw)
			r.events, _ = cw.counts()
		} else {
			r.events, err = b.bareExport(ctx, side, &cd)
		}
		r.secs, r.bytes = time.Since(t0).Seconds(), cd.n
		if err != nil {
			return r, err
		}
		r.rss, err = peakRSS(pid)
		return r, err
	}
	sides := map[string][]string{
		"csv":    {"csv-stored", "stele", "csv", "stele"},
		"ndjson": {"stele", "ndjson", "ndjson", "stele"},
	}
	titles := map[string]string{"stele": "Stele /v1/export", "csv": "bare SELECT, same document (json_extract)",
		"csv-stored": "bare SELECT, stored columns and body", "ndjson": "bare SELECT, same document"}
	for _, format := range []string{"csv", "ndjson"} {
		got := map[string][]result{}
		for _, side := range sides[format] {
			r, err := run(side, format)
			if err != nil {
				return err
			}
			got[side] = append(got[side], r)
		}
		best := func(rs []result) result { // the faster of two runs
			if len(rs) > 1 && float64(rs[1].events)/rs[1].secs > float64(rs[0].events)/rs[0].secs {
				return rs[1]
			}
			return rs[0]
		}
		st := best(got["stele"])
		for _, side := range []string{"csv-stored", "csv", "ndjson", "stele"} {
			if len(got[side]) == 0 {
				continue
			}
			r := best(got[side])
			ratio := (float64(st.events) / st.secs) / (float64(r.events) / r.secs)
			fmt.Fprintf(stdout, "| %s | %s | %d | %.0f | %.1f | %.1f | %.0f | %.0f | %.2f |\n", format, titles[side], r.events, float64(r.bytes)/1e6, r.secs,
				float64(r.bytes)/1e6/r.secs, float64(r.events)/r.secs, float64(r.rss)/(1<<20), ratio)
		}
	}
	fmt.Fprintln(stdout, "\nPeak RSS: of the server process for Stele (reset before each export), of the benchmark process for the baseline.")
	return nil
}

// bareExport is the baseline of an export: the bare SELECT of the
// workspace's rows in the same order, written out as kind: "csv", the same
// document with encoding/csv (the fields not stored as columns taken from
// the body with SQLite's json_extract); "csv-stored", the stored columns and
// the whole body as one cell, the cheapest CSV; "ndjson", the same document
// (the stored body between seq and leaf_hash, one per line).
func (b *readBench) bareExport(ctx context.Context, format string, w io.Writer) (int64, error) {
	query := `SELECT json_extract(body, '$.time'), type, category, json_extract(body, '$.actor.type'), actor_id,
		json_extract(body, '$.actor.name'), node, resource_type, resource_id, json_extract(body, '$.resource.name'),
		ip, outcome, json_extract(body, '$.context'), id, rowid, json_extract(body, '$.received_at'), leaf_hash
		FROM events WHERE ws = ? ORDER BY time_ns DESC, rowid DESC`
	switch format {
	case "ndjson":
		query = `SELECT rowid, body, leaf_hash FROM events WHERE ws = ? ORDER BY time_ns DESC, rowid DESC`
	case "csv-stored":
		// The cheapest CSV: the stored columns, the whole body as one cell.
		query = `SELECT time_ns, type, category, '', actor_id, '', node, resource_type, resource_id, '',
			ip, outcome, body, id, rowid, received_ns, leaf_hash FROM events WHERE ws = ? ORDER BY time_ns DESC, rowid DESC`
	}
	rs, err := b.db.QueryContext(ctx, query, b.wsn)
	if err != nil {
		return 0, err
	}
	defer rs.Close()
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	cw.Write([]string{"time", "type", "category", "actor_type", "actor_id", "actor_name", "node", "resource_type",
		"resource_id", "resource_name", "ip", "outcome", "context", "id", "seq", "received_at", "leaf_hash"})
	var n int64
	var line []byte
	for rs.Next() {
		n++
		if format == "ndjson" {
			var rid int64
			var body, leaf []byte
			if err := rs.Scan(&rid, &body, &leaf); err != nil {
				return n, err
			}
			line = strconv.AppendInt(append(line[:0], `{"seq":`...), rid&(1<<40-1), 10)
			line = append(append(line, ','), body[1:len(body)-1]...)
			line = append(base64.StdEncoding.AppendEncode(append(line, `,"leaf_hash":"`...), leaf), "\"}\n"...)
			if _, err := bw.Write(line); err != nil {
				return n, err
			}
			continue
		}
		var cols [17]sql.NullString
		var ip, id, leaf []byte
		var rid int64
		if err := rs.Scan(&cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5], &cols[6], &cols[7], &cols[8], &cols[9],
			&ip, &cols[11], &cols[12], &id, &rid, &cols[15], &leaf); err != nil {
			return n, err
		}
		row := make([]string, 17)
		for i := range cols {
			row[i] = cols[i].String
		}
		if format == "csv-stored" {
			t, _ := strconv.ParseInt(row[0], 10, 64)
			r, _ := strconv.ParseInt(row[15], 10, 64)
			row[0], row[15] = time.Unix(0, t).UTC().Format(time.RFC3339Nano), time.Unix(0, r).UTC().Format(time.RFC3339Nano)
		}
		if len(ip) == 16 {
			row[10] = netip.AddrFrom16([16]byte(ip)).Unmap().String()
		}
		if len(id) == 16 {
			row[13] = fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
		}
		row[14] = strconv.FormatInt(rid&(1<<40-1), 10)
		row[16] = base64.StdEncoding.EncodeToString(leaf)
		if err := cw.Write(row); err != nil {
			return n, err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return n, err
	}
	if err := rs.Err(); err != nil {
		return n, err
	}
	return n, bw.Flush()
}
