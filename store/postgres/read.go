package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// Head returns the committed head of ws's log.
func (s *Store) Head(ctx context.Context, ws string) (stele.Head, error) {
	ctx, cancel := s.lookup(ctx)
	defer cancel()
	return s.head(ctx, s.pool, ws)
}

// TreeHashes reads stored hashes by tlog index from committed data.
func (s *Store) TreeHashes(ctx context.Context, ws string, indexes []int64) ([]tlog.Hash, error) {
	ctx, cancel := s.read(ctx)
	defer cancel()
	return s.treeHashes(ctx, s.pool, ws, indexes)
}

// treeHashes reads the tree rows that hold indexes in one query.
func (s *Store) treeHashes(ctx context.Context, q dbtx, ws string, indexes []int64) ([]tlog.Hash, error) {
	wsn, err := s.wsNumber(ctx, q, ws)
	if err != nil {
		return nil, err
	}
	var seqs []int64
	want := map[int64]bool{}
	for _, idx := range indexes {
		seq, _ := tree.Locate(idx)
		if !want[seq] {
			want[seq] = true
			seqs = append(seqs, seq)
		}
	}
	rows := map[int64][]tlog.Hash{}
	if len(seqs) > 0 {
		r, err := q.Query(ctx, "SELECT seq, hashes FROM tree WHERE ws = $1 AND seq = ANY($2::bigint[])", wsn, seqs)
		if err != nil {
			return nil, wrap(err)
		}
		for r.Next() {
			var seq int64
			var blob []byte
			if err := r.Scan(&seq, &blob); err != nil {
				r.Close()
				return nil, wrap(err)
			}
			hs, err := tree.SplitHashes(blob)
			if err != nil {
				r.Close()
				return nil, fmt.Errorf("position %d: %w", seq, err)
			}
			rows[seq] = hs
		}
		r.Close()
		if err := r.Err(); err != nil {
			return nil, wrap(err)
		}
	}
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		seq, _ := tree.Locate(idx)
		hs, ok := rows[seq]
		if !ok {
			return nil, fmt.Errorf("%w: no tree hashes at position %d", stele.ErrNotFound, seq)
		}
		h, err := tree.StoredHash(hs, idx)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

// EventWorkspaces returns the workspaces holding an event with id: a
// lateral probe of the (ws, id) index per workspace, so that no plan scans
// the events.
func (s *Store) EventWorkspaces(ctx context.Context, id string) ([]string, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return nil, nil
	}
	ctx, cancel := s.lookup(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT w.id FROM workspaces w
		CROSS JOIN LATERAL (SELECT 1 FROM events e WHERE e.ws = w.n AND e.id = $1 LIMIT 1) hit ORDER BY w.id`, [16]byte(u))
	if err != nil {
		return nil, wrap(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, wrap(err)
}

// EventByID returns the event of ws with the given id.
func (s *Store) EventByID(ctx context.Context, ws, id string) (stele.StoredEvent, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return stele.StoredEvent{}, stele.ErrNotFound
	}
	ctx, cancel := s.lookup(ctx)
	defer cancel()
	wsn, err := s.wsNumber(ctx, s.pool, ws)
	if err != nil {
		return stele.StoredEvent{}, err
	}
	var e stele.StoredEvent
	var leaf []byte
	err = s.pool.QueryRow(ctx, "SELECT seq, body, leaf_hash FROM events WHERE ws = $1 AND id = $2", wsn, [16]byte(u)).Scan(&e.Seq, &e.Canonical, &leaf)
	if errors.Is(err, pgx.ErrNoRows) {
		return stele.StoredEvent{}, stele.ErrNotFound
	}
	if err != nil {
		return stele.StoredEvent{}, wrap(err)
	}
	copy(e.LeafHash[:], leaf)
	return e, nil
}

// ScanLeaves calls fn for each position of ws from from on.
func (s *Store) ScanLeaves(ctx context.Context, ws string, from int64, fn func(stele.Leaf) error) error {
	return s.scanLeaves(ctx, s.pool, ws, from, math.MaxInt64, fn)
}

// scanLeaves reads positions [from, to) from the tree, joined with their
// events. A tree row without an event yields a Leaf with nil Canonical and
// the leaf hash of the tree row.
func (s *Store) scanLeaves(ctx context.Context, q dbtx, ws string, from, to int64, fn func(stele.Leaf) error) error {
	wsn, err := s.wsNumber(ctx, q, ws)
	if err != nil {
		return err
	}
	rows, err := q.Query(ctx, `SELECT t.seq, t.hashes, t.mac, e.body, e.leaf_hash
		FROM tree t LEFT JOIN events e ON e.ws = t.ws AND e.seq = t.seq
		WHERE t.ws = $1 AND t.seq >= $2 AND t.seq < $3 ORDER BY t.seq`, wsn, from, to)
	if err != nil {
		return wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var l stele.Leaf
		var hashes, leaf []byte
		if err := rows.Scan(&l.Seq, &hashes, &l.MAC, &l.Canonical, &leaf); err != nil {
			return wrap(err)
		}
		if l.TreeHashes, err = tree.SplitHashes(hashes); err != nil {
			return fmt.Errorf("position %d: %w", l.Seq, err)
		}
		if leaf != nil {
			copy(l.LeafHash[:], leaf)
		} else {
			l.LeafHash = l.TreeHashes[0]
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return wrap(rows.Err())
}

// Query returns one page of matching events.
func (s *Store) Query(ctx context.Context, ws string, q stele.Query) ([]stele.StoredEvent, error) {
	ctx, cancel := s.read(ctx)
	defer cancel()
	var out []stele.StoredEvent
	err := s.Scan(ctx, ws, q, func(e stele.StoredEvent) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// Scan streams matching events from one statement (one snapshot).
func (s *Store) Scan(ctx context.Context, ws string, q stele.Query, fn func(stele.StoredEvent) error) error {
	wsn, err := s.wsNumber(ctx, s.pool, ws)
	if err != nil {
		return err
	}
	w := newWhere(wsn, &q.Filter)
	if q.Below > 0 {
		w.add("e.seq < ?", q.Below)
	}
	dir, cmp := "DESC", "<"
	if q.Order == stele.OldestFirst {
		dir, cmp = "ASC", ">"
	}
	if q.After != nil {
		w.add(fmt.Sprintf("(e.time_ns, e.seq) %s (?, ?)", cmp), q.After.TimeNS, q.After.Seq)
	}
	query := "SELECT e.seq, e.body, e.leaf_hash FROM events e WHERE " + w.sql() +
		fmt.Sprintf(" ORDER BY e.time_ns %s, e.seq %s", dir, dir)
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := s.pool.Query(ctx, query, w.args...)
	if err != nil {
		return fmt.Errorf("couldn't query events: %w", wrap(err))
	}
	defer rows.Close()
	for rows.Next() {
		var e stele.StoredEvent
		var leaf []byte
		if err := rows.Scan(&e.Seq, &e.Canonical, &leaf); err != nil {
			return wrap(err)
		}
		copy(e.LeafHash[:], leaf)
		if err := fn(e); err != nil {
			return err
		}
	}
	return wrap(rows.Err())
}

// Count returns the number of matching events.
func (s *Store) Count(ctx context.Context, ws string, q stele.Query) (int64, error) {
	ctx, cancel := s.read(ctx)
	defer cancel()
	wsn, err := s.wsNumber(ctx, s.pool, ws)
	if err != nil {
		return 0, err
	}
	w := newWhere(wsn, &q.Filter)
	if q.Below > 0 {
		w.add("e.seq < ?", q.Below)
	}
	var n int64
	err = s.pool.QueryRow(ctx, "SELECT count(*) FROM events e WHERE "+w.sql(), w.args...).Scan(&n)
	return n, wrap(err)
}

// Histogram counts matching events per bucket of interval.
func (s *Store) Histogram(ctx context.Context, ws string, f stele.Filter, interval time.Duration) ([]stele.Bucket, error) {
	if interval <= 0 {
		return nil, fmt.Errorf("histogram interval must be positive")
	}
	ctx, cancel := s.read(ctx)
	defer cancel()
	wsn, err := s.wsNumber(ctx, s.pool, ws)
	if err != nil {
		return nil, err
	}
	w := newWhere(wsn, &f)
	step := w.param(interval.Nanoseconds())
	// Floor division also for times before 1970.
	query := fmt.Sprintf(`SELECT b, count(*) FROM (SELECT e.time_ns - ((e.time_ns %% %[1]s) + %[1]s) %% %[1]s AS b
		FROM events e WHERE %[2]s) x GROUP BY b ORDER BY b`, step, w.sql())
	rows, err := s.pool.Query(ctx, query, w.args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't count events: %w", wrap(err))
	}
	defer rows.Close()
	var out []stele.Bucket
	for rows.Next() {
		var b, n int64
		if err := rows.Scan(&b, &n); err != nil {
			return nil, wrap(err)
		}
		out = append(out, stele.Bucket{Start: time.Unix(0, b).UTC(), Count: n})
	}
	return out, wrap(rows.Err())
}

// where builds the conditions of a query over events e, with parameters
// only: no filter value ever becomes SQL text.
type where struct {
	conds []string
	args  []any
}

// add appends cond, whose ? placeholders take a, in order.
func (w *where) add(cond string, a ...any) {
	for _, v := range a {
		cond = strings.Replace(cond, "?", w.param(v), 1)
	}
	w.conds = append(w.conds, cond)
}

// param binds v and returns its placeholder ($n).
func (w *where) param(v any) string {
	w.args = append(w.args, v)
	return fmt.Sprintf("$%d", len(w.args))
}

func (w *where) sql() string { return strings.Join(w.conds, " AND ") }

// newWhere turns a filter into conditions with the semantics of
// stele.Filter.Match, which store/storetest checks.
func newWhere(wsn int64, f *stele.Filter) *where {
	w := &where{}
	w.add("e.ws = ?", wsn)
	if f.Actor != "" {
		w.add("e.actor_id = ?", []byte(f.Actor))
	}
	if f.Type != "" {
		if prefix, ok := strings.CutSuffix(f.Type, "*"); ok {
			if root, _, found := strings.Cut(prefix, "."); found {
				w.add("e.type_root = ?", root)
			}
			w.add("starts_with(e.type, ?)", prefix)
		} else {
			w.add("e.type = ?", f.Type)
		}
	}
	if f.Category != "" {
		w.add("e.category = ?", f.Category)
	}
	if f.Node != "" {
		w.add("e.node = ?", []byte(f.Node))
	}
	if f.ResourceType != "" {
		w.add("e.resource_type = ?", []byte(f.ResourceType))
	}
	if f.ResourceID != "" {
		w.add("e.resource_id = ?", []byte(f.ResourceID))
	}
	if f.IP.IsValid() {
		// inet containment: an IPv4 prefix never contains an IPv6 address
		// and the other way round, as in netip.Prefix.Contains.
		w.add("e.ip <<= ?::inet", f.IP.Masked())
	}
	if f.Outcome != "" {
		w.add("e.outcome = ?", f.Outcome)
	}
	if !f.Since.IsZero() {
		w.add("e.time_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		w.add("e.time_ns < ?", f.Until.UnixNano())
	}
	if len(f.Text) > 0 {
		w.add("e.words @> ?::text[]", f.Text)
	}
	return w
}
