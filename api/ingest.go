package api

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/sequencer"
)

// receiptJSON is one acknowledged event in a 201 response.
type receiptJSON struct {
	ID       string `json:"id"`
	Seq      int64  `json:"seq"`
	LeafHash string `json:"leaf_hash"`
	Replayed bool   `json:"replayed,omitempty"`
}

type ingestResponse struct {
	Events []receiptJSON `json:"events"`
	// Checkpoint, with ?wait=checkpoint, is a signed checkpoint covering
	// every event of the response, when one was signed in time.
	Checkpoint string `json:"checkpoint,omitempty"`
	// CheckpointStatus, with ?wait=checkpoint, says whether Checkpoint is
	// there: "included", or "pending" when none covered the events within
	// Config.CheckpointWait. The events are durably logged either way.
	CheckpointStatus string `json:"checkpoint_status,omitempty"`
}

// defaultCheckpointWait bounds how long ?wait=checkpoint holds the
// response (Config.CheckpointWait). Checkpoints are signed within about a
// second of appends (D1), so only a stalled checkpointer (D2: the signing
// key or clock) makes it run out.
const defaultCheckpointWait = 10 * time.Second

// postEvents is POST /v1/events: one event, {"events":[...]}, or NDJSON.
// It answers 201 only once every event is durably in the log.
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	query := r.URL.Query()
	for name, vs := range query {
		if name != "wait" {
			return stele.FieldError(name, "unknown query parameter")
		}
		if len(vs) > 1 {
			return stele.FieldError(name, "given more than once")
		}
	}
	wait := query.Get("wait")
	if wait != "" && wait != "checkpoint" {
		return stele.FieldError("wait", "must be checkpoint or absent")
	}
	format, err := inputFormat(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, stele.MaxBodyBytes)
	if err != nil {
		return err
	}
	drafts, prefix, err := stele.ParseEvents(body, format, s.now())
	if err != nil {
		return err
	}
	receipts, err := s.seq.Append(r.Context(), t.Workspace(), drafts, stele.Emitter{Workspace: t.Workspace(), KeyID: p.KeyID, IP: p.IP})
	var conflict *sequencer.ConflictError
	if errors.As(err, &conflict) {
		return &stele.Error{Kind: stele.KindConflict, Field: stele.EventField(prefix, conflict.Index, "id"), Message: "this id is already logged with different content"}
	}
	if err != nil {
		return err
	}
	resp := ingestResponse{Events: make([]receiptJSON, len(receipts))}
	var size int64
	for i, rc := range receipts {
		resp.Events[i] = receiptJSON{ID: rc.ID, Seq: rc.Seq, LeafHash: rc.LeafHash.String(), Replayed: rc.Replayed}
		size = max(size, rc.Seq+1)
	}
	if wait == "checkpoint" {
		// The events are committed: whatever happens to the wait, the
		// answer is 201 with their receipts, and says whether a signed
		// checkpoint covering them is included.
		wctx, cancel := context.WithTimeout(r.Context(), s.cfg.CheckpointWait)
		cp, err := s.cps.Wait(wctx, t.Workspace(), size)
		cancel()
		switch {
		case err == nil:
			resp.Checkpoint, resp.CheckpointStatus = string(cp.Note), "included"
		case r.Context().Err() != nil:
			return r.Context().Err() // the client left
		default:
			resp.CheckpointStatus = "pending"
		}
	}
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

// inputFormat maps the Content-Type to an input format.
func inputFormat(r *http.Request) (string, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil {
		return "", &stele.Error{Kind: stele.KindUnsupported, Message: "Content-Type must be application/json or application/x-ndjson"}
	}
	switch mt {
	case "application/json":
		return stele.FormatJSON, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines":
		return stele.FormatNDJSON, nil
	}
	return "", &stele.Error{Kind: stele.KindUnsupported, Message: "Content-Type must be application/json or application/x-ndjson, not " + mt}
}

// readBody reads the request body, gunzipping it when Content-Encoding says
// so, and refuses with 413 as soon as more than limit bytes arrive — whether
// the body announced its length or not, and whatever it decompresses to.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	var src io.Reader = http.MaxBytesReader(w, r.Body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, bodyError(err, limit, "the body is not valid gzip")
		}
		defer zr.Close()
		src = zr
	default:
		return nil, &stele.Error{Kind: stele.KindUnsupported, Message: "Content-Encoding must be gzip or identity, not " + enc}
	}
	body, err := io.ReadAll(io.LimitReader(src, limit+1))
	if err != nil {
		return nil, bodyError(err, limit, "couldn't read the body")
	}
	if int64(len(body)) > limit {
		return nil, tooLarge(limit)
	}
	return body, nil
}

func bodyError(err error, limit int64, msg string) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return tooLarge(limit)
	}
	return stele.Errorf(stele.KindInvalid, "%s", msg)
}

func tooLarge(limit int64) error {
	return stele.Errorf(stele.KindTooLarge, "the request body exceeds %d bytes", limit)
}
