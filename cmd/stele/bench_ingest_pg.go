package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/api"
	"github.com/stele-log/stele/sequencer"
	"github.com/stele-log/stele/store/postgres"
	"github.com/stele-log/stele/tree"
)

// `stele bench ingest --db postgres://…` measures batch ingest on PostgreSQL. On the
// server --db names it creates four fresh databases, one per side, and
// drops them at the end:
//
//   - copy:   the same rows (events and tree hashes, the store's schema with
//     every index and trigger) loaded with COPY, one connection per
//     workspace, TxRows rows per transaction: what the database itself can
//     take;
//   - insert: the same, with plain multi-row INSERT statements;
//   - one:    one `stele serve --db` process, HTTP clients posting batches;
//   - two:    two `stele serve` processes on one database and one signing
//     key, the clients split between them, every workspace fed through both.
//
// Rounds rotate the order of the sides, so that the noise of a shared
// machine lands on all of them, and every figure is a ratio to the
// baselines of the same run.

type pgBenchSide struct {
	name  string
	title string
	run   func(ctx context.Context, d time.Duration) (int64, time.Duration, error)
	rates []float64
	total int64
	secs  float64
}

func (s *pgBenchSide) rate() float64 {
	if s.secs == 0 {
		return 0
	}
	return float64(s.total) / s.secs
}

