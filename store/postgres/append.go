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
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// appendTx is stele.AppendTx over one connection, in a transaction that
// begins with its first statement.
type appendTx struct {
	s     *Store
	conn  *pgx.Conn
	begun bool
	// pending holds the appends' statements, sent with the COMMIT; stmts
	// says, for each, which append and which part of it it is, for errors.
	pending *pgx.Batch
	stmts   []pendingStmt
}

// pendingStmt is one statement of pending.
type pendingStmt struct {
	ws        string
	part      string // "sequence" (events), "tree" or "head"
	first     int64
	afterLast int64
}

// queue adds a statement of the append of [first, afterLast) to ws.
func (t *appendTx) queue(st pendingStmt, sql string, args ...any) {
	if t.pending == nil {
		t.pending = &pgx.Batch{}
	}
	t.pending.Queue(sql, args...)
	t.stmts = append(t.stmts, st)
}

// begin opens the transaction unless its first statement did.
func (t *appendTx) begin(ctx context.Context) error {
	if t.begun {
		return nil
	}
	if _, err := t.conn.Exec(ctx, "BEGIN"); err != nil {
		return wrap(err)
	}
	t.begun = true
	return nil
}

// LockHead locks ws's row in logs until the transaction ends. Under READ
// COMMITTED the row it returns is the latest committed version, so a head
// that another process moved is seen here, and every later statement of the
// transaction sees that process's rows too.
func (t *appendTx) LockHead(ctx context.Context, ws string) (stele.Head, error) {
	const lock = `SELECT l.ws, l.size, l.root, l.last_received_ns FROM logs l JOIN workspaces w ON w.n = l.ws
		WHERE w.id = $1 FOR UPDATE OF l`
	var row pgx.Row
	var br pgx.BatchResults
	if t.begun {
		row = t.conn.QueryRow(ctx, lock, ws)
	} else {
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(lock, ws)
		br = t.conn.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			br.Close()
			return stele.Head{}, wrap(err)
		}
		t.begun = true
		row = br.QueryRow()
	}
	var h stele.Head
	var wsn, last int64
	var root []byte
	err := row.Scan(&wsn, &h.Size, &root, &last)
	if br != nil {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return stele.Head{}, stele.ErrNotFound
	}
	if err != nil {
		return stele.Head{}, wrap(err)
	}
	t.s.wsMu.Lock()
	t.s.wsNum[ws] = wsn
	t.s.wsMu.Unlock()
	copy(h.Root[:], root)
	if last != 0 {
		h.LastReceived = time.Unix(0, last).UTC()
	}
	return h, nil
}

func (s *Store) head(ctx context.Context, q dbtx, ws string) (stele.Head, error) {
	wsn, err := s.wsNumber(ctx, q, ws)
	if err != nil {
		return stele.Head{}, err
	}
	var h stele.Head
	var root []byte
	var last int64
	err = q.QueryRow(ctx, "SELECT size, root, last_received_ns FROM logs WHERE ws = $1", wsn).Scan(&h.Size, &root, &last)
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
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	wsn, err := t.s.wsNumber(ctx, t.conn, ws)
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
	rows, err := t.conn.Query(ctx, "SELECT id, seq, leaf_hash, request_hash FROM events WHERE ws = $1 AND id = ANY($2::uuid[])", wsn, uids)
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
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.s.treeHashes(ctx, t.conn, ws, indexes)
}

func (t *appendTx) Leaves(ctx context.Context, ws string, from, to int64) ([]stele.Leaf, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	var out []stele.Leaf
	err := t.s.scanLeaves(ctx, t.conn, ws, from, to, func(l stele.Leaf) error {
		out = append(out, l)
		return nil
	})
	return out, err
}

// EventColumns and TreeColumns name the columns that CopyRows fills, in
// order; with them a benchmark loads exactly the store's rows without the
// store (stele bench ingest --db's baselines).
var (
	EventColumns = eventColumns
	TreeColumns  = treeColumns
)

var (
	eventColumns = []string{"ws", "seq", "id", "time_ns", "received_ns", "type", "type_root", "category", "actor_id",
		"node", "resource_type", "resource_id", "ip", "outcome", "words", "body", "leaf_hash", "request_hash"}
	treeColumns = []string{"ws", "seq", "hashes", "mac"}
)

