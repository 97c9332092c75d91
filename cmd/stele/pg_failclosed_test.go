package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/store/postgres/pgtest"
)

// tcpProxy stands between a server and PostgreSQL so that a test can take
// the database away and give it back: "up" forwards, "down" resets every
// connection and refuses new ones, "blackhole" freezes established
// connections and accepts new ones without ever answering (a partition or
// a hung server).
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  string
	gate  chan struct{} // closed while forwarding is allowed
	open  bool          // gate is closed
	conns map[net.Conn]bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, mode: "up", gate: make(chan struct{}), open: true, conns: map[net.Conn]bool{}}
	close(p.gate)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.set("down")
	})
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *tcpProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "down" {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *tcpProxy) handle(c net.Conn) {
	p.mu.Lock()
	mode := p.mode
	p.mu.Unlock()
	switch mode {
	case "down":
		c.Close()
		return
	case "blackhole":
		if !p.track(c) {
			c.Close()
		}
		return // held open, never answered
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, s) {
		c.Close()
		s.Close()
		return
	}
	go p.pipe(c, s)
	go p.pipe(s, c)
}

// pipe copies from src to dst, waiting at the gate before each write.
func (p *tcpProxy) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// set switches the proxy's mode. Going down or back up resets every
// connection it holds, so that PostgreSQL rolls back what they had open.
func (p *tcpProxy) set(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	if mode == "blackhole" {
		if p.open {
			p.gate, p.open = make(chan struct{}), false
		}
		return
	}
	if !p.open {
		close(p.gate) // frozen copies resume, into closed connections
		p.open = true
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// proxiedDatabase returns a new database's URL through a new proxy.
func proxiedDatabase(t *testing.T) (string, *tcpProxy) {
	t.Helper()
	db := pgtest.NewDatabase(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	p := newTCPProxy(t, u.Host)
	u.Host = p.addr()
	return u.String(), p
}

// patientClient bounds every request generously: an answer that does not
// come within it is a hang, and fails the test.
var patientClient = &http.Client{Timeout: 60 * time.Second}

func post(t *testing.T, base, key, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := patientClient.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/events: %v (the server hung instead of failing closed)", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func readyz(t *testing.T, base string) int {
	t.Helper()
	resp, err := patientClient.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v (hung)", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady polls /readyz until it answers 200; the server must recover
// without a restart.
func waitReady(t *testing.T, base string) {
	t.Helper()
	for range 600 {
		if readyz(t, base) == 200 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the server did not become ready again after PostgreSQL came back")
}

func eventWithID(id, actor string) string {
	return fmt.Sprintf(`{"id":%q,"type":"user.login","actor":{"type":"user","id":%q}}`, id, actor)
}

// TestPostgresFailsClosed is AVL-05 and AVL-06 on PostgreSQL: with the
// database down (connections reset and refused) or blackholed (no answer at
// all), appends and reads answer 503 instead of hanging, /readyz is false,
// nothing sent meanwhile is acknowledged or stored; and when the database
// comes back the same process serves again, without a restart.
func TestPostgresFailsClosed(t *testing.T) {
	dbURL, proxy := proxiedDatabase(t)
	ts := startServer(t, "", func(c *serveConfig) { c.DB = dbURL })
	if status, b := post(t, ts.URL, ts.Key, eventWithID(uuid.NewString(), "before")); status != 201 {
		t.Fatalf("append with the database up: %d %s", status, b)
	}
	var lost []string // ids sent while the database was away, never retried
	for _, mode := range []string{"down", "blackhole"} {
		proxy.set(mode)
		for i := range 3 {
			id := uuid.NewString()
			status, b := post(t, ts.URL, ts.Key, eventWithID(id, "during-"+mode))
			var e struct{ Error struct{ Code string } }
			json.Unmarshal(b, &e)
			if status != 503 || e.Error.Code != "unavailable" {
				t.Errorf("%s, append %d: %d %s; want 503 unavailable", mode, i, status, b)
			}
			lost = append(lost, id)
		}
		if s := readyz(t, ts.URL); s != 503 {
			t.Errorf("%s: /readyz %d, want 503", mode, s)
		}
		status, _, _ := call(t, "GET", ts.URL+"/v1/events?limit=5", ts.Key, "", nil)
		if status != 503 {
			t.Errorf("%s: GET /v1/events %d, want 503", mode, status)
		}

		proxy.set("up")
		waitReady(t, ts.URL)
		retried := uuid.NewString()
		var status2 int
		var b []byte
		for range 50 { // the first batch after the outage may still meet a dead pooled connection
			if status2, b = post(t, ts.URL, ts.Key, eventWithID(retried, "after-"+mode)); status2 == 201 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if status2 != 201 {
			t.Fatalf("after %s: append %d %s; want 201 once the database is back", mode, status2, b)
		}
	}
	status, b, _ := call(t, "POST", ts.URL+"/v1/events?wait=checkpoint", ts.Key, "application/json", []byte(eventWithID(uuid.NewString(), "last")))
	if status != 201 {
		t.Fatalf("wait=checkpoint after recovery: %d %s", status, b)
	}
	verifyLog(t, ts.URL, ts.Key, "default")
	stored := map[string]bool{}
	for _, e := range exportAll(t, ts.URL, ts.Key) {
		stored[e.ID] = true
	}
	for _, id := range lost {
		if stored[id] {
			t.Errorf("event %s was refused with 503 but is in the log", id)
		}
	}
}

// TestPostgresSynchronousCommitWarning is DUR-09: serve on a database whose
// synchronous_commit lets a crash lose acknowledged events warns at start.
func TestPostgresSynchronousCommitWarning(t *testing.T) {
	for _, setting := range []string{"off", "local", "on"} {
		t.Run(setting, func(t *testing.T) {
			db := pgtest.NewDatabase(t)
			u, _ := url.Parse(db)
			pgtest.Exec(t, "ALTER DATABASE "+strings.TrimPrefix(u.Path, "/")+" SET synchronous_commit = "+setting)
			ts := startServer(t, "", func(c *serveConfig) { c.DB = db })
			warned := strings.Contains(ts.stderr.String(), "DURABILITY WARNING: PostgreSQL runs with synchronous_commit="+setting)
			if warned != (setting != "on") {
				t.Errorf("synchronous_commit=%s: warned %v; stderr:\n%s", setting, warned, ts.stderr.String())
			}
			_, metrics, _ := call(t, "GET", ts.URL+"/metrics", "", "", nil)
			want := "stele_database_durability_warning 0"
			if setting != "on" {
				want = "stele_database_durability_warning 1"
			}
			if !strings.Contains(string(metrics), want) {
				t.Errorf("synchronous_commit=%s: /metrics lacks %q", setting, want)
			}
		})
	}
}

// TestPostgresConnectionResets is DUR-10: while writers append, every
// connection to PostgreSQL is reset again and again, mid-transaction or
// mid-commit. Writers retry what was not acknowledged with the same ids.
// Afterwards every event is in the log exactly once, at the position its
// final acknowledgement gave, the positions are gap-free and the log
// verifies: no partial batch, no acknowledgement of an aborted one.
func TestPostgresConnectionResets(t *testing.T) {
	dbURL, proxy := proxiedDatabase(t)
	ts := startServer(t, "", func(c *serveConfig) { c.DB = dbURL })
	hc := &http.Client{Timeout: 30 * time.Second}
	var mu sync.Mutex
	var history []*op
	retries := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				o := &op{writer: w, ws: "default"}
				for i := range 1 + (w+n)%10 {
					o.events = append(o.events, map[string]any{"id": uuid.NewString(), "type": "node.config_changed",
						"actor": map[string]any{"type": "service", "id": fmt.Sprintf("writer-%d", w)}, "node": fmt.Sprintf("n-%d-%d-%d", w, n, i)})
				}
				for attempt := 0; attempt < 300; attempt++ {
					o.outcome, o.seqs, _ = sendOpWait(hc, ts.URL, ts.Key, o.events, false)
					if o.outcome != "indeterminate" {
						break
					}
					mu.Lock()
					retries++
					mu.Unlock()
					time.Sleep(50 * time.Millisecond)
				}
				mu.Lock()
				history = append(history, o)
				mu.Unlock()
			}
		}()
	}
	for range 12 {
		time.Sleep(300 * time.Millisecond)
		proxy.set("down")
		time.Sleep(30 * time.Millisecond)
		proxy.set("up")
	}
	close(stop)
	wg.Wait()
	t.Logf("%d ops, %d retries after 503s or resets", len(history), retries)
	if retries == 0 {
		t.Fatal("no request failed: the resets did not reach a transaction")
	}
	status, b, _ := call(t, "POST", ts.URL+"/v1/events?wait=checkpoint", ts.Key, "application/json",
		[]byte(`{"type":"test.finished","actor":{"type":"system","id":"test"}}`))
	if status != 201 {
		t.Fatalf("final append: %d %s", status, b)
	}
	byID := map[string]exportedEvent{}
	for i, e := range exportAll(t, ts.URL, ts.Key) {
		if e.Seq != int64(i) {
			t.Fatalf("gap: position %d holds seq %d", i, e.Seq)
		}
		if _, dup := byID[e.ID]; dup {
			t.Fatalf("id %s logged twice", e.ID)
		}
		byID[e.ID] = e
	}
	for _, o := range history {
		if o.outcome != "ok" {
			t.Errorf("writer %d: an op never got an answer (%s)", o.writer, o.outcome)
			continue
		}
		for i, ev := range o.events {
			got, ok := byID[ev["id"].(string)]
			if !ok || got.Seq != o.seqs[i] {
				t.Errorf("event %s acknowledged at seq %d: present %v at %d", ev["id"], o.seqs[i], ok, got.Seq)
			}
		}
	}
	verifyLog(t, ts.URL, ts.Key, "default")
}

// TestPostgresReadRefusedWhenUnrecorded is AVL-09 on PostgreSQL: another
// session holds the lock on the workspace's log head, as a stuck process or
// maintenance job would, so the access event of a read cannot be recorded;
// the read is refused with 503 and serves no event. Once the lock is gone,
// reads work again.
func TestPostgresReadRefusedWhenUnrecorded(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ts := startServer(t, "", func(c *serveConfig) { c.DB = db })
	ingest(t, ts, ts.Key, eventgen.New(8).Stream(20, time.Now().UTC(), time.Hour, true))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM logs l JOIN workspaces w ON w.n = l.ws WHERE w.id = 'default' FOR UPDATE OF l"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/events?limit=5", "/v1/export?format=ndjson"} {
		status, body, _ := call(t, "GET", ts.URL+p, ts.Key, "", nil)
		if status != 503 || strings.Contains(string(body), `"seq"`) {
			t.Errorf("GET %s with the log head locked: %d %.200s, want 503 and no events", p, status, body)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if status, body, _ := call(t, "GET", ts.URL+"/v1/events?limit=5", ts.Key, "", nil); status != 200 {
		t.Errorf("after the lock: %d %s", status, body)
	}
}

// TestPostgresCheck runs `stele check --db` beside a live server on
// PostgreSQL: a clean log passes; an event whose query column was edited
// behind the guard (switched off and on again by the owner), and a guard
// left disabled, are both reported, and --restore-guards re-enables it.
func TestPostgresCheck(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ts := startServer(t, "", func(c *serveConfig) { c.DB = db })
	ingest(t, ts, ts.Key, eventgen.New(9).Stream(30, time.Now().UTC().Add(-time.Hour), time.Minute, true))
	args := []string{"--db", db, "--data", ts.DataDir, "--canonical"}
	if r := runCheckBinary(t, args...); r.code != 0 {
		t.Fatalf("clean log: stele check exited %d:\n%s", r.code, r.out)
	}
	pgtest.ExecOn(t, db,
		"ALTER TABLE events DISABLE TRIGGER events_append_only",
		"UPDATE events SET actor_id = 'nobody'::bytea WHERE seq = 5 AND ws = (SELECT n FROM workspaces WHERE id = 'default')",
		"ALTER TABLE events ENABLE TRIGGER events_append_only",
		"ALTER TABLE tree DISABLE TRIGGER tree_append_only",
	)
	r := runCheckBinary(t, args...)
	if r.code != exitCheckFailed || !strings.Contains(r.out, "tree_append_only on tree disabled") || !strings.Contains(r.out, "query column actor_id") {
		t.Fatalf("tampered log: stele check exited %d; want the edited column and the disabled guard reported:\n%s", r.code, r.out)
	}
	if r := runCheckBinary(t, append(args, "--restore-guards")...); !strings.Contains(r.out, "restored trigger tree_append_only on tree disabled") ||
		!strings.Contains(r.out, "every append-only guard is in place") || strings.Contains(r.out, "events_append_only") {
		t.Fatalf("--restore-guards (exit %d):\n%s", r.code, r.out)
	}
}
