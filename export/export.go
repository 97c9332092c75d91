// Package export writes events as CSV, a JSON array or NDJSON, one event at
// a time, so that an export streams from the database to the socket in
// constant memory whatever its size.
//
// NDJSON and JSON are lossless: each event is its canonical body (the leaf
// bytes) with seq and leaf_hash added, so the leaf can be recomputed from
// every exported event. CSV is for people: one row per event with the
// columns of Columns, RFC 4180 quoting, and every cell that a spreadsheet
// would read as a formula neutralized with a leading apostrophe (OWASP CSV
// injection; RELIABILITY.md INP-07).
package export

import (
	"bufio"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/stele-log/stele"
)

// Formats accepted by New.
const (
	CSV    = "csv"
	JSON   = "json"
	NDJSON = "ndjson"
)

// Columns are the CSV columns, in order.
var Columns = []string{"time", "type", "category", "actor_type", "actor_id", "actor_name", "node", "resource_type",
	"resource_id", "resource_name", "ip", "outcome", "context", "id", "seq", "received_at", "leaf_hash"}

// Writer encodes a stream of events.
type Writer interface {
	// Write encodes one event.
	Write(e stele.StoredEvent) error
	// Close finishes the document (the JSON array's bracket) and flushes.
	Close() error
}

// New returns a Writer of format to w.
func New(w io.Writer, format string) (Writer, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	switch format {
	case NDJSON:
		return &ndjsonWriter{w: bw}, nil
	case JSON:
		return &jsonWriter{w: bw}, nil
	case CSV:
		cw := csv.NewWriter(bw)
		if err := cw.Write(Columns); err != nil {
			return nil, err
		}
		return &csvWriter{bw: bw, cw: cw, row: make([]string, len(Columns))}, nil
	}
	return nil, fmt.Errorf("unknown export format %q", format)
}

// ContentType returns the media type of format.
func ContentType(format string) string {
	switch format {
	case CSV:
		return "text/csv; charset=utf-8"
	case JSON:
		return "application/json"
	default:
		return "application/x-ndjson"
	}
}

// AppendEvent appends the lossless JSON form of e to dst: seq, then the
// canonical body's members, then leaf_hash.
func AppendEvent(dst []byte, e stele.StoredEvent) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, e.Seq, 10)
	if len(e.Canonical) > 2 {
		dst = append(dst, ',')
		dst = append(dst, e.Canonical[1:len(e.Canonical)-1]...)
	}
	dst = append(dst, `,"leaf_hash":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, e.LeafHash[:])
	return append(dst, `"}`...)
}

type ndjsonWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (n *ndjsonWriter) Write(e stele.StoredEvent) error {
	n.buf = append(AppendEvent(n.buf[:0], e), '\n')
	_, err := n.w.Write(n.buf)
	return err
}

func (n *ndjsonWriter) Close() error { return n.w.Flush() }

type jsonWriter struct {
	w     *bufio.Writer
	buf   []byte
	count int
}

func (j *jsonWriter) Write(e stele.StoredEvent) error {
	sep := byte(',')
	if j.count == 0 {
		sep = '['
	}
	j.count++
	j.buf = AppendEvent(append(j.buf[:0], sep, '\n'), e)
	_, err := j.w.Write(j.buf)
	return err
}

func (j *jsonWriter) Close() error {
	end := "\n]\n"
	if j.count == 0 {
		end = "[]\n"
	}
	if _, err := j.w.WriteString(end); err != nil {
		return err
	}
	return j.w.Flush()
}

type csvWriter struct {
	bw  *bufio.Writer
	cw  *csv.Writer
	row []string
}

// csvEvent is the part of a canonical body that CSV shows. Times stay the
// strings of the canonical form (RFC 3339, UTC, nanoseconds when present):
// no parsing, and exactly the leaf's text.
type csvEvent struct {
	ID         string `json:"id"`
	Time       string `json:"time"`
	ReceivedAt string `json:"received_at"`
	Type       string `json:"type"`
	Category   string `json:"category"`
	Actor      struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"actor"`
	Node     string `json:"node"`
	Resource *struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"resource"`
	IP      string          `json:"ip"`
	Outcome string          `json:"outcome"`
	Context json.RawMessage `json:"context"`
}

func (c *csvWriter) Write(e stele.StoredEvent) error {
	var b csvEvent
	if err := json.Unmarshal(e.Canonical, &b); err != nil {
		return fmt.Errorf("event %d: %w", e.Seq, err)
	}
	r := c.row
	r[0] = b.Time
	r[1], r[2] = b.Type, b.Category
	r[3], r[4], r[5] = b.Actor.Type, b.Actor.ID, b.Actor.Name
	r[6] = b.Node
	r[7], r[8], r[9] = "", "", ""
	if b.Resource != nil {
		r[7], r[8], r[9] = b.Resource.Type, b.Resource.ID, b.Resource.Name
	}
	r[10], r[11] = b.IP, b.Outcome
	r[12] = string(b.Context)
	r[13] = b.ID
	r[14] = strconv.FormatInt(e.Seq, 10)
	r[15] = b.ReceivedAt
	r[16] = base64.StdEncoding.EncodeToString(e.LeafHash[:])
	for i := range r {
		r[i] = Neutralize(r[i])
	}
	return c.cw.Write(r)
}

func (c *csvWriter) Close() error {
	c.cw.Flush()
	if err := c.cw.Error(); err != nil {
		return err
	}
	return c.bw.Flush()
}

// Neutralize prefixes a cell that a spreadsheet would evaluate — one that
// starts with =, +, -, @, a tab or a carriage return (OWASP), or NUL
// (RELIABILITY.md INP-07) — with an apostrophe.
// Other cells are returned unchanged, so parsing the CSV gives back every
// value, or the value with one leading apostrophe.
func Neutralize(cell string) string {
	if cell == "" {
		return cell
	}
	switch cell[0] {
	case '=', '+', '-', '@', '\t', '\r', 0:
		return "'" + cell
	}
	return cell
}