// insertEvents and insertTree insert a batch from one array per column
// (words joined by spaces: tokens never hold one), so that the rows and the
// head update go to the server in one round trip.
const (
	insertEvents = `INSERT INTO events (ws, seq, id, time_ns, received_ns, type, type_root, category, actor_id,
		node, resource_type, resource_id, ip, outcome, words, body, leaf_hash, request_hash)
	SELECT $1, u.seq, u.id, u.time_ns, u.received_ns, u.type, u.type_root, u.category, u.actor_id,
		u.node, u.resource_type, u.resource_id, u.ip, u.outcome, string_to_array(u.words, ' '), u.body, u.leaf_hash, u.request_hash
	FROM unnest($2::bigint[], $3::uuid[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::bytea[],
		$10::bytea[], $11::bytea[], $12::bytea[], $13::inet[], $14::text[], $15::text[], $16::bytea[], $17::bytea[], $18::bytea[])
		AS u(seq, id, time_ns, received_ns, type, type_root, category, actor_id,
			node, resource_type, resource_id, ip, outcome, words, body, leaf_hash, request_hash)`
	insertTree = `INSERT INTO tree (ws, seq, hashes, mac) SELECT $1, u.seq, u.hashes, u.mac
	FROM unnest($2::bigint[], $3::bytea[], $4::bytea[]) AS u(seq, hashes, mac)`
	moveHead = `SELECT stele_move_head($1, $2, $3, $4, $5)`
)

// Append queues the statements that insert entries and move the head (a
// compare-and-set on its size); Update sends them with the COMMIT, in one
// round trip. A position or id already taken, or a head that moved, fails
// the commit with an *stele.ErrIntegrity.
func (t *appendTx) Append(ctx context.Context, ws string, entries []stele.Entry, head stele.Head) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	wsn, err := t.s.wsNumber(ctx, t.conn, ws)
	if err != nil {
		return err
	}
	first := head.Size - int64(len(entries))
	if len(entries) >= copyThreshold {
		if err := t.copyRows(ctx, ws, wsn, entries, first); err != nil {
			return err
		}
		t.queue(pendingStmt{ws, "head", first, head.Size}, moveHead, wsn, first, head.Size, head.Root[:], head.LastReceived.UnixNano())
		return nil
	}
	cols := make([][]any, len(eventColumns)-1) // without ws
	for i := range cols {
		cols[i] = make([]any, len(entries))
	}
	seqs := make([]int64, len(entries))
	hashes := make([][]byte, len(entries))
	macs := make([][]byte, len(entries))
	for i := range entries {
		row, err := eventRow(wsn, &entries[i])
		if err != nil {
			return err
		}
		row[14] = strings.Join(row[14].([]string), " ")
		for c := range cols {
			cols[c][i] = row[c+1]
		}
		seqs[i], hashes[i], macs[i] = entries[i].Seq, tree.JoinHashes(entries[i].TreeHashes), entries[i].MAC
	}
	args := []any{wsn}
	for c, name := range eventColumns[1:] {
		args = append(args, typedColumn(name, cols[c]))
	}
	t.queue(pendingStmt{ws, "sequence", first, head.Size}, insertEvents, args...)
	t.queue(pendingStmt{ws, "tree", first, head.Size}, insertTree, wsn, seqs, hashes, macs)
	t.queue(pendingStmt{ws, "head", first, head.Size}, moveHead, wsn, first, head.Size, head.Root[:], head.LastReceived.UnixNano())
	return nil
}

// copyThreshold is the batch size from which COPY, a round trip of its own
// per table, is cheaper for the server than INSERT … SELECT FROM unnest.
const copyThreshold = 64

// copyRows writes entries with two COPYs, at once.
func (t *appendTx) copyRows(ctx context.Context, ws string, wsn int64, entries []stele.Entry, first int64) error {
	events, treeRows, err := CopyRows(wsn, entries)
	if err != nil {
		return err
	}
	if _, err := t.conn.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromRows(events)); err != nil {
		if isUniqueViolation(err) {
			return &stele.ErrIntegrity{Workspace: ws, Seq: first, Check: "sequence",
				Detail: "a position or id of this batch is already taken by a row this write path did not write: " + err.Error()}
		}
		return fmt.Errorf("couldn't insert events %d…%d: %w", first, first+int64(len(entries))-1, wrap(err))
	}
	if _, err := t.conn.CopyFrom(ctx, pgx.Identifier{"tree"}, treeColumns, pgx.CopyFromRows(treeRows)); err != nil {
		if isUniqueViolation(err) {
			return &stele.ErrIntegrity{Workspace: ws, Seq: first, Check: "tree", Detail: "tree hashes for a position of this batch already exist"}
		}
		return fmt.Errorf("couldn't insert tree hashes %d…%d: %w", first, first+int64(len(entries))-1, wrap(err))
	}
	return nil
}

