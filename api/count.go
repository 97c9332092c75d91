package api

import (
	"net/http"

	"github.com/stele-log/stele"
)

type countResponse struct {
	Count   int64 `json:"count"`
	LogSize int64 `json:"log_size"`
}

// countEvents is GET /v1/stats/count?<filters>[&cursor=C]: how many events
// match the filters among the first log_size events of the log. log_size is
// the log's current size or, given a cursor from GET /v1/events with the
// same filters and order, the size that listing is pinned to, so that the
// count agrees exactly with the pages a client walks (the dashboard's "N
// events").
func (s *Server) countEvents(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	q, values, err := s.parseRead(r, "cursor")
	if err != nil {
		return err
	}
	var below int64
	if values.Has("cursor") {
		cur, err := s.continueFrom(&q, t.Workspace())
		if err != nil {
			return err
		}
		below = cur.Below
	} else {
		head, err := t.Head(r.Context())
		if err != nil {
			return err
		}
		below = head.Size
	}
	resp := countResponse{LogSize: below}
	if below > 0 {
		if resp.Count, err = t.Count(r.Context(), stele.Query{Filter: q.filter, Order: q.order, Below: below}); err != nil {
			return err
		}
	}
	ctx := map[string]any{"kind": "count", "filters": q.filters(), "rows": resp.Count, "log_size": below}
	if err := s.recordRead(r, p, t, "auditlog.queried", ctx); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
