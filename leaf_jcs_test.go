package stele

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gowebpki/jcs"
)

// jcsReference is the canonical form by gowebpki/jcs, the reference
// implementation Canonical must match byte for byte.
func jcsReference(t testing.TB, b *EventBody) []byte {
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		t.Fatalf("gowebpki/jcs refused %s: %v", raw, err)
	}
	return out
}

// canonicalBodies are event bodies whose canonical forms exercise RFC 8785:
// key order by UTF-16 code units (astral characters sort by surrogates),
// number forms, escapes, HTML characters Go escapes, U+2028/2029.
var canonicalBodies = []string{
	`{"type":"a.b","actor":{"type":"system","id":"s"}}`,
	`{"type":"a.b","actor":{"type":"user","id":"u@x","name":"Zoë <&> \u2028\u2029"},"context":{"z":1,"y":[true,null,false],"x":{"b":2,"a":1}}}`,
	`{"type":"a.b","actor":{"type":"system","id":"s"},"context":{"n":[0,-0,1.0,1e21,1e-7,9007199254740991,0.1,5e-324,1.7976931348623157e308,-1.5e-10,100,1E2,2.50]}}`,
	`{"type":"a.b","actor":{"type":"system","id":"s"},"context":{"\u20ac":1,"\ud83d\ude00":2,"\ufb01":3,"a":4,"":5,"A":6,"\u00e9":7}}`,
	`{"type":"a.b","actor":{"type":"system","id":"s"},"context":{"s":"\u0000\u0001\u001f\"\\/\b\f\n\r\t\u007f\u0080\ud83d\ude00"}}`,
	`{"type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"capture <1>"},"ip":"2001:db8::1","outcome":"failure","context":{"bytes":1073741824,"sha256":"ab"}}`,
}

func TestCanonicalMatchesJCS(t *testing.T) {
	now := time.Date(2026, 3, 9, 14, 5, 0, 123456789, time.UTC)
	for _, body := range canonicalBodies {
		drafts, _, err := ParseEvents([]byte(body), FormatJSON, now)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		b, canon, _, err := Seal(&drafts[0], now, Emitter{Workspace: "acme", KeyID: "k1", IP: "192.0.2.1"})
		if err != nil {
			t.Fatal(err)
		}
		if want := jcsReference(t, &b); string(canon) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", body, canon, want)
		}
	}
}

// FuzzCanonicalMatchesJCS: for every event ParseEvents accepts, Canonical
// equals gowebpki/jcs's canonical form of the same body.
func FuzzCanonicalMatchesJCS(f *testing.F) {
	for _, s := range canonicalBodies {
		f.Add(s)
	}
	f.Add(`{"type":"a.b","actor":{"type":"system","id":"s"},"context":{"k":"v"}}`)
	now := time.Date(2026, 3, 9, 14, 5, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body string) {
		drafts, _, err := ParseEvents([]byte(body), FormatNDJSON, now)
		if err != nil {
			return
		}
		for i := range drafts {
			b, canon, _, err := Seal(&drafts[i], now, Emitter{Workspace: "w", KeyID: strings.Repeat("k", 13)})
			if err != nil {
				t.Fatalf("accepted but cannot seal %q: %v", body, err)
			}
			if want := jcsReference(t, &b); string(canon) != string(want) {
				t.Fatalf("%q:\n got %s\nwant %s", body, canon, want)
			}
		}
	})
}

func BenchmarkCanonical(b *testing.B) {
	drafts, _, err := ParseEvents([]byte(canonicalBodies[5]), FormatJSON, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	body, _, _, err := Seal(&drafts[0], time.Now(), Emitter{Workspace: "w"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("jsontext", func(b *testing.B) {
		for b.Loop() {
			Canonical(&body)
		}
	})
	b.Run("gowebpki-jcs", func(b *testing.B) {
		for b.Loop() {
			jcsReference(b, &body)
		}
	})
}

// FuzzCanonicalJSONMatchesJCS: on any JSON object the strict parser admits
// (an event's context), canonicalJSON and gowebpki/jcs agree: the same
// bytes, or both refuse.
func FuzzCanonicalJSONMatchesJCS(f *testing.F) {
	f.Add(`{"z":1,"y":[true,null,1.0,1e21,-0],"\u20ac":"\ud83d\ude00","x":{"b":"<&>","a":"\u2028"}}`)
	f.Add(`{"n":5e-324,"m":1.7976931348623157e308,"s":"\u0000\u001f\u007f"}`)
	f.Fuzz(func(t *testing.T, raw string) {
		if !strings.HasPrefix(strings.TrimSpace(raw), "{") || checkStrictJSON([]byte(raw), "context", MaxDepth) != nil {
			return
		}
		want, werr := jcs.Transform([]byte(raw))
		got, gerr := canonicalJSON([]byte(raw))
		if (werr == nil) != (gerr == nil) || string(got) != string(want) {
			t.Fatalf("%q:\n got %s (%v)\nwant %s (%v)", raw, got, gerr, want, werr)
		}
	})
}
