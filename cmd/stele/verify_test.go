package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stele-log/stele/tree"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// runBinary runs the stele binary and returns its combined output and exit
// status.
func runBinary(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(buildBinary(t), args...)
	cmd.Env = append(os.Environ(), "STELE_KEY=")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatalf("stele %v: %v", args, err)
	}
	return string(out), 0
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// bundleLines splits a bundle into lines (without the final newline).
func bundleLines(b string) []string { return strings.Split(strings.TrimSuffix(b, "\n"), "\n") }

func joinLines(ls []string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }

// lineOf returns the index of the line holding the event at seq.
func lineOf(t *testing.T, ls []string, seq int64) int {
	t.Helper()
	for i, l := range ls {
		if strings.Contains(l, fmt.Sprintf(`{"event":{"seq":%d,`, seq)) {
			return i
		}
	}
	t.Fatalf("no line holds seq %d", seq)
	return -1
}

// TestVerifyExports: clean exports of a real server verify with the real
// binary, and agree with an independent check by tlog and note; every
// tampering of the files is caught and named.
func TestVerifyExports(t *testing.T) {
	ts := startServer(t, "")
	vkey := getText(t, ts.URL+"/v1/log/key", ts.Key)
	vkeyFile := writeTemp(t, "log.vkey", []byte(vkey))
	appendWaiting(t, ts, ts.Key, vkey, 6, "incident.opened")
	appendWaiting(t, ts, ts.Key, vkey, 4, "pcap.downloaded")
	appendWaiting(t, ts, ts.Key, vkey, 5, "node.added")

	cpText := getText(t, ts.URL+"/v1/checkpoint", ts.Key) // before the NDJSON export, which logs its access
	ndjson := getText(t, ts.URL+"/v1/export?format=ndjson", ts.Key)
	full := getText(t, ts.URL+"/v1/export?format=bundle", ts.Key)
	pcap := getText(t, ts.URL+"/v1/export?format=bundle&type=pcap.*", ts.Key)
	part := getText(t, ts.URL+"/v1/export?format=bundle&from_seq=3&to_seq=9", ts.Key)

	files := map[string]string{}
	for name, data := range map[string]string{"full": full, "pcap": pcap, "part": part, "ndjson": ndjson} {
		files[name] = writeTemp(t, name+".ndjson", []byte(data))
	}
	cpFile := writeTemp(t, "checkpoint", []byte(cpText))
	for _, args := range [][]string{
		{"verify", "--key", vkeyFile, files["full"]},
		{"verify", "--key", strings.TrimSpace(vkey), files["pcap"]},
		{"verify", "--key", vkeyFile, "--quiet", files["part"]},
		{"verify", "--key", vkeyFile, "--checkpoint", cpFile, files["ndjson"]},
	} {
		out, code := runBinary(t, args...)
		if code != 0 || !strings.Contains(out, "OK: every event checked is in the signed log") {
			t.Errorf("stele %v: exit %d\n%s", args, code, out)
		}
	}
	crossCheckBundles(t, vkey, full, pcap, part)

	// Each bundle export is recorded like any export (AUT-13).
	var listed struct {
		Events []struct {
			Context struct {
				Format  string
				Filters map[string]string
				Rows    int64
			}
		}
	}
	json.Unmarshal([]byte(getText(t, ts.URL+"/v1/events?type=auditlog.exported&limit=100", ts.Key)), &listed)
	bundles := 0
	for _, e := range listed.Events {
		if e.Context.Format == "bundle" {
			bundles++
			if e.Context.Filters["type"] == "pcap.*" && e.Context.Rows != 4 {
				t.Errorf("the pcap bundle's access event counts %d rows, want 4", e.Context.Rows)
			}
		}
	}
	if bundles != 3 {
		t.Errorf("%d auditlog.exported events of bundles, want 3", bundles)
	}
	for _, c := range []struct{ query, field string }{
		{"from_seq=x", "from_seq"},
		{"from_seq=-1", "from_seq"},
		{"from_seq=5&to_seq=2", "to_seq"},
		{"from_seq=99999999", "from_seq"},
		{"order=desc", "order"},
		{"seq=3", "seq"},
	} {
		status, b, _ := call(t, "GET", ts.URL+"/v1/export?format=bundle&"+c.query, ts.Key, "", nil)
		var e struct{ Error struct{ Field string } }
		json.Unmarshal(b, &e)
		if status != 400 || e.Error.Field != c.field {
			t.Errorf("bundle with %s: %d %s, want 400 naming %s", c.query, status, b, c.field)
		}
	}

	// Another workspace: its key and checkpoint are another log's.
	status, b, _ := call(t, "POST", ts.URL+"/v1/workspaces", ts.Key, "application/json", []byte(`{"id":"other"}`))
	var created struct{ Key struct{ Key string } }
	json.Unmarshal(b, &created)
	if status != 201 {
		t.Fatalf("create workspace: %d %s", status, b)
	}
	otherVkey := getText(t, ts.URL+"/v1/log/key", created.Key.Key)
	otherCp := appendWaiting(t, ts, created.Key.Key, otherVkey, 1, "node.added").Note
	_, randomVkey, _ := note.GenerateKey(rand.Reader, "stele.test/default")

	fl, pl := bundleLines(full), bundleLines(pcap)
	pcapSeq := firstSeq(t, pl[1])
	edit := func(ls []string, i int, old, new string) []byte {
		c := append([]string{}, ls...)
		if !strings.Contains(c[i], old) {
			t.Fatalf("line %d has no %q: %s", i, old, c[i])
		}
		c[i] = strings.Replace(c[i], old, new, 1)
		return joinLines(c)
	}
	without := func(ls []string, i int) []byte { return joinLines(append(append([]string{}, ls[:i]...), ls[i+1:]...)) }
	dup := func(ls []string, i int) []byte {
		return joinLines(append(append(append([]string{}, ls[:i+1]...), ls[i]), ls[i+1:]...))
	}
	swap := func(ls []string, i, j int) []byte {
		c := append([]string{}, ls...)
		c[i], c[j] = c[j], c[i]
		return joinLines(c)
	}
	headerCp, _ := json.Marshal(otherCp)
	replaced := regexp.MustCompile(`"checkpoint":"(?:[^"\\]|\\.)*"`).ReplaceAllLiteralString(fl[0], `"checkpoint":`+string(headerCp))
	cases := []struct {
		name    string
		data    []byte
		key     string
		cp      string
		code    int
		mustSay []string
	}{
		{"edited field", edit(fl, lineOf(t, fl, 5), `"outcome":"success"`, `"outcome":"failure"`), vkeyFile, "", 1, []string{"seq 5", "FAILED leaf"}},
		{"edited field in a filtered bundle", edit(pl, 1, `"outcome":"success"`, `"outcome":"failure"`), vkeyFile, "", 1, []string{fmt.Sprintf("seq %d", pcapSeq), "FAILED leaf"}},
		{"removed line", without(fl, lineOf(t, fl, 4)), vkeyFile, "", 1, []string{"seq 5", "FAILED sequence: expected seq 4, found 5"}},
		{"removed line in a filtered bundle", without(pl, 2), vkeyFile, "", 1, []string{"FAILED end: the end line counts"}},
		{"duplicated line", dup(fl, lineOf(t, fl, 6)), vkeyFile, "", 1, []string{"seq 6", "found 6 again"}},
		{"duplicated line in a filtered bundle", dup(pl, 1), vkeyFile, "", 1, []string{fmt.Sprintf("seq %d", pcapSeq), "FAILED order"}},
		{"reordered lines", swap(fl, lineOf(t, fl, 2), lineOf(t, fl, 7)), vkeyFile, "", 1, []string{"seq 7", "FAILED sequence"}},
		{"reordered lines in a filtered bundle", swap(pl, 1, 3), vkeyFile, "", 1, []string{"FAILED order"}},
		{"altered proof hash", flipAfter(t, pl, 1, `"hashes":["`), vkeyFile, "", 1, []string{fmt.Sprintf("seq %d", pcapSeq), "FAILED inclusion"}},
		{"altered range proof", flipAfter(t, bundleLines(part), 0, `"consistency":["`), vkeyFile, "", 1, []string{"FAILED range"}},
		{"altered checkpoint", edit(fl, 0, `\n`+fmt.Sprint(fullSize(t, fl[0]))+`\n`, `\n`+fmt.Sprint(fullSize(t, fl[0])+1)+`\n`), vkeyFile, "", 1, []string{"FAILED signature"}},
		{"replaced checkpoint", joinLines(append([]string{replaced}, fl[1:]...)), vkeyFile, "", 1, []string{"FAILED origin", "stele.test/other"}},
		{"wrong key", []byte(full), writeTemp(t, "random.vkey", []byte(randomVkey)), "", 1, []string{"FAILED signature"}},
		{"another log's key", []byte(full), strings.TrimSpace(otherVkey), "", 1, []string{"FAILED origin"}},
		{"wrong origin", edit(fl, 0, `"origin":"stele.test/default"`, `"origin":"stele.test/other"`), vkeyFile, "", 1, []string{"FAILED origin"}},
		{"cut short", joinLines(fl[:len(fl)-3]), vkeyFile, "", 1, []string{"FAILED end"}},
		{"edited NDJSON export", []byte(strings.Replace(ndjson, `"outcome":"success"`, `"outcome":"failure"`, 1)), vkeyFile, cpFile, 1, []string{"FAILED leaf"}},
		{"NDJSON export missing a line", without(bundleLines(ndjson), 4), vkeyFile, cpFile, 2, []string{"UNVERIFIED", "is missing"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"verify", "--key", c.key, "--quiet"}
			if c.cp != "" {
				args = append(args, "--checkpoint", c.cp)
			}
			out, code := runBinary(t, append(args, writeTemp(t, "tampered", c.data))...)
			if code != c.code {
				t.Errorf("exit %d, want %d\n%s", code, c.code, out)
			}
			for _, s := range c.mustSay {
				if !strings.Contains(out, s) {
					t.Errorf("output does not say %q:\n%s", s, out)
				}
			}
		})
	}
}

