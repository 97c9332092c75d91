package verify

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/gowebpki/jcs"
	"golang.org/x/mod/sumdb/tlog"
)

// Event is what the verifier reads from one exported event object.
type Event struct {
	Seq        int64
	ID         string
	Type       string
	Time       time.Time // the event's time (zero if unparsable)
	ReceivedAt time.Time // the server's receipt time (zero if unparsable)
	// Claimed is the leaf_hash member as exported; Leaf is the leaf hash
	// recomputed from the other members. They differ when the event was
	// edited, or its leaf_hash was.
	Claimed tlog.Hash
	Leaf    tlog.Hash
	// Canonical is the leaf: the RFC 8785 canonical JSON of the object
	// without seq and leaf_hash.
	Canonical []byte
}

// ParseEvent reads an exported event object and recomputes its leaf: the
// RFC 8785 (JCS) canonical JSON of the object without its seq and leaf_hash
// members, hashed as an RFC 6962 leaf (SHA-256 of 0x00 and the bytes).
//
// Every member other than seq and leaf_hash is covered, known or not, so an
// added member changes the leaf like an edited one. The object must be
// strict JSON (no duplicate member names at any depth, valid UTF-8), so that
// no other parser can read it differently (RELIABILITY.md D8).
func ParseEvent(raw []byte) (*Event, error) {
	p := parsers.Get().(*parser)
	defer parsers.Put(p)
	p.r.Reset(raw)
	p.dec.Reset(&p.r)
	dec := &p.dec
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, jsonError(err)
	}
	if tok.Kind() != '{' {
		return nil, errors.New("an event must be a JSON object")
	}
	e := &Event{}
	body := make([]byte, 0, len(raw))
	body = append(body, '{')
	var hasSeq, hasLeaf bool
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, jsonError(err)
		}
		name := tok.String()
		val, err := dec.ReadValue()
		if err != nil {
			return nil, jsonError(err)
		}
		switch name {
		case "seq":
			n, err := strconv.ParseInt(string(val), 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("seq %s is not a non-negative integer", val)
			}
			e.Seq, hasSeq = n, true
			continue
		case "leaf_hash":
			s, ok := jsonString(val)
			h, err := tlog.ParseHash(s)
			if !ok || err != nil {
				return nil, fmt.Errorf("leaf_hash %s is not a base64 SHA-256 hash", val)
			}
			e.Claimed, hasLeaf = h, true
			continue
		case "id":
			e.ID, _ = jsonString(val)
		case "type":
			e.Type, _ = jsonString(val)
		case "time":
			s, _ := jsonString(val)
			e.Time, _ = time.Parse(time.RFC3339Nano, s)
		case "received_at":
			s, _ := jsonString(val)
			e.ReceivedAt, _ = time.Parse(time.RFC3339Nano, s)
		}
		if len(body) > 1 {
			body = append(body, ',')
		}
		if body, err = jsontext.AppendQuote(body, name); err != nil {
			return nil, jsonError(err)
		}
		body = append(body, ':')
		body = append(body, val...)
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.ReadToken(); err == nil {
		return nil, errors.New("data after the event object")
	}
	if !hasSeq || !hasLeaf {
		return nil, errors.New("an exported event has seq and leaf_hash members")
	}
	body = append(body, '}')
	// Exports write the leaf bytes as they are: when the members hash to
	// the claimed leaf, they are the leaf, and canonicalizing them again
	// would give the same bytes. Otherwise (a reformatted or edited event)
	// the leaf is recomputed by the rule.
	if h := tlog.RecordHash(body); h == e.Claimed {
		e.Canonical, e.Leaf = body, h
		return e, nil
	}
	if e.Canonical, err = jcs.Transform(body); err != nil {
		return nil, fmt.Errorf("couldn't canonicalize (RFC 8785): %w", err)
	}
	e.Leaf = tlog.RecordHash(e.Canonical)
	return e, nil
}

// parser is a reusable strict JSON decoder: a decoder's state is large, and
// verifying a big export parses millions of events.
type parser struct {
	r   bytes.Reader
	dec jsontext.Decoder
}

var parsers = sync.Pool{New: func() any { return new(parser) }}

func jsonString(val jsontext.Value) (string, bool) {
	if val.Kind() != '"' {
		return "", false
	}
	if bytes.IndexByte(val, '\\') < 0 {
		return string(val[1 : len(val)-1]), true // already validated, nothing escaped
	}
	tok, err := jsontext.NewDecoder(bytes.NewReader(val)).ReadToken()
	if err != nil {
		return "", false
	}
	return tok.String(), true
}

func jsonError(err error) error {
	var serr *jsontext.SyntacticError
	if errors.As(err, &serr) && errors.Is(serr.Err, jsontext.ErrDuplicateName) {
		return fmt.Errorf("duplicate member name %s", serr.JSONPointer)
	}
	return fmt.Errorf("malformed JSON: %w", err)
}
