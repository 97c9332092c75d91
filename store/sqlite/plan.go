package sqlite

import (
	"context"
	"fmt"

	"github.com/stele-log/stele"
)

// How a query reaches its rows. SQLite's planner has no statistics here
// (the schema is not ANALYZEd: the data changes all the time, and a plan
// that flips with the data is a latency cliff), so the store picks the index
// that drives each read itself, with INDEXED BY, and store/sqlite's plan
// test asserts the resulting query plans:
//
//   - A filter by equality (actor, resource id, ip address, node, type,
//     resource type, type prefix, category, outcome) drives through its
//     (ws, column, time_ns) index, which yields rows already in time order:
//     a page is a seek and a walk of about limit ÷ (fraction of the rows
//     that match the other filters) entries, at any depth, no sort.
//     When several are given, the first in that list (roughly the most
//     selective kind of value first) drives and the others are checked
//     on each row.
//   - A CIDR range or free text (q) alone cannot yield time order. The store
//     first counts, from the index alone and at most probeLimit entries,
//     how many rows they select. When few, they drive (the IP index range,
//     or the FTS5 index restricted to the workspace's rowids) and the rows
//     are sorted; when many, matches are dense and a walk of the time index
//     that checks each row finds a page quickly.
//   - Otherwise (no filter, or only since/until) the time index drives.
//
// Counts and histograms need no order: they drive through the equality
// index, else the IP range, else FTS5, else the time index; each of these
// reads only the entries that can match.
type plan struct {
	index string // INDEXED BY this index; "" when text drives
	text  bool   // the FTS5 index drives
}

// probeLimit is the most rows a CIDR range or free-text search may select
// for it to drive an ordered read (and its rows be sorted). A variable for
// tests.
var probeLimit = 4000

// equalityIndexes lists the filters that have an ordered index, in order of
// preference to drive a read.
var equalityIndexes = []struct {
	index string
	has   func(f *stele.Filter) bool
}{
	{"events_resource_id", func(f *stele.Filter) bool { return f.ResourceID != "" }},
	{"events_actor", func(f *stele.Filter) bool { return f.Actor != "" }},
	{"events_ip", func(f *stele.Filter) bool { return f.IP.IsValid() && f.IP.IsSingleIP() }},
	{"events_node", func(f *stele.Filter) bool { return f.Node != "" }},
	{"events_type", func(f *stele.Filter) bool { return f.Type != "" && !isPrefix(f.Type) }},
	{"events_resource_type", func(f *stele.Filter) bool { return f.ResourceType != "" }},
	{"events_type_root", func(f *stele.Filter) bool { return isPrefix(f.Type) }},
	{"events_category", func(f *stele.Filter) bool { return f.Category != "" }},
	{"events_outcome", func(f *stele.Filter) bool { return f.Outcome != "" }},
}

func equalityIndex(f *stele.Filter) string {
	for _, e := range equalityIndexes {
		if e.has(f) {
			return e.index
		}
	}
	return ""
}

func isPrefix(typ string) bool { return len(typ) > 0 && typ[len(typ)-1] == '*' }

func isCIDR(f *stele.Filter) bool { return f.IP.IsValid() && !f.IP.IsSingleIP() }

// orderedPlan picks how a page or an export in time order reads its rows.
func (s *Store) orderedPlan(ctx context.Context, wsn int64, f *stele.Filter, below int64) (plan, error) {
	if idx := equalityIndex(f); idx != "" {
		return plan{index: idx}, nil
	}
	best, bestN := plan{index: "events_time"}, int64(probeLimit+1)
	if isCIDR(f) {
		lo, hi := prefixRange(f.IP)
		n, err := s.probe(ctx, "SELECT 1 FROM events e INDEXED BY events_ip WHERE e.ws = ? AND e.ip BETWEEN ? AND ? AND e.rowid < ?",
			wsn, lo[:], hi[:], rowidBelow(wsn, below))
		if err != nil {
			return plan{}, err
		}
		if n < bestN {
			best, bestN = plan{index: "events_ip"}, n
		}
	}
	if len(f.Text) > 0 {
		n, err := s.probe(ctx, "SELECT 1 FROM events_text WHERE events_text MATCH ? AND rowid >= ? AND rowid < ?",
			matchExpr(f.Text), rowid(wsn, 0), rowidBelow(wsn, below))
		if err != nil {
			return plan{}, err
		}
		if n < bestN {
			best = plan{text: true}
		}
	}
	return best, nil
}

// unorderedPlan picks how a count or histogram reads its rows.
func unorderedPlan(f *stele.Filter) plan {
	switch {
	case equalityIndex(f) != "":
		return plan{index: equalityIndex(f)}
	case isCIDR(f):
		return plan{index: "events_ip"}
	case len(f.Text) > 0:
		return plan{text: true}
	}
	return plan{index: "events_time"}
}

// probe counts the rows of query, up to probeLimit+1.
func (s *Store) probe(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*) FROM (%s LIMIT %d)", query, probeLimit+1), args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("couldn't plan the query: %w", err)
	}
	return n, nil
}

// rowidBelow is the first rowid past a workspace's positions below below
// (0: all of them).
func rowidBelow(wsn, below int64) int64 {
	if below > 0 {
		return rowid(wsn, below)
	}
	return rowid(wsn+1, 0)
}
