package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/bits"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/gowebpki/jcs"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/bundle"
	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/export"
	"github.com/stele-log/stele/sequencer"
	"github.com/stele-log/stele/store/sqlite"
	"github.com/stele-log/stele/tree"
	"github.com/stele-log/stele/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// benchVerify is stele bench verify: offline verification throughput of a
// whole-log bundle (one range proof) and of a bundle with one inclusion
// proof per event, beside two baselines measured in the same run on the
// same lines: SHA-256 of each line (reading and hashing only), and RFC 8785
// canonicalization plus the RFC 6962 leaf hash of each event. Rounds are
// interleaved, and the median of each is reported.
func benchVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench verify", stderr)
	n := fs.Int("events", 1_000_000, "events in the generated export")
	rounds := fs.Int("rounds", 3, "interleaved rounds of each measurement")
	dir := fs.String("dir", "", "directory for the generated files (default a temporary one, removed after)")
	proofEvents := fs.Int("proof-events", 100_000, "events in the SQLite log on which proof latency is measured (0: skip)")
	samples := fs.Int("proof-samples", 2000, "proofs of each kind measured")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *n < 1 || *rounds < 1 {
		return errors.New("--events and --rounds must be positive")
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "stele-bench-verify")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	fmt.Fprintf(stderr, "generating a log of %d events and its bundles in %s...\n", *n, *dir)
	start := time.Now()
	files, vkey, err := generateBundles(ctx, *dir, int64(*n))
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "generated in %v\n", time.Since(start).Round(time.Millisecond))

	type measure struct {
		name string
		run  func() (int64, error)
		secs []float64
	}
	verifyFile := func(path string) func() (int64, error) {
		return func() (int64, error) {
			f, err := os.Open(path)
			if err != nil {
				return 0, err
			}
			defer f.Close()
			rep, err := verify.File(f, verify.Options{Key: vkey})
			if err != nil {
				return 0, err
			}
			if !rep.OK() {
				return 0, fmt.Errorf("%s does not verify: %+v", path, rep.Failures)
			}
			return rep.Verified, nil
		}
	}
	measures := []*measure{
		{name: "baseline: SHA-256 of each line", run: func() (int64, error) { return hashLines(files.rng) }},
		{name: "baseline: RFC 8785 + leaf hash of each event", run: func() (int64, error) { return jcsAndHash(files.rng) }},
		{name: "stele verify, whole-log bundle (range proof)", run: verifyFile(files.rng)},
		{name: "stele verify, bundle with a proof per event", run: verifyFile(files.proofs)},
	}
	for r := 0; r < *rounds; r++ {
		for _, m := range measures {
			if err := ctx.Err(); err != nil {
				return err
			}
			runtime.GC()
			t0 := time.Now()
			count, err := m.run()
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if count != int64(*n) {
				return fmt.Errorf("%s: %d events, want %d", m.name, count, *n)
			}
			m.secs = append(m.secs, time.Since(t0).Seconds())
			fmt.Fprintf(stderr, "round %d: %s: %.2fs\n", r+1, m.name, m.secs[len(m.secs)-1])
		}
	}
	rangeSize, _ := fileSize(files.rng)
	proofsSize, _ := fileSize(files.proofs)
	fmt.Fprintf(stdout, "stele bench verify: %d events, median of %d interleaved rounds, GOMAXPROCS=%d\n\n", *n, *rounds, runtime.GOMAXPROCS(0))
	fmt.Fprintf(stdout, "| measurement | events/s | vs SHA-256 of lines | vs RFC 8785 + leaf hash |\n|---|---|---|---|\n")
	rate := func(m *measure) float64 { return float64(*n) / median(m.secs) }
	for _, m := range measures {
		fmt.Fprintf(stdout, "| %s | %.0f | %.2f | %.2f |\n", m.name, rate(m), rate(m)/rate(measures[0]), rate(m)/rate(measures[1]))
	}
	fmt.Fprintf(stdout, "\nwhole-log bundle: %.1f MB (%.0f bytes/event); bundle with a proof per event: %.1f MB (%.0f bytes/event)\n",
		float64(rangeSize)/1e6, float64(rangeSize)/float64(*n), float64(proofsSize)/1e6, float64(proofsSize)/float64(*n))
	if *proofEvents > 0 {
		return proofLatency(ctx, *dir, int64(*proofEvents), *samples, stdout, stderr)
	}
	return nil
}

