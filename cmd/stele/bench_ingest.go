package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// `stele bench ingest` measures the write path end to end: it starts the
// real server (this binary, `stele serve`) as a separate process on a fresh
// data directory, drives it over HTTP, and puts every figure beside a
// baseline measured in the same run — the same rows inserted straight into
// SQLite, with the same schema, indexes and durability, by a second process.
// Rounds of baseline and Stele alternate (ABBA), so that the noise of a
// shared machine lands on both sides and the ratios stay fair.

// ingestWorkload is one shape of load.
type ingestWorkload struct {
	Name    string `json:"name"`
	Title   string `json:"title"`
	Clients int    `json:"clients"` // concurrent HTTP clients
	Batch   int    `json:"batch"`   // events per request
	TxRows  int    `json:"tx_rows"` // rows per baseline transaction
}

var ingestWorkloads = []ingestWorkload{
	{Name: "a", Title: "8 clients, batches of 100", Clients: 8, Batch: 100, TxRows: 1000},
	{Name: "b", Title: "64 clients, one event per request", Clients: 64, Batch: 1, TxRows: 1000},
	{Name: "c", Title: "1 client, one event at a time", Clients: 1, Batch: 1, TxRows: 1},
}

// sideResult is what one side (baseline or Stele) did over all rounds.
type sideResult struct {
	Events     int64     `json:"events"`
	Seconds    float64   `json:"seconds"`
	EventsPerS float64   `json:"events_per_s"`
	CPUUsPerEv float64   `json:"cpu_us_per_event"` // user+sys of the measured process
	P50Ms      float64   `json:"p50_ms"`
	P99Ms      float64   `json:"p99_ms"`
	RoundRates []float64 `json:"round_events_per_s"`
	// ClientCPUUsPerEv is the bench process's own CPU (the HTTP clients,
	// on the same cores) per event; 0 for the baseline.
	ClientCPUUsPerEv float64 `json:"client_cpu_us_per_event,omitempty"`
	// EventsPerCommit is the mean size of a committed transaction (for
	// Stele: its group commits, from the server's /metrics).
	EventsPerCommit float64 `json:"events_per_commit"`
	latencies       []time.Duration
	cpuTicks        int64
	clientCPU       time.Duration
	commits         int64
}

func (s *sideResult) add(r roundResult) {
	s.Events += r.events
	s.Seconds += r.elapsed.Seconds()
	s.cpuTicks += r.cpuTicks
	s.clientCPU += r.clientCPU
	s.commits += r.commits
	s.latencies = append(s.latencies, r.latencies...)
	s.RoundRates = append(s.RoundRates, float64(r.events)/r.elapsed.Seconds())
}

func (s *sideResult) finish() {
	if s.Seconds > 0 {
		s.EventsPerS = float64(s.Events) / s.Seconds
	}
	if s.Events > 0 {
		s.CPUUsPerEv = float64(s.cpuTicks) / clockTicks * 1e6 / float64(s.Events)
		s.ClientCPUUsPerEv = float64(s.clientCPU.Microseconds()) / float64(s.Events)
	}
	if s.commits > 0 {
		s.EventsPerCommit = float64(s.Events) / float64(s.commits)
	}
	s.P50Ms, s.P99Ms = percentileMs(s.latencies, 50), percentileMs(s.latencies, 99)
}

// workloadResult is one row pair of the table.
type workloadResult struct {
	Workload   ingestWorkload `json:"workload"`
	Baseline   sideResult     `json:"baseline"`
	Stele      sideResult     `json:"stele"`
	Ratio      float64        `json:"ratio"`        // Stele events/s ÷ baseline events/s
	CPURatio   float64        `json:"cpu_ratio"`    // Stele CPU/event ÷ baseline CPU/event
	RoundRatio []float64      `json:"round_ratios"` // per round, to show the spread
}

type ingestReport struct {
	Machine   string           `json:"machine"`
	Rounds    int              `json:"rounds"`
	Duration  string           `json:"round_duration"`
	Workloads []workloadResult `json:"workloads"`
}

func benchIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if hasFlag(args, "db") {
		return benchIngestPostgres(ctx, args, stdout, stderr)
	}
	fs := newFlags("bench ingest", stderr)
	duration := fs.Duration("duration", 5*time.Second, "length of one measured round")
	rounds := fs.Int("rounds", 4, "rounds per side and workload (baseline and Stele alternate, ABBA)")
	warmup := fs.Duration("warmup", time.Second, "unmeasured warm-up per side and workload")
	which := fs.String("workloads", "a,b,c", "comma-separated workloads: a (8 clients × 100-event batches), b (64 clients × 1 event), c (1 client × 1 event)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	dir := fs.String("dir", "", "directory for the temporary databases (default: the system temp dir); must be a real disk to measure fsync")
	keep := fs.Bool("keep", false, "keep the temporary databases")
	pprofAddr := fs.String("server-pprof", "", "start the server with --pprof ADDR, to profile it while the bench runs")
	worker := fs.String("baseline-worker", "", "internal: run as the baseline process on this database file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *worker != "" {
		return runBaselineWorker(ctx, *worker, os.Stdin, stdout)
	}
	if *rounds < 1 || *duration <= 0 {
		return errors.New("--rounds must be at least 1 and --duration positive")
	}
	var selected []ingestWorkload
	for _, name := range strings.Split(*which, ",") {
		i := slices.IndexFunc(ingestWorkloads, func(w ingestWorkload) bool { return w.Name == strings.TrimSpace(name) })
		if i < 0 {
			return fmt.Errorf("--workloads: unknown workload %q (a, b or c)", name)
		}
		selected = append(selected, ingestWorkloads[i])
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	base, err := os.MkdirTemp(*dir, "stele-bench-ingest-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(stderr, "databases kept in %s\n", base)
	} else {
		defer os.RemoveAll(base)
	}
	pool, err := newEventPool(10000)
	if err != nil {
		return err
	}
	report := ingestReport{Machine: machineSummary(), Rounds: *rounds, Duration: duration.String()}
	fmt.Fprintf(stderr, "machine: %s\n", report.Machine)
	for _, w := range selected {
		wdir := filepath.Join(base, w.Name)
		if err := os.MkdirAll(wdir, 0o700); err != nil {
			return err
		}
		res, err := runIngestWorkload(ctx, bin, wdir, w, pool, *rounds, *duration, *warmup, *pprofAddr, stderr)
		if err != nil {
			return fmt.Errorf("workload %s: %w", w.Name, err)
		}
		report.Workloads = append(report.Workloads, res)
		if !*keep {
			os.RemoveAll(wdir)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	printIngestTable(stdout, report)
	return nil
}

func runIngestWorkload(ctx context.Context, bin, dir string, w ingestWorkload, pool *eventPool, rounds int,
	duration, warmup time.Duration, pprofAddr string, stderr io.Writer) (workloadResult, error) {
	res := workloadResult{Workload: w}
	srv, err := startBenchServer(ctx, benchServe{Bin: bin, DataDir: filepath.Join(dir, "stele-data"), PprofAddr: pprofAddr})
	if err != nil {
		return res, err
	}
	defer srv.stop()
	bl, err := startBaselineWorker(ctx, bin, filepath.Join(dir, "baseline.db"))
	if err != nil {
		return res, err
	}
	defer bl.stop()
	load := &steleLoad{srv: srv, w: w, pool: pool}
	if warmup > 0 {
		if _, err := bl.round(w.TxRows, warmup); err != nil {
			return res, err
		}
		if _, err := load.round(ctx, warmup); err != nil {
			return res, err
		}
	}
	for i := range rounds {
		order := []string{"baseline", "stele"}
		if i%2 == 1 {
			order = []string{"stele", "baseline"} // ABBA: drift lands on both sides
		}
		var rb, rs roundResult
		for _, side := range order {
			var r roundResult
			var err error
			if side == "baseline" {
				r, err = bl.round(w.TxRows, duration)
				rb = r
			} else {
				r, err = load.round(ctx, duration)
				rs = r
			}
			if err != nil {
				return res, err
			}
			fmt.Fprintf(stderr, "(%s) round %d %-8s %8.0f events/s  cpu %6.1f µs/event\n", w.Name, i+1, side,
				float64(r.events)/r.elapsed.Seconds(), float64(r.cpuTicks)/clockTicks*1e6/float64(max(r.events, 1)))
		}
		res.Baseline.add(rb)
		res.Stele.add(rs)
		res.RoundRatio = append(res.RoundRatio, (float64(rs.events)/rs.elapsed.Seconds())/(float64(rb.events)/rb.elapsed.Seconds()))
	}
	res.Baseline.finish()
	res.Stele.finish()
	if res.Baseline.EventsPerS > 0 {
		res.Ratio = res.Stele.EventsPerS / res.Baseline.EventsPerS
	}
	if res.Baseline.CPUUsPerEv > 0 {
		res.CPURatio = res.Stele.CPUUsPerEv / res.Baseline.CPUUsPerEv
	}
	return res, nil
}

// roundResult is one measured round of one side.
type roundResult struct {
	events    int64
	elapsed   time.Duration
	cpuTicks  int64
	clientCPU time.Duration // the bench process's CPU during a Stele round
	latencies []time.Duration
	commits   int64 // transactions committed
}

func printIngestTable(w io.Writer, r ingestReport) {
	fmt.Fprintf(w, "stele bench ingest — %d rounds of %s per side, baseline and Stele interleaved (ABBA)\n", r.Rounds, r.Duration)
	fmt.Fprintf(w, "machine: %s\n\n", r.Machine)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tside\tevents/s\tratio\tCPU µs/event\tCPU ratio\tp50 ms\tp99 ms\tlatency of\tevents/commit\t")
	for _, x := range r.Workloads {
		unit := fmt.Sprintf("%d-row tx", x.Workload.TxRows)
		fmt.Fprintf(tw, "(%s) %s\tbaseline\t%s\t\t%.1f\t\t%.2f\t%.2f\t%s\t%.0f\t\n", x.Workload.Name, x.Workload.Title,
			thousands(int64(x.Baseline.EventsPerS)), x.Baseline.CPUUsPerEv, x.Baseline.P50Ms, x.Baseline.P99Ms, unit, x.Baseline.EventsPerCommit)
		fmt.Fprintf(tw, "\tstele\t%s\t%.2f×\t%.1f\t%.2f×\t%.2f\t%.2f\t%s\t%.1f\t\n", thousands(int64(x.Stele.EventsPerS)), x.Ratio,
			x.Stele.CPUUsPerEv, x.CPURatio, x.Stele.P50Ms, x.Stele.P99Ms, "request", x.Stele.EventsPerCommit)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nratio per round (Stele ÷ baseline):")
	for _, x := range r.Workloads {
		parts := make([]string, len(x.RoundRatio))
		for i, v := range x.RoundRatio {
			parts[i] = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(w, "  (%s) %s\n", x.Workload.Name, strings.Join(parts, "  "))
	}
	fmt.Fprintln(w, "\nCPU is user+sys time of the server process (Stele) or of the baseline process, from /proc/<pid>/stat.")
	for _, x := range r.Workloads {
		fmt.Fprintf(w, "  (%s) the HTTP clients used %.1f µs of CPU per event on the same cores\n", x.Workload.Name, x.Stele.ClientCPUUsPerEv)
	}
}

func percentileMs(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, len(s)*p/100)
	return float64(s[i]) / float64(time.Millisecond)
}

// machineSummary describes where the figures were measured.
func machineSummary() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return fmt.Sprintf("%d CPUs (%s), %s %s/%s, load average at start %s (shared machine: measured as it is)",
		runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH, load)
}

// hasFlag reports whether args set the flag name (-name, --name, with its
// value attached or next).
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}
