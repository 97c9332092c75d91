package api

import (
	"errors"
	"net/http"

	"github.com/stele-log/stele"
)

// getCheckpoint is GET /v1/checkpoint: the latest signed checkpoint of the
// caller's log, as the signed note text (text/plain), exactly as signed.
func (s *Server) getCheckpoint(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	cp, err := t.LatestCheckpoint(r.Context())
	if errors.Is(err, stele.ErrNotFound) {
		return stele.Errorf(stele.KindNotFound, "no checkpoint has been signed for this log yet")
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(cp.Note)
	return nil
}

// getLogKey is GET /v1/log/key: the note verifier key of the caller's log
// (text/plain, one line), whose name is the log's origin.
func (s *Server) getLogKey(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(s.key.VerifierKey(s.key.Origin(t.Workspace())) + "\n"))
	return nil
}
