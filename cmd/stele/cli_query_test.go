package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/eventgen"
)

// TestCLIQuery runs stele query against a real server: the table of the
// dashboard's columns with a count line, attacker-controlled text made
// harmless for the terminal, --json, paging with --cursor and --all, the
// server and key from the environment, and refused filters.
func TestCLIQuery(t *testing.T) {
	ts := startServer(t, "")
	now := time.Now().UTC().Truncate(time.Second)
	demo := eventgen.Demo(now)
	for i := range demo {
		demo[i].ID = ""
	}
	ingest(t, ts, ts.Key, withIDs(demo))
	ingest(t, ts, ts.Key, hostileEvents(now))
	run := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := runQuery(context.Background(), append([]string{"--server", ts.URL, "--key", ts.Key}, args...), &out, &errb)
		return out.String(), errb.String(), err
	}

	out, _, err := run("--node", "nyc-edge-01")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	header := regexp.MustCompile(`^TIMESTAMP \(UTC\) +EVENT +ACTOR +NODE / RESOURCE +IP$`)
	if !header.MatchString(lines[0]) || lines[len(lines)-1] != "4 events" || len(lines) != 6 {
		t.Fatalf("table:\n%s", out)
	}
	// Newest first: the incident resolved 90 minutes ago.
	want := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +Incident Resolved +Alice Chen +nyc-edge-01 / incident:a3f7c2b1 +203\.0\.113\.42$`)
	if !want.MatchString(lines[1]) {
		t.Errorf("first row %q", lines[1])
	}
	if !strings.HasPrefix(lines[1], now.Add(-90*time.Minute).Format(time.DateTime)) {
		t.Errorf("first row %q, want the time %s", lines[1], now.Add(-90*time.Minute).Format(time.DateTime))
	}

	// Hostile values: no control or bidi character reaches the terminal, and
	// every event is one line.
	out, _, err = run("--ip", "198.51.100.9", "--limit", "1000")
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out, "\x1b\r\x00\u202e\t") {
		t.Errorf("control characters reached the terminal:\n%q", out)
	}
	if n := strings.Count(out, "\n"); n != len(hostileEvents(now))+2 {
		t.Errorf("%d lines for %d events: a value broke a line\n%s", n, len(hostileEvents(now)), out)
	}
	if !strings.Contains(out, `\x1b[31mred`) || !strings.Contains(out, `\u202eevil`) {
		t.Errorf("escapes not shown:\n%s", out)
	}

	// --json, and paging with the printed cursor.
	out, errOut, err := run("--json", "--limit", "3", "--order", "asc")
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Events     []map[string]any `json:"events"`
		NextCursor string           `json:"next_cursor"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Events) != 3 || page.NextCursor == "" || errOut != "" {
		t.Fatalf("--json: %v %s (stderr %q)", err, out, errOut)
	}
	_, errOut, err = run("--limit", "3", "--order", "asc")
	cur := regexp.MustCompile(`--cursor (\S+)`).FindStringSubmatch(errOut)
	if err != nil || cur == nil {
		t.Fatalf("no cursor hint on stderr: %q %v", errOut, err)
	}
	out, _, err = run("--limit", "3", "--order", "asc", "--cursor", cur[1], "--json")
	var next struct {
		Events []map[string]any `json:"events"`
	}
	if json.Unmarshal([]byte(out), &next); err != nil || len(next.Events) != 3 || next.Events[0]["seq"] == page.Events[2]["seq"] {
		t.Errorf("second page %s %v", out, err)
	}

	// --all follows every page; the server and key come from the environment.
	t.Setenv("STELE_SERVER", ts.URL)
	t.Setenv("STELE_KEY", ts.Key)
	var all bytes.Buffer
	if err := runQuery(context.Background(), []string{"--type", "incident.*", "--limit", "1", "--all"}, &all, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(all.String(), "\n3 events\n") {
		t.Errorf("--all:\n%s", all.String())
	}

	// A refused filter names the parameter.
	_, _, err = run("--since", "yesterday")
	if err == nil || !strings.Contains(err.Error(), "since") {
		t.Errorf("--since yesterday: %v", err)
	}
}

