package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// Head returns the committed head of ws's log.
func (s *Store) Head(ctx context.Context, ws string) (stele.Head, error) {
	return s.head(ctx, ws)
}

// TreeHashes reads stored hashes by tlog index from committed data.
func (s *Store) TreeHashes(ctx context.Context, ws string, indexes []int64) ([]tlog.Hash, error) {
	return s.treeHashes(ctx, s.r, ws, indexes)
}

func (s *Store) treeHashes(ctx context.Context, q queryer, ws string, indexes []int64) ([]tlog.Hash, error) {
	wsn, err := s.wsNumber(ctx, q, ws)
	if err != nil {
		return nil, err
	}
	// One statement for all the positions the indexes live at (in chunks
	// within SQLite's limit on parameters): a proof reads about log2(n) of
	// them, and a statement each would cost a round trip each.
	rows := map[int64][]tlog.Hash{}
	var seqs []int64
	for _, idx := range indexes {
		seq, _ := tree.Locate(idx)
		if _, ok := rows[seq]; !ok {
			rows[seq] = nil
			seqs = append(seqs, seq)
		}
	}
	for len(seqs) > 0 {
		chunk := seqs[:min(len(seqs), 500)]
		seqs = seqs[len(chunk):]
		args := make([]any, len(chunk))
		for i, seq := range chunk {
			args[i] = rowid(wsn, seq)
		}
		query := "SELECT rowid, hashes FROM tree WHERE rowid IN (?" + strings.Repeat(",?", len(chunk)-1) + ")"
		if err := readTreeRows(ctx, q, query, args, rows); err != nil {
			return nil, err
		}
	}
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		seq, _ := tree.Locate(idx)
		hs := rows[seq]
		if hs == nil {
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

// readTreeRows reads the tree rows query selects into rows, by seq.
func readTreeRows(ctx context.Context, q queryer, query string, args []any, rows map[int64][]tlog.Hash) error {
	rs, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var rid int64
		var blob []byte
		if err := rs.Scan(&rid, &blob); err != nil {
			return err
		}
		hs, err := tree.SplitHashes(blob)
		if err != nil {
			return fmt.Errorf("position %d: %w", rid&posMask, err)
		}
		rows[rid&posMask] = hs
	}
	return rs.Err()
}

// EventByID returns the event of ws with the given id.
func (s *Store) EventByID(ctx context.Context, ws, id string) (stele.StoredEvent, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return stele.StoredEvent{}, stele.ErrNotFound
	}
	wsn, err := s.wsNumber(ctx, s.r, ws)
	if err != nil {
		return stele.StoredEvent{}, err
	}
	var e stele.StoredEvent
	var rid int64
	var leaf []byte
	err = s.r.QueryRowContext(ctx, "SELECT rowid, body, leaf_hash FROM events WHERE ws = ? AND id = ?", wsn, u[:]).Scan(&rid, &e.Canonical, &leaf)
	if errors.Is(err, sql.ErrNoRows) {
		return stele.StoredEvent{}, stele.ErrNotFound
	}
	if err != nil {
		return stele.StoredEvent{}, err
	}
	e.Seq = rid & posMask
	copy(e.LeafHash[:], leaf)
	return e, nil
}

const eventWorkspacesSQL = "SELECT w.id FROM workspaces w CROSS JOIN events e WHERE e.ws = w.n AND e.id = ? ORDER BY w.id"

// EventWorkspaces returns the workspaces holding an event with id: one
// probe of the (ws, id) index per workspace, inside SQLite (CROSS JOIN
// keeps workspaces the outer loop, so no plan scans the events).
func (s *Store) EventWorkspaces(ctx context.Context, id string) ([]string, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, eventWorkspacesSQL, u[:])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var ws string
		if err := rows.Scan(&ws); err != nil {
			return nil, err
		}
		out = append(out, ws)
	}
	return out, rows.Err()
}

// ScanLeaves calls fn for each position of ws from from on.
func (s *Store) ScanLeaves(ctx context.Context, ws string, from int64, fn func(stele.Leaf) error) error {
	return s.scanLeaves(ctx, s.r, ws, from, MaxEvents, fn)
}

// scanLeaves reads positions [from, to) from the tree, joined with their
// events. A tree row without an event yields a Leaf with nil Canonical and
// the leaf hash of the tree row; an event without a tree row ends the scan
// there (the gap shows as a missing position to the caller).
func (s *Store) scanLeaves(ctx context.Context, q queryer, ws string, from, to int64, fn func(stele.Leaf) error) error {
	wsn, err := s.wsNumber(ctx, q, ws)
	if err != nil {
		return err
	}
	rows, err := q.QueryContext(ctx, `SELECT t.rowid, t.hashes, t.mac, e.body, e.leaf_hash
		FROM tree t LEFT JOIN events e ON e.rowid = t.rowid
		WHERE t.rowid >= ? AND t.rowid < ? ORDER BY t.rowid`, rowid(wsn, from), rowid(wsn, min(to, MaxEvents)))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var rid int64
		var hashes, mac, body, leaf []byte
		if err := rows.Scan(&rid, &hashes, &mac, &body, &leaf); err != nil {
			return err
		}
		l := stele.Leaf{Seq: rid & posMask, Canonical: body, MAC: mac}
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
	return rows.Err()
}
