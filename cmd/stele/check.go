package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/integrity"
	"github.com/stele-log/stele/store/postgres"
	"github.com/stele-log/stele/store/sqlite"
)

// exitCheckFailed is stele check's exit status when the check ran and found
// a contradiction; 1 means it could not run.
const exitCheckFailed = 2

// checkConfig is the typed configuration of `stele check`.
type checkConfig struct {
	DataDir       string   // --data: the embedded database and, by default, the signing key
	DB            string   // --db: a postgres:// URL instead of the embedded database
	SigningKey    string   // --signing-key: the instance's key file (default <data>/signing.key)
	LogKey        string   // --log-key: the log's public key, pinned; overrides the key file for signatures
	Trusted       []string // --trusted: files holding one signed checkpoint each, saved outside the database
	Workspaces    []string // --workspace: only these workspaces
	Canonical     bool     // --canonical: re-derive every event's canonical bytes (D8)
	Physical      bool     // --physical: the database engine's own file check
	RestoreGuards bool     // --restore-guards: re-create missing guards (writes), then check
	Progress      time.Duration
}

// listFlag is a repeatable, comma-separable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func parseCheck(args []string, stderr io.Writer) (checkConfig, error) {
	fs := newFlags("check", stderr)
	var c checkConfig
	fs.StringVar(&c.DataDir, "data", "./stele-data", "directory of the embedded database and signing key")
	fs.StringVar(&c.DB, "db", "", "PostgreSQL URL (postgres://...); default: the embedded SQLite database in --data")
	fs.StringVar(&c.SigningKey, "signing-key", "", "the instance's signing key file, for the log key and row MACs (default <data>/signing.key)")
	fs.StringVar(&c.LogKey, "log-key", "", "the log's public key (GET /v1/log/key), pinned: checkpoints must verify with it")
	fs.Var((*listFlag)(&c.Trusted), "trusted", "file holding a signed checkpoint saved outside the database (repeatable): the log must not be smaller or differ at its size")
	fs.Var((*listFlag)(&c.Workspaces), "workspace", "check only this workspace (repeatable, or comma-separated)")
	fs.BoolVar(&c.Canonical, "canonical", false, "also re-derive every event's canonical bytes through the parser, and compare the query columns with it (slower)")
	fs.BoolVar(&c.Physical, "physical", true, "also run the database engine's own check of its files (SQLite PRAGMA integrity_check)")
	fs.BoolVar(&c.RestoreGuards, "restore-guards", false, "re-create missing or altered database guards before checking (opens the database for writing)")
	fs.DurationVar(&c.Progress, "progress", 2*time.Second, "interval of progress lines on stderr (0: none)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: stele check [--data DIR | --db URL] [--log-key VKEY] [--trusted FILE]...")
		fmt.Fprintln(stderr, "\nRe-derives every stored leaf and the whole tree of every workspace, holds them against")
		fmt.Fprintln(stderr, "the stored tree, head and signed checkpoints, and checks the database's guards. Read-only;")
		fmt.Fprintln(stderr, "safe beside a running server. Exit status 0: all checks pass; 2: a check failed; 1: error.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.SigningKey == "" {
		c.SigningKey = filepath.Join(c.DataDir, "signing.key")
	}
	return c, nil
}

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseCheck(args, stderr)
	if err != nil {
		return err
	}
	opts, keyNote, err := checkKeys(cfg)
	if err != nil {
		var mismatch keyMismatch
		if errors.As(err, &mismatch) {
			fmt.Fprintf(stdout, "FAILED: %v\n", err)
			return exitError(exitCheckFailed)
		}
		return err
	}
	for _, path := range cfg.Trusted {
		msg, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("--trusted: %w", err)
		}
		opts.Trusted = append(opts.Trusted, msg)
	}
	opts.Workspaces = cfg.Workspaces
	opts.Canonical = cfg.Canonical
	opts.Physical = cfg.Physical
	if cfg.RestoreGuards {
		if err := restoreGuards(ctx, cfg, stdout); err != nil {
			return err
		}
	}
	store, where, err := openCheckStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	fmt.Fprintf(stdout, "checking %s\n  %s\n", where, keyNote)
	if cfg.Progress > 0 {
		opts.Progress = progressPrinter(stderr, cfg.Progress)
		opts.ProgressEvery = 50_000
	}
	rep, err := integrity.Run(ctx, store, opts)
	if err != nil {
		return err
	}
	printReport(stdout, rep)
	if !rep.OK() {
		return exitError(exitCheckFailed)
	}
	return nil
}

