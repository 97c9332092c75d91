package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stele-log/stele/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// Exit statuses of stele verify.
const (
	exitFailed     = 1 // a check failed: evidence of tampering or corruption
	exitUnverified = 2 // nothing failed, but some events could not be proven
)

// runVerify is stele verify: offline verification of a bundle or an NDJSON
// export (with --key VKEY FILE), or the monitor of a server's log (with
// --server URL --key APIKEY --state FILE).
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", stderr)
	var key, cpFile, server, stateFile, logKey string
	var quiet bool
	fs.StringVar(&key, "key", "", "offline: the log's verifier key (GET /v1/log/key), as text or a file holding it; monitor: an API key with events:read (or STELE_KEY)")
	fs.StringVar(&cpFile, "checkpoint", "", "offline, NDJSON export: the signed checkpoint file to verify it against (GET /v1/checkpoint, fetched before the export)")
	fs.StringVar(&server, "server", "", "monitor: URL of the Stele server whose log to watch")
	fs.StringVar(&stateFile, "state", "", "monitor: file holding the pinned log key and the last verified checkpoint (created on first use)")
	fs.StringVar(&logKey, "log-key", "", "monitor: pin this verifier key on first use instead of trusting the one the server serves")
	fs.BoolVar(&quiet, "quiet", false, "offline: print only the events that failed and the summary, not a verdict per event (and hold none in memory: use it for large files)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage:\n  stele verify --key VKEY [--checkpoint CHECKPOINT] [--quiet] FILE  (- for standard input)\n  stele verify --server URL --key APIKEY --state FILE [--log-key VKEY]\n\nFlags:")
		fs.PrintDefaults()
	}
	files, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(files) > 0 {
		// Offline: STELE_SERVER and STELE_KEY (an API key) are the
		// environment of the other commands, not a verifier key to use.
		if !hasFlag(args, "server") {
			server = ""
		}
		if !hasFlag(args, "key") {
			key = ""
		}
	} else if key == "" {
		key = os.Getenv("STELE_KEY")
	}
	if server != "" {
		if len(files) > 0 || cpFile != "" {
			return errors.New("--server monitors a live log: give no FILE and no --checkpoint")
		}
		if stateFile == "" {
			return errors.New("the monitor needs --state FILE: it is where the pinned key and the last verified checkpoint are kept")
		}
		return runMonitor(ctx, server, key, stateFile, logKey, stdout)
	}
	if len(files) != 1 {
		fs.Usage()
		return errors.New("give one FILE to verify (or --server to monitor a log)")
	}
	return verifyFile(files[0], key, cpFile, quiet, stdout)
}

// verifyFile verifies one bundle or NDJSON export and prints its verdicts.
func verifyFile(path, key, cpFile string, quiet bool, stdout io.Writer) error {
	vkey, err := readKey(key)
	if err != nil {
		return err
	}
	opts := verify.Options{Key: vkey}
	if cpFile != "" {
		if opts.Checkpoint, err = os.ReadFile(cpFile); err != nil {
			return err
		}
	}
	var f io.Reader = os.Stdin
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return err
		}
		defer file.Close()
		f = file
	}
	opts.OnEvent = func(r verify.Result) { fmt.Fprintln(stdout, formatResult(r)) }
	opts.FailuresOnly = quiet
	rep, err := verify.File(f, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	printSummary(stdout, path, rep)
	switch {
	case rep.Failed > 0 || len(rep.Failures) > 0:
		return exitError(exitFailed)
	case rep.Unverified > 0:
		return exitError(exitUnverified)
	}
	return nil
}

