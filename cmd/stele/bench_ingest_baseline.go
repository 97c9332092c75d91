package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/store/sqlite"
	"golang.org/x/mod/sumdb/tlog"
)

// The baseline is what the same rows cost when written straight into SQLite:
// the store's own schema (every index, the full-text table, the tree table,
// the triggers), WAL with synchronous=FULL, prepared statements, one
// connection, BEGIN IMMEDIATE … COMMIT around TxRows rows. It runs in its
// own process so that its CPU time is measured exactly like the server's.

// baselineWorker is the parent's handle on the baseline process.
type baselineWorker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startBaselineWorker(ctx context.Context, bin, path string) (*baselineWorker, error) {
	cmd := exec.Command(bin, "bench", "ingest", "--baseline-worker", path)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &baselineWorker{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	line, err := w.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		w.stop()
		return nil, fmt.Errorf("the baseline process did not start (%v): %s", err, stderr.String())
	}
	return w, nil
}

// baselineRound is the worker's answer to one round.
type baselineRound struct {
	Events    int64   `json:"events"`
	ElapsedNS int64   `json:"elapsed_ns"`
	TxNS      []int64 `json:"tx_ns"`
	Err       string  `json:"error,omitempty"`
}

func (w *baselineWorker) round(txRows int, d time.Duration) (roundResult, error) {
	cpu0, err := procCPU(w.cmd.Process.Pid)
	if err != nil {
		return roundResult{}, err
	}
	if _, err := fmt.Fprintf(w.in, "run %d %d\n", txRows, d.Nanoseconds()); err != nil {
		return roundResult{}, err
	}
	line, err := w.out.ReadBytes('\n')
	if err != nil {
		return roundResult{}, fmt.Errorf("the baseline process died: %w", err)
	}
	cpu1, err := procCPU(w.cmd.Process.Pid)
	if err != nil {
		return roundResult{}, err
	}
	var r baselineRound
	if err := json.Unmarshal(line, &r); err != nil {
		return roundResult{}, err
	}
	if r.Err != "" {
		return roundResult{}, fmt.Errorf("baseline: %s", r.Err)
	}
	res := roundResult{events: r.Events, elapsed: time.Duration(r.ElapsedNS), cpuTicks: cpu1 - cpu0, commits: int64(len(r.TxNS))}
	for _, ns := range r.TxNS {
		res.latencies = append(res.latencies, time.Duration(ns))
	}
	return res, nil
}

func (w *baselineWorker) stop() {
	w.in.Close()
	w.cmd.Wait()
}

// baselineRow is one pool event in the columns the store writes.
type baselineRow struct {
	body                                     []byte
	leaf                                     tlog.Hash
	timeNS, receivedNS                       int64
	typ, typeRoot, category, actor, outcome  string
	node, resourceType, resourceID, ip, text any
	requestHash, mac                         []byte
}

// runBaselineWorker is the baseline process: it creates the store's schema
// in path, then answers "run <rows per tx> <duration ns>" lines from in with
// one JSON line each, until in closes.
func runBaselineWorker(ctx context.Context, path string, in io.Reader, out io.Writer) error {
	st, err := sqlite.Open(ctx, path, sqlite.Options{Readers: 1}) // the store's exact schema
	if err != nil {
		return err
	}
	st.Close()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "journal_size_limit(67108864)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var sync int
	if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		return fmt.Errorf("synchronous=FULL not in effect (%d, %v)", sync, err)
	}
	rows, err := baselineRows()
	if err != nil {
		return err
	}
	b := &baseline{conn: conn, rows: rows}
	if err := b.prepare(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		var txRows int
		var ns int64
		if _, err := fmt.Sscanf(sc.Text(), "run %d %d", &txRows, &ns); err != nil {
			return fmt.Errorf("bad command %q", sc.Text())
		}
		r := b.run(ctx, txRows, time.Duration(ns))
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return sc.Err()
}

