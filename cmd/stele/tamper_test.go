package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/store/postgres/pgtest"
	"github.com/stele-log/stele/store/sqlite"
	"github.com/stele-log/stele/tree"
)

// The tamper catalog (RELIABILITY.md 2.2, TAM-xx) against stored data: an
// operator with access to the database file edits it with raw SQL while
// the server is stopped, dropping the append-only triggers first as an
// attacker would, and `stele check` — the real binary over the real SQLite
// file — must exit 2 naming the workspace, the first bad seq and the check.
// Where the start-up self-check can see the damage (the right edge of the
// tree, the latest checkpoint, the unsigned tail), `stele serve` must also
// refuse appends to that workspace while serving the others.

// tamperFixture is a stopped instance's data directory with two customer
// workspaces, each with several checkpoints, and what the test needs to
// know about it.
type tamperFixture struct {
	dir    string
	opsKey string           // admin key of workspace "ops"
	size   map[string]int64 // log sizes after the server stopped
	// saved are checkpoints a monitor saved outside the database, by
	// workspace: after the first phase of appends, and at the end.
	early, saved map[string][]byte
	older        string // a consistent copy (VACUUM INTO) of the database after the first phase
}

func buildTamperFixture(t *testing.T) *tamperFixture {
	t.Helper()
	fx := &tamperFixture{dir: t.TempDir(), size: map[string]int64{}, early: map[string][]byte{}, saved: map[string][]byte{}}
	ts := startServer(t, fx.dir)
	status, b, _ := call(t, "POST", ts.URL+"/v1/workspaces", ts.Key, "application/json", []byte(`{"id":"ops","name":"Ops"}`))
	var created struct{ Key struct{ Key string } }
	if err := json.Unmarshal(b, &created); status != 201 || err != nil {
		t.Fatalf("create workspace: %d %s", status, b)
	}
	fx.opsKey = created.Key.Key
	keys := map[string]string{"default": ts.Key, "ops": fx.opsKey}
	emit := func(ws string, n int, into map[string][]byte) {
		var evs []string
		for i := range n {
			evs = append(evs, fmt.Sprintf(`{"type":"incident.opened","actor":{"type":"user","id":"alice@acme.com"},"ip":"203.0.113.%d","outcome":"success","node":"nyc-edge-0%d","context":{"i":%d}}`, i+1, i%3, i))
		}
		status, b, _ := call(t, "POST", ts.URL+"/v1/events?wait=checkpoint", keys[ws], "application/json", []byte(`{"events":[`+strings.Join(evs, ",")+`]}`))
		var resp struct{ Checkpoint string }
		if err := json.Unmarshal(b, &resp); status != 201 || err != nil || resp.Checkpoint == "" {
			t.Fatalf("emit to %s: %d %s", ws, status, b)
		}
		into[ws] = []byte(resp.Checkpoint)
	}
	emit("default", 12, fx.early)
	emit("ops", 6, fx.early)
	fx.older = filepath.Join(t.TempDir(), "older.db")
	snap, err := sql.Open("sqlite", "file:"+filepath.Join(fx.dir, "stele.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snap.Exec("VACUUM INTO ?", fx.older); err != nil {
		t.Fatal(err)
	}
	snap.Close()
	emit("default", 10, fx.saved)
	emit("ops", 8, fx.saved)
	emit("default", 6, fx.saved)
	ts.stop(t)
	s, err := sqlite.Open(context.Background(), filepath.Join(fx.dir, "stele.db"), sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, ws := range []string{"default", "ops", "_system"} {
		h, err := s.Head(context.Background(), ws)
		if err != nil {
			t.Fatal(err)
		}
		fx.size[ws] = h.Size
	}
	return fx
}

// copyTo copies the fixture's data directory to a fresh one.
func (fx *tamperFixture) copyTo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(fx.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		copyFile(t, filepath.Join(fx.dir, e.Name()), filepath.Join(dir, e.Name()))
	}
	return dir
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// copyToWith copies the fixture and lets an attacker, guards dropped, edit it.
func (fx *tamperFixture) copyToWith(t *testing.T, edit func(*attacker)) string {
	t.Helper()
	dir := fx.copyTo(t)
	a := attack(t, dir)
	a.dropGuards()
	edit(a)
	a.db.Close()
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fi, _ := src.Stat()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// replaceDB puts the database file from in place of dir's, as an attacker
// restoring a copy does: the old WAL and shared-memory files go too (left
// behind, SQLite would replay the old WAL over the new file).
func replaceDB(t *testing.T, dir, from string) {
	t.Helper()
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(filepath.Join(dir, "stele.db"+suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	copyFile(t, from, filepath.Join(dir, "stele.db"))
	if _, err := os.Stat(from + "-wal"); err == nil {
		copyFile(t, from+"-wal", filepath.Join(dir, "stele.db-wal"))
	}
}

// saveCheckpoint writes a saved checkpoint to a file for --trusted.
func saveCheckpoint(t *testing.T, note []byte) string {
	p := filepath.Join(t.TempDir(), "checkpoint")
	if err := os.WriteFile(p, note, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// attacker edits a stopped instance's database with raw SQL.
type attacker struct {
	t  *testing.T
	db *sql.DB
}

func attack(t *testing.T, dir string) *attacker {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "stele.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return &attacker{t: t, db: db}
}

func (a *attacker) exec(q string, args ...any) {
	a.t.Helper()
	if _, err := a.db.Exec(q, args...); err != nil {
		a.t.Fatalf("%s: %v", q, err)
	}
}

// dropGuards drops every trigger, as an attacker does first.
func (a *attacker) dropGuards() {
	a.t.Helper()
	rows, err := a.db.Query("SELECT name FROM sqlite_master WHERE type = 'trigger'")
	if err != nil {
		a.t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		a.exec(`DROP TRIGGER "` + n + `"`)
	}
}

func (a *attacker) rowid(ws string, seq int64) int64 {
	a.t.Helper()
	var n int64
	if err := a.db.QueryRow("SELECT n FROM workspaces WHERE id = ?", ws).Scan(&n); err != nil {
		a.t.Fatal(err)
	}
	return n<<40 | seq
}

func (a *attacker) body(ws string, seq int64) []byte {
	a.t.Helper()
	var b []byte
	if err := a.db.QueryRow("SELECT body FROM events WHERE rowid = ?", a.rowid(ws, seq)).Scan(&b); err != nil {
		a.t.Fatal(err)
	}
	return b
}

// editEvent rewrites event seq's body with edit; with rehash it also
// stores the new body's leaf hash beside it.
func (a *attacker) editEvent(ws string, seq int64, rehash bool, edit func(string) string) {
	a.t.Helper()
	old := string(a.body(ws, seq))
	body := edit(old)
	if body == old {
		a.t.Fatalf("the edit changed nothing in %s", old)
	}
	a.exec("UPDATE events SET body = ? WHERE rowid = ?", []byte(body), a.rowid(ws, seq))
	if rehash {
		h := stele.LeafHash([]byte(body))
		a.exec("UPDATE events SET leaf_hash = ? WHERE rowid = ?", h[:], a.rowid(ws, seq))
	}
}

// checkResult is one run of the stele check binary.
type checkResult struct {
	code int
	out  string
}

func runCheckBinary(t *testing.T, args ...string) checkResult {
	t.Helper()
	cmd := exec.Command(buildBinary(t), append([]string{"check", "--progress", "0"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return checkResult{0, out.String()}
	case errors.As(err, &exit):
		return checkResult{exit.ExitCode(), out.String()}
	default:
		t.Fatalf("stele check: %v\n%s", err, out.String())
		return checkResult{}
	}
}

// wantFirst asserts that the check failed and that its first finding is
// check at seq of ws.
func (r checkResult) wantFirst(t *testing.T, ws string, seq int64, check string) {
	t.Helper()
	if r.code != exitCheckFailed {
		t.Fatalf("stele check exited %d, want %d:\n%s", r.code, exitCheckFailed, r.out)
	}
	want := fmt.Sprintf("FAILED: first finding: workspace %s seq %d: %s:", ws, seq, check)
	if !strings.Contains(r.out, want) {
		t.Fatalf("stele check output lacks %q:\n%s", want, r.out)
	}
}

func (r checkResult) wantAlso(t *testing.T, ws string, seq int64, check string) {
	t.Helper()
	if want := fmt.Sprintf("workspace %s seq %d: %s:", ws, seq, check); !strings.Contains(r.out, want) {
		t.Errorf("stele check output lacks %q:\n%s", want, r.out)
	}
}

func (r checkResult) wantOK(t *testing.T) {
	t.Helper()
	if r.code != 0 || !strings.Contains(r.out, "\nOK: ") {
		t.Fatalf("stele check exited %d, want 0:\n%s", r.code, r.out)
	}
}

// wantAppendsRefused starts the server over dir and expects the start-up
// self-check to have stopped appends to ws (503 and an integrity alarm)
// while the other customer workspace still takes events.
func (fx *tamperFixture) wantAppendsRefused(t *testing.T, dir, ws string) {
	t.Helper()
	ts := fx.wantAlarm(t, dir, ws)
	other := map[string]string{"default": "ops", "ops": "default"}[ws]
	keys := map[string]string{"default": ts.Key, "ops": fx.opsKey}
	ev := []byte(`{"type":"incident.opened","actor":{"type":"system","id":"system"}}`)
	if status, b, _ := call(t, "POST", ts.URL+"/v1/events", keys[other], "application/json", ev); status != 201 {
		t.Errorf("append to untouched %s: %d %s, want 201", other, status, b)
	}
}

// wantAlarm starts the server over dir and expects appends to ws refused
// with 503 and an integrity alarm logged.
func (fx *tamperFixture) wantAlarm(t *testing.T, dir, ws string) *testServer {
	t.Helper()
	ts := startServer(t, dir)
	keys := map[string]string{"default": ts.Key, "ops": fx.opsKey}
	ev := []byte(`{"type":"incident.opened","actor":{"type":"system","id":"system"}}`)
	if status, b, _ := call(t, "POST", ts.URL+"/v1/events", keys[ws], "application/json", ev); status != 503 {
		t.Errorf("append to tampered %s after restart: %d %s, want 503", ws, status, b)
	}
	if !strings.Contains(ts.stderr.String(), "INTEGRITY ALARM") {
		t.Errorf("no integrity alarm logged at start-up:\n%s", ts.stderr.String())
	}
	return ts
}

// wantFullCheckAlarm starts the server over dir with its background full
// check due at once, and expects it to find ws's damage at seq, stop its
// appends and record the alarm, while the other workspace serves.
func (fx *tamperFixture) wantFullCheckAlarm(t *testing.T, dir, ws string, seq int64) {
	t.Helper()
	ts := startServer(t, dir, func(c *serveConfig) { c.FullCheckEvery = 20 * time.Millisecond })
	want := fmt.Sprintf("workspace=%s seq=%d", ws, seq)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(ts.stderr.String(), "INTEGRITY ALARM (full check)") {
		if time.Now().After(deadline) {
			t.Fatalf("no full-check alarm within 2 minutes:\n%s", ts.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if log := ts.stderr.String(); !strings.Contains(log, want) {
		t.Errorf("the full-check alarm does not name %s:\n%s", want, log)
	}
	keys := map[string]string{"default": ts.Key, "ops": fx.opsKey}
	ev := []byte(`{"type":"incident.opened","actor":{"type":"system","id":"system"}}`)
	if status, b, _ := call(t, "POST", ts.URL+"/v1/events", keys[ws], "application/json", ev); status != 503 {
		t.Errorf("append to %s after the full-check alarm: %d %s, want 503", ws, status, b)
	}
	other := map[string]string{"default": "ops", "ops": "default"}[ws]
	if status, b, _ := call(t, "POST", ts.URL+"/v1/events", keys[other], "application/json", ev); status != 201 {
		t.Errorf("append to untouched %s: %d %s, want 201", other, status, b)
	}
	if _, b, _ := call(t, "GET", ts.URL+"/metrics", "", "", nil); !strings.Contains(string(b), "\nstele_full_check_failing_workspaces 1\n") {
		t.Errorf("/metrics does not count one failing workspace:\n%s", grepLines(string(b), "stele_full_check"))
	}
	ts.stop(t)
	// The alarm is an event of the system log.
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "stele.db"), sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n, err := s.Count(context.Background(), "_system", stele.Query{Filter: stele.Filter{Type: "integrity.alarm"}})
	if err != nil || n != 1 {
		t.Errorf("integrity.alarm events in the system log: %d (%v), want 1", n, err)
	}
}

func TestTamperCatalog(t *testing.T) {
	fx := buildTamperFixture(t)
	def, ops := fx.size["default"], fx.size["ops"]
	t.Logf("fixture: default %d events, ops %d events", def, ops)

	t.Run("TAM-00_clean_log_passes", func(t *testing.T) {
		dir := fx.copyTo(t)
		r := runCheckBinary(t, "--data", dir)
		r.wantOK(t)
		for _, ws := range []string{"default", "ops", "_system"} {
			if !strings.Contains(r.out, fmt.Sprintf("ok     workspace %s: %d events", ws, fx.size[ws])) {
				t.Errorf("no ok line for %s with %d events:\n%s", ws, fx.size[ws], r.out)
			}
		}
		// Pinned key and saved checkpoints agree too.
		runCheckBinary(t, "--data", dir, "--log-key", logKey(t, dir, "default"), "--canonical",
			"--trusted", saveCheckpoint(t, fx.early["default"]), "--trusted", saveCheckpoint(t, fx.saved["ops"])).wantOK(t)
	})

	t.Run("TAM-01_edit_event_field", func(t *testing.T) {
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		a.editEvent("default", 7, false, func(b string) string {
			return strings.Replace(b, `"id":"alice@acme.com"`, `"id":"mallory@acme.com"`, 1)
		})
		r := runCheckBinary(t, "--data", dir)
		t.Logf("stele check output:\n%s", r.out)
		r.wantFirst(t, "default", 7, "C1 leaf")
		r.wantAlso(t, "default", 7, "C2 root")
		// The server's own full check raises the alarm too.
		fx.wantFullCheckAlarm(t, dir, "default", 7)
	})

	t.Run("TAM-01b_edit_query_column", func(t *testing.T) {
		// The signed bytes stay; the column filters read says another actor,
		// which hides the event from ?actor=alice@acme.com.
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		a.exec("UPDATE events SET actor_id = 'nobody' WHERE rowid = ?", a.rowid("default", 7))
		a.exec("UPDATE events SET node = NULL WHERE rowid = ?", a.rowid("ops", 2))
		a.db.Close()
		runCheckBinary(t, "--data", dir, "--restore-guards").wantOK(t) // the hash-only check cannot see it
		r := runCheckBinary(t, "--data", dir, "--canonical")
		r.wantFirst(t, "default", 7, "index")
		r.wantAlso(t, "ops", 2, "index")
		if !strings.Contains(r.out, "query column actor_id differs") || !strings.Contains(r.out, "query column node differs") {
			t.Errorf("the edited columns are not named:\n%s", r.out)
		}
	})

	t.Run("TAM-02_edit_event_and_its_leaf_hash", func(t *testing.T) {
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		a.editEvent("default", 7, true, func(b string) string { return strings.Replace(b, `"ip":"203.0.113.`, `"ip":"198.51.100.`, 1) })
		// With the signing key, the row MAC gives it away at once…
		runCheckBinary(t, "--data", dir).wantFirst(t, "default", 7, "row MAC")
		// …and with the public key alone, the stored tree does.
		runCheckBinary(t, "--data", dir, "--signing-key", filepath.Join(t.TempDir(), "none"), "--log-key", logKey(t, fx.dir, "default")).
			wantFirst(t, "default", 7, "C2 root")
	})

	t.Run("TAM-02b_edit_leaf_hash", func(t *testing.T) {
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		a.exec("UPDATE events SET leaf_hash = zeroblob(32) WHERE rowid = ?", a.rowid("ops", 3))
		runCheckBinary(t, "--data", dir).wantFirst(t, "ops", 3, "C1 leaf")
	})

	t.Run("TAM-02c_edit_tree_hash", func(t *testing.T) {
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		a.exec("UPDATE tree SET hashes = zeroblob(length(hashes)) WHERE rowid = ?", a.rowid("default", 11))
		runCheckBinary(t, "--data", dir).wantFirst(t, "default", 11, "C2 root")
	})

	t.Run("TAM-03_delete_middle_event", func(t *testing.T) {
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		a.exec("DELETE FROM events WHERE rowid = ?", a.rowid("default", 9))
		runCheckBinary(t, "--data", dir).wantFirst(t, "default", 9, "C4 sequence")
		fx.wantFullCheckAlarm(t, fx.copyToWith(t, func(a *attacker) {
			a.exec("DELETE FROM events WHERE rowid = ?", a.rowid("default", 9))
		}), "default", 9)
		// Deleting the position's tree row as well leaves a gap.
		a.exec("DELETE FROM tree WHERE rowid = ?", a.rowid("default", 9))
		runCheckBinary(t, "--data", dir).wantFirst(t, "default", 9, "C4 sequence")
	})

	t.Run("TAM-04_delete_tail", func(t *testing.T) {
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		cut := def - 4
		a.exec("DELETE FROM events WHERE rowid >= ? AND rowid < ?", a.rowid("default", cut), a.rowid("default", 1<<40-1))
		a.exec("DELETE FROM tree WHERE rowid >= ? AND rowid < ?", a.rowid("default", cut), a.rowid("default", 1<<40-1))
		r := runCheckBinary(t, "--data", dir)
		r.wantFirst(t, "default", cut, "C4 sequence")
		if !strings.Contains(r.out, fmt.Sprintf("signed for %d events, but only %d positions are stored", def, cut)) {
			t.Errorf("the report does not say the signed size exceeds the stored one:\n%s", r.out)
		}
		fx.wantAppendsRefused(t, dir, "default")
	})

	t.Run("TAM-04b_delete_tail_with_head_and_checkpoints", func(t *testing.T) {
		// A thorough cut (rows, head and checkpoints) leaves a smaller,
		// self-consistent log: only a checkpoint saved outside shows it.
		dir := fx.copyTo(t)
		replaceDB(t, dir, fx.older)
		r := runCheckBinary(t, "--data", dir, "--workspace", "default")
		r.wantOK(t)
		earlySize := checkpointSize(t, fx.early["default"])
		runCheckBinary(t, "--data", dir, "--workspace", "default", "--trusted", saveCheckpoint(t, fx.saved["default"])).
			wantFirst(t, "default", earlySize, "C5 consistency")
	})

	t.Run("TAM-05a_insert_and_renumber", func(t *testing.T) {
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		k := int64(6)
		a.exec("UPDATE events SET rowid = rowid + 1000000 WHERE rowid >= ? AND rowid < ?", a.rowid("default", k), a.rowid("default", 1<<30))
		a.exec("UPDATE events SET rowid = rowid - 1000000 + 1 WHERE rowid >= ? AND rowid < ?", a.rowid("default", k+1000000), a.rowid("default", 1<<30))
		forged := strings.Replace(string(a.body("default", k+1)), `"outcome":"success"`, `"outcome":"failure"`, 1)
		forged = strings.Replace(forged, `"id":"0`, `"id":"f`, 1) // a new event id
		h := stele.LeafHash([]byte(forged))
		a.exec(`INSERT INTO events (rowid, ws, id, time_ns, received_ns, type, type_root, category, actor_id, outcome, body, leaf_hash)
			SELECT ?, ws, randomblob(16), time_ns, received_ns, type, type_root, category, actor_id, outcome, ?, ? FROM events WHERE rowid = ?`,
			a.rowid("default", k), []byte(forged), h[:], a.rowid("default", k+1))
		r := runCheckBinary(t, "--data", dir, "--signing-key", filepath.Join(t.TempDir(), "none"), "--log-key", logKey(t, fx.dir, "default"))
		r.wantFirst(t, "default", k, "C2 root")
		r.wantAlso(t, "default", def, "C4 sequence") // the renumbered last event has no tree position
		runCheckBinary(t, "--data", dir).wantFirst(t, "default", k, "row MAC")
	})

	t.Run("TAM-05b_forged_row_at_next_seq", func(t *testing.T) {
		dir := fx.copyTo(t)
		forgeNext(t, dir, "ops", fx.size["ops"])
		r := runCheckBinary(t, "--data", dir)
		r.wantFirst(t, "ops", ops, "row MAC")
		// The start-up self-check refuses to sign over it.
		fx.wantAppendsRefused(t, dir, "ops")
		s, err := sqlite.Open(context.Background(), filepath.Join(dir, "stele.db"), sqlite.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		cp, err := s.LatestCheckpoint(context.Background(), "ops")
		if err != nil || cp.Size != ops {
			t.Errorf("latest checkpoint of ops after restart: size %d (%v), want %d: the forged row must never be signed", cp.Size, err, ops)
		}
	})

	t.Run("TAM-06_swap_two_events", func(t *testing.T) {
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		x, y := a.rowid("default", 4), a.rowid("default", 10)
		a.exec("UPDATE events SET rowid = ? WHERE rowid = ?", x+1<<39, x)
		a.exec("UPDATE events SET rowid = ? WHERE rowid = ?", x, y)
		a.exec("UPDATE events SET rowid = ? WHERE rowid = ?", y, x+1<<39)
		runCheckBinary(t, "--data", dir).wantFirst(t, "default", 4, "row MAC")
		runCheckBinary(t, "--data", dir, "--signing-key", filepath.Join(t.TempDir(), "none"), "--log-key", logKey(t, fx.dir, "default")).
			wantFirst(t, "default", 4, "C2 root")
	})

	t.Run("TAM-07_empty_the_log", func(t *testing.T) {
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		a.exec("DELETE FROM events WHERE rowid >= ? AND rowid < ?", a.rowid("ops", 0), a.rowid("ops", 1<<40-1))
		a.exec("DELETE FROM tree WHERE rowid >= ? AND rowid < ?", a.rowid("ops", 0), a.rowid("ops", 1<<40-1))
		runCheckBinary(t, "--data", dir).wantFirst(t, "ops", 0, "C4 sequence")
		fx.wantAppendsRefused(t, dir, "ops")
	})

	t.Run("TAM-08_log_signed_by_another_key", func(t *testing.T) {
		// Another instance of the same name, with its own key, replaces
		// the database (T2).
		other := t.TempDir()
		ots := startServer(t, other)
		ots.stop(t)
		dir := fx.copyTo(t)
		replaceDB(t, dir, filepath.Join(other, "stele.db"))
		r := runCheckBinary(t, "--data", dir)
		if r.code != exitCheckFailed || !strings.Contains(r.out, "FAILED: first finding: workspace _system seq ") ||
			!strings.Contains(r.out, ": C3 signature: the checkpoint stored at size") || !strings.Contains(r.out, "does not verify with the log key") {
			t.Errorf("database signed by another key: exit %d:\n%s", r.code, r.out)
		}
		// Every log fails the start-up self-check, the system log included, so
		// the server cannot even record its start: it refuses to start.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var stderr syncBuffer
		err := serve(ctx, serveConfig{DataDir: dir, Listen: "127.0.0.1:0", Name: "stele.test", SigningKey: filepath.Join(dir, "signing.key")},
			io.Discard, &stderr, func(string) { cancel() })
		if err == nil || !strings.Contains(stderr.String(), "INTEGRITY ALARM") || !strings.Contains(stderr.String(), "workspace=default") {
			t.Errorf("serve over a database signed by another key: err %v, want a refusal with an integrity alarm for default:\n%s", err, stderr.String())
		}
		// Replacing the key file with it is caught by the pinned key.
		dir2 := fx.copyTo(t)
		replaceDB(t, dir2, filepath.Join(other, "stele.db"))
		copyFile(t, filepath.Join(other, "signing.key"), filepath.Join(dir2, "signing.key"))
		r = runCheckBinary(t, "--data", dir2, "--log-key", logKey(t, fx.dir, "default"))
		if r.code != exitCheckFailed || !strings.Contains(r.out, "C3 signature: the signing key") {
			t.Errorf("replaced key file with a pinned log key: exit %d:\n%s", r.code, r.out)
		}
	})

	t.Run("TAM-10_restore_older_copy", func(t *testing.T) {
		dir := fx.copyTo(t)
		replaceDB(t, dir, fx.older)
		runCheckBinary(t, "--data", dir).wantOK(t) // self-consistent without saved state
		runCheckBinary(t, "--data", dir, "--trusted", saveCheckpoint(t, fx.saved["ops"])).
			wantFirst(t, "ops", checkpointSize(t, fx.early["ops"]), "C5 consistency")
	})

	t.Run("TAM-11_fork_re_signed_with_the_real_key", func(t *testing.T) {
		// Roll back to the older copy and let the real server (holding the
		// key) append a different history past the saved checkpoint.
		dir := fx.copyTo(t)
		replaceDB(t, dir, fx.older)
		ts := startServer(t, dir)
		for range 3 {
			var evs []string
			for i := range 10 {
				evs = append(evs, fmt.Sprintf(`{"type":"node.renamed","actor":{"type":"system","id":"system"},"context":{"i":%d}}`, i))
			}
			if status, b, _ := call(t, "POST", ts.URL+"/v1/events?wait=checkpoint", ts.Key, "application/json", []byte(`{"events":[`+strings.Join(evs, ",")+`]}`)); status != 201 {
				t.Fatalf("append: %d %s", status, b)
			}
		}
		ts.stop(t)
		runCheckBinary(t, "--data", dir, "--workspace", "default").wantOK(t)
		saved := fx.saved["default"]
		runCheckBinary(t, "--data", dir, "--workspace", "default", "--trusted", saveCheckpoint(t, saved)).
			wantFirst(t, "default", checkpointSize(t, saved)-1, "C5 consistency")
	})

	t.Run("TAM-12_edit_stored_checkpoint", func(t *testing.T) {
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		var wsn int64
		a.db.QueryRow("SELECT n FROM workspaces WHERE id = 'default'").Scan(&wsn)
		a.exec("UPDATE checkpoints SET root = zeroblob(32) WHERE ws = ? AND size = ?", wsn, def)
		runCheckBinary(t, "--data", dir).wantFirst(t, "default", def-1, "C3 signature")
		fx.wantAppendsRefused(t, dir, "default")
		// Editing the signed text itself breaks the signature.
		dir2 := fx.copyTo(t)
		a2 := attack(t, dir2)
		a2.dropGuards()
		early := checkpointSize(t, fx.early["default"])
		a2.exec("UPDATE checkpoints SET note = CAST(replace(CAST(note AS TEXT), ?, ?) AS BLOB) WHERE ws = ? AND size = ?",
			fmt.Sprintf("\n%d\n", early), fmt.Sprintf("\n%d\n", early+1), wsn, early)
		r := runCheckBinary(t, "--data", dir2)
		r.wantFirst(t, "default", early-1, "C3 signature")
		if !strings.Contains(r.out, "does not verify") {
			t.Errorf("edited checkpoint text not reported as a bad signature:\n%s", r.out)
		}
	})

	t.Run("TAM-13_delete_newest_checkpoints", func(t *testing.T) {
		// Without saved state the events stay verified by the tree but show
		// as unsigned; the restarted server signs them again at the same
		// size and root, never a smaller tree (I3).
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		early := checkpointSize(t, fx.early["default"])
		var wsn int64
		a.db.QueryRow("SELECT n FROM workspaces WHERE id = 'default'").Scan(&wsn)
		a.exec("DELETE FROM checkpoints WHERE ws = ? AND size > ?", wsn, early)
		a.db.Close()
		// The attacker puts the guards back to cover the tracks.
		r := runCheckBinary(t, "--data", dir, "--workspace", "default", "--restore-guards")
		r.wantOK(t)
		if !strings.Contains(r.out, fmt.Sprintf("%d unsigned", def-early)) {
			t.Errorf("the report does not count %d unsigned events:\n%s", def-early, r.out)
		}
		ts := startServer(t, dir)
		ts.stop(t)
		runCheckBinary(t, "--data", dir, "--trusted", saveCheckpoint(t, fx.saved["default"])).wantOK(t)
	})

	t.Run("TAM-14_transplant_event_between_workspaces", func(t *testing.T) {
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		stolen := a.body("default", 8)
		h := stele.LeafHash(stolen)
		a.exec("UPDATE events SET body = ?, leaf_hash = ? WHERE rowid = ?", stolen, h[:], a.rowid("ops", 4))
		r := runCheckBinary(t, "--data", dir, "--signing-key", filepath.Join(t.TempDir(), "none"), "--log-key", logKey(t, fx.dir, "default"))
		r.wantFirst(t, "ops", 4, "C1 leaf")
		if !strings.Contains(r.out, `logged in workspace "default"`) {
			t.Errorf("the transplant is not named:\n%s", r.out)
		}
		fx.wantFullCheckAlarm(t, dir, "ops", 4)
	})

	t.Run("TAM-15_another_workspace_checkpoint", func(t *testing.T) {
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.dropGuards()
		var defN, opsN int64
		a.db.QueryRow("SELECT n FROM workspaces WHERE id = 'default'").Scan(&defN)
		a.db.QueryRow("SELECT n FROM workspaces WHERE id = 'ops'").Scan(&opsN)
		a.exec("DELETE FROM checkpoints WHERE ws = ? AND size = ?", opsN, ops)
		a.exec("INSERT INTO checkpoints (ws, size, root, time_s, note) SELECT ?, ?, root, time_s, note FROM checkpoints WHERE ws = ? AND size = ?",
			opsN, ops, defN, def)
		r := runCheckBinary(t, "--data", dir)
		r.wantFirst(t, "ops", ops-1, "C3 signature")
		if !strings.Contains(r.out, `origin "stele.test/default", not this log's "stele.test/ops"`) {
			t.Errorf("the foreign origin is not named:\n%s", r.out)
		}
	})

	t.Run("TAM-17_damaged_index_page", func(t *testing.T) {
		// Non-malicious corruption where the signed tree cannot see it: a
		// damaged page of an index (events by IP). SQLite's own check does.
		dir := fx.copyTo(t)
		a := attack(t, dir)
		var root, pageSize int64
		if err := a.db.QueryRow("SELECT rootpage FROM sqlite_master WHERE name = 'events_ip'").Scan(&root); err != nil {
			t.Fatal(err)
		}
		if err := a.db.QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
			t.Fatal(err)
		}
		a.db.Close()
		f, err := os.OpenFile(filepath.Join(dir, "stele.db"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 120), root*pageSize-250); err != nil {
			t.Fatal(err)
		}
		f.Close()
		r := runCheckBinary(t, "--data", dir)
		if r.code != exitCheckFailed || !strings.Contains(r.out, "FAILED physical (TAM-17)") ||
			!strings.Contains(r.out, "FAILED: first finding: workspace (database) -: physical:") {
			t.Fatalf("damaged index page: exit %d:\n%s", r.code, r.out)
		}
		runCheckBinary(t, "--data", dir, "--physical=false").wantOK(t)
	})

	t.Run("TAM-22_drop_guards", func(t *testing.T) {
		dir := fx.copyTo(t)
		a := attack(t, dir)
		a.exec("DROP TRIGGER events_append_only_delete")
		a.exec("DROP TRIGGER checkpoints_append_only_update")
		a.db.Close()
		r := runCheckBinary(t, "--data", dir)
		if r.code != exitCheckFailed || !strings.Contains(r.out, "FAILED guards (TAM-22)") ||
			!strings.Contains(r.out, "events_append_only_delete missing") || !strings.Contains(r.out, "checkpoints_append_only_update missing") {
			t.Fatalf("dropped guards: exit %d:\n%s", r.code, r.out)
		}
		// The server starts, but says so loudly and is not ready.
		ts := startServer(t, dir)
		if !strings.Contains(ts.stderr.String(), "database guards") {
			t.Errorf("no alarm about the guards at start-up:\n%s", ts.stderr.String())
		}
		status, b, _ := call(t, "GET", ts.URL+"/readyz", "", "", nil)
		if status != 503 || !strings.Contains(string(b), "events_append_only_delete") {
			t.Errorf("/readyz with missing guards: %d %s, want 503 naming them", status, b)
		}
		ts.stop(t)
		// Restoring them makes the check pass again.
		r = runCheckBinary(t, "--data", dir, "--restore-guards")
		r.wantOK(t)
		if !strings.Contains(r.out, "guards: restored checkpoints_append_only_update, events_append_only_delete") &&
			!strings.Contains(r.out, "guards: restored events_append_only_delete, checkpoints_append_only_update") {
			t.Errorf("restored guards not listed:\n%s", r.out)
		}
	})
}

// forgeNext appends a row at position seq of ws as an attacker would: the
// right tree hashes and head, but a MAC the attacker can only guess.
func forgeNext(t *testing.T, dir, ws string, seq int64) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "stele.db"), sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	hashes, err := s.TreeHashes(ctx, ws, tree.FrontierIndexes(seq))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	f, err := tree.NewFrontier(seq, hashes)
	if err != nil {
		t.Fatal(err)
	}
	a := attack(t, dir)
	body := strings.Replace(string(a.body(ws, seq-1)), `"outcome":"success"`, `"outcome":"failure"`, 1)
	leaf := stele.LeafHash([]byte(body))
	stored, err := f.Append(leaf)
	if err != nil {
		t.Fatal(err)
	}
	var blob []byte
	for _, h := range stored {
		blob = append(blob, h[:]...)
	}
	a.exec(`INSERT INTO events (rowid, ws, id, time_ns, received_ns, type, type_root, category, actor_id, outcome, body, leaf_hash)
		SELECT ?, ws, randomblob(16), time_ns, received_ns, type, type_root, category, actor_id, outcome, ?, ? FROM events WHERE rowid = ?`,
		a.rowid(ws, seq), []byte(body), leaf[:], a.rowid(ws, seq-1))
	a.exec("INSERT INTO tree (rowid, hashes, mac) VALUES (?, ?, randomblob(32))", a.rowid(ws, seq), blob)
	root := f.Root()
	a.exec("UPDATE logs SET size = ?, root = ? WHERE ws = ?", seq+1, root[:], a.rowid(ws, 0)>>40)
}

// logKey returns the verifier key of ws's log from the data dir's key file.
func logKey(t *testing.T, dir, ws string) string {
	t.Helper()
	cfg := checkConfig{SigningKey: filepath.Join(dir, "signing.key")}
	opts, _, err := checkKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := opts.VerifierKey(ws)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// checkpointSize parses a signed checkpoint's tree size.
func checkpointSize(t *testing.T, note []byte) int64 {
	t.Helper()
	lines := strings.SplitN(string(note), "\n", 3)
	var n int64
	if _, err := fmt.Sscan(lines[1], &n); err != nil {
		t.Fatalf("checkpoint %q: %v", note, err)
	}
	return n
}

// TestCheckBesideLiveServer runs the check while the server appends to two
// workspaces: it opens the database read-only, passes, and changes nothing.
func TestCheckBesideLiveServer(t *testing.T) {
	ts := startServer(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		n := 0
		for ctx.Err() == nil {
			var evs []string
			for i := range 50 {
				evs = append(evs, fmt.Sprintf(`{"type":"pcap.started","actor":{"type":"service","id":"probe"},"context":{"i":%d}}`, i))
			}
			req := []byte(`{"events":[` + strings.Join(evs, ",") + `]}`)
			if status, _, _ := call(t, "POST", ts.URL+"/v1/events", ts.Key, "application/json", req); status == 201 {
				n += 50
			}
		}
		done <- n
	}()
	for range 2 {
		r := runCheckBinary(t, "--data", ts.DataDir, "--progress", "10ms")
		r.wantOK(t)
	}
	cancel()
	if n := <-done; n == 0 {
		t.Fatal("no event was appended while the check ran")
	}
	ts.stop(t)
	runCheckBinary(t, "--data", ts.DataDir).wantOK(t)
}

// TestCheckUsage covers what the check refuses before reading anything.
func TestCheckUsage(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	ts.stop(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no database", []string{"--data", t.TempDir(), "--log-key", logKey(t, dir, "default")}, "no database"},
		{"no key", []string{"--data", dir, "--signing-key", filepath.Join(dir, "missing.key")}, "give --log-key"},
		{"bad log key", []string{"--data", dir, "--log-key", "stele.test+1234+abc"}, "--log-key"},
		{"trusted checkpoint that does not verify", []string{"--data", dir, "--trusted", saveCheckpoint(t, []byte("stele.test/default\n1\nAAAA\n\n— x y\n"))}, "trusted checkpoint"},
		{"argument", []string{"--data", dir, "extra"}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), append([]string{"check"}, tc.args...), &out, &out)
			var exit exitError
			if err == nil || errors.As(err, &exit) || !strings.Contains(err.Error()+out.String(), tc.want) {
				t.Errorf("stele check %v: err %v, output %q; want an error (exit 1) mentioning %q", tc.args, err, out.String(), tc.want)
			}
		})
	}
}

// TestCheckOnPostgres runs the same check over a log on PostgreSQL: a clean
// log passes; an edited event (the guards disabled first) is found at its
// seq, and the disabled guard is named.
func TestCheckOnPostgres(t *testing.T) {
	if b := os.Getenv("STELE_TEST_BACKENDS"); b != "" && !strings.Contains(b, "postgres") {
		t.Skipf("STELE_TEST_BACKENDS=%s", b)
	}
	pgtest.Require(t)
	dir := t.TempDir()
	db := pgtest.NewDatabase(t)
	ts := startServer(t, dir, func(c *serveConfig) { c.DB = db })
	for range 2 {
		var evs []string
		for i := range 10 {
			evs = append(evs, fmt.Sprintf(`{"type":"incident.opened","actor":{"type":"user","id":"alice@acme.com"},"outcome":"success","context":{"i":%d}}`, i))
		}
		if status, b, _ := call(t, "POST", ts.URL+"/v1/events?wait=checkpoint", ts.Key, "application/json", []byte(`{"events":[`+strings.Join(evs, ",")+`]}`)); status != 201 {
			t.Fatalf("append: %d %s", status, b)
		}
	}
	ts.stop(t)
	key := filepath.Join(dir, "signing.key")
	r := runCheckBinary(t, "--db", db, "--signing-key", key)
	r.wantOK(t)
	// A password in the URL (trust authentication ignores it) is never printed.
	if withPassword := strings.Replace(db, "://postgres@", "://postgres:s3cret-pw@", 1); withPassword != db {
		r := runCheckBinary(t, "--db", withPassword, "--signing-key", key)
		r.wantOK(t)
		if strings.Contains(r.out, "s3cret-pw") {
			t.Errorf("the database password is printed:\n%s", r.out)
		}
	}
	pgtest.ExecOn(t, db,
		"ALTER TABLE events DISABLE TRIGGER events_append_only",
		`UPDATE events SET body = convert_to(replace(convert_from(body, 'UTF8'), '"outcome":"success"', '"outcome":"failure"'), 'UTF8')
			WHERE ws = (SELECT n FROM workspaces WHERE id = 'default') AND seq = 5`)
	r = runCheckBinary(t, "--db", db, "--signing-key", key)
	r.wantFirst(t, "default", 5, "C1 leaf")
	if !strings.Contains(r.out, "FAILED guards (TAM-22)") || !strings.Contains(r.out, "events_append_only") {
		t.Errorf("the disabled guard is not reported:\n%s", r.out)
	}
	// Restoring the guard leaves the edited event to be found.
	r = runCheckBinary(t, "--db", db, "--signing-key", key, "--restore-guards")
	r.wantFirst(t, "default", 5, "C1 leaf")
	if !strings.Contains(r.out, "guards: restored") || strings.Contains(r.out, "FAILED guards") {
		t.Errorf("--restore-guards on PostgreSQL:\n%s", r.out)
	}
}