func benchIngestPostgres(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench ingest --db", stderr)
	dbURL := fs.String("db", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL URL of a role that may create databases; the bench creates its own and drops them")
	duration := fs.Duration("duration", 5*time.Second, "length of one measured round")
	rounds := fs.Int("rounds", 3, "rounds per side (the order of the sides rotates)")
	warmup := fs.Duration("warmup", time.Second, "unmeasured warm-up per side")
	clients := fs.Int("clients", 8, "concurrent HTTP clients")
	batch := fs.Int("batch", 100, "events per request")
	workspaces := fs.Int("workspaces", 4, "workspaces the events are spread over")
	txRows := fs.Int("tx-rows", 1000, "rows per baseline transaction")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pprofAddr := fs.String("server-pprof", "", "start the one-process side's server with --pprof ADDR, to profile it")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *rounds < 1 || *duration <= 0 || *clients < 1 || *batch < 1 || *workspaces < 1 || *txRows < 1 {
		return errors.New("--rounds, --duration, --clients, --batch, --workspaces and --tx-rows must be positive")
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	pool, err := newEventPool(10000)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "stele-bench-pg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	admin, err := pgx.Connect(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("--db %s: %w", redactURL(*dbURL), err)
	}
	defer admin.Close(context.Background())
	suffix := make([]byte, 4)
	rand.Read(suffix)
	dbs := map[string]string{}
	for _, side := range []string{"copy", "insert", "one", "two"} {
		name := "stele_bench_" + hex.EncodeToString(suffix) + "_" + side
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
			return fmt.Errorf("couldn't create a database for the bench: %w", err)
		}
		defer admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		u, err := url.Parse(*dbURL)
		if err != nil {
			return err
		}
		u.Path = "/" + name
		dbs[side] = u.String()
	}

	wsNames := make([]string, *workspaces)
	for i := range wsNames {
		wsNames[i] = fmt.Sprintf("bench-%d", i)
	}
	copySide, err := newPGBaseline(ctx, dbs["copy"], wsNames, pool, *txRows, true)
	if err != nil {
		return err
	}
	defer copySide.close()
	insertSide, err := newPGBaseline(ctx, dbs["insert"], wsNames, pool, *txRows, false)
	if err != nil {
		return err
	}
	defer insertSide.close()

	key := filepath.Join(dir, "signing.key")
	one, err := startPGBenchServers(ctx, bin, dir, "one", dbs["one"], key, 1, *pprofAddr)
	if err != nil {
		return err
	}
	defer one.stop()
	two, err := startPGBenchServers(ctx, bin, dir, "two", dbs["two"], key, 2, "")
	if err != nil {
		return err
	}
	defer two.stop()
	oneLoad, err := newPGLoad(one, wsNames, pool, *clients, *batch)
	if err != nil {
		return err
	}
	twoLoad, err := newPGLoad(two, wsNames, pool, *clients, *batch)
	if err != nil {
		return err
	}

	sides := []*pgBenchSide{
		{name: "copy", title: fmt.Sprintf("COPY, %d connections, %d rows/tx", *workspaces, *txRows), run: copySide.round},
		{name: "insert", title: fmt.Sprintf("multi-row INSERT, %d connections, %d rows/tx", *workspaces, *txRows), run: insertSide.round},
		{name: "one", title: fmt.Sprintf("Stele, 1 process, %d clients × %d-event batches", *clients, *batch), run: oneLoad.round},
		{name: "two", title: fmt.Sprintf("Stele, 2 processes, %d clients × %d-event batches", *clients, *batch), run: twoLoad.round},
	}
	machine := machineSummary()
	fmt.Fprintf(stderr, "machine: %s\n", machine)
	if *warmup > 0 {
		for _, s := range sides {
			if _, _, err := s.run(ctx, *warmup); err != nil {
				return fmt.Errorf("%s warm-up: %w", s.name, err)
			}
		}
	}
	for r := range *rounds {
		for i := range sides {
			s := sides[(i+r)%len(sides)]
			n, el, err := s.run(ctx, *duration)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			s.total += n
			s.secs += el.Seconds()
			s.rates = append(s.rates, float64(n)/el.Seconds())
			fmt.Fprintf(stderr, "round %d %-6s %8.0f events/s\n", r+1, s.name, float64(n)/el.Seconds())
		}
	}

	byName := map[string]*pgBenchSide{}
	for _, s := range sides {
		byName[s.name] = s
	}
	ratio := func(a, b string) float64 {
		if byName[b].rate() == 0 {
			return 0
		}
		return byName[a].rate() / byName[b].rate()
	}
	if *asJSON {
		type sideJSON struct {
			Name       string    `json:"name"`
			Title      string    `json:"title"`
			EventsPerS float64   `json:"events_per_s"`
			RoundRates []float64 `json:"round_events_per_s"`
		}
		out := struct {
			Machine        string     `json:"machine"`
			Rounds         int        `json:"rounds"`
			Duration       string     `json:"round_duration"`
			Sides          []sideJSON `json:"sides"`
			OneVsCopy      float64    `json:"one_vs_copy"`
			OneVsInsert    float64    `json:"one_vs_insert"`
			TwoVsOne       float64    `json:"two_vs_one"`
			TwoVsCopy      float64    `json:"two_vs_copy"`
			InsertVsCopy   float64    `json:"insert_vs_copy"`
			WorkspaceCount int        `json:"workspaces"`
		}{Machine: machine, Rounds: *rounds, Duration: duration.String(), OneVsCopy: ratio("one", "copy"), OneVsInsert: ratio("one", "insert"),
			TwoVsOne: ratio("two", "one"), TwoVsCopy: ratio("two", "copy"), InsertVsCopy: ratio("insert", "copy"), WorkspaceCount: *workspaces}
		for _, s := range sides {
			out.Sides = append(out.Sides, sideJSON{s.name, s.title, s.rate(), s.rates})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(stdout, "stele bench ingest --db — %d rounds of %s per side, order rotating; %d workspaces\n", *rounds, *duration, *workspaces)
	fmt.Fprintf(stdout, "machine: %s\n\n", machine)
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\tevents/s\t÷ COPY\t÷ INSERT\tper round\t")
	for _, s := range sides {
		parts := make([]string, len(s.rates))
		for i, v := range s.rates {
			parts[i] = thousands(int64(v))
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f×\t%.2f×\t%s\t\n", s.title, thousands(int64(s.rate())), ratio(s.name, "copy"), ratio(s.name, "insert"), strings.Join(parts, " "))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\ntwo processes ÷ one process: %.2f×\n", ratio("two", "one"))
	return nil
}

// pgBaseline loads the store's rows straight into PostgreSQL.
type pgBaseline struct {
	store *postgres.Store
	conns []*pgx.Conn
	wsn   []int64
	next  []int64 // next seq per workspace
	tmpl  []pgRowTemplate
	rows  int
	copy  bool
}

// pgRowTemplate is one event's rows; a load changes only seq and id.
type pgRowTemplate struct {
	event []any
	tree  []any
}

func newPGBaseline(ctx context.Context, dbURL string, workspaces []string, pool *eventPool, rows int, useCopy bool) (*pgBaseline, error) {
	s, err := postgres.Open(ctx, dbURL, postgres.Options{}) // the store's exact schema
	if err != nil {
		return nil, err
	}
	b := &pgBaseline{store: s, rows: rows, copy: useCopy}
	for _, ws := range workspaces {
		if err := s.CreateWorkspace(ctx, stele.Workspace{ID: ws, Name: ws, CreatedAt: time.Now()}); err != nil {
			b.close()
			return nil, err
		}
		n, err := s.WorkspaceNumber(ctx, ws)
		if err != nil {
			b.close()
			return nil, err
		}
		c, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			b.close()
			return nil, err
		}
		b.conns, b.wsn, b.next = append(b.conns, c), append(b.wsn, n), append(b.next, 0)
	}
	// Templates: the pool's events sealed as the write path seals them.
	f, _ := tree.NewFrontier(0, nil)
	macKey := make([]byte, 32)
	now := time.Now().UTC()
	for i := range pool.bodies {
		body := pool.bodies[i]
		body.ID = uuid.Must(uuid.NewV7()).String()
		body.ReceivedAt = now
		body.Emitter = stele.Emitter{Workspace: workspaces[0], KeyID: "bench"}
		canon, err := stele.Canonical(&body)
		if err != nil {
			b.close()
			return nil, err
		}
		leaf := stele.LeafHash(canon)
		seq := f.Size()
		hashes, err := f.Append(leaf)
		if err != nil {
			b.close()
			return nil, err
		}
		ev, tr, err := postgres.CopyRows(0, []stele.Entry{{Seq: seq, Body: &body, Canonical: canon, TreeHashes: hashes,
			MAC: sequencer.MAC(macKey, workspaces[0], seq, leaf)}})
		if err != nil {
			b.close()
			return nil, err
		}
		b.tmpl = append(b.tmpl, pgRowTemplate{event: ev[0], tree: tr[0]})
	}
	return b, nil
}

func (b *pgBaseline) close() {
	for _, c := range b.conns {
		c.Close(context.Background())
	}
	b.store.Close()
}

// round loads rows into every workspace in parallel for d.
func (b *pgBaseline) round(ctx context.Context, d time.Duration) (int64, time.Duration, error) {
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, len(b.conns))
	start := time.Now()
	deadline := start.Add(d)
	for w := range b.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := b.load(ctx, w); err != nil {
					errs[w] = err
					return
				}
				total.Add(int64(b.rows))
			}
		}()
	}
	wg.Wait()
	return total.Load(), time.Since(start), errors.Join(errs...)
}

