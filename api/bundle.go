package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/bundle"
	"github.com/stele-log/stele/export"
	"github.com/stele-log/stele/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// bundleWait bounds how long a bundle export waits for a checkpoint that
// covers everything logged before the request; past it, the bundle is
// proven against the latest checkpoint, which covers less.
const bundleWait = 3 * time.Second

// errEnough ends a scan early.
var errEnough = errors.New("enough")

// exportBundle is GET /v1/export?format=bundle: a verifiable export (see
// package bundle). It takes the filters of the other formats, plus from_seq
// (inclusive) and to_seq (exclusive) to pick a range of positions. Without
// filters it is a range bundle proven once; with filters each event carries
// its inclusion proof. Either way it covers only positions below the
// checkpoint it carries, lists events oldest first, and its access event
// (auditlog.exported) is durable before the first byte.
func (s *Server) exportBundle(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	q, values, err := s.parseRead(r, "format", "from_seq", "to_seq")
	if err != nil {
		return err
	}
	if o, ok := values["order"]; ok && o[0] != "asc" {
		return stele.FieldError("order", "a bundle lists events oldest first: order must be asc or absent")
	}
	from, hasFrom, err := seqParam(values, "from_seq")
	if err != nil {
		return err
	}
	to, hasTo, err := seqParam(values, "to_seq")
	if err != nil {
		return err
	}
	if hasFrom && hasTo && to < from {
		return stele.FieldError("to_seq", "must not be less than from_seq")
	}
	ctx := r.Context()
	head, err := t.Head(ctx)
	if err != nil {
		return err
	}
	cp, err := s.bundleCheckpoint(ctx, t, head.Size)
	if err != nil {
		return err
	}
	if from > cp.Size {
		return stele.FieldError("from_seq", "exceeds the size of the latest checkpoint (%d)", cp.Size)
	}
	if !hasTo || to > cp.Size {
		to = cp.Size
	}
	filtered := len(q.values) > 0

	var rows int64
	if filtered {
		if rows, err = countBetween(ctx, t, q.filter, from, to); err != nil {
			return err
		}
	} else {
		rows = to - from
	}
	access := map[string]any{"filters": q.filters(), "format": "bundle", "rows": rows, "log_size": head.Size,
		"checkpoint_size": cp.Size, "from_seq": from, "to_seq": to}
	if err := s.recordRead(r, p, t, "auditlog.exported", access); err != nil {
		return err
	}

	h := bundle.Header{Origin: s.key.Origin(t.Workspace()), Checkpoint: string(cp.Note), Filters: q.filters()}
	if !filtered {
		if h.Range, err = rangeProof(ctx, t, from, to, cp.Size); err != nil {
			return err
		}
	}
	name := exportFilename(t.Workspace(), s.now(), "bundle.ndjson")
	w.Header().Set("Content-Type", bundle.ContentType)
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("X-Stele-Rows", strconv.FormatInt(rows, 10))
	w.WriteHeader(http.StatusOK)
	enc, err := bundle.NewEncoder(w, h)
	if err == nil && to > from {
		if filtered {
			err = writeProven(ctx, t, enc, q.filter, from, to, cp.Size)
		} else {
			err = writeRange(ctx, t, enc, from, to)
		}
	}
	if err == nil {
		err = enc.Close()
	}
	if err != nil {
		// Headers are sent: the only honest signal left is a broken stream
		// (and the bundle then lacks its end line).
		s.log.Warn("bundle export interrupted", "workspace", t.Workspace(), "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// seqParam parses an optional non-negative position parameter.
func seqParam(values url.Values, name string) (int64, bool, error) {
	v, ok := values[name]
	if !ok {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || n < 0 || len(v) > 1 {
		return 0, false, stele.FieldError(name, "must be a non-negative integer, given once")
	}
	return n, true, nil
}

// bundleCheckpoint returns the checkpoint a bundle is proven against: one
// covering the first size positions if it is signed within bundleWait,
// otherwise the latest.
func (s *Server) bundleCheckpoint(ctx context.Context, t stele.Tenant, size int64) (stele.Checkpoint, error) {
	wctx, cancel := context.WithTimeout(ctx, bundleWait)
	cp, err := s.cps.Wait(wctx, t.Workspace(), size)
	cancel()
	if err == nil {
		return cp, nil
	}
	if ctx.Err() != nil {
		return stele.Checkpoint{}, ctx.Err()
	}
	cp, err = t.LatestCheckpoint(ctx)
	if errors.Is(err, stele.ErrNotFound) {
		return stele.Checkpoint{}, &stele.Error{Kind: stele.KindUnavailable, RetryAfter: 1,
			Message: "no checkpoint has been signed for this log yet, so nothing can be proven: retry shortly"}
	}
	return cp, err
}

// countBetween counts the events at positions [from, to) matching f.
func countBetween(ctx context.Context, t stele.Tenant, f stele.Filter, from, to int64) (int64, error) {
	if to == 0 {
		return 0, nil
	}
	n, err := t.Count(ctx, stele.Query{Filter: f, Below: to})
	if err != nil || from == 0 {
		return n, err
	}
	before, err := t.Count(ctx, stele.Query{Filter: f, Below: from})
	return n - before, err
}

// rangeProof returns the compact proof of positions [from, to) against the
// tree of size leaves.
func rangeProof(ctx context.Context, t stele.Tenant, from, to, size int64) (*bundle.Range, error) {
	rg := &bundle.Range{From: from, To: to, Left: []tlog.Hash{}, Consistency: []tlog.Hash{}}
	if from > 0 {
		left, err := t.TreeHashes(ctx, tree.FrontierIndexes(from))
		if err != nil {
			return nil, fmt.Errorf("couldn't read the tree of %d: %w", from, err)
		}
		rg.Left = left
	}
	if to > 0 && to < size {
		proof, err := tlog.ProveTree(size, to, t.HashReader(ctx))
		if err != nil {
			return nil, fmt.Errorf("couldn't prove consistency of %d with %d: %w", to, size, err)
		}
		rg.Consistency = proof
	}
	return rg, nil
}

// writeRange writes positions [from, to) in order, without proofs.
func writeRange(ctx context.Context, t stele.Tenant, enc *bundle.Encoder, from, to int64) error {
	var buf []byte
	err := t.ScanLeaves(ctx, from, func(l stele.Leaf) error {
		if l.Seq >= to {
			return errEnough
		}
		if l.Canonical == nil {
			return enc.WritePruned(l.Seq, l.LeafHash)
		}
		buf = export.AppendEvent(buf[:0], stele.StoredEvent{Seq: l.Seq, Canonical: l.Canonical, LeafHash: l.LeafHash})
		return enc.WriteEvent(buf, nil)
	})
	if errors.Is(err, errEnough) {
		return nil
	}
	return err
}

// writeProven writes the events at positions [from, to) matching f, oldest
// first, each with its inclusion proof in the tree of size leaves.
func writeProven(ctx context.Context, t stele.Tenant, enc *bundle.Encoder, f stele.Filter, from, to, size int64) error {
	hashes := t.HashReader(ctx)
	var buf []byte
	return t.Scan(ctx, stele.Query{Filter: f, Order: stele.OldestFirst, Below: to}, func(e stele.StoredEvent) error {
		if e.Seq < from {
			return nil
		}
		proof, err := tlog.ProveRecord(size, e.Seq, hashes)
		if err != nil {
			return fmt.Errorf("couldn't prove inclusion of %d in %d: %w", e.Seq, size, err)
		}
		buf = export.AppendEvent(buf[:0], e)
		return enc.WriteEvent(buf, &bundle.Proof{Index: e.Seq, Hashes: proof})
	})
}
