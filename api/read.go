package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/export"
	"golang.org/x/mod/sumdb/tlog"
)

// Page sizes of GET /v1/events.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

// readQuery is a parsed read request: filters plus the parameters of its
// endpoint.
type readQuery struct {
	filter stele.Filter
	order  stele.Order
	now    time.Time  // the clock relative times count back from
	values url.Values // the filter parameters as sent, for the access event
	all    url.Values // every parameter
}

// parseRead parses the filter parameters and order, rejecting any parameter
// not in extra. Relative times count back from now.
func (s *Server) parseRead(r *http.Request, extra ...string) (readQuery, url.Values, error) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return readQuery{}, nil, stele.FieldError("", "malformed query string")
	}
	known := append(stele.FilterParams(), "order")
	for name, vs := range values {
		if !slices.Contains(known, name) && !slices.Contains(extra, name) {
			return readQuery{}, nil, stele.FieldError(name, "unknown query parameter")
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return readQuery{}, nil, stele.FieldError(name, "must be valid UTF-8")
			}
		}
		if len(vs) > 1 {
			return readQuery{}, nil, stele.FieldError(name, "given more than once")
		}
	}
	q := readQuery{values: url.Values{}, all: values}
	if err := q.parseFilter(s.now()); err != nil {
		return readQuery{}, nil, err
	}
	switch values.Get("order") {
	case "", "desc":
		q.order = stele.NewestFirst
	case "asc":
		q.order = stele.OldestFirst
	default:
		return readQuery{}, nil, stele.FieldError("order", "must be desc (newest first) or asc")
	}
	for _, name := range stele.FilterParams() {
		if v, ok := values[name]; ok {
			q.values[name] = v
		}
	}
	return q, values, nil
}

// parseFilter (re)reads the filter with relative times counting back from
// now.
func (q *readQuery) parseFilter(now time.Time) error {
	f, err := stele.ParseFilter(q.all, now)
	if err != nil {
		return err
	}
	q.filter, q.now = f, now
	return nil
}

// continueFrom checks that the request's cursor belongs to this query in
// workspace ws and returns it, with the filter's relative times re-read at
// the clock of the walk's first page.
func (s *Server) continueFrom(q *readQuery, ws string) (cursor, error) {
	cur, ok := s.cursors.decode(q.all.Get("cursor"))
	if !ok || cur.Query != q.digest(ws) || cur.Order != q.order {
		return cursor{}, stele.FieldError("cursor", "is not a cursor of this query (it must come from next_cursor, with the same filters and order)")
	}
	if err := q.parseFilter(time.Unix(0, cur.Now)); err != nil {
		return cursor{}, err
	}
	return cur, nil
}