// keyMismatch is a signing key file that is not the pinned log key: the key
// was replaced, which is itself what the check exists to find.
type keyMismatch struct{ path string }

func (k keyMismatch) Error() string {
	return fmt.Sprintf("C3 signature: the signing key in %s is not the key of the pinned --log-key: the key file was replaced", k.path)
}

// checkKeys resolves the log key (pinned with --log-key, or the signing key
// file's) and, when the signing key file is there, the row MAC key.
func checkKeys(cfg checkConfig) (integrity.Options, string, error) {
	var opts integrity.Options
	var signing *checkpoint.Key
	data, err := os.ReadFile(cfg.SigningKey)
	switch {
	case err == nil:
		if signing, err = checkpoint.ParseKey(string(data)); err != nil {
			return opts, "", fmt.Errorf("--signing-key %s: %w", cfg.SigningKey, err)
		}
	case errors.Is(err, os.ErrNotExist) && cfg.LogKey != "":
	case errors.Is(err, os.ErrNotExist):
		return opts, "", fmt.Errorf("no signing key at %s: give --log-key with the log's public key (GET /v1/log/key), or --signing-key", cfg.SigningKey)
	default:
		return opts, "", fmt.Errorf("couldn't read the signing key: %w", err)
	}
	if cfg.LogKey != "" {
		inst, pub, err := integrity.ParseLogKey(cfg.LogKey)
		if err != nil {
			return opts, "", fmt.Errorf("--log-key: %w", err)
		}
		opts.Instance, opts.PublicKey = inst, pub
		if signing != nil && (signing.Name() != inst || !ed25519.PublicKey(pub).Equal(signing.PublicKey())) {
			return opts, "", keyMismatch{cfg.SigningKey}
		}
	} else {
		opts.Instance, opts.PublicKey = signing.Name(), signing.PublicKey()
	}
	source := "from " + cfg.SigningKey
	if cfg.LogKey != "" {
		source = "pinned with --log-key"
	}
	note := fmt.Sprintf("log key: instance %s, Ed25519 %x… (%s)", opts.Instance, opts.PublicKey[:6], source)
	if signing != nil {
		opts.MACKey = signing.MACKey()
		note += "; row MACs checked"
	} else {
		note += "; row MACs not checked (no signing key)"
	}
	return opts, note, nil
}

// checkStore is what the check reads, and closes.
type checkStore interface {
	integrity.Store
	Close() error
}

