package stele

import (
	"reflect"
	"testing"
	"time"
)

// TestRequestHash: the same event however its JSON is spelled hashes the
// same; changing any field the emitter controls changes the hash; and a new
// field in the event types fails here until RequestHash encodes it.
func TestRequestHash(t *testing.T) {
	now := time.Date(2026, 3, 9, 14, 5, 0, 0, time.UTC)
	hash := func(body string) [32]byte {
		t.Helper()
		drafts, _, err := ParseEvents([]byte(body), FormatJSON, now)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		h, err := RequestHash(&drafts[0])
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	base := `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::1","outcome":"failure","context":{"a":1,"b":[true,null]}}`
	same := "{ \"context\": {\"b\":[true, null],\"a\":1.0}, \"outcome\":\"failure\", \"ip\":\"2001:0db8::0001\", \"resource\":{\"name\":\"cap\",\"id\":\"p-1\",\"type\":\"pcap\"}, \"node\":\"fra-core-01\", \"actor\":{\"name\":\"Alice\",\"id\":\"alice@acme.com\",\"type\":\"user\"}, \"category\":\"pcap\", \"type\":\"pcap.downloaded\", \"time\":\"2026-03-09T15:00:00+01:00\", \"id\":\"0190B1E2-7C4D-7A3B-9F1E-2D3C4B5A6978\" }"
	if hash(base) != hash(same) {
		t.Errorf("the same event spelled differently hashes differently")
	}
	seen := map[[32]byte]string{hash(base): "base"}
	for name, body := range map[string]string{
		"id":            `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6979","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::1","outcome":"failure","context":{"a":1,"b":[true,null]}}`,
		"no time":       `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::1","outcome":"failure","context":{"a":1,"b":[true,null]}}`,
		"time":          `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00.000000001Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::1","outcome":"failure","context":{"a":1,"b":[true,null]}}`,
		"type":          `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.started","category":"pcap","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::1","outcome":"failure","context":{"a":1,"b":[true,null]}}`,
		"category":      `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcaps","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::1","outcome":"failure","context":{"a":1,"b":[true,null]}}`,
		"actor.type":    `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"service","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::1","outcome":"failure","context":{"a":1,"b":[true,null]}}`,
		"actor.id":      `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"bob@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::1","outcome":"failure","context":{"a":1,"b":[true,null]}}`,
		"actor.name":    `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::1","outcome":"failure","context":{"a":1,"b":[true,null]}}`,
		"node":          `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::1","outcome":"failure","context":{"a":1,"b":[true,null]}}`,
		"no resource":   `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","ip":"2001:db8::1","outcome":"failure","context":{"a":1,"b":[true,null]}}`,
		"resource.id":   `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-2","name":"cap"},"ip":"2001:db8::1","outcome":"failure","context":{"a":1,"b":[true,null]}}`,
		"resource.name": `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1"},"ip":"2001:db8::1","outcome":"failure","context":{"a":1,"b":[true,null]}}`,
		"ip":            `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::2","outcome":"failure","context":{"a":1,"b":[true,null]}}`,
		"outcome":       `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::1","context":{"a":1,"b":[true,null]}}`,
		"context":       `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::1","outcome":"failure","context":{"a":2,"b":[true,null]}}`,
		"no context":    `{"id":"0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978","time":"2026-03-09T14:00:00Z","type":"pcap.downloaded","category":"pcap","actor":{"type":"user","id":"alice@acme.com","name":"Alice"},"node":"fra-core-01","resource":{"type":"pcap","id":"p-1","name":"cap"},"ip":"2001:db8::1","outcome":"failure"}`,
	} {
		h := hash(body)
		if other, dup := seen[h]; dup {
			t.Errorf("changing %s gives the hash of %s", name, other)
		}
		seen[h] = name
	}
	// Moving a string between adjacent fields must change the hash too.
	a := Draft{Body: EventBody{Type: "a.b", Actor: Actor{Type: "user", ID: "xy", Name: ""}}}
	b := Draft{Body: EventBody{Type: "a.b", Actor: Actor{Type: "user", ID: "x", Name: "y"}}}
	ha, _ := RequestHash(&a)
	hb, _ := RequestHash(&b)
	if ha == hb {
		t.Errorf("field boundaries are not encoded")
	}
	fields := map[reflect.Type]int{reflect.TypeOf(EventBody{}): 12, reflect.TypeOf(Actor{}): 3, reflect.TypeOf(Resource{}): 3}
	for typ, n := range fields {
		if typ.NumField() != n {
			t.Errorf("%v has %d fields, RequestHash encodes %d: encode the new field", typ, typ.NumField(), n)
		}
	}
}

func BenchmarkRequestHash(b *testing.B) {
	drafts, _, err := ParseEvents([]byte(canonicalBodies[5]), FormatJSON, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	drafts[0].Body.ID = "0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978"
	for b.Loop() {
		RequestHash(&drafts[0])
	}
}
