// Package api is Stele's HTTP JSON API under /v1, plus /healthz, /readyz and
// /metrics. It authenticates every request, takes the workspace from the
// credential alone, validates input before anything is stored, and answers
// every error as {"error":{"code","message","field"}} with the status of its
// kind (errors.go). Handlers never touch storage directly for writes: events
// go through the sequencer, so that one event travels one way.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
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
	// Limits are the abuse limits; zero value: DefaultLimits.
	Limits *Limits
	// KeyRotationGrace is how long a rotated key's old secret keeps
	// working when the request does not say (default 0: not at all).
	KeyRotationGrace time.Duration
	// CheckpointWait bounds POST /v1/events?wait=checkpoint (default 10 s).
	CheckpointWait time.Duration
}

// Server serves the API.
type Server struct {
	cfg      Config
	store    stele.Store
	seq      *sequencer.Sequencer
	cps      *sequencer.Checkpointer
	key      *checkpoint.Key
	log      *slog.Logger
	now      func() time.Time
	mux      *http.ServeMux
	keys     *keyCache
	cursors  cursorCodec
	m        *metrics
	failures *failureLog
	logins   *loginThrottle
	ingest   *rateLimiter // per credential
	reads    *rateLimiter // per credential

	registered []Route // by handleAs and handlePublic, for Routes
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
	if cfg.Limits == nil {
		l := DefaultLimits
		cfg.Limits = &l
	}
	if cfg.CheckpointWait <= 0 {
		cfg.CheckpointWait = defaultCheckpointWait
	}
	if cfg.Limits.FailuresPerMinute <= 0 {
		cfg.Limits.FailuresPerMinute = DefaultLimits.FailuresPerMinute
	}
	s := &Server{
		cfg: cfg, store: cfg.Store, seq: cfg.Sequencer, cps: cfg.Checkpointer, key: cfg.Key, log: cfg.Logger, now: cfg.Now,
		mux: http.NewServeMux(), keys: newKeyCache(), cursors: cursorCodec{key: derive(cfg.Key.MACKey(), "cursor")},
		m:      newMetrics(cfg.Registry),
		logins: newLoginThrottle(*cfg.Limits),
		ingest: newRateLimiter(cfg.Limits.IngestPerSecond),
		reads:  newRateLimiter(cfg.Limits.ReadPerSecond),
	}
	s.failures = newFailureLog(s)
	s.routes()
	return s
}

// Close stops the API's background work: it records the pending
// summaries of refusals. Call it after the HTTP server stopped and before
// the sequencer closes.
func (s *Server) Close() { s.failures.Close() }

