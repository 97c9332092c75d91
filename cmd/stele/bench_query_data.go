package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/api"
	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/sequencer"
	"github.com/stele-log/stele/store/sqlite"
)

// The read benchmarks (stele bench query, stele bench export) run against a
// large log made here: the real server bootstraps a data directory, then
// generated events go straight through the store — sealed, hashed into the
// tree and MACed exactly as the write path does, in large transactions —
// and a signed checkpoint covers them, so that the server starts on them
// without re-verifying. The server then runs as its own process, so that
// its memory is measured alone.

const benchName = "bench.local"

// benchData prepares (or reuses) a data directory holding n generated
// events in the default workspace, and returns the operator key.
func benchData(ctx context.Context, dir string, n int, stderr io.Writer) (string, error) {
	keyFile := filepath.Join(dir, "bench-operator.key")
	if raw, err := os.ReadFile(keyFile); err == nil {
		fmt.Fprintf(stderr, "reusing the log in %s\n", dir)
		return strings.TrimSpace(string(raw)), nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	_, _, key := api.NewKeySecret("default")
	srv, err := startBenchServer(ctx, benchServe{DataDir: dir, Key: key, Args: []string{"--name", benchName}})
	if err != nil {
		return "", err
	}
	if err := srv.stop(); err != nil {
		return "", err
	}
	if err := generateEvents(ctx, dir, n, stderr); err != nil {
		return "", err
	}
	return key, os.WriteFile(keyFile, []byte(key+"\n"), 0o600)
}

// generateEvents appends n eventgen events, spread over the 90 days before
// now, to the default workspace of the database in dir.
func generateEvents(ctx context.Context, dir string, n int, stderr io.Writer) error {
	key, _, err := checkpoint.LoadOrCreateKey(filepath.Join(dir, "signing.key"), benchName)
	if err != nil {
		return err
	}
	store, err := sqlite.Open(ctx, filepath.Join(dir, "stele.db"), sqlite.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	const ws = "default"
	head, frontier, err := sequencer.Recover(ctx, store, key, ws)
	if err != nil {
		return err
	}
	g := eventgen.New(2026)
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UTC()
	received := head.LastReceived.Add(time.Millisecond)
	start := time.Now()
	const perTx = 5000
	for done := 0; done < n; {
		k := min(perTx, n-done)
		entries := make([]stele.Entry, k)
		for i := range entries {
			b := g.Event(now.Add(-time.Duration(r.Int64N(int64(90*24*time.Hour)))), true)
			received = received.Add(time.Microsecond)
			b.ReceivedAt = received
			b.Emitter = stele.Emitter{Workspace: ws, KeyID: "bench"}
			canon, err := stele.Canonical(&b)
			if err != nil {
				return err
			}
			leaf := stele.LeafHash(canon)
			seq := frontier.Size()
			hashes, err := frontier.Append(leaf)
			if err != nil {
				return err
			}
			entries[i] = stele.Entry{Seq: seq, Body: &b, Canonical: canon, TreeHashes: hashes, MAC: sequencer.MAC(key.MACKey(), ws, seq, leaf)}
		}
		next := stele.Head{Size: frontier.Size(), Root: frontier.Root(), LastReceived: received}
		err := store.Update(ctx, func(tx stele.AppendTx) error {
			if _, err := tx.LockHead(ctx, ws); err != nil {
				return err
			}
			return tx.Append(ctx, ws, entries, next)
		})
		if err != nil {
			return err
		}
		done += k
		fmt.Fprintf(stderr, "\rgenerating: %d of %d events (%.0f/s)", done, n, float64(done)/time.Since(start).Seconds())
	}
	fmt.Fprintln(stderr)
	prev := int64(-1)
	if cp, err := store.LatestCheckpoint(ctx, ws); err == nil {
		prev = cp.Size
	} else if !errors.Is(err, stele.ErrNotFound) {
		return err
	}
	size, root := frontier.Size(), frontier.Root()
	at := time.Now().UTC().Add(2 * time.Second).Truncate(time.Second)
	note, err := key.Sign(key.Origin(ws), size, root, at)
	if err != nil {
		return err
	}
	return store.AddCheckpoint(ctx, stele.Checkpoint{Workspace: ws, Size: size, Root: root, Time: at, Note: note}, prev)
}

// peakRSS returns the peak resident set of process pid (VmHWM), in bytes;
// resetPeakRSS starts a new peak from the current size.
func peakRSS(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}
