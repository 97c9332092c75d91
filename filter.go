package stele

import (
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"encoding/json"
)

// Filter selects events. Its zero value matches every event; set fields
// combine with AND. Match is the reference semantics that every store's
// query must agree with.
type Filter struct {
	// Actor matches actor.id exactly (names are for display and free text).
	Actor string
	// Type matches the type exactly, or, ending in ".*", every type under that
	// prefix ("pcap.*" matches "pcap.started" and "pcap.v2.started").
	Type     string
	Category string
	Node     string
	// ResourceType and ResourceID match resource.type and resource.id; the
	// API's resource=type:id sets both, resource=type only the first.
	ResourceType string
	ResourceID   string
	// IP matches events whose ip lies in the prefix (an address is a /32 or
	// /128 prefix).
	IP netip.Prefix
	// Outcome matches success or failure.
	Outcome string
	// Since (inclusive) and Until (exclusive) bound the event time.
	Since, Until time.Time
	// Text holds free-text words; every word must be a token of the event's
	// searchable text (see Tokens).
	Text []string
}

// Order of query results: by event time, ties broken by seq.
type Order int

const (
	NewestFirst Order = iota
	OldestFirst
)

// Position is a place in a time-ordered walk through a log.
type Position struct {
	TimeNS int64 // event time, Unix nanoseconds
	Seq    int64
}

// Query is a filtered, ordered, bounded read of one workspace's log.
type Query struct {
	Filter Filter
	Order  Order
	// Limit bounds the result; 0 means no bound (Scan only).
	Limit int
	// After, when set, excludes events at or before it in Order.
	After *Position
	// Below, when positive, excludes events with seq >= Below: a walk over
	// pages pins the log's size at its first page so that events appended
	// meanwhile neither shift nor join it.
	Below int64
}

// PositionOf returns where b sits in a time-ordered walk.
func PositionOf(seq int64, b *EventBody) Position {
	return Position{TimeNS: b.Time.UnixNano(), Seq: seq}
}

// Match reports whether the event body b matches f.
func (f *Filter) Match(b *EventBody) bool {
	if f.Actor != "" && b.Actor.ID != f.Actor {
		return false
	}
	if f.Type != "" {
		if prefix, ok := strings.CutSuffix(f.Type, "*"); ok {
			if !strings.HasPrefix(b.Type, prefix) {
				return false
			}
		} else if b.Type != f.Type {
			return false
		}
	}
	if f.Category != "" && b.Category != f.Category {
		return false
	}
	if f.Node != "" && b.Node != f.Node {
		return false
	}
	if f.ResourceType != "" && (b.Resource == nil || b.Resource.Type != f.ResourceType) {
		return false
	}
	if f.ResourceID != "" && (b.Resource == nil || b.Resource.ID != f.ResourceID) {
		return false
	}
	if f.IP.IsValid() {
		a, err := netip.ParseAddr(b.IP)
		if err != nil || !f.IP.Contains(a) {
			return false
		}
	}
	if f.Outcome != "" && b.Outcome != f.Outcome {
		return false
	}
	if !f.Since.IsZero() && b.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !b.Time.Before(f.Until) {
		return false
	}
	if len(f.Text) > 0 {
		have := Tokens(b)
		for _, w := range f.Text {
			if !slices.Contains(have, w) {
				return false
			}
		}
	}
	return true
}

// Tokens returns the searchable words of an event: lowercase runs of letters
// and digits from actor id and name, node, resource type, id and name, and
// the string and number values of context. Stores index exactly these words.
func Tokens(b *EventBody) []string {
	var words []string
	add := func(s string) { words = appendWords(words, s) }
	add(b.Actor.ID)
	add(b.Actor.Name)
	add(b.Node)
	if b.Resource != nil {
		add(b.Resource.Type)
		add(b.Resource.ID)
		add(b.Resource.Name)
	}
	if len(b.Context) > 0 {
		var v any
		if json.Unmarshal(b.Context, &v) == nil {
			walkScalars(v, add)
		}
	}
	slices.Sort(words)
	return slices.Compact(words)
}

