// Command stele is the Stele audit log: the server (serve) and the tools
// around it (emit, query, export, verify, check, keys, workspaces, bench).
// This package is wiring: it parses flags and STELE_* environment variables
// into typed configuration, constructs the packages, runs them and drains
// them in order.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"serve":      {"run the server", runServe},
	"emit":       {"log one event (or NDJSON from stdin)", runEmit},
	"query":      {"print matching events as a table (or JSON)", runQuery},
	"export":     {"download matching events as CSV, JSON, NDJSON or a verifiable bundle", runExport},
	"verify":     {"verify an export offline, or monitor a server's log", runVerify},
	"check":      {"re-derive and check every stored leaf, tree and checkpoint", runCheck},
	"keys":       {"manage API keys", runKeys},
	"users":      {"manage users", runUsers},
	"workspaces": {"manage workspaces", runWorkspaces},
	"bench":      {"measure throughput and latency beside a same-run baseline", runBench},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var exit exitError
		if errors.As(err, &exit) {
			os.Exit(int(exit))
		}
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "stele:", err)
		}
		os.Exit(1)
	}
}

// exitError ends the program with a status after its output was written.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Stele — the tamper-evident audit log\n\nUsage: stele <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-11s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'stele <command> -h' for the flags of a command. Every flag can also be set")
	fmt.Fprintln(w, "with an environment variable: --data is STELE_DATA, --trusted-proxy is STELE_TRUSTED_PROXY.")
}

// newFlags returns a flag set whose defaults come from STELE_* variables
// once parse is called.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("stele "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args, first applying STELE_<FLAG> environment variables to
// flags not given on the command line ("trusted-proxy" → STELE_TRUSTED_PROXY).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		env := "STELE_" + envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
		}
	})
	return err
}

func envName(flag string) string {
	b := []byte(flag)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// parseArgs is parse for commands with positional arguments, which may come
// before, between or after the flags ("keys rotate ID --grace 1h").
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if f := fs.Lookup(name); f != nil && !strings.Contains(name, "=") && !isBoolFlag(f) && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			positional = append(positional, a)
		}
	}
	if err := parse(fs, flags); err != nil {
		return nil, err
	}
	return positional, nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
