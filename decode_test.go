package stele

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 3, 9, 14, 5, 0, 0, time.UTC)

func TestParseEventNormalizes(t *testing.T) {
	body := `{"id":"0190B1E2-7C4D-7A3B-9F1E-2D3C4B5A6978","time":"2026-03-09T15:02:11.500+01:00","type":"pcap.downloaded",
	  "actor":{"type":"user","id":"alice@acme.com","name":null},"node":"nyc-edge-01","resource":{"type":"pcap","id":"p1"},
	  "ip":"::ffff:203.0.113.42","context":{"b":2,"a":1.50,"s":"x"}}`
	drafts, prefix, err := ParseEvents([]byte(body), FormatJSON, now)
	if err != nil {
		t.Fatal(err)
	}
	if prefix != "" || len(drafts) != 1 {
		t.Fatalf("prefix %q, %d drafts", prefix, len(drafts))
	}
	b := drafts[0].Body
	checks := []struct{ name, got, want string }{
		{"id lowercased", b.ID, "0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978"},
		{"time in UTC", b.Time.Format(time.RFC3339Nano), "2026-03-09T14:02:11.5Z"},
		{"category derived", b.Category, "pcap"},
		{"ip unmapped", b.IP, "203.0.113.42"},
		{"outcome defaulted", b.Outcome, OutcomeSuccess},
		{"null name is absent", b.Actor.Name, ""},
		{"context canonical", string(b.Context), `{"a":1.5,"b":2,"s":"x"}`},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestParseEventsShapes(t *testing.T) {
	one := `{"type":"a.b","actor":{"type":"system","id":"s"}}`
	for _, c := range []struct {
		name, body, format, prefix string
		n                          int
	}{
		{"single", one, FormatJSON, "", 1},
		{"batch", `{"events":[` + one + `,` + one + `]}`, FormatJSON, "events", 2},
		{"ndjson", one + "\n\n" + one + "\r\n", FormatNDJSON, "events", 2},
	} {
		drafts, prefix, err := ParseEvents([]byte(c.body), c.format, now)
		if err != nil || prefix != c.prefix || len(drafts) != c.n {
			t.Errorf("%s: %d drafts, prefix %q, err %v", c.name, len(drafts), prefix, err)
		}
	}
}

func TestParseEventRejects(t *testing.T) {
	base := `"type":"a.b","actor":{"type":"system","id":"s"}`
	cases := []struct {
		body, field string
	}{
		{`{` + base + `,"outcome":"partial"}`, "outcome"},
		{`{` + base + `,"category":"Pcap"}`, "category"},
		{`{` + base + `,"node":""}`, "node"},
		{`{` + base + `,"node":7}`, "node"},
		{`{` + base + `,"node":"` + strings.Repeat("x", MaxFieldLen+1) + `"}`, "node"},
		{`{` + base + `,"resource":{"type":"incident"}}`, "resource.id"},
		{`{` + base + `,"resource":{"id":"x"}}`, "resource.type"},
		{`{` + base + `,"resource":"incident:x"}`, "resource"},
		{`{` + base + `,"time":"2026-03-09T14:11:00Z"}`, "time"}, // 6 minutes ahead
		{`{` + base + `,"time":"1999-12-31T23:59:59Z"}`, "time"},
		{`{` + base + `,"time":"2026-03-09T23:59:60Z"}`, "time"},
		{`{` + base + `,"time":1741528931}`, "time"},
		{`{` + base + `,"ip":"1.2.3.4/24"}`, "ip"},
		{`{` + base + `,"id":"00000000-0000-0000-0000-000000000000"}`, "id"},
		{`{` + base + `,"id":"{0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978}"}`, "id"},
		{`{` + base + `,"context":{"n":-9007199254740993}}`, "context.n"},
		{`{"type":"a.b","actor":{"type":"system","id":""}}`, "actor.id"},
		{`[` + `{` + base + `}]`, ""},
	}
	for _, c := range cases {
		_, _, err := ParseEvents([]byte(c.body), FormatJSON, now)
		e, ok := err.(*Error)
		if !ok || e.Kind != KindInvalid || e.Field != c.field {
			t.Errorf("%s: err = %v, want invalid field %q", c.body[:min(len(c.body), 70)], err, c.field)
		}
	}
	// Within the window: exactly 5 minutes ahead, 2000-01-01, big but exact integers.
	for _, ok := range []string{
		`{` + base + `,"time":"2026-03-09T14:10:00Z"}`,
		`{` + base + `,"time":"2000-01-01T00:00:00Z"}`,
		`{` + base + `,"context":{"n":9007199254740992,"f":1e308,"z":-0}}`,
		`{"type":"a.b","actor":{"type":"user","id":"alice\r\n2026-03-09 admin logged in \u202e\u001b[31m"}}`,
	} {
		if _, _, err := ParseEvents([]byte(ok), FormatJSON, now); err != nil {
			t.Errorf("%s: rejected: %v", ok, err)
		}
	}
}

// TestSealIsCanonical checks the leaf bytes: sorted keys, no whitespace, the
// server's fields stamped, and stable across key order and spacing of the
// input (INP-13).
func TestSealIsCanonical(t *testing.T) {
	a := `{"type":"a.b","actor":{"id":"s","type":"system"},"context":{"z":1,"y":[true,null]}}`
	b := "{ \"context\" : {\"y\":[true, null], \"z\":1.0},\n \"actor\":{\"type\":\"system\",\"id\":\"s\"}, \"type\":\"a.b\" }"
	var leaves []string
	for _, body := range []string{a, b} {
		drafts, _, err := ParseEvents([]byte(body), FormatJSON, now)
		if err != nil {
			t.Fatal(err)
		}
		drafts[0].Body.ID = "0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978"
		_, canon, leaf, err := Seal(&drafts[0], now, Emitter{Workspace: "acme", KeyID: "k1", IP: "192.0.2.1"})
		if err != nil {
			t.Fatal(err)
		}
		want := `{"actor":{"id":"s","type":"system"},"category":"a","context":{"y":[true,null],"z":1},"emitter":{"ip":"192.0.2.1","key_id":"k1","workspace":"acme"},"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","outcome":"success","received_at":"2026-03-09T14:05:00Z","time":"2026-03-09T14:05:00Z","type":"a.b"}`
		if string(canon) != want {
			t.Errorf("canonical bytes:\n got %s\nwant %s", canon, want)
		}
		leaves = append(leaves, leaf.String())
	}
	if leaves[0] != leaves[1] {
		t.Errorf("the same event hashes differently: %v", leaves)
	}
}

// FuzzParseEvents: whatever the body, ParseEvents never panics, and what it
// accepts seals to canonical JSON that encoding/json reads back to the same
// body (every parser sees the same event).
func FuzzParseEvents(f *testing.F) {
	for _, s := range []string{
		`{"type":"a.b","actor":{"type":"system","id":"s"}}`,
		`{"events":[{"type":"a.b","actor":{"type":"user","id":"u"},"context":{"k":[1,"x",{"n":null}]}}]}`,
		`{"type":"a.b","actor":{"type":"system","id":"s"},"ip":"2001:db8::1","resource":{"type":"r","id":"1"}}`,
		`{"a":"\ud83d\ude00","a":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, format := range []string{FormatJSON, FormatNDJSON} {
			drafts, _, err := ParseEvents(body, format, now)
			if err != nil {
				if KindOf(err) == KindInternal {
					t.Fatalf("internal error for %q: %v", body, err)
				}
				continue
			}
			for i := range drafts {
				sealed, canon, _, err := Seal(&drafts[i], now, Emitter{Workspace: "w"})
				if err != nil {
					t.Fatalf("accepted but cannot seal %q: %v", body, err)
				}
				var back EventBody
				if err := json.Unmarshal(canon, &back); err != nil {
					t.Fatalf("canonical bytes do not parse: %s", canon)
				}
				again, err := Canonical(&back)
				if err != nil || string(again) != string(canon) {
					t.Fatalf("canonical form is not stable:\n%s\n%s", canon, again)
				}
				if back.ID != sealed.ID || back.Type != sealed.Type {
					t.Fatalf("round trip changed the event")
				}
			}
		}
	})
}

func TestFilterParams(t *testing.T) {
	cases := map[string]string{
		"ip=300.1.1.1":      "ip",
		"ip=10.0.0.0/33":    "ip",
		"since=yesterday":   "since",
		"until=-5m":         "until",
		"type=Pcap.*":       "type",
		"outcome=maybe":     "outcome",
		"resource=:x":       "resource",
		"q=%21%21":          "q",
		"since=1h&until=2h": "until",
		"actor=a&actor=b":   "actor",
		"category=x.y":      "category",
		"node=":             "node",
	}
	for raw, field := range cases {
		v, _ := urlValues(raw)
		_, err := ParseFilter(v, now)
		if e, ok := err.(*Error); !ok || e.Field != field {
			t.Errorf("%s: err = %v, want field %q", raw, err, field)
		}
	}
	v, _ := urlValues("ip=2001:db8::/32&type=pcap.*&since=15m&q=Alice%20nyc-edge-01")
	f, err := ParseFilter(v, now)
	if err != nil {
		t.Fatal(err)
	}
	if f.IP.String() != "2001:db8::/32" || f.Type != "pcap.*" || !f.Since.Equal(now.Add(-15*time.Minute)) || strings.Join(f.Text, ",") != "alice,nyc,edge,01" {
		t.Errorf("parsed %+v", f)
	}
}
