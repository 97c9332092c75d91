// Package bundle is the format of Stele's verifiable exports
// (GET /v1/export?format=bundle): NDJSON whose first line carries the signed
// checkpoint that everything after it is proven against, then one line per
// event, then an end line. The server writes it with an Encoder and
// `stele verify` reads it with a Decoder; the package only encodes and
// decodes: what the lines prove is the verify package's business.
//
// A bundle is in one of two modes, which its header says:
//
//   - range: the events are exactly the positions [From, To) of the log, in
//     seq order. The header proves them all at once with a compact range
//     proof: Left, the roots of the complete subtrees of the tree of the
//     first From leaves (largest first, as tree.FrontierIndexes orders them),
//     and Consistency, the RFC 6962 consistency proof from the tree of To
//     leaves to the checkpoint's. A verifier appends the recomputed leaves to
//     Left, which gives the root of the tree of To leaves, and checks it
//     against the checkpoint with Consistency. The proof is O(log n) for any
//     number of events, so a full export stays the size of its events.
//   - proofs: the events are a filtered selection, oldest first (by event
//     time, then seq), each with its RFC 6962 inclusion proof in the shape of
//     C2SP tlog-proof@v1 (index and hashes; the checkpoint is the header's).
//     Proof.TLogProof turns one into a standalone tlog-proof@v1 file.
//
// Event objects are byte for byte the lines of the NDJSON export: the leaf
// is the RFC 8785 canonical JSON of the object without seq and leaf_hash.
// Lines are strict JSON: unknown members and duplicate names are refused.
package bundle

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/mod/sumdb/tlog"
)

// Format names this version of the format in every header.
const Format = "stele-bundle/v1"

// ContentType is the media type of a bundle.
const ContentType = "application/x-ndjson"

// MaxLine bounds a line: an event (at most a few hundred KiB) with its proof.
const MaxLine = 4 << 20

// Header is a bundle's first line.
type Header struct {
	Format string `json:"format"`
	// Origin is the log's origin, as in the checkpoint's first line.
	Origin string `json:"origin"`
	// Checkpoint is the signed note (C2SP tlog-checkpoint) every proof of the
	// bundle is against.
	Checkpoint string `json:"checkpoint"`
	// Filters are the export's filter parameters as requested (informative:
	// nothing proves that a filtered selection is complete).
	Filters map[string]string `json:"filters,omitempty"`
	// Range, when set, makes the bundle a range bundle; otherwise every event
	// carries its own inclusion proof.
	Range *Range `json:"range,omitempty"`
}

// Range is the compact proof of the contiguous positions [From, To).
type Range struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// Left holds the hashes at tree.FrontierIndexes(From).
	Left []tlog.Hash `json:"left"`
	// Consistency proves the tree of To leaves is a prefix of the
	// checkpoint's (tlog.ProveTree(size, To)); empty when To is its size.
	Consistency []tlog.Hash `json:"consistency"`
}

// Line is any line after the header: exactly one of Event, Pruned or End.
type Line struct {
	// Event is the event object as in the NDJSON export.
	Event jsontext.Value `json:"event,omitempty"`
	// Proof is the event's inclusion proof, in proofs bundles.
	Proof *Proof `json:"proof,omitempty"`
	// Pruned stands for a position of a range whose body retention removed:
	// only its leaf hash is left.
	Pruned *Pruned `json:"pruned,omitempty"`
	// End is the last line.
	End *End `json:"end,omitempty"`
}

// Proof is an RFC 6962 inclusion proof of leaf Index in the checkpoint's
// tree: the index and hashes of a C2SP tlog-proof@v1.
type Proof struct {
	Index  int64       `json:"index"`
	Hashes []tlog.Hash `json:"hashes"`
}

// Pruned is a position whose event body is gone.
type Pruned struct {
	Seq      int64     `json:"seq"`
	LeafHash tlog.Hash `json:"leaf_hash"`
}

// End closes a bundle: a bundle without it was cut short.
type End struct {
	// Events counts the event and pruned lines.
	Events int64 `json:"events"`
}

// TLogProof returns p with checkpoint as a C2SP tlog-proof@v1 document.
func (p *Proof) TLogProof(checkpoint []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "c2sp.org/tlog-proof@v1\nindex %d\n", p.Index)
	for _, h := range p.Hashes {
		b.WriteString(h.String() + "\n")
	}
	b.WriteByte('\n')
	b.Write(checkpoint)
	return b.Bytes()
}

// Encoder writes a bundle. It buffers; Close flushes.
type Encoder struct {
	w      *bufio.Writer
	events int64
	buf    []byte
}

// NewEncoder writes h as the first line of a bundle to w.
func NewEncoder(w io.Writer, h Header) (*Encoder, error) {
	h.Format = Format
	e := &Encoder{w: bufio.NewWriterSize(w, 64<<10)}
	return e, e.line(h)
}

func (e *Encoder) line(v any) error {
	var err error
	e.buf, err = json.Marshal(v, json.Deterministic(true))
	if err != nil {
		return err
	}
	e.buf = append(e.buf, '\n')
	_, err = e.w.Write(e.buf)
	return err
}

