package export

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stele-log/stele"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenEvents are fixed events covering every field, absent optional
// fields, and values that CSV must quote or neutralize.
func goldenEvents(t testing.TB) []stele.StoredEvent {
	t.Helper()
	t0 := time.Date(2026, 3, 9, 14, 2, 11, 0, time.UTC)
	bodies := []stele.EventBody{
		{ID: "0195d2a4-7c00-7000-8000-000000000001", Time: t0, ReceivedAt: t0.Add(123456789), Type: "incident.opened", Category: "incidents",
			Actor: stele.Actor{Type: "system", ID: "system", Name: "system (auto)"}, Node: "nyc-edge-01",
			Resource: &stele.Resource{Type: "incident", ID: "a3f7c2b1", Name: "UDP flood on 198.51.100.7"}, Outcome: "success",
			Context: json.RawMessage(`{"peak_bps":48200000000,"vector":"udp flood"}`), Emitter: stele.Emitter{Workspace: "default", KeyID: "k1", IP: "192.0.2.1"}},
		{ID: "0195d2a4-7c00-7000-8000-000000000002", Time: t0.Add(time.Minute), ReceivedAt: t0.Add(time.Minute), Type: "pcap.downloaded", Category: "pcap",
			Actor: stele.Actor{Type: "user", ID: "alice@acme.com", Name: "Alice Chen"}, Node: "nyc-edge-01",
			Resource: &stele.Resource{Type: "pcap", ID: "p-5e21b9"}, IP: "203.0.113.42", Outcome: "success",
			Context: json.RawMessage(`{"bytes":734003200,"note":"line1\nline2, \"quoted\""}`), Emitter: stele.Emitter{Workspace: "default", KeyID: "k1", IP: "192.0.2.1"}},
		{ID: "0195d2a4-7c00-7000-8000-000000000003", Time: t0.Add(2 * time.Minute), ReceivedAt: t0.Add(2 * time.Minute), Type: "user.login_failed", Category: "auth",
			Actor:    stele.Actor{Type: "user", ID: "=HYPERLINK(\"http://evil.example\")", Name: "-2+3"},
			Resource: &stele.Resource{Type: "user", ID: "@admin", Name: "+1"}, IP: "2001:db8::7", Outcome: "failure",
			Context: json.RawMessage(`{"user_agent":"\tcurl"}`), Emitter: stele.Emitter{Workspace: "default", KeyID: "k2"}},
		{ID: "0195d2a4-7c00-7000-8000-000000000004", Time: t0.Add(3 * time.Minute), ReceivedAt: t0.Add(3 * time.Minute), Type: "retention.purged", Category: "auditlog",
			Actor: stele.Actor{Type: "system", ID: "stele"}, Outcome: "success", Emitter: stele.Emitter{Workspace: "default"}},
	}
	var out []stele.StoredEvent
	for i := range bodies {
		canon, err := stele.Canonical(&bodies[i])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, stele.StoredEvent{Seq: int64(i), Canonical: canon, LeafHash: stele.LeafHash(canon)})
	}
	return out
}

// TestGolden compares each format's output for goldenEvents with
// testdata/events.<format>; go test ./export -update rewrites them.
func TestGolden(t *testing.T) {
	events := goldenEvents(t)
	for _, format := range []string{CSV, JSON, NDJSON} {
		for _, n := range []int{len(events), 0} {
			var b bytes.Buffer
			w, err := New(&b, format)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range events[:n] {
				if err := w.Write(e); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", fmt.Sprintf("events-%d.%s", n, format))
			if *update {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./export -update to create it)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("%s export of %d events differs from %s:\n%s", format, n, path, b.Bytes())
			}
		}
	}
}

func TestNeutralize(t *testing.T) {
	tests := map[string]string{
		"": "", "alice": "alice", "=1+1": "'=1+1", "+1": "'+1", "-5": "'-5", "@SUM(A1)": "'@SUM(A1)",
		"\tx": "'\tx", "\rx": "'\rx", "\x00x": "'\x00x", "'already": "'already", " =x": " =x", "a=b": "a=b",
	}
	for in, want := range tests {
		if got := Neutralize(in); got != want {
			t.Errorf("Neutralize(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkWriters measures each format's encoding of the golden events
// (go test -bench Writers ./export).
func BenchmarkWriters(b *testing.B) {
	events := goldenEvents(b)
	for _, format := range []string{CSV, JSON, NDJSON} {
		b.Run(format, func(b *testing.B) {
			w, _ := New(io.Discard, format)
			for i := 0; b.Loop(); i++ {
				w.Write(events[i%len(events)])
			}
			w.Close()
		})
	}
}
