package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/integrity"
	"golang.org/x/mod/sumdb/tlog"
)

var _ integrity.IndexChecker = (*Store)(nil)

// indexColumns are the query columns CheckIndexes compares, in eventColumns
// order after ws and seq.
var indexColumns = []string{"id", "time_ns", "received_ns", "type", "type_root", "category", "actor_id",
	"node", "resource_type", "resource_id", "ip", "outcome", "words"}

// CheckIndexes calls fn for every event of ws whose query columns (id,
// times, type, category, actor, node, resource, ip, outcome and the
// free-text words) differ from what its canonical bytes say, as Append
// derives them. An edit to those columns alone would hide an event from
// filtered queries without touching the signed bytes. It reads the log in
// one statement (one snapshot), so it can run beside live servers; it stops
// at fn's first error.
func (s *Store) CheckIndexes(ctx context.Context, ws string, fn func(seq int64, detail string) error) error {
	wsn, err := s.wsNumber(ctx, s.pool, ws)
	if err != nil {
		return err
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, id, time_ns, received_ns, type, type_root, category, actor_id,
		node, resource_type, resource_id, ip, outcome, words, body FROM events WHERE ws = $1 ORDER BY seq`, wsn)
	if err != nil {
		return wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq, timeNS, receivedNS int64
		var id [16]byte
		var typ, typeRoot, category, outcome string
		var actor, node, rtype, rid, body []byte
		var ip *netip.Prefix
		var words []string
		if err := rows.Scan(&seq, &id, &timeNS, &receivedNS, &typ, &typeRoot, &category, &actor, &node, &rtype, &rid, &ip, &outcome, &words, &body); err != nil {
			return wrap(err)
		}
		got := []any{id, timeNS, receivedNS, typ, typeRoot, category, actor, node, rtype, rid, ip, outcome, words}
		detail := ""
		var b stele.EventBody
		if err := json.Unmarshal(body, &b); err != nil {
			detail = "the stored event does not decode"
		} else if want, err := eventRow(wsn, &stele.Entry{Seq: seq, Body: &b, Canonical: body, TreeHashes: []tlog.Hash{{}}}); err != nil {
			detail = err.Error()
		} else if i := differingColumn(got, want[2:15]); i >= 0 {
			detail = fmt.Sprintf("the query column %s differs from the stored event", indexColumns[i])
		}
		if detail != "" {
			if err := fn(seq, detail); err != nil {
				return err
			}
		}
	}
	return wrap(rows.Err())
}

// differingColumn returns the index of the first value of got that differs
// from want, or -1.
func differingColumn(got, want []any) int {
	for i := range got {
		if !sameValue(got[i], want[i]) {
			return i
		}
	}
	return -1
}

func sameValue(a, b any) bool {
	switch a := a.(type) {
	case []byte:
		bb, _ := b.([]byte)
		return bytes.Equal(a, bb) && (a == nil) == (bb == nil)
	case *netip.Prefix:
		bp, _ := b.(*netip.Prefix)
		return (a == nil) == (bp == nil) && (a == nil || *a == *bp)
	case []string:
		bs, _ := b.([]string)
		return slices.Equal(a, bs)
	}
	return a == b
}