func (s *Server) routes() {
	// Events.
	s.handle("POST /v1/events", stele.ScopeWrite, s.postEvents)
	s.handle("GET /v1/events", stele.ScopeRead, s.listEvents)
	s.handle("GET /v1/events/{id}", stele.ScopeRead, s.getEvent)
	s.handle("GET /v1/export", stele.ScopeRead, s.exportEvents)
	s.handle("GET /v1/stats/histogram", stele.ScopeRead, s.histogram)
	s.handle("GET /v1/stats/count", stele.ScopeRead, s.countEvents)
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
	s.handle("GET /v1/keys/{id}", stele.ScopeAdmin, s.getKey)
	s.handle("POST /v1/keys/{id}/rotate", stele.ScopeAdmin, s.rotateKey)
	s.handle("DELETE /v1/keys/{id}", stele.ScopeAdmin, s.revokeKey)
	s.handle("POST /v1/users", stele.ScopeAdmin, s.createUser)
	s.handle("GET /v1/users", stele.ScopeAdmin, s.listUsers)
	s.handle("GET /v1/users/{id}", stele.ScopeAdmin, s.getUser)
	s.handle("PATCH /v1/users/{id}", stele.ScopeAdmin, s.updateUser)
	// Sessions.
	s.handlePublic("POST /v1/auth/login", s.login)
	s.handle("POST /v1/auth/logout", scopeAny, s.logout)
	s.handle("GET /v1/auth/session", scopeAny, s.session)
	// The instance's own log, for operators.
	s.handleAs("GET /v1/system/events", stele.ScopeOperator, SystemWorkspace, s.listEvents)
	s.handleAs("GET /v1/system/events/{id}", stele.ScopeOperator, SystemWorkspace, s.getEvent)
	s.handleAs("GET /v1/system/export", stele.ScopeOperator, SystemWorkspace, s.exportEvents)
	s.handleAs("GET /v1/system/checkpoint", stele.ScopeOperator, SystemWorkspace, s.getCheckpoint)
	s.handleAs("GET /v1/system/log/key", stele.ScopeOperator, SystemWorkspace, s.getLogKey)
	s.handleAs("GET /v1/system/proofs/inclusion", stele.ScopeOperator, SystemWorkspace, s.getInclusionProof)
	s.handleAs("GET /v1/system/proofs/consistency", stele.ScopeOperator, SystemWorkspace, s.getConsistencyProof)
	// Unauthenticated.
	s.handlePublic("GET /healthz", s.healthz)
	s.handlePublic("GET /readyz", s.readyz)
	s.handlePublic("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}).ServeHTTP)
	s.handlePublic("GET /openapi.yaml", serveOpenAPI)
	// Everything else under /v1: 405 for a known path, 404 otherwise.
	s.mux.HandleFunc("/v1/", s.noRoute)
}

// noRoute answers a request under /v1/ that no route takes: 405 with Allow
// when the path exists for other methods — an attempt to PUT, PATCH or
// DELETE an event, a checkpoint or a proof (RELIABILITY.md TAM-19) — and
// 404 otherwise. Both are recorded as the other refusals are: a usable
// credential's attempt as access.denied in its workspace, anything else as
// api_key.rejected (aggregated under floods, AUT-14).
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	allowed := s.allowedMethods(r)
	p, rej, _ := s.authenticate(r)
	switch {
	case rej != nil:
		s.failures.rejected(r, rej)
	case p != nil && len(allowed) > 0:
		s.failures.denied(r, p, "method_not_allowed", nil)
	case p != nil:
		s.failures.denied(r, p, "no_such_endpoint", nil)
	}
	if len(allowed) == 0 {
		writeError(w, r, stele.Errorf(stele.KindNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
		return
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeJSON(w, http.StatusMethodNotAllowed, errorBody{errorDetail{Code: "method_not_allowed",
		Message: r.Method + " is not allowed on " + r.URL.Path + ": the log is append-only; allowed: " + strings.Join(allowed, ", ")}})
}

// allowedMethods returns the methods that some route serves r's path with.
func (s *Server) allowedMethods(r *http.Request) []string {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/v1/" && pattern != "" {
			allowed = append(allowed, m)
		}
	}
	return allowed
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

// Route is one endpoint of the API as registered: its ServeMux pattern
// ("GET /v1/events/{id}"), whether it requires a credential, and the scope
// that credential must hold (empty: any authenticated principal).
type Route struct {
	Pattern string
	Public  bool
	Scope   string
}

// Routes lists the API's endpoints in registration order (not the
// dashboard's pages, nor the JSON 404 for unknown paths under /v1/). The
// OpenAPI document is tested against it.
func (s *Server) Routes() []Route { return slices.Clone(s.registered) }

// handlePublic mounts h on pattern without authentication.
func (s *Server) handlePublic(pattern string, h http.HandlerFunc) {
	s.registered = append(s.registered, Route{Pattern: pattern, Public: true})
	s.mux.HandleFunc(pattern, h)
}

// handlerFunc is an API handler. It gets the authenticated principal and
// the store as the principal's workspace sees it, and returns an error
// instead of writing one.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error

// handle mounts h on pattern behind authentication, the scope check and the
// rate limit, in the principal's workspace.
func (s *Server) handle(pattern, scope string, h handlerFunc) {
	s.handleAs(pattern, scope, "", h)
}

// handleAs is handle with the workspace fixed to ws (for the operator's
// view of the system log) instead of the principal's.
func (s *Server) handleAs(pattern, scope, ws string, h handlerFunc) {
	s.registered = append(s.registered, Route{Pattern: pattern, Scope: scope})
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		err := s.serveAuthenticated(w, r, scope, ws, h)
		if err != nil {
			if stele.KindOf(err) == stele.KindInternal {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, r, err)
		}
		status := "2xx"
		if err != nil {
			status = strconv.Itoa(statusOf(err))
		}
		s.m.requests.WithLabelValues(pattern, status).Inc()
		s.m.latency.WithLabelValues(pattern).Observe(s.now().Sub(start).Seconds())
	})
}

func (s *Server) serveAuthenticated(w http.ResponseWriter, r *http.Request, scope, ws string, h handlerFunc) error {
	p, rej, err := s.authenticate(r)
	if rej != nil {
		s.failures.rejected(r, rej)
	}
	if err != nil {
		if p != nil && stele.KindOf(err) == stele.KindForbidden {
			s.failures.denied(r, p, "csrf", nil)
		}
		return err
	}
	if err := p.require(scope); err != nil {
		s.failures.denied(r, p, "scope", nil)
		return err
	}
	limiter, class := s.reads, "read"
	if !safeMethod(r.Method) {
		limiter, class = s.ingest, "write"
	}
	if wait := limiter.allow(p.credential(), s.now()); wait > 0 {
		return &stele.Error{Kind: stele.KindRateLimited, Message: "rate limit for " + class + " requests exceeded", RetryAfter: int(wait.Seconds()) + 1}
	}
	if ws == "" {
		ws = p.Workspace
	}
	err = h(w, r, p, stele.In(s.store, ws))
	var foreign *stele.ForeignError
	if errors.As(err, &foreign) {
		s.failures.denied(r, p, "foreign", foreign)
	}
	return err
}

// credential names p's credential for rate limits.
func (p *Principal) credential() string {
	if p.User != nil {
		return "user:" + p.User.ID
	}
	return "key:" + p.KeyID
}

// peerIP is the socket's peer address, whatever the headers say.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// recordAbout appends an event the service writes about principal p's
// action to ws's log, and waits for its commit.
func (s *Server) recordAbout(ctx context.Context, ws string, p *Principal, typ string, res *stele.Resource, context map[string]any) error {
	var raw []byte
	if context != nil {
		var err error
		if raw, err = json.Marshal(context); err != nil {
			return err
		}
	}
	if err := s.record(ctx, ws, stele.EventBody{Type: typ, Actor: p.actor(), IP: p.IP, Resource: res, Context: raw}); err != nil {
		return &stele.Error{Kind: stele.KindUnavailable, Message: "the change could not be recorded in the audit log", RetryAfter: 1, Err: err}
	}
	return nil
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
