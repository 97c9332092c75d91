package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// appendTx is stele.AppendTx over the writer's transaction.
type appendTx struct {
	s     *Store
	tx    *sql.Tx
	stmts map[string]*sql.Stmt // hotWrites bound to tx, made on first use
	texts int                  // rows of words staged for the text index
}

// stmt returns the prepared statement q (one of hotWrites) bound to the
// transaction.
func (t *appendTx) stmt(ctx context.Context, q string) *sql.Stmt {
	st, ok := t.stmts[q]
	if !ok {
		st = t.tx.StmtContext(ctx, t.s.prepared[q])
		if t.stmts == nil {
			t.stmts = map[string]*sql.Stmt{}
		}
		t.stmts[q] = st
	}
	return st
}

func (t *appendTx) LockHead(ctx context.Context, ws string) (stele.Head, error) {
	// BEGIN IMMEDIATE already holds the database's write lock.
	wsn, err := t.s.wsNumber(ctx, t.tx, ws)
	if err != nil {
		return stele.Head{}, err
	}
	return scanHead(t.stmt(ctx, selectHead).QueryRowContext(ctx, wsn))
}

const selectHead = "SELECT size, root, last_received_ns FROM logs WHERE ws = ?"

func (s *Store) head(ctx context.Context, ws string) (stele.Head, error) {
	wsn, err := s.wsNumber(ctx, s.r, ws)
	if err != nil {
		return stele.Head{}, err
	}
	return scanHead(s.readStmt(selectHead).QueryRowContext(ctx, wsn))
}

func scanHead(row *sql.Row) (stele.Head, error) {
	var h stele.Head
	var root []byte
	var last int64
	err := row.Scan(&h.Size, &root, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return stele.Head{}, stele.ErrNotFound
	}
	if err != nil {
		return stele.Head{}, err
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
	out := map[string]stele.Prior{}
	for chunk := range chunks(ids, 500) {
		args := []any{wsn}
		for _, id := range chunk {
			u, err := uuid.Parse(id)
			if err != nil {
				return nil, fmt.Errorf("bad event id %q", id)
			}
			args = append(args, u[:])
		}
		var rows *sql.Rows
		if len(chunk) == 1 {
			rows, err = t.stmt(ctx, selectPrior).QueryContext(ctx, args...)
		} else {
			rows, err = t.tx.QueryContext(ctx, "SELECT id, rowid, leaf_hash, request_hash FROM events WHERE ws = ? AND id IN ("+placeholders(len(chunk))+")", args...)
		}
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id, leaf, req []byte
			var rid int64
			if err := rows.Scan(&id, &rid, &leaf, &req); err != nil {
				rows.Close()
				return nil, err
			}
			p := stele.Prior{Seq: rid & posMask, RequestHash: req}
			copy(p.LeafHash[:], leaf)
			out[uuid.UUID(id).String()] = p
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
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

const (
	selectPrior = "SELECT id, rowid, leaf_hash, request_hash FROM events WHERE ws = ? AND id = ?"
	insertTree  = "INSERT INTO tree (rowid, hashes, mac) VALUES (?, ?, ?)"
	updateHead  = "UPDATE logs SET size = ?, root = ?, last_received_ns = ? WHERE ws = ? AND size = ?"
)

const insertEvent = `INSERT INTO events (rowid, ws, id, time_ns, received_ns, type, type_root, category, actor_id,
	node, resource_type, resource_id, ip, outcome, body, leaf_hash, request_hash)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func (t *appendTx) Append(ctx context.Context, ws string, entries []stele.Entry, head stele.Head) error {
	wsn, err := t.s.wsNumber(ctx, t.tx, ws)
	if err != nil {
		return err
	}
	if head.Size > MaxEvents {
		return fmt.Errorf("workspace %s is full (%d events)", ws, MaxEvents)
	}
	evStmt, textStmt, treeStmt := t.stmt(ctx, insertEvent), t.stmt(ctx, insertTextPending), t.stmt(ctx, insertTree)
	for i := range entries {
		e := &entries[i]
		b := e.Body
		rid := rowid(wsn, e.Seq)
		cols, err := columnsOf(b)
		if err != nil {
			return err
		}
		leaf := e.LeafHash()
		_, err = evStmt.ExecContext(ctx, rid, wsn, cols.id, cols.timeNS, cols.receivedNS, cols.typ, cols.typeRoot, cols.category,
			cols.actorID, cols.node, cols.resourceType, cols.resourceID, cols.ip, cols.outcome, e.Canonical, leaf[:], nullBytes(e.RequestHash))
		if err != nil {
			if isConstraint(err) {
				return &stele.ErrIntegrity{Workspace: ws, Seq: e.Seq, Check: "sequence",
					Detail: "the position or id is already taken by a row this write path did not write: " + err.Error()}
			}
			return fmt.Errorf("couldn't insert event %d: %w", e.Seq, err)
		}
		if words := stele.Tokens(b); len(words) > 0 {
			if _, err := textStmt.ExecContext(ctx, rid, strings.Join(words, " ")); err != nil {
				return fmt.Errorf("couldn't index event %d: %w", e.Seq, err)
			}
			t.texts++
		}
		if _, err := treeStmt.ExecContext(ctx, rid, tree.JoinHashes(e.TreeHashes), e.MAC); err != nil {
			if isConstraint(err) {
				return &stele.ErrIntegrity{Workspace: ws, Seq: e.Seq, Check: "tree", Detail: "tree hashes for this position already exist"}
			}
			return fmt.Errorf("couldn't insert tree hashes %d: %w", e.Seq, err)
		}
	}
	res, err := t.stmt(ctx, updateHead).ExecContext(ctx, head.Size, head.Root[:], head.LastReceived.UnixNano(), wsn, head.Size-int64(len(entries)))
	if err != nil {
		return fmt.Errorf("couldn't update the head: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return &stele.ErrIntegrity{Workspace: ws, Seq: head.Size - int64(len(entries)), Check: "head", Detail: "the head moved during the transaction"}
	}
	return nil
}

// eventColumns are the query columns of an event row, derived from its
// body: the one derivation that both Append and CheckIndexes use.
type eventColumns struct {
	id                       []byte // 16-byte UUID
	timeNS, receivedNS       int64
	typ, typeRoot            string
	category, actorID        string
	node                     any // string or nil
	resourceType, resourceID any
	ip                       any // 16-byte address or nil
	outcome                  string
}

func columnsOf(b *stele.EventBody) (eventColumns, error) {
	id, err := uuid.Parse(b.ID)
	if err != nil {
		return eventColumns{}, fmt.Errorf("bad event id %q", b.ID)
	}
	c := eventColumns{id: id[:], timeNS: b.Time.UnixNano(), receivedNS: b.ReceivedAt.UnixNano(), typ: b.Type,
		category: b.Category, actorID: b.Actor.ID, outcome: b.Outcome}
	c.typeRoot, _, _ = strings.Cut(b.Type, ".")
	if b.Node != "" {
		c.node = b.Node
	}
	if b.Resource != nil {
		c.resourceType, c.resourceID = b.Resource.Type, b.Resource.ID
	}
	if b.IP != "" {
		if a, err := netip.ParseAddr(b.IP); err == nil {
			a16 := a.As16()
			c.ip = a16[:]
		}
	}
	return c, nil
}

func isConstraint(err error) bool {
	return strings.Contains(err.Error(), "constraint failed")
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func chunks[T any](xs []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(xs) > 0 {
			k := min(n, len(xs))
			if !yield(xs[:k]) {
				return
			}
			xs = xs[k:]
		}
	}
}