// digest identifies a query for its cursors.
func (q *readQuery) digest(ws string) string {
	h := sha256.Sum256([]byte(ws + "\x00" + q.values.Encode() + "\x00" + strconv.Itoa(int(q.order))))
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

// filters returns the filter parameters for an access event's context.
func (q *readQuery) filters() map[string]string {
	out := map[string]string{}
	for k, v := range q.values {
		out[k] = v[0]
	}
	return out
}

type listResponse struct {
	Events     []json.RawMessage `json:"events"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// listEvents is GET /v1/events: one page of matching events.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	q, values, err := s.parseRead(r, "limit", "cursor")
	if err != nil {
		return err
	}
	limit := defaultLimit
	if values.Has("limit") {
		n, err := strconv.Atoi(values.Get("limit"))
		if err != nil || n < 1 || n > maxLimit {
			return stele.FieldError("limit", "must be an integer from 1 to %d", maxLimit)
		}
		limit = n
	}
	digest := q.digest(t.Workspace())
	continued := values.Has("cursor")
	// One event more than the page tells whether there is a next page.
	query := stele.Query{Order: q.order, Limit: limit + 1}
	if continued {
		cur, err := s.continueFrom(&q, t.Workspace())
		if err != nil {
			return err
		}
		query.After = &stele.Position{TimeNS: cur.TimeNS, Seq: cur.Seq}
		query.Below = cur.Below
	} else {
		head, err := t.Head(r.Context())
		if err != nil {
			return err
		}
		query.Below = head.Size
	}
	query.Filter = q.filter
	resp := listResponse{Events: []json.RawMessage{}}
	var last *stele.StoredEvent
	if query.Below > 0 {
		events, err := t.Query(r.Context(), query)
		if err != nil {
			return err
		}
		if len(events) > limit {
			events = events[:limit]
			last = &events[limit-1]
		}
		for i := range events {
			resp.Events = append(resp.Events, export.AppendEvent(nil, events[i]))
		}
	}
	if last != nil {
		var b stele.EventBody
		if err := json.Unmarshal(last.Canonical, &b); err != nil {
			return err
		}
		pos := stele.PositionOf(last.Seq, &b)
		resp.NextCursor = s.cursors.encode(cursor{Order: q.order, TimeNS: pos.TimeNS, Seq: pos.Seq, Below: query.Below, Now: q.now.UnixNano(), Query: digest})
	}
	ctx := map[string]any{"kind": "events", "filters": q.filters(), "rows": len(resp.Events), "continued": continued}
	if err := s.recordRead(r, p, t, "auditlog.queried", ctx); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// eventResponse is GET /v1/events/{id}: the event, and its inclusion proof
// against the latest checkpoint when one covers it.
type eventResponse struct {
	Event      json.RawMessage `json:"event"`
	Proof      *inclusionProof `json:"proof,omitempty"`
	Checkpoint string          `json:"checkpoint,omitempty"`
}

type inclusionProof struct {
	Index  int64    `json:"index"`
	Size   int64    `json:"size"`
	Hashes []string `json:"hashes"`
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	id := r.PathValue("id")
	e, err := t.EventByID(r.Context(), id)
	if err != nil {
		return err
	}
	resp := eventResponse{Event: export.AppendEvent(nil, e)}
	cp, err := t.LatestCheckpoint(r.Context())
	if err == nil && cp.Size > e.Seq {
		proof, err := tlog.ProveRecord(cp.Size, e.Seq, t.HashReader(r.Context()))
		if err != nil {
			return fmt.Errorf("couldn't prove inclusion of %d in %d: %w", e.Seq, cp.Size, err)
		}
		resp.Proof = &inclusionProof{Index: e.Seq, Size: cp.Size, Hashes: hashStrings(proof)}
		resp.Checkpoint = string(cp.Note)
	}
	if err := s.recordRead(r, p, t, "auditlog.queried", map[string]any{"kind": "event", "id": id, "rows": 1}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func hashStrings(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

// exportEvents is GET /v1/export: every matching event, streamed from one
// statement (one snapshot) of the database to the socket, in constant
// memory. The walk is pinned to the log's size when the request arrives, so
// the number of rows is known before the first byte: it is recorded in the
// auditlog.exported event, which is durable before anything is sent (D3),
// and sent as X-Stele-Rows. A client that goes away cancels the request's
// context, which interrupts the statement.
func (s *Server) exportEvents(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	if r.URL.Query().Get("format") == "bundle" {
		return s.exportBundle(w, r, p, t) // the verifiable export: bundle.go
	}
	q, values, err := s.parseRead(r, "format")
	if err != nil {
		return err
	}
	format := values.Get("format")
	switch format {
	case "":
		format = export.NDJSON
	case export.CSV, export.JSON, export.NDJSON:
	default:
		return stele.FieldError("format", "must be csv, json, ndjson or bundle")
	}
	head, err := t.Head(r.Context())
	if err != nil {
		return err
	}
	query := stele.Query{Filter: q.filter, Order: q.order, Below: head.Size}
	var rows int64
	if query.Below > 0 {
		if rows, err = t.Count(r.Context(), query); err != nil {
			return err
		}
	}
	ctx := map[string]any{"filters": q.filters(), "format": format, "rows": rows, "log_size": head.Size}
	if err := s.recordRead(r, p, t, "auditlog.exported", ctx); err != nil {
		return err
	}
	name := exportFilename(t.Workspace(), s.now(), format)
	w.Header().Set("Content-Type", export.ContentType(format))
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("X-Stele-Rows", strconv.FormatInt(rows, 10))
	ew, err := export.New(w, format)
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	if query.Below > 0 {
		err = t.Scan(r.Context(), query, ew.Write)
	}
	if err == nil {
		err = ew.Close()
	}
	if err != nil {
		// Headers are sent: the only honest signal left is a broken stream.
		s.log.Warn("export interrupted", "workspace", t.Workspace(), "format", format, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// exportFilename is the download's name: stele-<workspace>-<UTC time>.<format>,
// with anything but letters, digits, '.', '-' and '_' in the workspace id
// replaced, so that no name can break out of the header or a path (INP-16).
func exportFilename(ws string, now time.Time, format string) string {
	safe := []byte(strings.TrimLeft(ws, "_."))
	for i, c := range safe {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			safe[i] = '_'
		}
	}
	if len(safe) == 0 || len(safe) > 64 {
		safe = []byte("log")
	}
	return fmt.Sprintf("stele-%s-%s.%s", safe, now.UTC().Format("20060102T150405Z"), format)
}

type histogramResponse struct {
	Interval string       `json:"interval"`
	Since    time.Time    `json:"since"`
	Until    time.Time    `json:"until"`
	Buckets  []bucketJSON `json:"buckets"`
	Total    int64        `json:"total"`
}

type bucketJSON struct {
	Start time.Time `json:"start"`
	Count int64     `json:"count"`
}

// maxBuckets bounds a histogram's size.
const maxBuckets = 10000

// histogram is GET /v1/stats/histogram: counts per bucket, every bucket of
// [since, until) present (zero-filled), for charts.
func (s *Server) histogram(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	q, values, err := s.parseRead(r, "interval")
	if err != nil {
		return err
	}
	var step time.Duration
	var defaultSpan time.Duration
	interval := values.Get("interval")
	if interval == "" {
		interval = "hour"
	}
	switch interval {
	case "minute":
		step, defaultSpan = time.Minute, 6*time.Hour
	case "hour":
		step, defaultSpan = time.Hour, 7*24*time.Hour
	case "day":
		step, defaultSpan = 24*time.Hour, 90*24*time.Hour
	default:
		return stele.FieldError("interval", "must be minute, hour or day")
	}
	now := s.now().UTC()
	f := q.filter
	if f.Until.IsZero() {
		f.Until = now
	}
	if f.Since.IsZero() {
		f.Since = f.Until.Add(-defaultSpan)
	}
	if !f.Since.Before(f.Until) {
		return stele.FieldError("since", "must be earlier than until")
	}
	start := f.Since.Truncate(step)
	if n := f.Until.Sub(start) / step; n > maxBuckets {
		return stele.FieldError("interval", "%s buckets over this range would be %d; the maximum is %d", interval, n, maxBuckets)
	}
	buckets, err := t.Histogram(r.Context(), f, step)
	if err != nil {
		return err
	}
	resp := histogramResponse{Since: f.Since, Until: f.Until, Buckets: []bucketJSON{},
		Interval: map[time.Duration]string{time.Minute: "minute", time.Hour: "hour", 24 * time.Hour: "day"}[step]}
	counts := map[int64]int64{}
	for _, b := range buckets {
		counts[b.Start.UnixNano()] = b.Count
	}
	for t := start; t.Before(f.Until); t = t.Add(step) {
		n := counts[t.UnixNano()]
		resp.Buckets = append(resp.Buckets, bucketJSON{Start: t, Count: n})
		resp.Total += n
	}
	ctx := map[string]any{"kind": "histogram", "filters": q.filters(), "interval": resp.Interval, "rows": resp.Total}
	if err := s.recordRead(r, p, t, "auditlog.queried", ctx); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// recordRead appends the access event of a read of ws's log, and refuses the
// read when it cannot (D3, AUT-13).
func (s *Server) recordRead(r *http.Request, p *Principal, t stele.Tenant, typ string, context map[string]any) error {
	raw, err := json.Marshal(context)
	if err != nil {
		return err
	}
	b := stele.EventBody{Type: typ, Actor: p.actor(), IP: p.IP, Context: raw,
		Resource: &stele.Resource{Type: "auditlog", ID: t.Workspace()}}
	if err := s.record(r.Context(), t.Workspace(), b); err != nil {
		return &stele.Error{Kind: stele.KindUnavailable, Message: "the read could not be recorded in the audit log, so it was refused", RetryAfter: 1, Err: err}
	}
	return nil
}
