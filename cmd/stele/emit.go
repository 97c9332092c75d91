package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/client"
)

// clientFlags are the flags of every command that talks to a server.
type clientFlags struct {
	server string
	key    string
}

func (c *clientFlags) register(fs interface {
	StringVar(*string, string, string, string)
}) {
	fs.StringVar(&c.server, "server", "http://127.0.0.1:8080", "URL of the Stele server")
	fs.StringVar(&c.key, "key", "", "API key (or STELE_KEY)")
}

func (c *clientFlags) client() (*client.Client, error) {
	if c.key == "" {
		return nil, errors.New("an API key is required: --key or STELE_KEY")
	}
	return client.New(c.server, c.key), nil
}

// runEmit logs one event given by flags, or events read as NDJSON from
// stdin with --stdin, through the batching emitter.
func runEmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("emit", stderr)
	var cf clientFlags
	cf.register(fs)
	var ev client.Event
	var actor, resource, contextJSON string
	var stdin, wait bool
	fs.StringVar(&ev.Type, "type", "", "event type, such as incident.opened")
	fs.StringVar(&actor, "actor", "", "actor as type:id[:name], such as user:alice@acme.com or system:system:system (auto)")
	fs.StringVar(&ev.Node, "node", "", "node the event concerns")
	fs.StringVar(&resource, "resource", "", "resource as type:id[:name]")
	fs.StringVar(&ev.IP, "ip", "", "source IP of the action")
	fs.StringVar(&ev.Outcome, "outcome", "", "success (default) or failure")
	fs.StringVar(&contextJSON, "context", "", "context as a JSON object")
	fs.StringVar(&ev.ID, "id", "", "event id (UUID); default a new UUIDv7, which makes retries idempotent")
	fs.BoolVar(&stdin, "stdin", false, "read events as NDJSON from standard input instead")
	fs.BoolVar(&wait, "wait-checkpoint", false, "return only once a signed checkpoint covers the events, and print it")
	if err := parse(fs, args); err != nil {
		return err
	}
	if cf.key == "" {
		cf.key = os.Getenv("STELE_KEY")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if stdin {
		return emitStream(ctx, c, os.Stdin, stdout, stderr)
	}
	if ev.Type == "" || actor == "" {
		return errors.New("--type and --actor are required (or --stdin)")
	}
	at, rest, _ := strings.Cut(actor, ":")
	id, name, _ := strings.Cut(rest, ":")
	ev.Actor = stele.Actor{Type: at, ID: id, Name: name}
	if resource != "" {
		rt, rest, _ := strings.Cut(resource, ":")
		rid, rname, _ := strings.Cut(rest, ":")
		ev.Resource = &stele.Resource{Type: rt, ID: rid, Name: rname}
	}
	if contextJSON != "" {
		ev.Context = json.RawMessage(contextJSON)
	}
	res, err := c.Append(ctx, []client.Event{ev}, wait)
	if err != nil {
		return err
	}
	for _, r := range res.Events {
		fmt.Fprintf(stdout, "%s seq=%d leaf_hash=%s\n", r.ID, r.Seq, r.LeafHash)
	}
	if res.Checkpoint != "" {
		fmt.Fprint(stdout, res.Checkpoint)
	}
	return nil
}

func emitStream(ctx context.Context, c *client.Client, in io.Reader, stdout, stderr io.Writer) error {
	em := c.NewEmitter()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), stele.MaxEventBytes)
	var waits []<-chan error
	line := 0
	for sc.Scan() {
		line++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var ev client.Event
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			em.Close()
			return fmt.Errorf("line %d: %w", line, err)
		}
		_, done := em.Emit(ev)
		waits = append(waits, done)
	}
	if err := sc.Err(); err != nil {
		em.Close()
		return err
	}
	err := em.Close()
	n := 0
	for _, w := range waits {
		if <-w == nil {
			n++
		}
	}
	fmt.Fprintf(stderr, "%d of %d events logged\n", n, len(waits))
	return err
}
