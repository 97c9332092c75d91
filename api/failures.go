package api

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/stele-log/stele"
)

// failureLog records refusals — api_key.rejected, access.denied,
// user.login_failed — as events, without letting a flood of them grow the
// log without bound (RELIABILITY.md AUT-14). Per workspace, event type and
// source address, the first failuresPerWindow refusals of each minute are
// logged one by one; the rest are counted and logged as one event of the
// same type whose context says {"aggregated": true, "count": n}, so that
// counts stay exact: the number of refusals is the number of individual
// events plus the sum of the aggregated counts.
//
// Refusals are recorded off the request path by one goroutine with a
// bounded queue; a refusal that finds the queue full is counted into its
// window's aggregate instead of being dropped.
type failureLog struct {
	s       *Server
	queue   chan failureEvent
	mu      sync.Mutex // guards windows
	windows map[failureKey]*failureWindow
	done    chan struct{}
}

const (
	failureWindowLen  = time.Minute
	maxFailureWindows = 10000 // beyond this many sources, aggregate by workspace and type
)

type failureKey struct{ ws, typ, ip string }

type failureWindow struct {
	start      time.Time
	logged     int
	suppressed int
	sample     stele.EventBody // the last suppressed refusal, for the summary
}

type failureEvent struct {
	ws   string
	body stele.EventBody
}

func newFailureLog(s *Server) *failureLog {
	f := &failureLog{s: s, queue: make(chan failureEvent, 1000), windows: map[failureKey]*failureWindow{}, done: make(chan struct{})}
	go f.run()
	return f
}

// note records one refusal in ws.
func (f *failureLog) note(ws string, b stele.EventBody) {
	b.Outcome = stele.OutcomeFailure
	now := f.s.now()
	f.mu.Lock()
	k := failureKey{ws, b.Type, b.IP}
	if _, ok := f.windows[k]; !ok && len(f.windows) >= maxFailureWindows {
		k.ip = "*"
	}
	w := f.windows[k]
	if w == nil || now.Sub(w.start) >= failureWindowLen {
		if w != nil && w.suppressed > 0 {
			f.enqueueSummary(k, w, now) // an old window closes as a new one opens
		}
		w = &failureWindow{start: now}
		f.windows[k] = w
	}
	individual := w.logged < f.s.cfg.Limits.FailuresPerMinute
	if individual {
		select {
		case f.queue <- failureEvent{ws: ws, body: b}:
			f.s.m.refusalsPending.Inc()
			w.logged++
		default:
			individual = false
		}
	}
	if !individual {
		w.suppressed++
		w.sample = b
	}
	f.mu.Unlock()
}

// enqueueSummary queues the aggregate of a closing window; f.mu is held.
func (f *failureLog) enqueueSummary(k failureKey, w *failureWindow, now time.Time) {
	b := w.sample
	ctx := map[string]any{"aggregated": true, "count": w.suppressed, "window_start": w.start.UTC(), "window_end": now.UTC(), "individually_logged": w.logged}
	b.Context, _ = json.Marshal(ctx)
	b.Time = time.Time{}
	select {
	case f.queue <- failureEvent{ws: k.ws, body: b}:
		f.s.m.refusalsPending.Inc()
	default:
		// Keep counting: the window stays open and is summarized later.
		return
	}
	delete(f.windows, k)
}

// flush closes every window older than the window length (all of them when
// force is set) into its summary.
func (f *failureLog) flush(force bool) {
	now := f.s.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, w := range f.windows {
		if force || now.Sub(w.start) >= failureWindowLen {
			if w.suppressed > 0 {
				f.enqueueSummary(k, w, now)
			} else {
				delete(f.windows, k)
			}
		}
	}
}

func (f *failureLog) run() {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-f.queue:
			if !ok {
				close(f.done)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := f.s.record(ctx, e.ws, e.body); err != nil {
				f.s.log.Error("couldn't record a refusal", "workspace", e.ws, "type", e.body.Type, "err", err)
			}
			cancel()
			f.s.m.refusalsPending.Dec()
		case <-tick.C:
			f.flush(false)
		}
	}
}

// Close summarizes open windows and records everything queued.
func (f *failureLog) Close() {
	f.flush(true)
	close(f.queue)
	<-f.done
}

// rejected records an API request whose credential was refused: in the
// system log, and in the workspace its key's prefix names when that exists.
func (f *failureLog) rejected(r *http.Request, rej *rejection) {
	ip := f.s.clientIP(r)
	id := rej.keyID
	if id == "" {
		id = "unknown"
	}
	ctx, _ := json.Marshal(map[string]any{"method": r.Method, "path": r.URL.Path, "reason": rej.reason, "workspace_named": rej.workspace})
	b := stele.EventBody{Type: "api_key.rejected", Actor: stele.Actor{Type: stele.ActorAPIKey, ID: id}, IP: ip, Context: ctx,
		Resource: &stele.Resource{Type: "endpoint", ID: r.Method + " " + r.URL.Path}}
	f.note(SystemWorkspace, b)
	if rej.workspace != "" && rej.workspace != SystemWorkspace {
		if _, err := f.s.store.Workspace(r.Context(), rej.workspace); err == nil {
			f.note(rej.workspace, b)
		}
	}
}

// denied records a refusal of an authenticated principal: in its
// workspace; and, for a reference to another workspace's data, also in the
// system log and — without the caller's identity — in the target workspace
// (RELIABILITY.md D7).
func (f *failureLog) denied(r *http.Request, p *Principal, reason string, foreign *stele.ForeignError) {
	detail := map[string]any{"method": r.Method, "path": r.URL.Path, "reason": reason}
	if foreign != nil {
		detail["target"] = map[string]string{"kind": foreign.Kind, "id": foreign.ID}
	}
	ctx, _ := json.Marshal(detail)
	b := stele.EventBody{Type: "access.denied", Actor: p.actor(), IP: p.IP, Context: ctx,
		Resource: &stele.Resource{Type: "endpoint", ID: r.Method + " " + r.URL.Path}}
	f.note(p.Workspace, b)
	if foreign == nil {
		return
	}
	sys := b
	sysCtx, _ := json.Marshal(map[string]any{"method": r.Method, "path": r.URL.Path, "reason": reason, "from_workspace": p.Workspace,
		"target_workspace": foreign.Target, "target": map[string]string{"kind": foreign.Kind, "id": foreign.ID}})
	sys.Context = sysCtx
	f.note(SystemWorkspace, sys)
	victimCtx, _ := json.Marshal(map[string]any{"reason": "another workspace referred to this " + foreign.Kind, "method": r.Method, "path": r.URL.Path,
		"target": map[string]string{"kind": foreign.Kind, "id": foreign.ID}})
	f.note(foreign.Target, stele.EventBody{Type: "access.denied", Actor: stele.Actor{Type: stele.ActorSystem, ID: "stele", Name: "another workspace"},
		IP: p.IP, Context: victimCtx, Resource: &stele.Resource{Type: foreign.Kind, ID: foreign.ID}})
}

// loginFailed records a failed login: in the user's workspace when the
// email exists, in the system log otherwise.
func (f *failureLog) loginFailed(ctx context.Context, email, ip, reason string) {
	ws := SystemWorkspace
	if u, err := f.s.store.UserByEmail(ctx, email); err == nil {
		ws = u.Workspace
	}
	detail, _ := json.Marshal(map[string]any{"reason": reason})
	f.note(ws, stele.EventBody{Type: "user.login_failed", Actor: stele.Actor{Type: stele.ActorUser, ID: email}, IP: ip, Context: detail})
}
