package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/api"
	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/integrity"
	"github.com/stele-log/stele/sequencer"
)

// runFullChecks is the server's own full check (RELIABILITY.md 2.2: the
// service must raise the alarm itself, not only stele check): every log is
// checked as stele check does, first min(every, 1 minute) after start and
// then every interval, beside the traffic. The start-up self-check covers
// only the right edge of each tree; this covers the middle. A workspace
// that fails stops taking appends, as at start-up, with an INTEGRITY ALARM
// in the server log, an integrity.alarm event in the system log and the
// gauge stele_full_check_failing_workspaces. It returns when ctx is done;
// every 0 disables it.
func runFullChecks(ctx context.Context, every time.Duration, store stele.Store, key *checkpoint.Key, seq *sequencer.Sequencer, srv *api.Server,
	logger *slog.Logger, reg prometheus.Registerer) {
	if every <= 0 {
		return
	}
	failing := prometheus.NewGauge(prometheus.GaugeOpts{Name: "stele_full_check_failing_workspaces",
		Help: "Workspaces whose log failed the latest background full integrity check (alert when above 0)."})
	completed := prometheus.NewGauge(prometheus.GaugeOpts{Name: "stele_full_check_completed_timestamp_seconds",
		Help: "When the latest background full integrity check completed (alert when older than two intervals)."})
	reg.MustRegister(failing, completed)
	opts := integrity.Options{Instance: key.Name(), PublicKey: key.PublicKey(), MACKey: key.MACKey()}
	alarmed := map[string]bool{}
	wait := min(every, time.Minute)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = every
		rep, err := integrity.Run(ctx, store, opts)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			logger.Error("the full integrity check could not run; it will run again", "err", err, "next", every)
			continue
		}
		bad := 0
		for _, w := range rep.Workspaces {
			if !w.OK() {
				bad++
			}
		}
		failing.Set(float64(bad)) // before the alarms, which readers of the log wait for
		completed.SetToCurrentTime()
		for _, w := range rep.Workspaces {
			if w.OK() || alarmed[w.ID] {
				continue
			}
			alarmed[w.ID] = true
			f := w.Findings[0]
			seq.Break(w.ID, &stele.ErrIntegrity{Workspace: w.ID, Seq: f.Seq, Check: string(f.Check), Detail: f.Detail})
			if err := srv.RecordSystem(ctx, "integrity.alarm", map[string]any{"workspace": w.ID, "seq": f.Seq, "check": string(f.Check),
				"detail": f.Detail, "findings": len(w.Findings) + w.Dropped}); err != nil {
				logger.Error("couldn't record the integrity alarm in the system log", "err", err)
			}
			// Last, once appends are stopped and the alarm recorded.
			logger.Error("INTEGRITY ALARM (full check): this workspace accepts no appends until an operator has checked it (stele check)",
				"workspace", w.ID, "seq", f.Seq, "check", f.Check, "detail", f.Detail, "findings", len(w.Findings)+w.Dropped)
		}
		logger.Info("full integrity check done", "events", rep.Events, "elapsed", rep.Elapsed.Round(time.Millisecond), "ok", rep.OK())
	}
}