// readKey returns a verifier key given as text or as a file holding it.
func readKey(arg string) (string, error) {
	if arg == "" {
		return "", errors.New("--key VKEY is required: the log's verifier key (GET /v1/log/key), or a file holding it")
	}
	if !strings.Contains(arg, "+") || fileExists(arg) {
		data, err := os.ReadFile(arg)
		if err != nil {
			// The value is not echoed: it may be an API key given by mistake.
			return "", errors.New("--key is neither a log verifier key (<origin>+<hash>+<key>, from GET /v1/log/key; not an API key) nor a readable file holding one")
		}
		arg = string(data)
	}
	return strings.TrimSpace(arg), nil
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

func formatResult(r verify.Result) string {
	where := fmt.Sprintf("line %d", r.Line)
	if r.Seq >= 0 {
		where += fmt.Sprintf(" seq %d", r.Seq)
	}
	if r.ID != "" {
		where += " id " + safeText(r.ID)
	}
	if r.Type != "" {
		where += " " + safeText(r.Type)
	}
	switch r.Status {
	case verify.Verified, verify.Pruned:
		return where + ": " + r.Status.String()
	}
	return where + ": " + r.Status.String() + " " + r.Check + ": " + safeText(r.Detail)
}

func printSummary(w io.Writer, path string, rep *verify.Report) {
	fmt.Fprintf(w, "\n%s: ", path)
	switch rep.Mode {
	case "range":
		fmt.Fprintf(w, "bundle of positions [%d, %d)", rep.Range.From, rep.Range.To)
	case "proofs":
		fmt.Fprint(w, "bundle of selected events with inclusion proofs")
	case "ndjson":
		fmt.Fprint(w, "NDJSON export")
	default:
		fmt.Fprint(w, "unreadable")
	}
	if cp := rep.Checkpoint; cp != nil {
		fmt.Fprintf(w, " of log %s, against its checkpoint of %d events (root %v", safeText(cp.Origin), cp.Size, cp.Root)
		if !cp.Time.IsZero() {
			fmt.Fprintf(w, ", signed %s", cp.Time.Format(time.RFC3339))
		}
		fmt.Fprint(w, ")")
	}
	fmt.Fprintf(w, "\n  %d verified, %d failed, %d unverified, %d not covered by the checkpoint, %d pruned\n",
		rep.Verified, rep.Failed, rep.Unverified, rep.Uncovered, rep.Pruned)
	for _, f := range rep.Failures {
		fmt.Fprintf(w, "  FAILED %s\n", safeText(f.String()))
	}
	if len(rep.Failures) == 0 {
		for _, u := range rep.Unproven {
			fmt.Fprintf(w, "  unverified: %s\n", safeText(u.String()))
		}
	}
	switch {
	case rep.Failed > 0 || len(rep.Failures) > 0:
		fmt.Fprintln(w, "FAILED: the file is not what the log signed")
	case rep.Unverified > 0:
		fmt.Fprintln(w, "UNVERIFIED: nothing failed, but not every event could be proven")
	default:
		fmt.Fprintln(w, "OK: every event checked is in the signed log, unaltered")
	}
}

// runMonitor is one round of the monitor: fetch the log key and the latest
// checkpoint, prove it consistent with the last one verified, save it.
func runMonitor(ctx context.Context, server, apiKey, stateFile, pin string, stdout io.Writer) error {
	if apiKey == "" {
		return errors.New("--key APIKEY is required: an API key with events:read")
	}
	st, err := loadState(stateFile)
	if err != nil {
		return err
	}
	if st.LogKey == "" && pin != "" {
		if st.LogKey, err = readKey(pin); err != nil {
			return err
		}
		st.Origin = strings.SplitN(st.LogKey, "+", 2)[0]
	}
	if st.Server == "" {
		st.Server = server
	}
	get := func(path string) ([]byte, error) { return fetch(ctx, server, apiKey, path) }
	served, err := get("/v1/log/key")
	if err != nil {
		return err
	}
	note, err := get("/v1/checkpoint")
	if err != nil {
		return err
	}
	proof := func(from, to int64) ([]tlog.Hash, error) {
		body, err := get(fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", from, to))
		if err != nil {
			return nil, err
		}
		var p struct{ Hashes []tlog.Hash }
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, fmt.Errorf("malformed consistency proof: %w", err)
		}
		return p.Hashes, nil
	}
	next, summary, err := verify.Advance(st, string(served), note, proof, time.Now())
	var alarm *verify.Alarm
	if errors.As(err, &alarm) {
		fmt.Fprintf(stdout, "ALARM %s: %s\n\n%s", alarm.Check, safeText(alarm.Message), alarm.Evidence)
		fmt.Fprintf(stdout, "\nThe state file %s is unchanged: keep it, with this output, as evidence.\n", stateFile)
		return exitError(exitFailed)
	}
	if err != nil {
		return err
	}
	if err := saveState(stateFile, next); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "OK %s\n", safeText(summary))
	return nil
}

// fetch GETs path from the server with the API key.
func fetch(ctx context.Context, server, apiKey, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(server, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, safeText(strings.TrimSpace(string(body))))
	}
	return body, nil
}

func loadState(path string) (verify.State, error) {
	var st verify.State
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("state file %s is corrupt (%v): restore it from a copy; starting over would trust the server blindly", path, err)
	}
	return st, nil
}

// saveState writes the state atomically: a synced temporary file renamed
// over the old one, then the directory synced, so that a crash leaves the
// old state or the new, never a torn one.
func saveState(path string, st verify.State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