func withIDs(bodies []stele.EventBody) []stele.EventBody {
	g := eventgen.New(99)
	for i := range bodies {
		bodies[i].ID = g.Event(time.Now(), true).ID
	}
	return bodies
}

// TestCLIExport runs stele export to files in each format: the file holds
// exactly what the API exports, a progress line on stderr counts the events
// written, and a failed export leaves no file behind.
func TestCLIExport(t *testing.T) {
	ts := startServer(t, "")
	now := time.Now().UTC()
	ingest(t, ts, ts.Key, eventgen.New(12).Stream(1500, now, 48*time.Hour, true))
	ingest(t, ts, ts.Key, hostileEvents(now))
	dir := t.TempDir()
	for _, format := range []string{"csv", "json", "ndjson"} {
		for _, filter := range [][]string{{"--category", "config"}, {"--node", "nowhere"}} {
			path := filepath.Join(dir, "out."+format)
			var out, errb bytes.Buffer
			args := append([]string{"--server", ts.URL, "--key", ts.Key, "--format", format, "-o", path}, filter...)
			if err := runExport(context.Background(), args, &out, &errb); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, errb.String())
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, h := exportBody(t, ts, ts.Key, url.Values{"format": {format}, strings.TrimPrefix(filter[0], "--"): {filter[1]}})
			if !bytes.Equal(got, want) {
				t.Errorf("%s: the file differs from the API's export (%d and %d bytes)", format, len(got), len(want))
			}
			m := regexp.MustCompile(`(\d+) events written \(\d+ events/s, [\d.]+ MB\), done in [\d.]+s\n$`).FindStringSubmatch(errb.String())
			if m == nil || m[1] != h["rows"] {
				t.Errorf("%s %v: progress %q, want %s events", format, filter, errb.String(), h["rows"])
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q", out.String())
			}
		}
	}
	// A bundle, whole-log and filtered, verifies offline with the log key,
	// whatever the environment the other commands read says.
	_, vkey, _ := call(t, "GET", ts.URL+"/v1/log/key", ts.Key, "", nil)
	t.Setenv("STELE_SERVER", ts.URL)
	t.Setenv("STELE_KEY", ts.Key)
	for _, filter := range [][]string{{"--from-seq", "0"}, {"--category", "config"}} {
		path := filepath.Join(dir, "out.bundle")
		var errb bytes.Buffer
		args := append([]string{"--server", ts.URL, "--key", ts.Key, "--format", "bundle", "-o", path}, filter...)
		if err := runExport(context.Background(), args, &bytes.Buffer{}, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		m := regexp.MustCompile(`(\d+) events written \([^)]*\), done`).FindStringSubmatch(errb.String())
		out, err := runCLI(t, "verify", "--key", strings.TrimSpace(string(vkey)), "--quiet", path)
		if err != nil || m == nil || !strings.Contains(out, m[1]+" verified, 0 failed") {
			t.Errorf("bundle %v: progress %q; verify: %v\n%s", filter, errb.String(), err, out)
		}
	}
	if _, err := runCLI(t, "export", "--server", ts.URL, "--key", ts.Key, "--format", "csv", "--from-seq", "1"); err == nil {
		t.Error("--from-seq accepted without --format bundle")
	}

	// Refused: no file, not even a partial one.
	path := filepath.Join(dir, "bad.csv")
	err := runExport(context.Background(), []string{"--server", ts.URL, "--key", ts.Key, "--format", "csv", "-o", path, "--ip", "nope"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "ip") {
		t.Errorf("bad ip: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "bad") {
			t.Errorf("left %s behind", e.Name())
		}
	}
}
