package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/api"
	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/eventgen"
	"github.com/stele-log/stele/sequencer"
	"github.com/stele-log/stele/web"
	"golang.org/x/sync/errgroup"
)

// serveConfig is the typed configuration of `stele serve`.
type serveConfig struct {
	DataDir        string         // --data: where the embedded database and signing key live
	DB             string         // --db: a postgres:// URL; empty means the embedded SQLite database
	Listen         string         // --listen: address of the HTTP API and dashboard
	Name           string         // --name: instance name, the prefix of every log origin
	SigningKey     string         // --signing-key: checkpoint signing key file (default <data>/signing.key)
	Demo           bool           // --demo: fill a new workspace with sample events
	TrustedProxies []netip.Prefix // --trusted-proxy: peers whose X-Forwarded-For is believed
	TLSCert        string         // --tls-cert: serve HTTPS with this certificate
	TLSKey         string         // --tls-key: and this private key
	LogLevel       slog.Level     // --log-level
	Limits         api.Limits     // --rate-ingest, --rate-read, --login-rate
	KeyGrace       time.Duration  // --key-rotation-grace: default life of a rotated key's old secret
	FullCheckEvery time.Duration  // --full-check-every: interval of the background full check (0: never)
	Pprof          string         // --pprof: serve net/http/pprof on this address (off by default)
	// Bootstrap holds STELE_ADMIN_KEY, STELE_ADMIN_EMAIL and
	// STELE_ADMIN_PASSWORD, used at first start only.
	Bootstrap api.BootstrapConfig
}

func parseServe(args []string, stderr io.Writer) (serveConfig, error) {
	fs := newFlags("serve", stderr)
	var c serveConfig
	var proxies, level string
	fs.StringVar(&c.DataDir, "data", "./stele-data", "directory of the embedded database and signing key")
	fs.StringVar(&c.DB, "db", "", "PostgreSQL URL (postgres://...); default: the embedded SQLite database in --data")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "address to serve the API and dashboard on")
	fs.StringVar(&c.Name, "name", "stele.local", "instance name: prefix of every log origin (<name>/<workspace>); fixed at first start")
	fs.StringVar(&c.SigningKey, "signing-key", "", "checkpoint signing key file, created (mode 0600) if missing (default <data>/signing.key)")
	fs.BoolVar(&c.Demo, "demo", false, "fill a new workspace with the reference customer's sample events")
	fs.StringVar(&proxies, "trusted-proxy", "", "comma-separated CIDRs of proxies whose X-Forwarded-For is trusted")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve HTTPS")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS private key file (PEM)")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	c.Limits = api.DefaultLimits
	fs.Float64Var(&c.Limits.IngestPerSecond, "rate-ingest", c.Limits.IngestPerSecond, "state-changing requests (appends, administration) per second per API key or signed-in user (0: unlimited)")
	fs.Float64Var(&c.Limits.ReadPerSecond, "rate-read", c.Limits.ReadPerSecond, "read requests per second per API key or user (0: unlimited)")
	fs.IntVar(&c.Limits.LoginsPerMinutePerIP, "login-rate", c.Limits.LoginsPerMinutePerIP, "login attempts per minute per source address")
	fs.IntVar(&c.Limits.FailuresPerMinute, "failures-logged", c.Limits.FailuresPerMinute, "refusals per minute, workspace and source address logged one by one before the rest are aggregated")
	fs.DurationVar(&c.KeyGrace, "key-rotation-grace", 0, "how long a rotated API key's old secret keeps working unless the rotation says otherwise")
	fs.DurationVar(&c.FullCheckEvery, "full-check-every", 24*time.Hour, "interval of the background full integrity check of every log (as stele check), the first a minute after start (0: never)")
	fs.StringVar(&c.Pprof, "pprof", "", "serve Go profiles (net/http/pprof) on this address, e.g. 127.0.0.1:6060; off by default, never expose it")
	if err := parse(fs, args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.SigningKey == "" {
		c.SigningKey = filepath.Join(c.DataDir, "signing.key")
	}
	if !checkpoint.ValidName(c.Name) {
		return c, fmt.Errorf("--name %q: use a host name such as audit.example.com (no spaces, '+' or '/')", c.Name)
	}
	for _, p := range strings.Split(proxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			a, err2 := netip.ParseAddr(p)
			if err2 != nil {
				return c, fmt.Errorf("--trusted-proxy %q: not a CIDR prefix or address", p)
			}
			prefix = netip.PrefixFrom(a, a.BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix.Masked())
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return c, errors.New("--tls-cert and --tls-key go together")
	}
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return c, fmt.Errorf("--log-level: %w", err)
	}
	c.Bootstrap = api.BootstrapConfig{AdminKey: os.Getenv("STELE_ADMIN_KEY"), AdminEmail: os.Getenv("STELE_ADMIN_EMAIL"),
		AdminPassword: os.Getenv("STELE_ADMIN_PASSWORD")}
	return c, nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stdout, stderr, nil)
}

