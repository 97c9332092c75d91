package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/stele-log/stele"
	"golang.org/x/mod/sumdb/tlog"
)

// Proofs are built from the stored tree hashes with tlog: an inclusion proof
// reads O(log n) hashes in one store call, a consistency proof likewise.
// They reveal only hashes, so unlike queries and exports they are not
// recorded as reads of the log: a monitor polling every few seconds would
// otherwise grow the log it watches.

// inclusionJSON and consistencyJSON are RFC 6962 / RFC 9162 proofs: the
// hashes in standard base64, in the order tlog.CheckRecord and
// tlog.CheckTree take them.
type inclusionJSON struct {
	Index  int64    `json:"index"`
	Size   int64    `json:"size"`
	Hashes []string `json:"hashes"`
}

type consistencyJSON struct {
	From   int64    `json:"from"`
	To     int64    `json:"to"`
	Hashes []string `json:"hashes"`
}

// getInclusionProof is GET /v1/proofs/inclusion?index=I&size=N: the proof
// that leaf I is in the tree of the first N leaves. It needs 0 ≤ I < N ≤ the
// log's current size.
func (s *Server) getInclusionProof(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	params, err := proofParams(r, "index", "size")
	if err != nil {
		return err
	}
	index, size := params[0], params[1]
	if size < 1 {
		return stele.FieldError("size", "must be at least 1")
	}
	if index >= size {
		return stele.FieldError("index", "must be less than size (%d)", size)
	}
	if err := checkWithinLog(r, t, "size", size); err != nil {
		return err
	}
	proof, err := tlog.ProveRecord(size, index, t.HashReader(r.Context()))
	if err != nil {
		return fmt.Errorf("couldn't prove inclusion of %d in %d: %w", index, size, err)
	}
	writeJSON(w, http.StatusOK, inclusionJSON{Index: index, Size: size, Hashes: hashStrings(proof)})
	return nil
}

// getConsistencyProof is GET /v1/proofs/consistency?from=M&to=N: the proof
// that the tree of the first M leaves is a prefix of the tree of the first N.
// It needs 1 ≤ M ≤ N ≤ the log's current size; M = N gives an empty proof.
func (s *Server) getConsistencyProof(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	params, err := proofParams(r, "from", "to")
	if err != nil {
		return err
	}
	from, to := params[0], params[1]
	if from < 1 {
		return stele.FieldError("from", "must be at least 1 (every tree is consistent with the empty one)")
	}
	if from > to {
		return stele.FieldError("from", "must not exceed to (%d)", to)
	}
	if err := checkWithinLog(r, t, "to", to); err != nil {
		return err
	}
	proof, err := tlog.ProveTree(to, from, t.HashReader(r.Context()))
	if err != nil {
		return fmt.Errorf("couldn't prove consistency of %d with %d: %w", from, to, err)
	}
	writeJSON(w, http.StatusOK, consistencyJSON{From: from, To: to, Hashes: hashStrings(proof)})
	return nil
}

// proofParams parses the query string, which must hold exactly the named
// parameters, each once, as non-negative decimal integers.
func proofParams(r *http.Request, names ...string) ([]int64, error) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, stele.FieldError("", "malformed query string")
	}
	for name := range values {
		known := false
		for _, n := range names {
			known = known || n == name
		}
		if !known {
			return nil, stele.FieldError(name, "unknown query parameter")
		}
	}
	out := make([]int64, len(names))
	for i, name := range names {
		vs := values[name]
		if len(vs) == 0 {
			return nil, stele.FieldError(name, "is required")
		}
		if len(vs) > 1 {
			return nil, stele.FieldError(name, "must be given once")
		}
		n, err := strconv.ParseInt(vs[0], 10, 64)
		if err != nil || n < 0 || strconv.FormatInt(n, 10) != vs[0] {
			return nil, stele.FieldError(name, "must be a non-negative decimal integer")
		}
		out[i] = n
	}
	return out, nil
}

// checkWithinLog refuses a tree size larger than the log.
func checkWithinLog(r *http.Request, t stele.Tenant, field string, size int64) error {
	head, err := t.Head(r.Context())
	if err != nil {
		return err
	}
	if size > head.Size {
		return stele.FieldError(field, "exceeds the log's size (%d)", head.Size)
	}
	return nil
}
