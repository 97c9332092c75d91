package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/client"
)

// filterFlags are the API's filter parameters as flags of the same names,
// shared by query and export.
type filterFlags struct {
	values map[string]*string
	order  string
}

var filterHelp = map[string]string{
	"actor":    "actor id, exactly (alice@acme.com)",
	"type":     "event type (incident.opened), or a prefix (pcap.*)",
	"category": "category (incidents, pcap, nodes, auth, ...)",
	"node":     "node, exactly (nyc-edge-01)",
	"resource": "resource as type:id (incident:a3f7c2b1), or a resource type",
	"ip":       "source address (203.0.113.42) or CIDR prefix (203.0.113.0/24, 2001:db8::/32)",
	"outcome":  "success or failure",
	"since":    "from this time on: RFC 3339, or relative (15m, 24h, 7d)",
	"until":    "before this time: RFC 3339, or relative",
	"q":        "free text: every word must appear in actor, node, resource or context",
}

func (ff *filterFlags) register(fs *flag.FlagSet) {
	ff.values = map[string]*string{}
	for _, name := range stele.FilterParams() {
		ff.values[name] = fs.String(name, "", filterHelp[name])
	}
	fs.StringVar(&ff.order, "order", "", "desc (newest first, the default) or asc")
}

// params returns the filters given, under the API's parameter names.
func (ff *filterFlags) params() url.Values {
	v := url.Values{}
	for name, p := range ff.values {
		if *p != "" {
			v.Set(name, *p)
		}
	}
	if ff.order != "" {
		v.Set("order", ff.order)
	}
	return v
}

// serverClient returns the client of the flags' server and key.
func (c *clientFlags) serverClient() (*client.Client, error) {
	if c.server == "" {
		return nil, errors.New("a server is required: --server or STELE_SERVER")
	}
	return c.client()
}

// runQuery prints the events that match the filters: a page as a table
// (or, with --json, as the API's JSON), or every page with --all.
func runQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("query", stderr)
	var cf clientFlags
	var ff filterFlags
	cf.register(fs)
	ff.register(fs)
	limit := fs.Int("limit", 50, "events per page (1 to 1000)")
	cursor := fs.String("cursor", "", "continue after the page that printed this cursor (same filters)")
	all := fs.Bool("all", false, "print every matching event, following the cursor page after page")
	asJSON := fs.Bool("json", false, "print JSON ({\"events\":[...],\"next_cursor\":...}) instead of a table")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (filters are flags: --actor, --type, ...)", fs.Arg(0))
	}
	c, err := cf.serverClient()
	if err != nil {
		return err
	}
	params := ff.params()
	params.Set("limit", strconv.Itoa(*limit))
	if *cursor != "" {
		params.Set("cursor", *cursor)
	}
	var events []json.RawMessage
	var next string
	for {
		page, n, err := c.Query(ctx, params)
		if err != nil {
			return err
		}
		events, next = append(events, page...), n
		if !*all || next == "" {
			break
		}
		params.Set("cursor", next)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(struct {
			Events     []json.RawMessage `json:"events"`
			NextCursor string            `json:"next_cursor,omitempty"`
		}{append([]json.RawMessage{}, events...), next})
	}
	if err := printTable(stdout, events); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(stderr, "More events match: add --cursor %s (or use --all).\n", next)
	}
	return nil
}

// tableEvent holds the fields of an event that the table shows.
type tableEvent struct {
	Time     time.Time       `json:"time"`
	Type     string          `json:"type"`
	Actor    stele.Actor     `json:"actor"`
	Node     string          `json:"node"`
	Resource *stele.Resource `json:"resource"`
	IP       string          `json:"ip"`
}

// maxCell bounds a table cell, in characters.
const maxCell = 48

// printTable prints events as the dashboard shows them — Timestamp (UTC),
// Event, Actor, Node / Resource, IP — then a count line. Every value passes
// through safeText: event fields are attacker-controlled.
func printTable(w io.Writer, events []json.RawMessage) error {
	rows := [][]string{{"TIMESTAMP (UTC)", "EVENT", "ACTOR", "NODE / RESOURCE", "IP"}}
	for _, raw := range events {
		var e tableEvent
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("couldn't read an event of the answer: %w", err)
		}
		actor := e.Actor.Name
		if actor == "" {
			actor = e.Actor.ID
		}
		var place []string
		if e.Node != "" {
			place = append(place, e.Node)
		}
		if e.Resource != nil {
			place = append(place, e.Resource.Type+":"+e.Resource.ID)
		}
		rows = append(rows, []string{e.Time.UTC().Format(time.DateTime), stele.DisplayName(e.Type), actor, strings.Join(place, " / "), e.IP})
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i := range r {
			r[i] = cell(r[i])
			widths[i] = max(widths[i], utf8.RuneCountInString(r[i]))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		var line strings.Builder
		for i, v := range r {
			line.WriteString(v)
			if i < len(r)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(v)+2))
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteString("\n")
	}
	if len(events) == 1 {
		b.WriteString("1 event\n")
	} else {
		fmt.Fprintf(&b, "%d events\n", len(events))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell makes a value safe for the terminal and at most maxCell characters.
func cell(s string) string {
	s = safeText(s)
	if utf8.RuneCountInString(s) > maxCell {
		s = string([]rune(s)[:maxCell-1]) + "…"
	}
	return s
}
