package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/integrity"
	"github.com/stele-log/stele/sequencer"
	"github.com/stele-log/stele/store/sqlite"
)

// benchCheck measures `stele check` throughput on a generated log beside a
// baseline measured in the same run: reading every event row of the log
// and SHA-256-hashing its body, which is the least any full check must do.
// The ratio says how much the tree, the checkpoints and the other checks
// add to that floor.
func benchCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench check", stderr)
	events := fs.Int("events", 200_000, "events in the generated log")
	rounds := fs.Int("rounds", 3, "measurements of each side, alternating; the median is reported")
	dir := fs.String("dir", "", "where to generate the log (default: a temporary directory, deleted afterwards)")
	canonical := fs.Bool("canonical", false, "also measure stele check --canonical")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "stele-bench-check")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	key, _, err := checkpoint.LoadOrCreateKey(filepath.Join(*dir, "signing.key"), "bench.local")
	if err != nil {
		return err
	}
	path := filepath.Join(*dir, "stele.db")
	start := time.Now()
	if err := generateCheckLog(ctx, path, key, *events, stderr); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench check: generated %s events in %s\n", thousands(int64(*events)), time.Since(start).Round(time.Second))

	store, err := sqlite.Open(ctx, path, sqlite.Options{ReadOnly: true, Readers: 2})
	if err != nil {
		return err
	}
	defer store.Close()
	// The baseline reads through a connection set up as the check's are.
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=query_only(1)&_pragma=mmap_size(1073741824)")
	if err != nil {
		return err
	}
	defer raw.Close()
	opts := integrity.Options{Instance: key.Name(), PublicKey: key.PublicKey(), MACKey: key.MACKey()}
	sides := []struct {
		name string
		run  func() (int64, error)
	}{
		{"baseline: scan event rows + SHA-256 of each body", func() (int64, error) { return scanAndHash(ctx, raw) }},
		{"reading what the check reads (tree ⋈ events, ScanLeaves) + SHA-256 of each body", func() (int64, error) { return scanLeavesAndHash(ctx, store) }},
		{"stele check", func() (int64, error) { return checkAll(ctx, store, opts) }},
	}
	if *canonical {
		deep := opts
		deep.Canonical = true
		sides = append(sides, struct {
			name string
			run  func() (int64, error)
		}{"stele check --canonical", func() (int64, error) { return checkAll(ctx, store, deep) }})
	}
	// Wall-clock rates move with the machine's other load; rates per CPU
	// second of this process (user + system) move much less, so both are
	// reported.
	wall := make([][]float64, len(sides))
	cpu := make([][]float64, len(sides))
	for round := range *rounds {
		for i, side := range sides {
			runtime.GC()
			t0, c0 := time.Now(), processCPU()
			n, err := side.run()
			if err != nil {
				return fmt.Errorf("%s: %w", side.name, err)
			}
			w, c := float64(n)/time.Since(t0).Seconds(), float64(n)/(processCPU()-c0).Seconds()
			wall[i], cpu[i] = append(wall[i], w), append(cpu[i], c)
			fmt.Fprintf(stderr, "bench check: round %d: %s: %s events/s, %s events per CPU second\n", round+1, side.name, thousands(int64(w)), thousands(int64(c)))
		}
	}
	fmt.Fprintf(stdout, "stele bench check: %s events, %d rounds (median), %s\n\n", thousands(int64(*events)), *rounds, machineSummary())
	fmt.Fprintln(stdout, "| side | events/s (wall) | ratio | events per CPU second | ratio |")
	fmt.Fprintln(stdout, "|---|---|---|---|---|")
	bw, bc := median(wall[0]), median(cpu[0])
	for i, side := range sides {
		w, c := median(wall[i]), median(cpu[i])
		fmt.Fprintf(stdout, "| %s | %s | %.2f | %s | %.2f |\n", side.name, thousands(int64(w)), w/bw, thousands(int64(c)), c/bc)
	}
	return nil
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// generateCheckLog writes n events to workspace "bench" through the real
// write path (sequencer, group commit, checkpointer signing at most once a
// second) and closes the store with a final checkpoint.
func generateCheckLog(ctx context.Context, path string, key *checkpoint.Key, n int, stderr io.Writer) error {
	store, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.CreateWorkspace(ctx, stele.Workspace{ID: "bench", Name: "bench", CreatedAt: time.Now()}); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := sequencer.NewMetrics(nil)
	cps := sequencer.NewCheckpointer(store, key, nil, logger, m)
	seq := sequencer.New(store, key.MACKey(), sequencer.Config{Lanes: 1, Logger: logger, OnCommit: cps.Committed, Metrics: m})
	cpCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { cps.Run(cpCtx); close(done) }()
	gen := eventgen.New(1)
	const batch = 2000
	last := time.Now()
	for i := 0; i < n; i += batch {
		bodies := gen.Stream(min(batch, n-i), time.Now(), time.Minute, false)
		drafts := make([]stele.Draft, len(bodies))
		for j := range bodies {
			drafts[j] = stele.Draft{Body: bodies[j]}
		}
		if _, err := seq.Append(ctx, "bench", drafts, stele.Emitter{Workspace: "bench", KeyID: "bench"}); err != nil {
			seq.Close()
			stop()
			<-done
			return err
		}
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			fmt.Fprintf(stderr, "bench check: generating: %s of %s events\n", thousands(int64(i+batch)), thousands(int64(n)))
		}
	}
	seq.Close()
	stop()
	<-done
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return cps.Flush(fctx)
}

// scanAndHash is the baseline: every event row read in seq order and its
// body hashed.
func scanAndHash(ctx context.Context, db *sql.DB) (int64, error) {
	rows, err := db.QueryContext(ctx, "SELECT body FROM events ORDER BY rowid")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	var sink byte
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return 0, err
		}
		sum := sha256.Sum256(body)
		sink ^= sum[0]
		n++
	}
	_ = sink
	return n, rows.Err()
}

// scanLeavesAndHash reads the positions as the check does, through the
// store's ScanLeaves (tree rows joined with their events), and hashes each
// body: what the check costs before any of its own work.
func scanLeavesAndHash(ctx context.Context, store *sqlite.Store) (int64, error) {
	var n int64
	var sink byte
	err := store.ScanLeaves(ctx, "bench", 0, func(l stele.Leaf) error {
		sum := sha256.Sum256(l.Canonical)
		sink ^= sum[0]
		n++
		return nil
	})
	_ = sink
	return n, err
}

// checkAll runs the full check and insists that it passes.
func checkAll(ctx context.Context, store integrity.Store, opts integrity.Options) (int64, error) {
	rep, err := integrity.Run(ctx, store, opts)
	if err != nil {
		return 0, err
	}
	if f, bad := rep.First(); bad {
		return 0, fmt.Errorf("the generated log does not check: %s", f)
	}
	return rep.Events, nil
}
