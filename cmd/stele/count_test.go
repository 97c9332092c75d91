package main

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestCountEndpoint checks GET /v1/stats/count: the count of matching
// events, pinned to a listing's log size when given its cursor, so that a
// page's "N events" agrees with its rows while events keep arriving.
func TestCountEndpoint(t *testing.T) {
	ts := startServer(t, "")
	appendNode := func(n int) {
		t.Helper()
		var lines []string
		for range n {
			lines = append(lines, `{"type":"node.config_changed","actor":{"type":"service","id":"terraform"},"node":"count-01"}`)
		}
		status, body, _ := call(t, "POST", ts.URL+"/v1/events", ts.Key, "application/x-ndjson", []byte(strings.Join(lines, "\n")))
		if status != 201 {
			t.Fatalf("append: %d %s", status, body)
		}
	}
	count := func(query string) (int, map[string]any) {
		t.Helper()
		status, body, _ := call(t, "GET", ts.URL+"/v1/stats/count?"+query, ts.Key, "", nil)
		var m map[string]any
		json.Unmarshal(body, &m)
		return status, m
	}
	appendNode(5)
	status, m := count("node=count-01")
	if status != 200 || m["count"] != 5.0 {
		t.Fatalf("count: %d %v", status, m)
	}
	_, body, _ := call(t, "GET", ts.URL+"/v1/events?node=count-01&limit=2", ts.Key, "", nil)
	var page struct {
		NextCursor string `json:"next_cursor"`
	}
	json.Unmarshal(body, &page)
	appendNode(3)
	cursor := url.QueryEscape(page.NextCursor)
	tests := []struct {
		query  string
		status int
		count  float64
		field  string
	}{
		{"node=count-01&cursor=" + cursor, 200, 5, ""},
		{"node=count-01", 200, 8, ""},
		{"node=count-01&order=asc&cursor=" + cursor, 400, 0, "cursor"},
		{"node=count-02&cursor=" + cursor, 400, 0, "cursor"},
		{"node=count-01&cursor=garbage", 400, 0, "cursor"},
		{"node=count-01&limit=5", 400, 0, "limit"},
		{"since=yesterday", 400, 0, "since"},
		{"node=nowhere", 200, 0, ""},
	}
	for _, tt := range tests {
		status, m := count(tt.query)
		if status != tt.status {
			t.Errorf("%s: status %d, want %d (%v)", tt.query, status, tt.status, m)
			continue
		}
		if tt.status == 200 && m["count"] != tt.count {
			t.Errorf("%s: count %v, want %v", tt.query, m["count"], tt.count)
		}
		if tt.field != "" {
			if e, _ := m["error"].(map[string]any); e["field"] != tt.field {
				t.Errorf("%s: error %v, want field %s", tt.query, m, tt.field)
			}
		}
	}
	// Each count is itself a logged read (D3).
	_, body, _ = call(t, "GET", ts.URL+"/v1/events?type=auditlog.queried&limit=1000", ts.Key, "", nil)
	if n := strings.Count(string(body), `"kind":"count"`); n != 4 {
		t.Errorf("%d auditlog.queried events of kind count, want 4 (one per successful count)\n%s", n, body)
	}
}
