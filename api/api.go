// Package api is Stele's HTTP JSON API under /v1, plus /healthz, /readyz and
// /metrics. It authenticates every request, takes the workspace from the
// credential alone, validates input before anything is stored, and answers
// every error as {"error":{"code","message","field"}} with the status of its
// kind (errors.go). Handlers never touch storage directly for writes: events
// go through the sequencer, so that one event travels one way.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/sequencer"
)

// SystemWorkspace is the instance's own log: service start and stop,
// workspace creation, and requests that name no workspace. Operators read it.
const SystemWorkspace = "_system"

// Config is the API's typed configuration, parsed and validated in cmd/stele.
type Config struct {
	Store        stele.Store
	Sequencer    *sequencer.Sequencer
	Checkpointer *sequencer.Checkpointer
	Key          *checkpoint.Key
	Logger       *slog.Logger
	// Registry serves /metrics; the API registers its own metrics in it.
	Registry *prometheus.Registry
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Ready reports extra readiness conditions (start-up checks done).
	Ready func() error
}

// Server serves the API.
type Server struct {
	cfg     Config
	store   stele.Store
	seq     *sequencer.Sequencer
	cps     *sequencer.Checkpointer
	key     *checkpoint.Key
	log     *slog.Logger
	now     func() time.Time
	mux     *http.ServeMux
	keys    *keyCache
	cursors cursorCodec
	m       *metrics
}

// New returns the API server.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	s := &Server{
		cfg: cfg, store: cfg.Store, seq: cfg.Sequencer, cps: cfg.Checkpointer, key: cfg.Key, log: cfg.Logger, now: cfg.Now,
		mux: http.NewServeMux(), keys: newKeyCache(), cursors: cursorCodec{key: derive(cfg.Key.MACKey(), "cursor")},
		m: newMetrics(cfg.Registry),
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	// Events.
	s.handle("POST /v1/events", stele.ScopeWrite, s.postEvents)
	s.handle("GET /v1/events", stele.ScopeRead, s.listEvents)
	s.handle("GET /v1/events/{id}", stele.ScopeRead, s.getEvent)
	s.handle("GET /v1/export", stele.ScopeRead, s.exportEvents)
	s.handle("GET /v1/stats/histogram", stele.ScopeRead, s.histogram)
	// The log itself.
	s.handle("GET /v1/checkpoint", scopeAny, s.getCheckpoint)
	s.handle("GET /v1/log/key", scopeAny, s.getLogKey)
	s.handle("GET /v1/proofs/inclusion", stele.ScopeRead, s.getInclusionProof)
	s.handle("GET /v1/proofs/consistency", stele.ScopeRead, s.getConsistencyProof)
	// Administration.
	s.handle("POST /v1/workspaces", stele.ScopeOperator, s.createWorkspace)
	s.handle("GET /v1/workspaces", stele.ScopeOperator, s.listWorkspaces)
	s.handle("POST /v1/keys", stele.ScopeAdmin, s.createKey)
	s.handle("GET /v1/keys", stele.ScopeAdmin, s.listKeys)
	// Unauthenticated.
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /openapi.yaml", serveOpenAPI)
	// Everything else under /v1 is an unknown route: a JSON 404 (or 405).
	s.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, stele.Errorf(stele.KindNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v)
			writeError(w, r, stele.Errorf(stele.KindInternal, "internal error"))
		}
	}()
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// Mux exposes the router so that other packages (the dashboard) can mount
// their handlers beside the API.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// handlerFunc is an API handler: it returns an error instead of writing one.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p *Principal) error

// handle mounts h on pattern behind authentication and the scope check.
func (s *Server) handle(pattern, scope string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		p, err := s.authenticate(r)
		if err == nil {
			err = p.require(scope)
			if err != nil {
				s.denied(r, p, err)
			}
		}
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			if stele.KindOf(err) == stele.KindInternal {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, r, err)
		}
		s.m.requests.WithLabelValues(pattern, http.StatusText(statusOf(err))).Inc()
		s.m.latency.WithLabelValues(pattern).Observe(s.now().Sub(start).Seconds())
	})
}

// record appends an event the service itself writes (a read of the log, a
// key change, a denial) to ws's log and waits for its commit.
func (s *Server) record(ctx context.Context, ws string, b stele.EventBody) error {
	b.Category = stele.CategoryOf(b.Type)
	if b.Outcome == "" {
		b.Outcome = stele.OutcomeSuccess
	}
	_, err := s.seq.Append(ctx, ws, []stele.Draft{{Body: b}}, stele.Emitter{Workspace: ws})
	return err
}