// openCheckStore opens the database for reading only: the embedded SQLite
// database with mode=ro and no migration, so the check can run beside a
// live server and never writes.
func openCheckStore(ctx context.Context, cfg checkConfig) (checkStore, string, error) {
	if cfg.DB != "" {
		// PostgreSQL: read-only transactions, no migration.
		if !isPostgresURL(cfg.DB) {
			return nil, "", errors.New("--db: want a postgres:// URL, or --data for the embedded SQLite database")
		}
		s, err := postgres.Open(ctx, cfg.DB, postgres.Options{ReadOnly: true})
		if err != nil {
			return nil, "", fmt.Errorf("--db %s: %w", redactURL(cfg.DB), err)
		}
		return s, redactURL(cfg.DB) + " (PostgreSQL, read-only)", nil
	}
	path := filepath.Join(cfg.DataDir, "stele.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{ReadOnly: true, Readers: 2})
	if err != nil {
		return nil, "", err
	}
	return s, path + " (SQLite, read-only)", nil
}

// restoreGuards re-creates missing guards through a read-write open.
func restoreGuards(ctx context.Context, cfg checkConfig, stdout io.Writer) error {
	store, err := openStore(ctx, cfg.DataDir, cfg.DB, slog.Default())
	if err != nil {
		return err
	}
	defer store.Close()
	r, ok := store.(interface {
		RestoreGuards(context.Context) ([]string, error)
	})
	if !ok {
		return errors.New("--restore-guards: this store cannot restore its guards")
	}
	names, err := r.RestoreGuards(ctx)
	if err != nil {
		return fmt.Errorf("couldn't restore the guards: %w", err)
	}
	if len(names) == 0 {
		fmt.Fprintln(stdout, "guards: all in place, nothing restored")
	} else {
		fmt.Fprintf(stdout, "guards: restored %s\n", strings.Join(names, ", "))
	}
	return nil
}

// progressPrinter prints a line on stderr at most every interval.
func progressPrinter(w io.Writer, interval time.Duration) func(integrity.Progress) {
	last := time.Now()
	return func(p integrity.Progress) {
		if time.Since(last) < interval {
			return
		}
		last = time.Now()
		rate := float64(p.Events) / p.Elapsed.Seconds()
		fmt.Fprintf(w, "check: workspace %s: %s of %s events; %s events checked, %s events/s\n",
			p.Workspace, thousands(p.Done), thousands(p.Total), thousands(p.Events), thousands(int64(rate)))
	}
}

func printReport(w io.Writer, rep *integrity.Report) {
	for _, ws := range rep.Workspaces {
		status := "ok    "
		if !ws.OK() {
			status = "FAILED"
		}
		latest := "no checkpoint"
		if ws.Latest > 0 {
			latest = fmt.Sprintf("latest checkpoint %s signed %s", thousands(ws.Latest), ws.LatestTime.Format(time.RFC3339))
			if ws.Matched != ws.Latest {
				latest += fmt.Sprintf(" (the stored events match the signed roots only up to size %s)", thousands(ws.Matched))
			}
		}
		fmt.Fprintf(w, "%s workspace %s: %s events, %d checkpoints, %s, %s unsigned\n",
			status, ws.ID, thousands(ws.Events), ws.Checkpoints, latest, thousands(ws.Unsigned))
		for _, f := range ws.Findings {
			fmt.Fprintf(w, "         %s\n", f)
		}
		if ws.Dropped > 0 {
			fmt.Fprintf(w, "         … and %d more findings\n", ws.Dropped)
		}
	}
	switch {
	case !rep.GuardsChecked:
		fmt.Fprintln(w, "guards: this store cannot report its guards")
	case rep.Guards != nil:
		fmt.Fprintf(w, "FAILED guards (TAM-22): %v\n", rep.Guards)
	default:
		fmt.Fprintln(w, "ok     guards: every append-only guard is in place")
	}
	switch {
	case rep.Physical != nil:
		fmt.Fprintf(w, "FAILED physical (TAM-17): %v\n", rep.Physical)
	case rep.PhysicalChecked:
		fmt.Fprintln(w, "ok     physical: the database engine finds its files consistent")
	}
	if rep.IndexesChecked {
		fmt.Fprintln(w, "query columns compared with every event (--canonical)")
	}
	if rep.Trusted > 0 {
		fmt.Fprintf(w, "held against %d checkpoints saved outside the database (C5)\n", rep.Trusted)
	}
	rate := float64(rep.Events) / max(rep.Elapsed.Seconds(), 1e-9)
	if f, bad := rep.First(); bad {
		fmt.Fprintf(w, "FAILED: first finding: %s\n", f)
		return
	}
	fmt.Fprintf(w, "OK: %d workspaces, %s events checked in %s (%s events/s)\n",
		len(rep.Workspaces), thousands(rep.Events), rep.Elapsed.Round(time.Millisecond), thousands(int64(rate)))
}

// thousands formats n with thousands separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
