package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/stele-log/stele"
)

// CheckIndexes calls fn for every event of ws whose query columns (the
// ones filters and pages read: id, times, type, category, actor, node,
// resource, ip, outcome) differ from what its canonical bytes say, as
// Append derives them. An edit to those columns alone would hide an event
// from filtered queries without touching the signed bytes. It reads in
// transactions of 100,000 events, so it can run beside a live server; it
// stops at fn's first error. The free-text index is contentless and cannot
// be read back, so it is not compared.
func (s *Store) CheckIndexes(ctx context.Context, ws string, fn func(seq int64, detail string) error) error {
	wsn, err := s.wsNumber(ctx, s.r, ws)
	if err != nil {
		return err
	}
	const chunk = 100_000
	for from := int64(0); from < MaxEvents; from += chunk {
		var next sql.NullInt64
		err := s.r.QueryRowContext(ctx, "SELECT min(rowid) FROM events WHERE rowid >= ? AND rowid < ?",
			rowid(wsn, from), rowid(wsn, MaxEvents)).Scan(&next)
		if err != nil || !next.Valid {
			return err
		}
		from = next.Int64 & posMask
		if err := s.checkIndexChunk(ctx, wsn, from, min(from+chunk, MaxEvents), fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) checkIndexChunk(ctx context.Context, wsn, from, to int64, fn func(int64, string) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT rowid, id, time_ns, received_ns, type, type_root, category, actor_id,
		node, resource_type, resource_id, ip, outcome, body FROM events WHERE rowid >= ? AND rowid < ? ORDER BY rowid`,
		rowid(wsn, from), rowid(wsn, to))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var rid int64
		var got eventColumns
		var node, rtype, rid2 sql.NullString
		var ip, body []byte
		if err := rows.Scan(&rid, &got.id, &got.timeNS, &got.receivedNS, &got.typ, &got.typeRoot, &got.category, &got.actorID,
			&node, &rtype, &rid2, &ip, &got.outcome, &body); err != nil {
			return err
		}
		seq := rid & posMask
		var b stele.EventBody
		if err := json.Unmarshal(body, &b); err != nil {
			if err := fn(seq, "the stored event does not decode"); err != nil {
				return err
			}
			continue
		}
		want, err := columnsOf(&b)
		if err != nil {
			if err := fn(seq, err.Error()); err != nil {
				return err
			}
			continue
		}
		if col := differingColumn(got, want, node, rtype, rid2, ip); col != "" {
			if err := fn(seq, fmt.Sprintf("the query column %s differs from the stored event", col)); err != nil {
				return err
			}
		}
	}
	return rows.Err()
}

// differingColumn names the first column of got (with its nullable ones
// read apart) that differs from want, or returns "".
func differingColumn(got, want eventColumns, node, rtype, rid sql.NullString, ip []byte) string {
	str := func(v any) sql.NullString {
		s, ok := v.(string)
		return sql.NullString{String: s, Valid: ok}
	}
	wantIP, _ := want.ip.([]byte)
	switch {
	case !bytes.Equal(got.id, want.id):
		return "id"
	case got.timeNS != want.timeNS:
		return "time_ns"
	case got.receivedNS != want.receivedNS:
		return "received_ns"
	case got.typ != want.typ || got.typeRoot != want.typeRoot:
		return "type"
	case got.category != want.category:
		return "category"
	case got.actorID != want.actorID:
		return "actor_id"
	case node != str(want.node):
		return "node"
	case rtype != str(want.resourceType) || rid != str(want.resourceID):
		return "resource"
	case !bytes.Equal(ip, wantIP):
		return "ip"
	case got.outcome != want.outcome:
		return "outcome"
	}
	return ""
}
