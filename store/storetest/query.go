package storetest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/eventgen"
)

// stored is an event as the oracle knows it.
type stored struct {
	seq  int64
	body stele.EventBody
}

// loadRandom appends n random events to ws in batches and returns them.
func loadRandom(t *testing.T, s stele.Store, ws string, seed uint64, n int) []stored {
	l := NewLog(ws)
	g := eventgen.New(seed)
	bodies := g.Stream(n, t0, 72*time.Hour, true)
	// Shuffle times a little so that time order and seq order differ.
	r := g.Rand()
	for i := range bodies {
		if r.IntN(5) == 0 {
			bodies[i].Time = bodies[i].Time.Add(-time.Duration(r.IntN(3600)) * time.Second)
		}
		if r.IntN(50) == 0 && i > 0 {
			bodies[i].Time = bodies[i-1].Time // exact ties are broken by seq
		}
	}
	var out []stored
	for len(bodies) > 0 {
		k := min(len(bodies), 1+r.IntN(300))
		for _, e := range l.Append(t, s, bodies[:k]) {
			out = append(out, stored{seq: e.Seq, body: *e.Body})
		}
		bodies = bodies[k:]
	}
	return out
}

// oracle applies q to events with stele.Filter.Match and sorts them.
func oracle(events []stored, q stele.Query) []stored {
	var out []stored
	for _, e := range events {
		if q.Filter.Match(&e.body) && (q.Below <= 0 || e.seq < q.Below) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b stored) int {
		c := cmp.Or(a.body.Time.Compare(b.body.Time), cmp.Compare(a.seq, b.seq))
		if q.Order == stele.NewestFirst {
			return -c
		}
		return c
	})
	return out
}

// randomFilter draws a filter from values present in events, so that most
// filters match something.
func randomFilter(r *rand.Rand, events []stored) (stele.Filter, string) {
	var f stele.Filter
	var desc []string
	pick := func() *stele.EventBody { return &events[r.IntN(len(events))].body }
	for f.Actor == "" && f.Type == "" && f.Category == "" && f.Node == "" && f.ResourceType == "" && !f.IP.IsValid() &&
		f.Outcome == "" && f.Since.IsZero() && f.Until.IsZero() && len(f.Text) == 0 && len(desc) < 1 {
		for range 1 + r.IntN(3) {
			b := pick()
			switch r.IntN(11) {
			case 0:
				f.Actor = b.Actor.ID
			case 1:
				f.Type = b.Type
			case 2:
				root, _, _ := strings.Cut(b.Type, ".")
				f.Type = root + ".*"
			case 3:
				f.Category = b.Category
			case 4:
				f.Node = b.Node
			case 5:
				if b.Resource != nil {
					f.ResourceType = b.Resource.Type
					if r.IntN(2) == 0 {
						f.ResourceID = b.Resource.ID
					}
				}
			case 6:
				if a, err := netip.ParseAddr(b.IP); err == nil {
					bits := a.BitLen()
					if r.IntN(2) == 0 {
						bits = map[int]int{32: 24, 128: 48}[bits]
					}
					f.IP = netip.PrefixFrom(a, bits).Masked()
				}
			case 7:
				f.Outcome = []string{stele.OutcomeSuccess, stele.OutcomeFailure}[r.IntN(2)]
			case 8:
				f.Since = b.Time.Add(-time.Duration(r.IntN(6)) * time.Hour)
			case 9:
				f.Until = b.Time.Add(time.Duration(r.IntN(6)) * time.Hour)
			case 10:
				words := stele.Tokens(b)
				if len(words) > 0 {
					f.Text = []string{words[r.IntN(len(words))]}
				}
			}
		}
		if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
			f.Since, f.Until = time.Time{}, time.Time{}
		}
		raw, _ := json.Marshal(f)
		desc = append(desc, string(raw))
	}
	return f, desc[len(desc)-1]
}

// page walks q through the store with the given page size, the way the API's
// cursor does, and returns every event seen.
func page(ctx context.Context, t *testing.T, s stele.Store, ws string, q stele.Query, size int, onPage func()) []stele.StoredEvent {
	t.Helper()
	var all []stele.StoredEvent
	q.Limit = size
	for range 100000 {
		got, err := s.Query(ctx, ws, q)
		if err != nil {
			t.Fatalf("Query: %v", err)
		}
		all = append(all, got...)
		if len(got) < size {
			return all
		}
		var b stele.EventBody
		if err := json.Unmarshal(got[len(got)-1].Canonical, &b); err != nil {
			t.Fatal(err)
		}
		pos := stele.PositionOf(got[len(got)-1].Seq, &b)
		q.After = &pos
		if onPage != nil {
			onPage()
		}
	}
	t.Fatal("paging did not end")
	return nil
}

func seqsOf(events []stele.StoredEvent) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.Seq
	}
	return out
}

func oracleSeqs(events []stored) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.seq
	}
	return out
}

