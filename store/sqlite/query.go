package sqlite

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/stele-log/stele"
)

// Query returns one page of matching events.
func (s *Store) Query(ctx context.Context, ws string, q stele.Query) ([]stele.StoredEvent, error) {
	var out []stele.StoredEvent
	err := s.Scan(ctx, ws, q, func(e stele.StoredEvent) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// Scan streams matching events from one statement, so from one consistent
// snapshot of the database, row by row: memory stays constant whatever the
// number of rows. When ctx is done the statement is interrupted.
func (s *Store) Scan(ctx context.Context, ws string, q stele.Query, fn func(stele.StoredEvent) error) error {
	wsn, err := s.wsNumber(ctx, s.r, ws)
	if err != nil {
		return err
	}
	if err := s.settleText(ctx, &q.Filter); err != nil {
		return err
	}
	p, err := s.orderedPlan(ctx, wsn, &q.Filter, q.Below)
	if err != nil {
		return err
	}
	query, args := selectSQL(wsn, &q, p)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("couldn't query events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e stele.StoredEvent
		var rid int64
		var leaf []byte
		if err := rows.Scan(&rid, &e.Canonical, &leaf); err != nil {
			return err
		}
		e.Seq = rid & posMask
		copy(e.LeafHash[:], leaf)
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return ctx.Err()
}

// Count returns the number of matching events.
func (s *Store) Count(ctx context.Context, ws string, q stele.Query) (int64, error) {
	wsn, err := s.wsNumber(ctx, s.r, ws)
	if err != nil {
		return 0, err
	}
	if err := s.settleText(ctx, &q.Filter); err != nil {
		return 0, err
	}
	query, args := countSQL(wsn, &q, unorderedPlan(&q.Filter))
	var n int64
	err = s.r.QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}

// Histogram counts matching events per bucket of interval.
func (s *Store) Histogram(ctx context.Context, ws string, f stele.Filter, interval time.Duration) ([]stele.Bucket, error) {
	if interval <= 0 {
		return nil, fmt.Errorf("histogram interval must be positive")
	}
	wsn, err := s.wsNumber(ctx, s.r, ws)
	if err != nil {
		return nil, err
	}
	if err := s.settleText(ctx, &f); err != nil {
		return nil, err
	}
	query, args := histogramSQL(wsn, &f, interval, unorderedPlan(&f))
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't count events: %w", err)
	}
	defer rows.Close()
	var out []stele.Bucket
	for rows.Next() {
		var b, n int64
		if err := rows.Scan(&b, &n); err != nil {
			return nil, err
		}
		out = append(out, stele.Bucket{Start: time.Unix(0, b).UTC(), Count: n})
	}
	return out, rows.Err()
}

// selectSQL is the statement of a Query or Scan: the rows of events e that
// match, in q's order (event time, then seq, which is the rowid's order
// within a workspace), after q.After, at most q.Limit of them.
func selectSQL(wsn int64, q *stele.Query, p plan) (string, []any) {
	from, where, args := whereClause(wsn, &q.Filter, q.Below, p)
	dir, cmp := "DESC", "<"
	if q.Order == stele.OldestFirst {
		dir, cmp = "ASC", ">"
	}
	if q.After != nil {
		where = append(where, fmt.Sprintf("(e.time_ns, e.rowid) %s (?, ?)", cmp))
		args = append(args, q.After.TimeNS, rowid(wsn, q.After.Seq))
	}
	query := "SELECT e.rowid, e.body, e.leaf_hash FROM " + from + " WHERE " + strings.Join(where, " AND ") +
		fmt.Sprintf(" ORDER BY e.time_ns %s, e.rowid %s", dir, dir)
	if q.Limit > 0 {
		query += " LIMIT ?"
		args = append(args, q.Limit)
	}
	return query, args
}

// countSQL is the statement of Count.
func countSQL(wsn int64, q *stele.Query, p plan) (string, []any) {
	from, where, args := whereClause(wsn, &q.Filter, q.Below, p)
	return "SELECT count(*) FROM " + from + " WHERE " + strings.Join(where, " AND "), args
}

// histogramSQL is the statement of Histogram: bucket starts (floor
// division, also for times before 1970) and their counts.
func histogramSQL(wsn int64, f *stele.Filter, interval time.Duration, p plan) (string, []any) {
	from, where, args := whereClause(wsn, f, 0, p)
	step := interval.Nanoseconds()
	return fmt.Sprintf(`SELECT b, count(*) FROM (SELECT (e.time_ns - ((e.time_ns %% %d) + %d) %% %d) AS b FROM %s WHERE %s) GROUP BY b ORDER BY b`,
		step, step, step, from, strings.Join(where, " AND ")), args
}

// whereClause turns a filter into the FROM clause of plan p and SQL
// conditions over events e, with parameters only: no filter value ever
// becomes SQL text. below, when positive, excludes positions from below on.
func whereClause(wsn int64, f *stele.Filter, below int64, p plan) (string, []string, []any) {
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	from := "events e INDEXED BY " + p.index
	if p.text {
		// The FTS5 index drives, within the workspace's rowids.
		from = "events_text t CROSS JOIN events e"
		add("t.events_text MATCH ? AND t.rowid >= ? AND t.rowid < ? AND e.rowid = t.rowid",
			matchExpr(f.Text), rowid(wsn, 0), rowidBelow(wsn, below))
	}
	add("e.ws = ?", wsn)
	if below > 0 {
		add("e.rowid < ?", rowid(wsn, below))
	}
	if f.Actor != "" {
		add("e.actor_id = ?", f.Actor)
	}
	if f.Type != "" {
		if prefix, ok := strings.CutSuffix(f.Type, "*"); ok {
			root, rest, _ := strings.Cut(prefix, ".")
			add("e.type_root = ?", root)
			if rest != "" { // a deeper prefix such as pcap.v2.*
				add("e.type >= ? AND e.type < ?", prefix, prefix[:len(prefix)-1]+"/")
			}
		} else {
			add("e.type = ?", f.Type)
		}
	}
	if f.Category != "" {
		add("e.category = ?", f.Category)
	}
	if f.Node != "" {
		add("e.node = ?", f.Node)
	}
	if f.ResourceType != "" {
		add("e.resource_type = ?", f.ResourceType)
	}
	if f.ResourceID != "" {
		add("e.resource_id = ?", f.ResourceID)
	}
	if f.IP.IsValid() {
		lo, hi := prefixRange(f.IP)
		if lo == hi {
			add("e.ip = ?", lo[:])
		} else {
			add("e.ip BETWEEN ? AND ?", lo[:], hi[:])
		}
	}
	if f.Outcome != "" {
		add("e.outcome = ?", f.Outcome)
	}
	if !f.Since.IsZero() {
		add("e.time_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("e.time_ns < ?", f.Until.UnixNano())
	}
	if len(f.Text) > 0 && !p.text {
		add("e.rowid IN (SELECT rowid FROM events_text WHERE events_text MATCH ? AND rowid >= ? AND rowid < ?)",
			matchExpr(f.Text), rowid(wsn, 0), rowidBelow(wsn, below))
	}
	return from, where, args
}

// matchExpr is the FTS5 query of words: each a quoted string (so that no
// word is FTS5 syntax), all required.
func matchExpr(words []string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = `"` + strings.ReplaceAll(w, `"`, `""`) + `"`
	}
	return strings.Join(quoted, " ")
}

// prefixRange returns the first and last 16-byte addresses of p, with IPv4
// in its IPv4-mapped IPv6 form as stored.
func prefixRange(p netip.Prefix) (lo, hi [16]byte) {
	p = p.Masked()
	lo = p.Addr().As16()
	hi = lo
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		hi[i/8] |= 1 << (7 - i%8)
	}
	return lo, hi
}
