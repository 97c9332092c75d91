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

// Scan streams matching events from one read transaction.
func (s *Store) Scan(ctx context.Context, ws string, q stele.Query, fn func(stele.StoredEvent) error) error {
	wsn, err := s.wsNumber(ctx, s.r, ws)
	if err != nil {
		return err
	}
	where, args := whereClause(wsn, &q.Filter)
	if q.Below > 0 {
		where = append(where, "e.rowid < ?")
		args = append(args, rowid(wsn, q.Below))
	}
	dir := "DESC"
	cmp := "<"
	if q.Order == stele.OldestFirst {
		dir, cmp = "ASC", ">"
	}
	if q.After != nil {
		where = append(where, fmt.Sprintf("(e.time_ns, e.rowid) %s (?, ?)", cmp))
		args = append(args, q.After.TimeNS, rowid(wsn, q.After.Seq))
	}
	query := "SELECT e.rowid, e.body, e.leaf_hash FROM events e WHERE " + strings.Join(where, " AND ") +
		fmt.Sprintf(" ORDER BY e.time_ns %s, e.rowid %s", dir, dir)
	if q.Limit > 0 {
		query += " LIMIT ?"
		args = append(args, q.Limit)
	}
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
	return rows.Err()
}

// Count returns the number of matching events.
func (s *Store) Count(ctx context.Context, ws string, q stele.Query) (int64, error) {
	wsn, err := s.wsNumber(ctx, s.r, ws)
	if err != nil {
		return 0, err
	}
	where, args := whereClause(wsn, &q.Filter)
	if q.Below > 0 {
		where = append(where, "e.rowid < ?")
		args = append(args, rowid(wsn, q.Below))
	}
	var n int64
	err = s.r.QueryRowContext(ctx, "SELECT count(*) FROM events e WHERE "+strings.Join(where, " AND "), args...).Scan(&n)
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
	where, args := whereClause(wsn, &f)
	step := interval.Nanoseconds()
	// Floor division also for times before 1970.
	query := fmt.Sprintf(`SELECT b, count(*) FROM (SELECT (e.time_ns - ((e.time_ns %% %d) + %d) %% %d) AS b FROM events e WHERE %s) GROUP BY b ORDER BY b`,
		step, step, step, strings.Join(where, " AND "))
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

// whereClause turns a filter into SQL conditions over events e, with
// parameters only: no filter value ever becomes SQL text.
func whereClause(wsn int64, f *stele.Filter) ([]string, []any) {
	where := []string{"e.ws = ?"}
	args := []any{wsn}
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
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
	if len(f.Text) > 0 {
		quoted := make([]string, len(f.Text))
		for i, w := range f.Text {
			quoted[i] = `"` + strings.ReplaceAll(w, `"`, `""`) + `"`
		}
		add("e.rowid IN (SELECT rowid FROM events_text WHERE events_text MATCH ?)", strings.Join(quoted, " "))
	}
	return where, args
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
