package stele

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Draft is an event as its emitter sent it, validated and normalized but not
// yet in the log: the server has not stamped received_at or emitter, and an
// omitted time has not been defaulted.
type Draft struct {
	// Body holds the validated fields; Body.Time is zero when the emitter
	// omitted time, and Body.ID is empty when it omitted id.
	Body EventBody
}

// ClientID reports whether the emitter supplied the event's id, which makes
// the write idempotent.
func (d *Draft) ClientID() bool { return d.Body.ID != "" }

// Input formats of POST /v1/events.
const (
	FormatJSON   = "json"   // one event, or {"events":[...]}
	FormatNDJSON = "ndjson" // one event per line
)

// ParseEvents validates a request body holding one event, {"events":[...]}
// (format FormatJSON) or one event per line (FormatNDJSON), against the rules
// of the event table, with now as the server's clock. It returns all drafts
// or the first violation, naming its field; a batch is all or nothing.
// prefix is how the events' fields are named: "events" for a batch or NDJSON
// (fields such as "events[3].type"), "" for a single event (see EventField).
func ParseEvents(body []byte, format string, now time.Time) (drafts []Draft, prefix string, err error) {
	raws, prefix, err := splitEvents(body, format)
	if err != nil {
		return nil, "", err
	}
	drafts = make([]Draft, len(raws))
	for i, raw := range raws {
		field := EventField(prefix, i, "")
		if len(raw) > MaxEventBytes {
			return nil, "", &Error{Kind: KindTooLarge, Field: field, Message: "event exceeds " + strconv.Itoa(MaxEventBytes) + " bytes"}
		}
		if err := parseEvent(raw, field, now, &drafts[i]); err != nil {
			return nil, "", err
		}
	}
	return drafts, prefix, nil
}

// EventField names field name of the i-th event of a request whose events
// are under prefix (as ParseEvents returned it).
func EventField(prefix string, i int, name string) string {
	if prefix == "" {
		return name
	}
	elem := prefix + "[" + strconv.Itoa(i) + "]"
	if name == "" {
		return elem
	}
	return elem + "." + name
}

// splitEvents checks the body's JSON and returns its event elements, and the
// path prefix that names them ("events" for batches, "" for one event).
func splitEvents(body []byte, format string) ([]json.RawMessage, string, error) {
	switch format {
	case FormatNDJSON:
		var raws []json.RawMessage
		for line := range bytes.Lines(body) {
			line = bytes.TrimRight(line, "\r\n")
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			field := "events[" + strconv.Itoa(len(raws)) + "]"
			if len(raws) == MaxBatch {
				return nil, "", FieldError("events", "more than %d events in one request", MaxBatch)
			}
			if err := checkStrictJSON(line, field, MaxDepth); err != nil {
				return nil, "", err
			}
			raws = append(raws, json.RawMessage(line))
		}
		if len(raws) == 0 {
			return nil, "", FieldError("events", "no events in the request body")
		}
		return raws, "events", nil
	case FormatJSON:
		trimmed := bytes.TrimSpace(body)
		// Peek at the shape first: the depth limit applies to each event, and a
		// batch holds its events two levels down.
		var top map[string]json.RawMessage
		_, batch := top["events"]
		if json.Unmarshal(trimmed, &top) == nil {
			_, batch = top["events"]
		}
		maxDepth := MaxDepth
		if batch {
			maxDepth += 2
		}
		if err := checkStrictJSON(body, "", maxDepth); err != nil {
			return nil, "", err
		}
		if len(trimmed) == 0 || trimmed[0] != '{' || top == nil {
			return nil, "", FieldError("", "the body must be a JSON object: one event, or {\"events\":[...]}")
		}
		if !batch {
			return []json.RawMessage{trimmed}, "", nil
		}
		for name := range top {
			if name != "events" {
				return nil, "", FieldError(name, "unknown field in a batch; a batch is {\"events\":[...]}")
			}
		}
		var raws []json.RawMessage
		if err := json.Unmarshal(top["events"], &raws); err != nil || raws == nil {
			return nil, "", FieldError("events", "must be an array of events")
		}
		if len(raws) == 0 {
			return nil, "", FieldError("events", "must hold at least one event")
		}
		if len(raws) > MaxBatch {
			return nil, "", FieldError("events", "more than %d events in one request", MaxBatch)
		}
		return raws, "events", nil
	}
	return nil, "", &Error{Kind: KindUnsupported, Message: "unsupported input format " + format}
}

// serverFields may not be supplied by emitters (mass assignment, INP-11).
var serverFields = []string{"seq", "received_at", "emitter", "leaf_hash"}

var eventFields = []string{"id", "time", "type", "category", "actor", "node", "resource", "ip", "outcome", "context"}

