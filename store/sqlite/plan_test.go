package sqlite

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/store/storetest"
)

// explain returns SQLite's query plan of query, one step per line.
func explain(t *testing.T, s *Store, query string, args []any) string {
	t.Helper()
	rows, err := s.r.Query("EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "\n")
}

// TestQueryPlans asserts that every filter reads through an index: no
// read scans a workspace's events to find a selective filter's rows, pages
// of equality filters come in index order without a sort at any depth, and
// CIDR ranges and free text drive through their index when they select few
// rows.
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "stele.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 3, 9, 14, 0, 0, 0, time.UTC)
	if err := s.CreateWorkspace(ctx, stele.Workspace{ID: "acme", Name: "acme", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	l := storetest.NewLog("acme")
	g := eventgen.New(1)
	const n = 6000
	for i := 0; i < n; i += 1000 {
		l.Append(t, s, g.Stream(1000, t0.Add(time.Duration(i)*time.Minute), 24*time.Hour, true))
	}
	wsn, err := s.wsNumber(ctx, s.r, "acme")
	if err != nil {
		t.Fatal(err)
	}
	since := t0.Add(-2 * time.Hour)
	defer func(l int) { probeLimit = l }(probeLimit)
	probeLimit = 1000 // the log here is small
	tests := []struct {
		name   string
		f      stele.Filter
		driver string // index (or "fts") that must drive pages
		sorted bool   // pages are sorted after reading (CIDR, text)
		count  string // index (or "fts") that must drive counts and histograms
	}{
		{"none", stele.Filter{}, "events_time", false, "events_time"},
		{"since", stele.Filter{Since: since}, "events_time", false, "events_time"},
		{"actor", stele.Filter{Actor: "alice@acme.com"}, "events_actor", false, "events_actor"},
		{"type", stele.Filter{Type: "pcap.downloaded"}, "events_type", false, "events_type"},
		{"prefix", stele.Filter{Type: "pcap.*"}, "events_type_root", false, "events_type_root"},
		{"deep prefix", stele.Filter{Type: "pcap.v2.*"}, "events_type_root", false, "events_type_root"},
		{"category", stele.Filter{Category: "pcap"}, "events_category", false, "events_category"},
		{"node", stele.Filter{Node: "nyc-edge-01"}, "events_node", false, "events_node"},
		{"resource type", stele.Filter{ResourceType: "incident"}, "events_resource_type", false, "events_resource_type"},
		{"resource", stele.Filter{ResourceType: "incident", ResourceID: "a3f7c2b1"}, "events_resource_id", false, "events_resource_id"},
		{"ip", stele.Filter{IP: netip.MustParsePrefix("203.0.113.7/32")}, "events_ip", false, "events_ip"},
		{"ipv6", stele.Filter{IP: netip.MustParsePrefix("2001:db8:1::2/128")}, "events_ip", false, "events_ip"},
		{"outcome", stele.Filter{Outcome: "failure"}, "events_outcome", false, "events_outcome"},
		{"small cidr", stele.Filter{IP: netip.MustParsePrefix("203.0.113.0/29")}, "events_ip", true, "events_ip"},
		{"small cidr6", stele.Filter{IP: netip.MustParsePrefix("2001:db8:2::/48")}, "events_ip", true, "events_ip"},
		{"large cidr", stele.Filter{IP: netip.MustParsePrefix("203.0.0.0/16")}, "events_time", false, "events_ip"},
		{"rare word", stele.Filter{Text: []string{"flood"}}, "fts", true, "fts"},
		{"common word", stele.Filter{Text: []string{"req"}}, "events_time", false, "fts"},
		{"actor type since", stele.Filter{Actor: "alice@acme.com", Type: "pcap.*", Since: since}, "events_actor", false, "events_actor"},
		{"node outcome text", stele.Filter{Node: "nyc-edge-01", Outcome: "failure", Text: []string{"flood"}}, "events_node", false, "events_node"},
		{"cidr text", stele.Filter{IP: netip.MustParsePrefix("203.0.113.0/29"), Text: []string{"flood"}}, "", true, "events_ip"},
	}
	uses := func(plan, driver string) bool {
		if driver == "fts" {
			return strings.HasPrefix(plan, "SCAN t VIRTUAL TABLE")
		}
		first, _, _ := strings.Cut(plan, "\n")
		return strings.HasPrefix(first, "SEARCH e USING ") && strings.Contains(first, "INDEX "+driver+" (ws=?")
	}
	check := func(t *testing.T, what, plan, driver string) {
		t.Helper()
		scan := false
		for _, line := range strings.Split(plan, "\n") {
			scan = scan || line == "SCAN e" || strings.HasPrefix(line, "SCAN e ")
		}
		if scan || (driver != "" && !uses(plan, driver)) {
			t.Errorf("%s reads through\n%s\nwant %s", what, plan, driver)
		}
	}
	after := &stele.Position{TimeNS: t0.Add(-time.Hour).UnixNano(), Seq: 100}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, order := range []stele.Order{stele.NewestFirst, stele.OldestFirst} {
				for _, a := range []*stele.Position{nil, after} {
					q := stele.Query{Filter: tt.f, Order: order, Limit: 50, Below: n, After: a}
					p, err := s.orderedPlan(ctx, wsn, &q.Filter, q.Below)
					if err != nil {
						t.Fatal(err)
					}
					sq, args := selectSQL(wsn, &q, p)
					plan := explain(t, s, sq, args)
					check(t, "page", plan, tt.driver)
					if sorted := strings.Contains(plan, "TEMP B-TREE FOR ORDER BY"); sorted != tt.sorted {
						t.Errorf("page plan sorts: %v, want %v\n%s", sorted, tt.sorted, plan)
					}
					// The plan reads what the filter selects.
					got, err := s.Query(ctx, "acme", q)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range got {
						var b stele.EventBody
						if err := jsonUnmarshal(e.Canonical, &b); err != nil || !tt.f.Match(&b) {
							t.Fatalf("seq %d does not match", e.Seq)
						}
					}
					// Whichever index drives, the page is the same.
					probeLimit = 1 << 30
					other, err := s.Query(ctx, "acme", q)
					probeLimit = 1000
					if err != nil {
						t.Fatal(err)
					}
					if len(other) != len(got) {
						t.Fatalf("%d events, %d with another plan", len(got), len(other))
					}
					for i := range got {
						if got[i].Seq != other[i].Seq {
							t.Fatalf("event %d: seq %d, %d with another plan", i, got[i].Seq, other[i].Seq)
						}
					}
				}
			}
			cq, args := countSQL(wsn, &stele.Query{Filter: tt.f, Below: n}, unorderedPlan(&tt.f))
			check(t, "count", explain(t, s, cq, args), tt.count)
			hq, args := histogramSQL(wsn, &tt.f, time.Hour, unorderedPlan(&tt.f))
			check(t, "histogram", explain(t, s, hq, args), tt.count)
		})
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestEventWorkspacesPlan: finding which workspaces hold an id probes the
// (ws, id) index once per workspace and never scans the events.
func TestEventWorkspacesPlan(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "stele.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	plan := explain(t, s, eventWorkspacesSQL, []any{make([]byte, 16)})
	if !strings.Contains(plan, "INDEX events_id") || strings.Contains(plan, "SCAN e") {
		t.Errorf("plan:\n%s", plan)
	}
}