// serve runs the server until ctx is done, then shuts down in order: stop
// accepting, finish requests, log the stop, drain the write path, sign the
// final checkpoints, close the store. ready, if set, receives the bound
// address once the server accepts connections.
func serve(ctx context.Context, cfg serveConfig, stdout, stderr io.Writer, ready func(addr string)) error {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("couldn't create the data directory: %w", err)
	}
	dashboard, err := web.New()
	if err != nil {
		return fmt.Errorf("couldn't prepare the dashboard: %w", err)
	}
	key, keyCreated, err := checkpoint.LoadOrCreateKey(cfg.SigningKey, cfg.Name)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg.DataDir, cfg.DB, logger)
	if err != nil {
		return err
	}
	defer store.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerStoreMetrics(ctx, reg, store)
	m := sequencer.NewMetrics(reg)
	cps := sequencer.NewCheckpointer(store, key, nil, logger, m)
	seq := sequencer.New(store, key.MACKey(), sequencer.Config{Lanes: writeLanes(cfg.DB), Logger: logger, OnCommit: cps.Committed, Metrics: m})
	var started atomic.Bool
	var guards atomic.Pointer[error] // set when the database's guards are missing (TAM-22)
	srv := api.New(api.Config{Store: store, Sequencer: seq, Checkpointer: cps, Key: key, Logger: logger, Registry: reg,
		TrustedProxies: cfg.TrustedProxies, Limits: &cfg.Limits, KeyRotationGrace: cfg.KeyGrace, Ready: func() error {
			if !started.Load() {
				return errors.New("start-up self-check in progress")
			}
			if g := guards.Load(); g != nil {
				return *g
			}
			return nil
		}})
	dashboard.Mount(srv.Mux())
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stele_checkpoint_lag_max_seconds",
		Help: "Longest time any committed event has waited for a checkpoint."}, func() float64 {
		var worst time.Duration
		for _, d := range cps.Lag() {
			worst = max(worst, d)
		}
		return worst.Seconds()
	}))

	cpCtx, stopCheckpointer := context.WithCancel(context.Background())
	cpDone := make(chan struct{})
	go func() { cps.Run(cpCtx); close(cpDone) }()
	drain := func() {
		srv.Close()
		seq.Close()
		stopCheckpointer()
		<-cpDone
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := cps.Flush(fctx); err != nil {
			logger.Error("final checkpoint", "err", err)
		}
		cancel()
	}

	boot, err := bootstrap(ctx, srv, store, cfg.Bootstrap)
	if err != nil {
		drain()
		return err
	}
	if err := selfCheck(ctx, store, key, seq, cps, logger); err != nil {
		drain()
		return err
	}
	guardState := "in place"
	if err := checkGuards(ctx, store, logger); err != nil {
		guards.Store(&err)
		guardState = err.Error()
	}
	var demoKey string
	if cfg.Demo {
		if demoKey, err = fillDemo(ctx, srv, store, seq); err != nil {
			drain()
			return err
		}
	}
	if err := srv.RecordSystem(ctx, "service.started", map[string]any{"instance": key.Name(), "pid": os.Getpid(), "database_guards": guardState}); err != nil {
		drain()
		return fmt.Errorf("couldn't log the service start: %w", err)
	}

	if cfg.Pprof != "" {
		stopPprof, err := servePprof(cfg.Pprof, logger)
		if err != nil {
			drain()
			return err
		}
		defer stopPprof()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		drain()
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,  // slow headers (slowloris) lose their connection
		ReadTimeout:       60 * time.Second,  // a 5 MiB body on a slow link; bounds idle uploads
		IdleTimeout:       120 * time.Second, // keep-alive connections are cheap but not free
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// No WriteTimeout: exports stream for as long as the client reads.
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			ln.Close()
			drain()
			return fmt.Errorf("couldn't load the TLS certificate: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, hs.TLSConfig)
		scheme = "https"
	}
	url := scheme + "://" + ln.Addr().String()
	printBanner(stdout, url, key, keyCreated, boot, demoKey)
	started.Store(true)
	if ready != nil {
		ready(ln.Addr().String())
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		runFullChecks(gctx, cfg.FullCheckEvery, store, key, seq, srv, logger, reg)
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		logger.Info("shutting down: no new requests; finishing those in flight")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	})
	serveErr := g.Wait()
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := srv.RecordSystem(rctx, "service.stopped", map[string]any{"instance": key.Name(), "pid": os.Getpid()}); err != nil {
		logger.Error("couldn't log the service stop", "err", err)
	}
	cancel()
	drain()
	logger.Info("stopped; every accepted event is committed")
	return serveErr
}

// bootResult is what a first start created.
type bootResult struct {
	created bool
	api.BootstrapResult
}

