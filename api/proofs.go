package api

import (
	"net/http"

	"github.com/stele-log/stele"
)

// getInclusionProof is GET /v1/proofs/inclusion?index=I&size=N.
func (s *Server) getInclusionProof(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	return stele.Errorf(stele.KindNotFound, "not implemented yet")
}

// getConsistencyProof is GET /v1/proofs/consistency?from=M&to=N.
func (s *Server) getConsistencyProof(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	return stele.Errorf(stele.KindNotFound, "not implemented yet")
}
