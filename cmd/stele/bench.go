package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
)

// benchmarks are the workloads of `stele bench <name>`. Each reports its
// figures beside a baseline measured in the same run.
var benchmarks = map[string]command{
	"ingest": {"append throughput and acknowledgement latency vs raw inserts (--db postgres://…: on PostgreSQL)", benchIngest},
	"query":  {"first-page latency per filter vs the bare SQL query", benchQuery},
	"export": {"export throughput and peak RSS vs a bare SELECT written as CSV", benchExport},
	"check":  {"stele check throughput vs scanning and hashing the rows", benchCheck},
	"verify": {"offline verification throughput of an export", benchVerify},
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "Usage: stele bench <workload> [flags]\n\nWorkloads:")
		names := make([]string, 0, len(benchmarks))
		for n := range benchmarks {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(stderr, "  %-8s %s\n", n, benchmarks[n].summary)
		}
		return errors.New("no workload given")
	}
	b, ok := benchmarks[args[0]]
	if !ok {
		return fmt.Errorf("unknown workload %q", args[0])
	}
	return b.run(ctx, args[1:], stdout, stderr)
}