// load writes one transaction of rows into workspace w.
func (b *pgBaseline) load(ctx context.Context, w int) error {
	events := make([][]any, b.rows)
	trees := make([][]any, b.rows)
	for i := range b.rows {
		seq := b.next[w] + int64(i)
		t := &b.tmpl[int(seq)%len(b.tmpl)]
		ev := append([]any(nil), t.event...)
		ev[0], ev[1], ev[2] = b.wsn[w], seq, [16]byte(uuid.New())
		tr := append([]any(nil), t.tree...)
		tr[0], tr[1] = b.wsn[w], seq
		events[i], trees[i] = ev, tr
	}
	c := b.conns[w]
	err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if b.copy {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, postgres.EventColumns, pgx.CopyFromRows(events)); err != nil {
				return err
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"tree"}, postgres.TreeColumns, pgx.CopyFromRows(trees))
			return err
		}
		if err := insertRows(ctx, tx, "events", postgres.EventColumns, events); err != nil {
			return err
		}
		return insertRows(ctx, tx, "tree", postgres.TreeColumns, trees)
	})
	if err != nil {
		return err
	}
	b.next[w] += int64(b.rows)
	return nil
}

// insertRows writes rows with multi-row INSERT statements (at most 1000 rows
// or 30000 parameters each).
func insertRows(ctx context.Context, tx pgx.Tx, table string, columns []string, rows [][]any) error {
	per := min(1000, 30000/len(columns))
	for len(rows) > 0 {
		n := min(per, len(rows))
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ") VALUES ")
		args := make([]any, 0, n*len(columns))
		for i, r := range rows[:n] {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('(')
			for j := range r {
				if j > 0 {
					sb.WriteByte(',')
				}
				fmt.Fprintf(&sb, "$%d", len(args)+1)
				args = append(args, r[j])
			}
			sb.WriteByte(')')
		}
		if _, err := tx.Exec(ctx, sb.String(), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// pgBenchServers is one or more `stele serve --db` processes on one database.
type pgBenchServers []*benchServer

func (ss pgBenchServers) stop() {
	for _, s := range ss {
		s.stop()
	}
}

// startPGBenchServers starts n servers on dbURL, one after the other (the
// first start migrates and bootstraps), sharing the signing key file.
func startPGBenchServers(ctx context.Context, bin, dir, name, dbURL, keyFile string, n int, pprofAddr string) (pgBenchServers, error) {
	_, _, key := api.NewKeySecret("default")
	var out pgBenchServers
	for i := range n {
		data := filepath.Join(dir, fmt.Sprintf("%s-%d", name, i))
		flags := []string{"--db", dbURL, "--signing-key", keyFile}
		if pprofAddr != "" && i == 0 {
			flags = append(flags, "--pprof", pprofAddr)
		}
		s, err := startServerProcess(ctx, bin, data, key, flags...)
		if err != nil {
			out.stop()
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// startServerProcess starts this binary's `stele serve` on dataDir with
// extra flags and waits until it is ready. The environment's STELE_*
// variables are not passed on: the bench measures the defaults.
func startServerProcess(ctx context.Context, bin, dataDir, adminKey string, extra ...string) (*benchServer, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	logs, err := os.Create(dataDir + ".log")
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--data", dataDir, "--listen", "127.0.0.1:0", "--rate-ingest", "0", "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STELE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "STELE_ADMIN_KEY="+adminKey)
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &benchServer{cmd: cmd, key: adminKey, logs: logs}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "Stele is serving on "); ok {
				urls <- strings.TrimSpace(u)
			}
		}
		close(urls)
	}()
	select {
	case u, ok := <-urls:
		if !ok {
			s.stop()
			return nil, fmt.Errorf("the server exited before serving:\n%s", s.logTail())
		}
		s.url = u
	case <-time.After(2 * time.Minute):
		s.stop()
		return nil, fmt.Errorf("the server did not start within 2 minutes:\n%s", s.logTail())
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	s.hc = &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}}
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := s.hc.Get(s.url + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("the server did not become ready:\n%s", s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pgLoad drives servers with clients, client i posting to server i mod
// len(servers) into workspace i mod len(keys), so that with two servers
// every workspace is fed through both.
type pgLoad struct {
	servers pgBenchServers
	keys    []string
	pool    *eventPool
	clients int
	batch   int
	next    atomic.Int64
}

func newPGLoad(servers pgBenchServers, workspaces []string, pool *eventPool, clients, batch int) (*pgLoad, error) {
	l := &pgLoad{servers: servers, pool: pool, clients: clients, batch: batch}
	s := servers[0]
	for _, ws := range workspaces {
		req, _ := http.NewRequest("POST", s.url+"/v1/workspaces", strings.NewReader(`{"id":"`+ws+`"}`))
		req.Header.Set("Authorization", "Bearer "+s.key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.hc.Do(req)
		if err != nil {
			return nil, err
		}
		var created struct{ Key struct{ Key string } }
		err = json.NewDecoder(resp.Body).Decode(&created)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || err != nil {
			return nil, fmt.Errorf("couldn't create workspace %s: status %d", ws, resp.StatusCode)
		}
		l.keys = append(l.keys, created.Key.Key)
	}
	return l, nil
}

func (l *pgLoad) round(ctx context.Context, d time.Duration) (int64, time.Duration, error) {
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, l.clients)
	start := time.Now()
	deadline := start.Add(d)
	for c := range l.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := l.servers[c%len(l.servers)]
			key := l.keys[c%len(l.keys)]
			var buf []byte
			for time.Now().Before(deadline) && ctx.Err() == nil {
				first := int(l.next.Add(int64(l.batch))) - l.batch
				buf = append(buf[:0], `{"events":[`...)
				for i := range l.batch {
					if i > 0 {
						buf = append(buf, ',')
					}
					buf = l.pool.appendEvent(buf, first+i)
				}
				buf = append(buf, "]}"...)
				if err := postBatch(ctx, s, key, buf); err != nil {
					errs[c] = err
					return
				}
				total.Add(int64(l.batch))
			}
		}()
	}
	wg.Wait()
	return total.Load(), time.Since(start), errors.Join(errs...)
}

func postBatch(ctx context.Context, s *benchServer, key string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("status %d: %s\nserver log:\n%s", resp.StatusCode, answer, s.logTail())
	}
	return nil
}