// proofLatency measures, on a SQLite log of n events written through the
// sequencer, the server-side latency of inclusion and consistency proofs
// (tlog over the store's hashes, as the API builds them) at random indexes
// and sizes, beside a same-run baseline: one bare read of as many random
// stored hashes as a proof needs.
func proofLatency(ctx context.Context, dir string, n int64, samples int, stdout, stderr io.Writer) error {
	store, err := sqlite.Open(ctx, filepath.Join(dir, "proofs.db"), sqlite.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.CreateWorkspace(ctx, stele.Workspace{ID: "bench", Name: "bench", CreatedAt: time.Now()}); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "writing %d events through the sequencer for the proof measurements...\n", n)
	seq := sequencer.New(store, []byte("bench mac key"), sequencer.Config{})
	g := eventgen.New(2)
	for written := int64(0); written < n; {
		batch := make([]stele.Draft, min(1000, n-written))
		for i := range batch {
			batch[i].Body = g.Event(time.Now().Add(-time.Hour), false)
		}
		if _, err := seq.Append(ctx, "bench", batch, stele.Emitter{Workspace: "bench"}); err != nil {
			seq.Close()
			return err
		}
		written += int64(len(batch))
	}
	seq.Close()
	t := stele.In(store, "bench")
	hashes := t.HashReader(ctx)
	rng := mathrand.New(mathrand.NewPCG(3, 4))
	var incl, cons, base []time.Duration
	for range samples {
		size := 1 + rng.Int64N(n)
		index, from := rng.Int64N(size), 1+rng.Int64N(size)
		t0 := time.Now()
		if _, err := tlog.ProveRecord(size, index, hashes); err != nil {
			return err
		}
		incl = append(incl, time.Since(t0))
		t0 = time.Now()
		if _, err := tlog.ProveTree(size, from, hashes); err != nil {
			return err
		}
		cons = append(cons, time.Since(t0))
		idx := make([]int64, bits.Len64(uint64(size)))
		for i := range idx {
			idx[i] = rng.Int64N(tlog.StoredHashCount(size))
		}
		t0 = time.Now()
		if _, err := t.TreeHashes(ctx, idx); err != nil {
			return err
		}
		base = append(base, time.Since(t0))
	}
	q := func(ds []time.Duration, p float64) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[int(p*float64(len(s)-1))]
	}
	fmt.Fprintf(stdout, "\nproof latency, server side, on a SQLite log of %d events (%d random indexes and sizes each)\n\n", n, samples)
	fmt.Fprintf(stdout, "| measurement | p50 | p99 | p99 vs baseline |\n|---|---|---|---|\n")
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"baseline: one read of log2(size) random stored hashes", base}, {"inclusion proof (tlog.ProveRecord)", incl}, {"consistency proof (tlog.ProveTree)", cons}} {
		fmt.Fprintf(stdout, "| %s | %v | %v | %.2f |\n", m.name, q(m.ds, 0.5).Round(time.Microsecond), q(m.ds, 0.99).Round(time.Microsecond), float64(q(m.ds, 0.99))/float64(q(base, 0.99)))
	}
	return nil
}

type benchFiles struct{ rng, proofs string }

// generateBundles writes a log of n generated events as a whole-log bundle
// and as a bundle with a proof per event, signed with a fresh key, and
// returns the files and the verifier key.
func generateBundles(ctx context.Context, dir string, n int64) (benchFiles, string, error) {
	files := benchFiles{rng: filepath.Join(dir, "range.bundle.ndjson"), proofs: filepath.Join(dir, "proofs.bundle.ndjson")}
	skey, err := checkpoint.GenerateKey("bench.stele")
	if err != nil {
		return files, "", err
	}
	key, err := checkpoint.ParseKey(skey)
	if err != nil {
		return files, "", err
	}
	origin := key.Origin("bench")
	g := eventgen.New(1)
	received := time.Now().Add(-time.Hour).UTC()
	frontier, _ := tree.NewFrontier(0, nil)
	stored := make([]tlog.Hash, 0, 2*n)
	lines := make([][]byte, 0, n)
	for i := int64(0); i < n; i++ {
		if i%100000 == 0 && ctx.Err() != nil {
			return files, "", ctx.Err()
		}
		d := stele.Draft{Body: g.Event(received, false)}
		_, canon, leaf, err := stele.Seal(&d, received, stele.Emitter{Workspace: "bench", KeyID: "k1", IP: "192.0.2.1"})
		if err != nil {
			return files, "", err
		}
		hs, err := frontier.Append(leaf)
		if err != nil {
			return files, "", err
		}
		stored = append(stored, hs...)
		lines = append(lines, export.AppendEvent(nil, stele.StoredEvent{Seq: i, Canonical: canon, LeafHash: leaf}))
	}
	note, err := key.Sign(origin, n, frontier.Root(), time.Now())
	if err != nil {
		return files, "", err
	}
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	write := func(path string, h bundle.Header, proofs bool) error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		enc, err := bundle.NewEncoder(f, h)
		if err != nil {
			return err
		}
		for i, l := range lines {
			var p *bundle.Proof
			if proofs {
				hs, err := tlog.ProveRecord(n, int64(i), reader)
				if err != nil {
					return err
				}
				p = &bundle.Proof{Index: int64(i), Hashes: hs}
			}
			if err := enc.WriteEvent(l, p); err != nil {
				return err
			}
		}
		if err := enc.Close(); err != nil {
			return err
		}
		return f.Close()
	}
	h := bundle.Header{Origin: origin, Checkpoint: string(note), Range: &bundle.Range{From: 0, To: n, Left: []tlog.Hash{}, Consistency: []tlog.Hash{}}}
	if err := write(files.rng, h, false); err != nil {
		return files, "", err
	}
	h.Range = nil
	if err := write(files.proofs, h, true); err != nil {
		return files, "", err
	}
	vkey := key.VerifierKey(origin)
	return files, vkey, os.WriteFile(filepath.Join(dir, "log.vkey"), []byte(vkey+"\n"), 0o644)
}

// hashLines reads the bundle's event lines and SHA-256-hashes each.
func hashLines(path string) (int64, error) {
	var count int64
	err := eachEventLine(path, func(line []byte) error {
		sha256.Sum256(line)
		count++
		return nil
	})
	return count, err
}

// jcsAndHash canonicalizes each event object (RFC 8785, with an
// independent JCS library) and hashes it as an RFC 6962 leaf: what any
// verifier that recomputes leaves spends at least, proofs aside.
func jcsAndHash(path string) (int64, error) {
	var count int64
	err := eachEventLine(path, func(line []byte) error {
		// The event object inside {"event":...}.
		canon, err := jcs.Transform(line[len(`{"event":`) : len(line)-1])
		if err != nil {
			return err
		}
		tlog.RecordHash(canon)
		count++
		return nil
	})
	return count, err
}

func eachEventLine(path string, fn func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), bundle.MaxLine)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) < 10 || string(line[:9]) != `{"event":` {
			continue
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return sc.Err()
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