// WriteEvent writes an event object (its NDJSON export form) with its
// inclusion proof, or none (nil) in a range bundle.
func (e *Encoder) WriteEvent(event []byte, proof *Proof) error {
	e.events++
	// The event is written as is, byte for byte its export line.
	e.buf = append(append(e.buf[:0], `{"event":`...), event...)
	if proof != nil {
		p, err := json.Marshal(proof)
		if err != nil {
			return err
		}
		e.buf = append(append(e.buf, `,"proof":`...), p...)
	}
	e.buf = append(e.buf, "}\n"...)
	_, err := e.w.Write(e.buf)
	return err
}

// WritePruned writes a position whose body retention removed.
func (e *Encoder) WritePruned(seq int64, leafHash tlog.Hash) error {
	e.events++
	return e.line(Line{Pruned: &Pruned{Seq: seq, LeafHash: leafHash}})
}

// Close writes the end line and flushes.
func (e *Encoder) Close() error {
	if err := e.line(Line{End: &End{Events: e.events}}); err != nil {
		return err
	}
	return e.w.Flush()
}

// Decoder reads a bundle line by line.
type Decoder struct {
	r    *bufio.Reader
	line int
	// A line decoder reused from line to line: its state is large.
	lr bytes.Reader
	jd jsontext.Decoder
}

// NewDecoder reads from r.
func NewDecoder(r io.Reader) *Decoder { return &Decoder{r: bufio.NewReaderSize(r, 64<<10)} }

// LineNumber is the 1-based number of the line last read.
func (d *Decoder) LineNumber() int { return d.line }

// ErrNotBundle is returned by Header when the first line is not a bundle
// header.
var ErrNotBundle = errors.New("not a " + Format + " bundle")

// Header reads the first line. It must be called first.
func (d *Decoder) Header() (*Header, error) {
	raw, err := d.Raw()
	if err != nil {
		return nil, err
	}
	return ParseHeader(raw)
}

// ParseHeader parses a header line; ErrNotBundle if it is none.
func ParseHeader(raw []byte) (*Header, error) {
	var probe struct {
		Format string `json:"format"`
	}
	if json.Unmarshal(raw, &probe) != nil || probe.Format == "" {
		return nil, ErrNotBundle
	}
	if probe.Format != Format {
		return nil, fmt.Errorf("unsupported bundle format %q (this verifier reads %s)", probe.Format, Format)
	}
	var h Header
	if err := json.Unmarshal(raw, &h, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("malformed bundle header: %w", err)
	}
	return &h, nil
}

// hashCodec decodes hashes straight from their base64 strings: with
// tlog.Hash's own UnmarshalJSON, a bundle with a proof per event spends a
// third of its decoding time on the detour.
var hashCodec = json.WithUnmarshalers(json.UnmarshalFromFunc(func(dec *jsontext.Decoder, h *tlog.Hash) error {
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() != '"' {
		return errors.New("a hash is a base64 string")
	}
	s := tok.String()
	var buf [33]byte // DecodedLen of 44 characters
	n, err := base64.StdEncoding.Decode(buf[:], []byte(s))
	if err != nil || n != len(h) || len(s) != 44 {
		return fmt.Errorf("%q is not a base64 SHA-256 hash", s)
	}
	copy(h[:], buf[:n])
	return nil
}))

// Next reads the next line; io.EOF at the end of the input.
func (d *Decoder) Next() (*Line, error) {
	raw, err := d.Raw()
	if err != nil {
		return nil, err
	}
	return d.Parse(raw)
}

// Parse parses raw, a line after the header.
func (d *Decoder) Parse(raw []byte) (*Line, error) {
	var l Line
	d.lr.Reset(raw)
	d.jd.Reset(&d.lr)
	if err := json.UnmarshalDecode(&d.jd, &l, json.RejectUnknownMembers(true), hashCodec); err != nil {
		return nil, fmt.Errorf("line %d: malformed: %w", d.line, err)
	}
	if _, err := d.jd.ReadToken(); err != io.EOF {
		return nil, fmt.Errorf("line %d: malformed: data after the object", d.line)
	}
	n := 0
	for _, set := range []bool{l.Event != nil, l.Pruned != nil, l.End != nil} {
		if set {
			n++
		}
	}
	if n != 1 || (l.Proof != nil && l.Event == nil) {
		return nil, fmt.Errorf("line %d: must hold exactly one of event (with its proof), pruned or end", d.line)
	}
	return &l, nil
}

// Raw returns the next non-empty line without its newline, valid until the
// next call; io.EOF at the end of the input.
func (d *Decoder) Raw() ([]byte, error) {
	for {
		raw, err := d.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			var long []byte
			long = append(long, raw...)
			for errors.Is(err, bufio.ErrBufferFull) && len(long) <= MaxLine {
				raw, err = d.r.ReadSlice('\n')
				long = append(long, raw...)
			}
			if len(long) > MaxLine {
				return nil, fmt.Errorf("line %d: longer than %d bytes", d.line+1, MaxLine)
			}
			raw = long
		}
		if len(raw) == 0 && err != nil {
			return nil, err
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		d.line++
		raw = bytes.TrimRight(raw, "\r\n")
		if len(bytes.TrimSpace(raw)) == 0 {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			continue
		}
		return raw, nil
	}
}