func parseEvent(raw json.RawMessage, prefix string, now time.Time, d *Draft) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return FieldError(prefix, "an event must be a JSON object")
	}
	var extra []string
	for name := range m {
		if slices.Contains(serverFields, name) {
			return FieldError(joinPath(prefix, name), "is set by the server and may not be supplied")
		}
		if !slices.Contains(eventFields, name) {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return FieldError(joinPath(prefix, extra[0]), "unknown field")
	}
	p := fieldParser{m: m, prefix: prefix}
	b := &d.Body

	if id, ok := p.str("id"); ok {
		u, err := uuid.Parse(id)
		if err != nil || len(id) != 36 || u == uuid.Nil {
			p.fail("id", "must be a UUID in its 36-character form")
		} else {
			b.ID = u.String()
		}
	}
	if t, ok := p.str("time"); ok {
		b.Time = p.time("time", t, now)
	}
	b.Type, _ = p.str("type")
	switch {
	case b.Type == "" && p.err == nil:
		p.fail("type", "is required")
	case p.err == nil && !ValidType(b.Type):
		p.fail("type", "must be dotted lowercase such as incident.opened (letters, digits, underscores; at least two segments)")
	}
	if c, ok := p.str("category"); ok {
		if !ValidCategory(c) {
			p.fail("category", "must be a lowercase identifier such as pcap")
		}
		b.Category = c
	} else if p.err == nil {
		b.Category = CategoryOf(b.Type)
	}
	p.actor(&b.Actor)
	if node, ok := p.str("node"); ok {
		p.text("node", node)
		b.Node = node
	}
	b.Resource = p.resource()
	if ip, ok := p.str("ip"); ok {
		b.IP = p.ip("ip", ip)
	}
	b.Outcome = OutcomeSuccess
	if o, ok := p.str("outcome"); ok {
		if o != OutcomeSuccess && o != OutcomeFailure {
			p.fail("outcome", "must be success or failure")
		}
		b.Outcome = o
	}
	b.Context = p.context()
	return p.err
}

// fieldParser decodes an event's members, remembering the first violation so
// that the parse reads as a list of rules.
type fieldParser struct {
	m      map[string]json.RawMessage
	prefix string
	err    error
}

func (p *fieldParser) fail(name, format string, args ...any) {
	if p.err == nil {
		p.err = FieldError(joinPath(p.prefix, name), format, args...)
	}
}

// str returns member name as a string; absent and null are the same.
func (p *fieldParser) str(name string) (string, bool) {
	raw, ok := p.m[name]
	if !ok || string(raw) == "null" || p.err != nil {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		p.fail(name, "must be a string")
		return "", false
	}
	return s, true
}

func (p *fieldParser) text(name, s string) {
	if s == "" {
		p.fail(name, "may not be empty (omit it instead)")
	} else if !printableText(s, MaxFieldLen) {
		p.fail(name, "must be at most %d bytes of UTF-8", MaxFieldLen)
	}
}

func (p *fieldParser) time(name, s string, now time.Time) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		p.fail(name, "must be an RFC 3339 timestamp with a time zone, such as 2026-03-09T14:02:11Z")
		return time.Time{}
	}
	t = t.UTC()
	switch {
	case t.Before(EarliestTime):
		p.fail(name, "is before %s", EarliestTime.Format(time.RFC3339))
	case t.After(now.Add(MaxFutureSkew)):
		p.fail(name, "is more than %s in the future", MaxFutureSkew)
	}
	return t
}

func (p *fieldParser) ip(name, s string) string {
	if len(s) > MaxIPLen {
		p.fail(name, "is not an IP address")
		return ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		p.fail(name, "must be an IPv4 or IPv6 address without zone")
		return ""
	}
	return a.Unmap().String()
}

// sub decodes member name as an object with only the given string members.
func (p *fieldParser) sub(name string, members ...string) (map[string]string, bool) {
	raw, ok := p.m[name]
	if !ok || string(raw) == "null" || p.err != nil {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		p.fail(name, "must be an object")
		return nil, false
	}
	out := map[string]string{}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(members, k) {
			p.fail(name+"."+k, "unknown field")
			return nil, false
		}
		if string(m[k]) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(m[k], &s); err != nil {
			p.fail(name+"."+k, "must be a string")
			return nil, false
		}
		out[k] = s
	}
	return out, true
}

func (p *fieldParser) actor(a *Actor) {
	m, ok := p.sub("actor", "type", "id", "name")
	if !ok {
		p.fail("actor", "is required: {\"type\":\"user|system|service|api_key\",\"id\":\"...\",\"name\":\"...\"}")
		return
	}
	a.Type, a.ID, a.Name = m["type"], m["id"], m["name"]
	if !slices.Contains(ActorTypes, a.Type) {
		p.fail("actor.type", "must be one of user, system, service, api_key")
	}
	if a.ID == "" {
		p.fail("actor.id", "is required")
	}
	p.text("actor.id", a.ID)
	if _, ok := m["name"]; ok {
		p.text("actor.name", a.Name)
	}
}

func (p *fieldParser) resource() *Resource {
	m, ok := p.sub("resource", "type", "id", "name")
	if !ok {
		return nil
	}
	r := &Resource{Type: m["type"], ID: m["id"], Name: m["name"]}
	if !validName(r.Type, 0, 1, 64) {
		p.fail("resource.type", "is required: a lowercase identifier such as incident")
	}
	if r.ID == "" {
		p.fail("resource.id", "is required")
	}
	p.text("resource.id", r.ID)
	if _, ok := m["name"]; ok {
		p.text("resource.name", r.Name)
	}
	return r
}

// context returns the canonical (RFC 8785) form of the context object.
func (p *fieldParser) context() json.RawMessage {
	raw, ok := p.m["context"]
	if !ok || string(raw) == "null" || p.err != nil {
		return nil
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		p.fail("context", "must be a JSON object")
		return nil
	}
	if len(raw) > 4*MaxContextBytes {
		p.fail("context", "exceeds %d bytes", MaxContextBytes)
		return nil
	}
	canon, err := canonicalJSON(raw)
	if err != nil {
		p.fail("context", "cannot be canonicalized: %v", err)
		return nil
	}
	if len(canon) > MaxContextBytes {
		p.fail("context", "exceeds %d bytes in canonical form", MaxContextBytes)
		return nil
	}
	return canon
}
