package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stele-log/stele"
	"golang.org/x/mod/sumdb/tlog"
)

// appendTx is stele.AppendTx over one PostgreSQL transaction.
type appendTx struct {
	s  *Store
	tx pgx.Tx
}

// LockHead locks ws's row in logs until the transaction ends. Under READ
// COMMITTED the row it returns is the latest committed version, so a head
// that another process moved is seen here, and every later statement of the
// transaction sees that process's rows too.
func (t *appendTx) LockHead(ctx context.Context, ws string) (stele.Head, error) {
	return t.s.head(ctx, t.tx, ws, " FOR UPDATE")
}

func (s *Store) head(ctx context.Context, q dbtx, ws, lock string) (stele.Head, error) {
	wsn, err := s.wsNumber(ctx, q, ws)
	if err != nil {
		return stele.Head{}, err
	}
	var h stele.Head
	var root []byte
	var last int64
	err = q.QueryRow(ctx, "SELECT size, root, last_received_ns FROM logs WHERE ws = $1"+lock, wsn).Scan(&h.Size, &root, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return stele.Head{}, stele.ErrNotFound
	}
	if err != nil {
		return stele.Head{}, wrap(err)
	}
	copy(h.Root[:], root)
	if last != 0 {
		h.LastReceived = time.Unix(0, last).UTC()
	}
	return h, nil
}

func (t *appendTx) Priors(ctx context.Context, ws string, ids []string) (map[string]stele.Prior, error) {
	wsn, err := t.s.wsNumber(ctx, t.tx, ws)
	if err != nil {
		return nil, err
	}
	uids := make([][16]byte, len(ids))
	for i, id := range ids {
		u, err := uuid.Parse(id)
		if err != nil {
			return nil, fmt.Errorf("bad event id %q", id)
		}
		uids[i] = u
	}
	rows, err := t.tx.Query(ctx, "SELECT id, seq, leaf_hash, request_hash FROM events WHERE ws = $1 AND id = ANY($2::uuid[])", wsn, uids)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := map[string]stele.Prior{}
	for rows.Next() {
		var id [16]byte
		var p stele.Prior
		var leaf []byte
		if err := rows.Scan(&id, &p.Seq, &leaf, &p.RequestHash); err != nil {
			return nil, wrap(err)
		}
		copy(p.LeafHash[:], leaf)
		out[uuid.UUID(id).String()] = p
	}
	return out, wrap(rows.Err())
}

func (t *appendTx) TreeHashes(ctx context.Context, ws string, indexes []int64) ([]tlog.Hash, error) {
	return t.s.treeHashes(ctx, t.tx, ws, indexes)
}

func (t *appendTx) Leaves(ctx context.Context, ws string, from, to int64) ([]stele.Leaf, error) {
	var out []stele.Leaf
	err := t.s.scanLeaves(ctx, t.tx, ws, from, to, func(l stele.Leaf) error {
		out = append(out, l)
		return nil
	})
	return out, err
}

var (
	eventColumns = []string{"ws", "seq", "id", "time_ns", "received_ns", "type", "type_root", "category", "actor_id",
		"node", "resource_type", "resource_id", "ip", "outcome", "words", "body", "leaf_hash", "request_hash"}
	treeColumns = []string{"ws", "seq", "hashes", "mac"}
)

// Append writes entries with two COPYs (events, tree) and moves the head
// with a compare-and-set on its size.
func (t *appendTx) Append(ctx context.Context, ws string, entries []stele.Entry, head stele.Head) error {
	wsn, err := t.s.wsNumber(ctx, t.tx, ws)
	if err != nil {
		return err
	}
	events := make([][]any, len(entries))
	tree := make([][]any, len(entries))
	for i := range entries {
		e := &entries[i]
		row, err := eventRow(wsn, e)
		if err != nil {
			return err
		}
		events[i] = row
		tree[i] = []any{wsn, e.Seq, joinHashes(e.TreeHashes), e.MAC}
	}
	first := head.Size - int64(len(entries))
	if _, err := t.tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromRows(events)); err != nil {
		if isUniqueViolation(err) {
			return &stele.ErrIntegrity{Workspace: ws, Seq: first, Check: "sequence",
				Detail: "a position or id of this batch is already taken by a row this write path did not write: " + err.Error()}
		}
		return fmt.Errorf("couldn't insert events %d…%d: %w", first, head.Size-1, wrap(err))
	}
	if _, err := t.tx.CopyFrom(ctx, pgx.Identifier{"tree"}, treeColumns, pgx.CopyFromRows(tree)); err != nil {
		if isUniqueViolation(err) {
			return &stele.ErrIntegrity{Workspace: ws, Seq: first, Check: "tree", Detail: "tree hashes for a position of this batch already exist"}
		}
		return fmt.Errorf("couldn't insert tree hashes %d…%d: %w", first, head.Size-1, wrap(err))
	}
	tag, err := t.tx.Exec(ctx, "UPDATE logs SET size = $1, root = $2, last_received_ns = $3 WHERE ws = $4 AND size = $5",
		head.Size, head.Root[:], head.LastReceived.UnixNano(), wsn, first)
	if err != nil {
		return fmt.Errorf("couldn't update the head: %w", wrap(err))
	}
	if tag.RowsAffected() != 1 {
		return &stele.ErrIntegrity{Workspace: ws, Seq: first, Check: "head", Detail: "the head moved during the transaction"}
	}
	return nil
}

// eventRow is the events row of e, in eventColumns order.
func eventRow(wsn int64, e *stele.Entry) ([]any, error) {
	b := e.Body
	id, err := uuid.Parse(b.ID)
	if err != nil {
		return nil, fmt.Errorf("bad event id %q", b.ID)
	}
	var node, rtype, rid []byte
	if b.Node != "" {
		node = []byte(b.Node)
	}
	if b.Resource != nil {
		rtype, rid = []byte(b.Resource.Type), []byte(b.Resource.ID)
	}
	var ip *netip.Prefix
	if b.IP != "" {
		if a, err := netip.ParseAddr(b.IP); err == nil {
			p := netip.PrefixFrom(a, a.BitLen())
			ip = &p
		}
	}
	words := stele.Tokens(b)
	if words == nil {
		words = []string{}
	}
	root, _, _ := strings.Cut(b.Type, ".")
	leaf := e.LeafHash()
	return []any{wsn, e.Seq, [16]byte(id), b.Time.UnixNano(), b.ReceivedAt.UnixNano(), b.Type, root, b.Category,
		[]byte(b.Actor.ID), node, rtype, rid, ip, b.Outcome, words, e.Canonical, leaf[:], e.RequestHash}, nil
}

func joinHashes(hs []tlog.Hash) []byte {
	out := make([]byte, 0, len(hs)*tlog.HashSize)
	for _, h := range hs {
		out = append(out, h[:]...)
	}
	return out
}

func splitHashes(b []byte) ([]tlog.Hash, error) {
	if len(b) == 0 || len(b)%tlog.HashSize != 0 {
		return nil, fmt.Errorf("malformed tree hashes (%d bytes)", len(b))
	}
	out := make([]tlog.Hash, len(b)/tlog.HashSize)
	for i := range out {
		copy(out[i][:], b[i*tlog.HashSize:])
	}
	return out, nil
}