// commit sends the pending appends and COMMIT in one batch. A statement the
// server refuses aborts the transaction (the COMMIT then rolls back) and is
// reported as what it means; a failure of the connection leaves the outcome
// unknown and wraps stele.ErrUnavailable.
func (t *appendTx) commit(ctx context.Context) error {
	b := t.pending
	if b == nil {
		b = &pgx.Batch{}
	}
	n := b.Len()
	b.Queue("COMMIT")
	br := t.conn.SendBatch(ctx, b)
	defer br.Close()
	for i := range n {
		if _, err := br.Exec(); err != nil {
			return t.appendError(i, err)
		}
	}
	tag, err := br.Exec()
	if err != nil {
		return fmt.Errorf("%w: commit failed, its outcome is unknown: %v", stele.ErrUnavailable, err)
	}
	if tag.String() != "COMMIT" {
		return fmt.Errorf("%w: the server rolled the transaction back (%s)", stele.ErrUnavailable, tag)
	}
	return wrap(br.Close())
}

// appendError classifies the failure of pending statement i.
func (t *appendTx) appendError(i int, err error) error {
	a := t.stmts[i]
	var pgErr *pgconn.PgError
	switch {
	case !errors.As(err, &pgErr):
		return fmt.Errorf("%w: commit failed, its outcome is unknown: %v", stele.ErrUnavailable, err)
	case isUniqueViolation(err) && a.part == "sequence":
		return &stele.ErrIntegrity{Workspace: a.ws, Seq: a.first, Check: "sequence",
			Detail: "a position or id of this batch is already taken by a row this write path did not write: " + pgErr.Message}
	case isUniqueViolation(err) && a.part == "tree":
		return &stele.ErrIntegrity{Workspace: a.ws, Seq: a.first, Check: "tree", Detail: "tree hashes for a position of this batch already exist"}
	case pgErr.Code == "ST001":
		return &stele.ErrIntegrity{Workspace: a.ws, Seq: a.first, Check: "head", Detail: "the head moved during the transaction"}
	}
	return fmt.Errorf("couldn't append %d…%d to %s: %w", a.first, a.afterLast-1, a.ws, wrap(err))
}

// typedColumn turns a column of eventRow values into the slice type its
// array parameter takes.
func typedColumn(name string, vals []any) any {
	switch name {
	case "seq", "time_ns", "received_ns":
		out := make([]int64, len(vals))
		for i, v := range vals {
			out[i] = v.(int64)
		}
		return out
	case "id":
		out := make([][16]byte, len(vals))
		for i, v := range vals {
			out[i] = v.([16]byte)
		}
		return out
	case "ip":
		out := make([]*netip.Prefix, len(vals))
		for i, v := range vals {
			out[i] = v.(*netip.Prefix)
		}
		return out
	case "type", "type_root", "category", "outcome", "words":
		out := make([]string, len(vals))
		for i, v := range vals {
			out[i] = v.(string)
		}
		return out
	default: // bytea
		out := make([][]byte, len(vals))
		for i, v := range vals {
			out[i], _ = v.([]byte)
		}
		return out
	}
}

// CopyRows returns the events and tree rows that Append writes for entries
// of the workspace numbered wsn.
func CopyRows(wsn int64, entries []stele.Entry) (events, treeRows [][]any, err error) {
	for i := range entries {
		row, err := eventRow(wsn, &entries[i])
		if err != nil {
			return nil, nil, err
		}
		events = append(events, row)
		treeRows = append(treeRows, []any{wsn, entries[i].Seq, tree.JoinHashes(entries[i].TreeHashes), entries[i].MAC})
	}
	return events, treeRows, nil
}

// WorkspaceNumber returns the internal number of workspace ws, the leading
// column of its rows.
func (s *Store) WorkspaceNumber(ctx context.Context, ws string) (int64, error) {
	ctx, cancel := s.lookup(ctx)
	defer cancel()
	return s.wsNumber(ctx, s.pool, ws)
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