func firstSeq(t *testing.T, line string) int64 {
	t.Helper()
	var l struct{ Event struct{ Seq int64 } }
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		t.Fatal(err)
	}
	return l.Event.Seq
}

// fullSize returns the size in a bundle header's checkpoint.
func fullSize(t *testing.T, header string) int64 {
	t.Helper()
	var h struct{ Checkpoint string }
	json.Unmarshal([]byte(header), &h)
	var n int64
	fmt.Sscan(strings.Split(h.Checkpoint, "\n")[1], &n)
	return n
}

// flipAfter changes the first character of the hash after marker on line i.
func flipAfter(t *testing.T, ls []string, i int, marker string) []byte {
	t.Helper()
	c := append([]string{}, ls...)
	at := strings.Index(c[i], marker)
	if at < 0 {
		t.Fatalf("line %d has no %q", i, marker)
	}
	at += len(marker)
	r := "A"
	if c[i][at] == 'A' {
		r = "B"
	}
	c[i] = c[i][:at] + r + c[i][at+1:]
	return joinLines(c)
}

// crossCheckBundles verifies the bundles with x/mod's note and tlog and the
// test's own leaf rule, none of it the verifier's code.
func crossCheckBundles(t *testing.T, vkey string, full, pcap, part string) {
	t.Helper()
	type line struct {
		Event map[string]any
		Proof *struct {
			Index  int64
			Hashes []tlog.Hash
		}
		End *struct{ Events int64 }
	}
	type header struct {
		Checkpoint string
		Range      *struct {
			From, To          int64
			Left, Consistency []tlog.Hash
		}
	}
	parse := func(b string) (header, openedCheckpoint, []line) {
		ls := bundleLines(b)
		var h header
		if err := json.Unmarshal([]byte(ls[0]), &h); err != nil {
			t.Fatal(err)
		}
		var out []line
		for _, s := range ls[1:] {
			var l line
			dec := json.NewDecoder(strings.NewReader(s))
			dec.UseNumber()
			if err := dec.Decode(&l); err != nil {
				t.Fatal(err)
			}
			if l.Event != nil {
				out = append(out, l)
			}
		}
		return h, openCheckpoint(t, vkey, h.Checkpoint), out
	}
	leafOf := func(l line) (int64, tlog.Hash) {
		seq, _ := l.Event["seq"].(json.Number).Int64()
		return seq, recomputeLeaf(t, exportedEvent{Raw: l.Event})
	}
	// Filtered: every proof verifies.
	_, cp, lines := parse(pcap)
	if len(lines) != 4 {
		t.Errorf("the pcap bundle holds %d events, want 4", len(lines))
	}
	for _, l := range lines {
		seq, leaf := leafOf(l)
		if l.Proof == nil || tlog.CheckRecord(l.Proof.Hashes, cp.Size, cp.Root, seq, leaf) != nil {
			t.Errorf("pcap bundle: seq %d does not verify with tlog", seq)
		}
	}
	// Ranges: the leaves appended to the left edge give a tree consistent
	// with the checkpoint.
	for _, b := range []string{full, part} {
		h, cp, lines := parse(b)
		stored := map[int64]tlog.Hash{}
		for i, x := range tree.FrontierIndexes(h.Range.From) {
			stored[x] = h.Range.Left[i]
		}
		reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for i, x := range idx {
				out[i] = stored[x]
			}
			return out, nil
		})
		for i, l := range lines {
			seq, leaf := leafOf(l)
			if seq != h.Range.From+int64(i) {
				t.Fatalf("range bundle: line %d holds seq %d", i, seq)
			}
			hs, err := tlog.StoredHashesForRecordHash(seq, leaf, reader)
			if err != nil {
				t.Fatal(err)
			}
			for lvl, x := range hs {
				stored[tlog.StoredHashIndex(lvl, seq>>lvl)] = x
			}
		}
		root, err := tlog.TreeHash(h.Range.To, reader)
		if err != nil {
			t.Fatal(err)
		}
		if h.Range.To == cp.Size && root != cp.Root || h.Range.To < cp.Size && tlog.CheckTree(h.Range.Consistency, cp.Size, cp.Root, h.Range.To, root) != nil {
			t.Errorf("range [%d,%d) does not verify with tlog against %d", h.Range.From, h.Range.To, cp.Size)
		}
	}
	if !bytes.Contains([]byte(part), []byte(`"range":{"from":3,"to":9,`)) {
		t.Errorf("the part bundle's header: %s", bundleLines(part)[0])
	}
}