// testFilters checks every filter, random combinations, both orders and
// odd page sizes against the oracle.
func testFilters(t *testing.T, open Open) {
	h, ctx := harness(t, open)
	s := h.Store
	mustCreate(t, s, "acme")
	mustCreate(t, s, "noise")
	events := loadRandom(t, s, "acme", 11, 2000)
	loadRandom(t, s, "noise", 12, 500) // another workspace's events must never show up
	r := rand.New(rand.NewPCG(13, 14))

	check := func(name string, q stele.Query, size int) {
		t.Helper()
		want := oracleSeqs(oracle(events, q))
		got := seqsOf(page(ctx, t, s, "acme", q, size, nil))
		if !slices.Equal(got, want) {
			t.Errorf("%s (page size %d, order %d): got %d events, want %d\n got  %v\n want %v", name, size, q.Order, len(got), len(want), head(got), head(want))
		}
	}
	check("no filter", stele.Query{}, 97)
	check("no filter oldest first", stele.Query{Order: stele.OldestFirst}, 1000)
	check("below", stele.Query{Below: 1234}, 61)
	for i := range 100 {
		f, desc := randomFilter(r, events)
		q := stele.Query{Filter: f, Order: stele.Order(r.IntN(2))}
		size := []int{1, 7, 50, 333}[r.IntN(4)]
		if size == 1 && q.Filter.Actor == "" && q.Filter.ResourceID == "" && len(q.Filter.Text) == 0 {
			size = 3 // one-event pages only where they stay cheap (the race detector slows SQLite 40×)
		}
		check(fmt.Sprintf("filter %d %s", i, desc), q, size)
	}
	// Filter values are data, never SQL (INP-10).
	for _, v := range []string{"' OR 1=1--", "%", "_", "alice%", `"; DROP TABLE events; --`} {
		check("injection actor "+v, stele.Query{Filter: stele.Filter{Actor: v}}, 10)
		check("injection node "+v, stele.Query{Filter: stele.Filter{Node: v}}, 10)
		check("injection text "+v, stele.Query{Filter: stele.Filter{Text: stele.Words(v + " x")}}, 10)
	}
}

func head(xs []int64) []int64 {
	if len(xs) > 12 {
		return xs[:12]
	}
	return xs
}

// testCursorUnderAppends pages through a log pinned at its size while
// another goroutine appends, and checks that the union of the pages is
// exactly the pinned log: nothing skipped, nothing repeated (DUR-13).
func testCursorUnderAppends(t *testing.T, open Open) {
	h, ctx := harness(t, open)
	s := h.Store
	mustCreate(t, s, "acme")
	l := NewLog("acme")
	g := eventgen.New(21)
	l.Append(t, s, g.Stream(1500, t0, 24*time.Hour, true))
	pinned, _ := s.Head(ctx, "acme")
	var mu sync.Mutex
	appendSome := func() {
		mu.Lock()
		defer mu.Unlock()
		// New events with times across the whole range, including inside
		// pages already read.
		bodies := g.Stream(20, t0.Add(time.Hour), 30*time.Hour, true)
		l.Append(t, s, bodies)
	}
	for _, order := range []stele.Order{stele.NewestFirst, stele.OldestFirst} {
		got := page(ctx, t, s, "acme", stele.Query{Order: order, Below: pinned.Size}, 83, appendSome)
		seen := map[int64]bool{}
		for _, e := range got {
			if seen[e.Seq] {
				t.Fatalf("order %d: seq %d repeated", order, e.Seq)
			}
			if e.Seq >= pinned.Size {
				t.Fatalf("order %d: seq %d appended after the walk began showed up", order, e.Seq)
			}
			seen[e.Seq] = true
		}
		if int64(len(seen)) != pinned.Size {
			t.Errorf("order %d: walk saw %d events of %d", order, len(seen), pinned.Size)
		}
	}
}

func testHistogram(t *testing.T, open Open) {
	h, ctx := harness(t, open)
	s := h.Store
	mustCreate(t, s, "acme")
	events := loadRandom(t, s, "acme", 31, 800)
	for _, interval := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour} {
		for _, f := range []stele.Filter{{}, {Type: "pcap.*"}, {Outcome: stele.OutcomeFailure}} {
			want := map[int64]int64{}
			for _, e := range events {
				if f.Match(&e.body) {
					want[e.body.Time.Truncate(interval).UnixNano()]++
				}
			}
			got, err := s.Histogram(ctx, "acme", f, interval)
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for i, b := range got {
				if i > 0 && !got[i-1].Start.Before(b.Start) {
					t.Fatalf("buckets out of order at %d", i)
				}
				if want[b.Start.UnixNano()] != b.Count {
					t.Errorf("interval %v filter %+v: bucket %v = %d, want %d", interval, f, b.Start, b.Count, want[b.Start.UnixNano()])
				}
				total++
			}
			if total != len(want) {
				t.Errorf("interval %v filter %+v: %d buckets, want %d", interval, f, total, len(want))
			}
		}
	}
}
