package integrity

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/eventgen"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestEventFieldsAgreeWithDecoding compares the top-level walk with
// encoding/json over generated events, with nested objects that hold
// members of the same names to mislead a naive search.
func TestEventFieldsAgreeWithDecoding(t *testing.T) {
	g := eventgen.New(3)
	now := time.Date(2026, 5, 1, 0, 0, 0, 123456789, time.UTC)
	for i := range 2000 {
		b := g.Event(now, i%2 == 0)
		b.ReceivedAt = now.Add(time.Duration(i) * 1013 * time.Microsecond)
		b.Emitter = stele.Emitter{Workspace: "ws-" + string(rune('a'+i%26)), KeyID: "k"}
		if i%3 == 0 {
			b.Context = json.RawMessage(`{"emitter":{"workspace":"evil"},"received_at":"1999-01-01T00:00:00Z","s":"a\"}{,[]"}`)
		}
		canon, err := stele.Canonical(&b)
		if err != nil {
			t.Fatal(err)
		}
		recv, ws, err := eventFields(canon)
		if err != nil {
			t.Fatalf("%s: %v", canon, err)
		}
		var d stele.EventBody
		if err := json.Unmarshal(canon, &d); err != nil {
			t.Fatal(err)
		}
		if !recv.Equal(d.ReceivedAt) || ws != d.Emitter.Workspace {
			t.Fatalf("%s: got %v %q, decoding gives %v %q", canon, recv, ws, d.ReceivedAt, d.Emitter.Workspace)
		}
	}
}

func TestEventFieldsRejects(t *testing.T) {
	for _, bad := range []string{
		``, `{`, `[]`, `{"received_at":"2026-01-01T00:00:00Z"}`,
		`{"emitter":{"workspace":"a"}}`,
		`{"emitter":{"workspace":"a"},"received_at":12}`,
		`{"emitter":{"workspace":"a"},"received_at":"yesterday"}`,
		`{"emitter":{"workspace":"a"},"received_at":"2026-01-01T00:00:00Z"`,
		`{"emitter":{"workspace":"a"} ,"received_at":"2026-01-01T00:00:00Z"}`,
		`{"emitter":{"workspace":"a\"b"},"received_at":"2026-01-01T00:00:00Z"}`,
		`{"emitter":"x","received_at":"2026-01-01T00:00:00Z"}`,
	} {
		if _, _, err := eventFields([]byte(bad)); err == nil {
			t.Errorf("eventFields(%s) accepted it", bad)
		}
	}
}

func FuzzEventFields(f *testing.F) {
	f.Add([]byte(`{"emitter":{"workspace":"a"},"received_at":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"a":[{"b":"}"}],"emitter":{"ip":"x","workspace":"a"},"received_at":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		recv, ws, err := eventFields(b) // must not panic
		if err != nil || !json.Valid(b) {
			return
		}
		var d struct {
			ReceivedAt time.Time `json:"received_at"`
			Emitter    struct {
				Workspace string `json:"workspace"`
			} `json:"emitter"`
		}
		if json.Unmarshal(b, &d) == nil && (!d.ReceivedAt.Equal(recv) || d.Emitter.Workspace != ws) {
			t.Errorf("%s: got %v %q, decoding gives %v %q", b, recv, ws, d.ReceivedAt, d.Emitter.Workspace)
		}
	})
}