// TestVerifyMonitor: the monitor pins the log key, passes on growth, and
// raises an alarm with evidence on a different log key, a fork (two data
// directories sharing one signing key that diverge) and a rollback (an
// older copy of the data directory restored), leaving its state as it was.
func TestVerifyMonitor(t *testing.T) {
	dirA := t.TempDir()
	a := startServer(t, dirA)
	vkey := getText(t, a.URL+"/v1/log/key", a.Key)
	appendWaiting(t, a, a.Key, vkey, 3, "incident.opened")
	a.stop(t)
	dirOld := filepath.Join(t.TempDir(), "old")
	if out, err := exec.Command("cp", "-a", dirA, dirOld).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	a = startServer(t, dirA)
	state := filepath.Join(t.TempDir(), "monitor.json")
	monitor := func(ts *testServer) (string, int) {
		return runBinary(t, "verify", "--server", ts.URL, "--key", ts.Key, "--state", state)
	}
	if out, code := monitor(a); code != 0 || !strings.Contains(out, "OK pinned the log key of stele.test/default") {
		t.Fatalf("first use: exit %d\n%s", code, out)
	}
	appendWaiting(t, a, a.Key, vkey, 4, "node.added")
	out, code := monitor(a)
	if code != 0 || !strings.Contains(out, "consistently") {
		t.Fatalf("growth: exit %d\n%s", code, out)
	}
	saved, _ := os.ReadFile(state)
	var st struct{ Size int64 }
	json.Unmarshal(saved, &st)

	expectAlarm := func(name string, ts *testServer, check string) {
		t.Helper()
		out, code := monitor(ts)
		if code != 1 || !strings.Contains(out, "ALARM "+check) || !strings.Contains(out, "last verified checkpoint:") && check != "key" {
			t.Errorf("%s: exit %d, want an ALARM %s with evidence\n%s", name, code, check, out)
		}
		if now, _ := os.ReadFile(state); !bytes.Equal(now, saved) {
			t.Errorf("%s: the state file changed", name)
		}
	}

	// Another server with its own key, in place of the log.
	expectAlarm("different log key", startServer(t, ""), "key")

	// A second data directory signing with the same key: a fork once its
	// log reaches the same size with other events.
	b := startServer(t, "", func(c *serveConfig) { c.SigningKey = filepath.Join(dirA, "signing.key") })
	head := appendWaiting(t, b, b.Key, vkey, 1, "user.login").LastSeq + 1
	if head >= st.Size {
		t.Fatalf("the second log already holds %d events, the monitor's %d", head, st.Size)
	}
	if got := appendWaiting(t, b, b.Key, vkey, int(st.Size-head), "user.login"); got.Size != st.Size {
		t.Fatalf("the second log reached %d, not %d", got.Size, st.Size)
	}
	expectAlarm("fork", b, "fork")
	appendWaiting(t, b, b.Key, vkey, 2, "user.login")
	expectAlarm("diverged history", b, "consistency")

	// The older copy of A's data directory, restored.
	a.stop(t)
	expectAlarm("rollback", startServer(t, dirOld), "rollback")
}