// bootstrap creates, on first start, the system log, the default workspace,
// its operator key and its first user.
func bootstrap(ctx context.Context, srv *api.Server, store stele.Store, cfg api.BootstrapConfig) (bootResult, error) {
	if _, err := store.Workspace(ctx, "default"); err == nil {
		return bootResult{}, nil
	} else if !errors.Is(err, stele.ErrNotFound) {
		return bootResult{}, err
	}
	res, err := api.Bootstrap(ctx, srv, cfg)
	if err != nil {
		return bootResult{}, err
	}
	return bootResult{created: true, BootstrapResult: res}, nil
}

// selfCheck verifies every log before the server takes traffic (DUR-05).
// A log that fails stops accepting appends, loudly; the others serve.
func selfCheck(ctx context.Context, store stele.Store, key *checkpoint.Key, seq *sequencer.Sequencer, cps *sequencer.Checkpointer, logger *slog.Logger) error {
	all, err := store.Workspaces(ctx)
	if err != nil {
		return err
	}
	for _, w := range all {
		head, f, err := sequencer.Recover(ctx, store, key, w.ID)
		var integrity *stele.ErrIntegrity
		if errors.As(err, &integrity) {
			logger.Error("INTEGRITY ALARM at start-up: this workspace accepts no appends until an operator has checked it (stele check)",
				"workspace", w.ID, "seq", integrity.Seq, "check", integrity.Check, "detail", integrity.Detail)
			seq.Break(w.ID, err)
			continue
		}
		if err != nil {
			return fmt.Errorf("couldn't check workspace %s: %w", w.ID, err)
		}
		seq.Prime(w.ID, head, f)
		cps.Committed(w.ID, head) // signs any tail a crash left unsigned
	}
	return nil
}

// checkGuards reports the database's missing append-only guards (TAM-22)
// loudly. The server still starts — the signed tree, not the guards, makes
// tampering evident, and refusing to start would hide the log from its
// readers — but /readyz answers 503 naming them until they are restored
// (stele check --restore-guards) and the server restarted.
func checkGuards(ctx context.Context, store stele.Store, logger *slog.Logger) error {
	g, ok := store.(stele.GuardChecker)
	if !ok {
		return nil
	}
	err := g.CheckGuards(ctx)
	if err != nil {
		err = fmt.Errorf("database guards: %w; run stele check, then stele check --restore-guards", err)
		logger.Error("INTEGRITY ALARM at start-up: the database's append-only guards are not in place; readiness stays false until they are restored",
			"err", err)
	}
	return err
}

// fillDemo fills the default workspace with the sample events when it is
// still empty, or else a "demo" workspace created for them; it returns the
// demo workspace's admin key when it created one.
func fillDemo(ctx context.Context, srv *api.Server, store stele.Store, seq *sequencer.Sequencer) (string, error) {
	ws, key := "default", ""
	if q, err := store.Count(ctx, "default", stele.Query{Filter: stele.Filter{Type: "incident.*"}}); err != nil || q > 0 {
		ws = "demo"
		if _, err := store.Workspace(ctx, ws); errors.Is(err, stele.ErrNotFound) {
			k, err := api.CreateDemoWorkspace(ctx, srv, ws)
			if err != nil {
				return "", err
			}
			key = k
		} else {
			return "", nil // filled on an earlier start
		}
	}
	bodies := eventgen.Demo(time.Now())
	drafts := make([]stele.Draft, len(bodies))
	for i := range bodies {
		drafts[i] = stele.Draft{Body: bodies[i]}
	}
	_, err := seq.Append(ctx, ws, drafts, stele.Emitter{Workspace: ws, KeyID: "demo"})
	return key, err
}

func printBanner(w io.Writer, url string, key *checkpoint.Key, keyCreated bool, boot bootResult, demoKey string) {
	fmt.Fprintf(w, "Stele is serving on %s\n", url)
	fmt.Fprintf(w, "  instance:     %s\n", key.Name())
	fmt.Fprintf(w, "  log key:      %s  (default workspace; every workspace's key is at GET /v1/log/key)\n", key.VerifierKey(key.Origin("default")))
	if keyCreated {
		fmt.Fprintln(w, "  signing key:  created; back it up and keep it out of the database's backups")
	}
	if boot.created {
		if boot.OperatorKey != "" {
			fmt.Fprintf(w, "  operator key: %s\n", boot.OperatorKey)
			fmt.Fprintln(w, "                shown once: it administers the default workspace and may create workspaces")
		} else {
			fmt.Fprintln(w, "  operator key: installed from STELE_ADMIN_KEY")
		}
		if boot.AdminPassword != "" {
			fmt.Fprintf(w, "  dashboard:    %s/ — sign in as %s with password %s (shown once)\n", url, boot.AdminEmail, boot.AdminPassword)
		} else {
			fmt.Fprintf(w, "  dashboard:    %s/ — sign in as %s with STELE_ADMIN_PASSWORD\n", url, boot.AdminEmail)
		}
	}
	if demoKey != "" {
		fmt.Fprintf(w, "  demo key:     %s  (admin of the demo workspace; shown once)\n", demoKey)
	}
}