// Words splits free text the way Tokens does.
func Words(s string) []string { return appendWords(nil, s) }

func appendWords(words []string, s string) []string {
	for w := range strings.FieldsFuncSeq(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		words = append(words, strings.ToLower(w))
	}
	return words
}

func walkScalars(v any, fn func(string)) {
	switch v := v.(type) {
	case string:
		fn(v)
	case float64:
		fn(strconv.FormatFloat(v, 'f', -1, 64))
	case []any:
		for _, e := range v {
			walkScalars(e, fn)
		}
	case map[string]any:
		for _, e := range v {
			walkScalars(e, fn)
		}
	}
}

// Query parameters understood by ParseQuery, besides cursor handling which
// belongs to the API.
var filterParams = []string{"actor", "type", "category", "node", "resource", "ip", "outcome", "since", "until", "q"}

// FilterParams lists the query parameters that select events.
func FilterParams() []string { return slices.Clone(filterParams) }

// ParseFilter reads the filter parameters of the API from values; relative
// times ("15m", "24h", "7d") count back from now. Parameters it does not know
// are left for the caller to reject.
func ParseFilter(values url.Values, now time.Time) (Filter, error) {
	var f Filter
	for _, name := range filterParams {
		vs, ok := values[name]
		if !ok {
			continue
		}
		if len(vs) != 1 {
			return Filter{}, FieldError(name, "given more than once")
		}
		v := vs[0]
		if v == "" {
			return Filter{}, FieldError(name, "is empty")
		}
		var err error
		switch name {
		case "actor":
			f.Actor = v
		case "type":
			if !ValidTypePattern(v) {
				return Filter{}, FieldError(name, "must be an event type such as incident.opened, or a prefix such as pcap.*")
			}
			f.Type = v
		case "category":
			if !ValidCategory(v) {
				return Filter{}, FieldError(name, "must be a category such as pcap")
			}
			f.Category = v
		case "node":
			f.Node = v
		case "resource":
			typ, id, _ := strings.Cut(v, ":")
			if !validName(typ, 0, 1, 64) {
				return Filter{}, FieldError(name, "must be type:id (such as incident:a3f7c2b1) or a resource type")
			}
			f.ResourceType, f.ResourceID = typ, id
		case "ip":
			f.IP, err = parseIPFilter(v)
		case "outcome":
			if v != OutcomeSuccess && v != OutcomeFailure {
				return Filter{}, FieldError(name, "must be success or failure")
			}
			f.Outcome = v
		case "since":
			f.Since, err = ParseTimeParam(v, now)
		case "until":
			f.Until, err = ParseTimeParam(v, now)
		case "q":
			f.Text = Words(v)
			if len(f.Text) == 0 {
				return Filter{}, FieldError(name, "holds no words to search for")
			}
			if len(f.Text) > 16 {
				return Filter{}, FieldError(name, "holds more than 16 words")
			}
		}
		if err != nil {
			return Filter{}, FieldError(name, "%s", err.Error())
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return Filter{}, FieldError("until", "must be later than since")
	}
	return f, nil
}

func parseIPFilter(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, errorString("must be an IP address or a CIDR prefix such as 203.0.113.0/24")
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, errorString("must be an IP address or a CIDR prefix such as 203.0.113.0/24")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParseTimeParam reads an RFC 3339 time, or a duration back from now:
// a number followed by s, m, h, d or w ("15m", "24h", "7d").
func ParseTimeParam(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	if len(v) >= 2 {
		n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
		unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[v[len(v)-1]]
		if err == nil && unit != 0 && n >= 0 && n <= int64(100*366*24*time.Hour/unit) {
			return now.Add(-time.Duration(n) * unit).UTC(), nil
		}
	}
	return time.Time{}, errorString("must be an RFC 3339 time (2026-03-09T14:00:00Z) or a relative time such as 15m, 24h, 7d")
}

type errorString string

func (e errorString) Error() string { return string(e) }
