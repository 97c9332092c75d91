package api

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthz answers 200 while the process serves HTTP.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// checkpointLagWarning is when an unsigned commit makes readiness warn.
const checkpointLagWarning = 5 * time.Second

// readyz answers 200 when the service can take writes: start-up checks are
// done and the store accepts writes. A stalled checkpointer is a warning, not
// a failure: appends stay durable while checkpoints wait (D2).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var problems, warnings []string
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if err := s.store.Ping(ctx); err != nil {
		problems = append(problems, "store: "+err.Error())
	}
	for ws, lag := range s.cps.Lag() {
		if lag > checkpointLagWarning {
			warnings = append(warnings, fmt.Sprintf("workspace %s: events unsigned for %s", ws, lag.Round(time.Second)))
		}
	}
	status := http.StatusOK
	body := map[string]any{"status": "ready"}
	if len(problems) > 0 {
		status = http.StatusServiceUnavailable
		body = map[string]any{"status": "not ready", "problems": problems}
	}
	if len(warnings) > 0 {
		body["warnings"] = warnings
	}
	writeJSON(w, status, body)
}

//go:embed openapi.yaml
var openAPI []byte

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(openAPI)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