func baselineRows() ([]baselineRow, error) {
	pool, err := newEventPool(10000)
	if err != nil {
		return nil, err
	}
	emitter := stele.Emitter{Workspace: "default", KeyID: "abcdefghijklm", IP: "127.0.0.1"}
	rows := make([]baselineRow, len(pool.bodies))
	for i := range pool.bodies {
		d := stele.Draft{Body: pool.bodies[i]}
		d.Body.ID = uuid.Must(uuid.NewV7()).String()
		rh, err := stele.RequestHash(&d)
		if err != nil {
			return nil, err
		}
		body, canon, leaf, err := stele.Seal(&d, time.Now(), emitter)
		if err != nil {
			return nil, err
		}
		r := baselineRow{body: canon, leaf: leaf, timeNS: body.Time.UnixNano(), receivedNS: body.ReceivedAt.UnixNano(),
			typ: body.Type, category: body.Category, actor: body.Actor.ID, outcome: body.Outcome,
			requestHash: rh[:], mac: make([]byte, 32)}
		rand.Read(r.mac)
		r.typeRoot, _, _ = strings.Cut(body.Type, ".")
		if body.Node != "" {
			r.node = body.Node
		}
		if body.Resource != nil {
			r.resourceType, r.resourceID = body.Resource.Type, body.Resource.ID
		}
		if a, err := netip.ParseAddr(body.IP); err == nil {
			a16 := a.As16()
			r.ip = a16[:]
		}
		if words := stele.Tokens(&body); len(words) > 0 {
			r.text = strings.Join(words, " ")
		}
		rows[i] = r
	}
	return rows, nil
}

// baseline inserts rows through prepared statements on one connection.
type baseline struct {
	conn           *sql.Conn
	rows           []baselineRow
	ev, text, tree *sql.Stmt
	seq            int64
	hashes         []byte // random tree hashes to slice from
}

func (b *baseline) prepare(ctx context.Context) error {
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = b.conn.PrepareContext(ctx, q)
		return s
	}
	b.ev = prep(`INSERT INTO events (rowid, ws, id, time_ns, received_ns, type, type_root, category, actor_id,
		node, resource_type, resource_id, ip, outcome, body, leaf_hash, request_hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	b.text = prep("INSERT INTO events_text (rowid, words) VALUES (?, ?)")
	b.tree = prep("INSERT INTO tree (rowid, hashes, mac) VALUES (?, ?, ?)")
	b.hashes = make([]byte, 64*tlog.HashSize)
	rand.Read(b.hashes)
	return err
}

const baselineWS = 1 // workspace number in the rowid's high bits

func (b *baseline) run(ctx context.Context, txRows int, d time.Duration) baselineRound {
	var r baselineRound
	start := time.Now()
	deadline := start.Add(d)
	for time.Now().Before(deadline) {
		t0 := time.Now()
		if err := b.tx(ctx, txRows); err != nil {
			return baselineRound{Err: err.Error()}
		}
		r.TxNS = append(r.TxNS, time.Since(t0).Nanoseconds())
		r.Events += int64(txRows)
	}
	r.ElapsedNS = time.Since(start).Nanoseconds()
	return r
}

func (b *baseline) tx(ctx context.Context, n int) (err error) {
	if _, err := b.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			b.conn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	for range n {
		row := &b.rows[b.seq%int64(len(b.rows))]
		rid := baselineWS<<40 | b.seq
		id := uuid.Must(uuid.NewV7())
		if _, err := b.ev.ExecContext(ctx, rid, baselineWS, id[:], row.timeNS, row.receivedNS, row.typ, row.typeRoot,
			row.category, row.actor, row.node, row.resourceType, row.resourceID, row.ip, row.outcome, row.body,
			row.leaf[:], row.requestHash); err != nil {
			return err
		}
		if row.text != nil {
			if _, err := b.text.ExecContext(ctx, rid, row.text); err != nil {
				return err
			}
		}
		k := tlog.StoredHashCount(b.seq+1) - tlog.StoredHashCount(b.seq)
		if _, err := b.tree.ExecContext(ctx, rid, b.hashes[:k*tlog.HashSize], row.mac); err != nil {
			return err
		}
		b.seq++
	}
	if _, err := b.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return errors.Join(err, errors.New("commit failed"))
	}
	return nil
}
