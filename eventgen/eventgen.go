// Package eventgen makes realistic audit events of the reference customer (a
// DDoS-detection platform with edge nodes, incidents, packet captures, API
// keys and maintenance windows): the sample set behind `stele serve --demo`,
// and seeded random streams for tests, property checks and benchmarks.
package eventgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/stele-log/stele"
)

// Nodes are the reference customer's edge and core nodes.
var Nodes = []string{"nyc-edge-01", "nyc-edge-02", "fra-core-01", "fra-edge-03", "sgp-edge-04", "sgp-core-02",
	"lon-edge-05", "sao-edge-02", "syd-edge-01", "ams-core-01", "iad-edge-07", "tyo-edge-03"}

// Users are human actors.
var Users = []string{"alice@acme.com", "bob@acme.com", "carol@acme.com", "dave@acme.com", "erin@acme.com",
	"frank@acme.com", "grace@acme.com", "heidi@acme.com", "ivan@acme.com", "judy@acme.com"}

// Services are bots and integrations.
var Services = []string{"deploy-bot", "terraform", "pagerduty-sync", "siem-forwarder", "billing-svc"}

// Types are the catalog's event types that people and systems emit.
var Types = []string{
	"incident.opened", "incident.acknowledged", "incident.resolved", "incident.closed",
	"pcap.started", "pcap.uploaded", "pcap.downloaded",
	"node.added", "node.renamed", "node.removed", "node.config_changed", "node.interface_changed",
	"api_key.created", "api_key.rotated", "api_key.revoked", "user.login", "user.logout", "user.login_failed",
	"maintenance.created", "maintenance.started", "maintenance.ended", "maintenance.cancelled",
	"alert_channel.added", "alert_channel.removed", "threshold.changed", "ioc_pattern.added",
	"billing.invoice_paid", "billing.plan_changed", "webhook.delivered", "report.generated",
}

// Gen produces events from a seeded source; it is not safe for concurrent use.
type Gen struct {
	r   *rand.Rand
	ips []string
}

// New returns a generator seeded with seed.
func New(seed uint64) *Gen {
	g := &Gen{r: rand.New(rand.NewPCG(seed, seed^0x5eed))}
	for i := range 150 {
		g.ips = append(g.ips, fmt.Sprintf("203.0.%d.%d", 113+i%3, 1+i))
	}
	for i := range 50 {
		g.ips = append(g.ips, fmt.Sprintf("2001:db8:%x::%x", i%4, 1+i))
	}
	return g
}

// Event returns a random event body with time t. Bodies have no id (the
// write path assigns one) unless withID is set.
func (g *Gen) Event(t time.Time, withID bool) stele.EventBody {
	typ := Types[g.r.IntN(len(Types))]
	b := stele.EventBody{Time: t.UTC(), Type: typ, Category: stele.CategoryOf(typ), Outcome: stele.OutcomeSuccess}
	switch n := g.r.IntN(10); {
	case n < 6:
		u := Users[g.r.IntN(len(Users))]
		b.Actor = stele.Actor{Type: stele.ActorUser, ID: u, Name: strings.Split(u, "@")[0]}
		b.IP = g.ips[g.r.IntN(len(g.ips))]
	case n < 8:
		s := Services[g.r.IntN(len(Services))]
		b.Actor = stele.Actor{Type: stele.ActorService, ID: s, Name: s}
		b.IP = g.ips[g.r.IntN(len(g.ips))]
	default:
		b.Actor = stele.Actor{Type: stele.ActorSystem, ID: "system", Name: "system (auto)"}
	}
	if g.r.IntN(10) < 8 {
		b.Node = Nodes[g.r.IntN(len(Nodes))]
	}
	root, _, _ := strings.Cut(typ, ".")
	if g.r.IntN(10) < 7 {
		b.Resource = &stele.Resource{Type: root, ID: fmt.Sprintf("%08x", g.r.Uint32())}
		if g.r.IntN(2) == 0 {
			b.Resource.Name = fmt.Sprintf("%s %d", root, g.r.IntN(1000))
		}
	}
	if g.r.IntN(20) == 0 {
		b.Outcome = stele.OutcomeFailure
	}
	ctx := map[string]any{
		"request_id": fmt.Sprintf("req-%012x", g.r.Uint64()>>16),
		"user_agent": []string{"Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "stele-go/1.0", "terraform/1.9"}[g.r.IntN(4)],
	}
	switch root {
	case "incident":
		ctx["peak_bps"] = g.r.IntN(100_000_000_000)
		ctx["peak_pps"] = g.r.IntN(50_000_000)
		ctx["vector"] = []string{"udp flood", "syn flood", "dns amplification", "ntp reflection"}[g.r.IntN(4)]
	case "pcap":
		ctx["sha256"] = fmt.Sprintf("%016x%016x%016x%016x", g.r.Uint64(), g.r.Uint64(), g.r.Uint64(), g.r.Uint64())
		ctx["bytes"] = g.r.IntN(1 << 30)
	case "threshold", "node":
		ctx["old"] = g.r.IntN(1000)
		ctx["new"] = g.r.IntN(1000)
	}
	b.Context, _ = json.Marshal(ctx)
	b.Context = mustCanonical(b.Context)
	if withID {
		b.ID = newUUID(g.r)
	}
	return b
}

// Stream returns n events spread over span ending at end, in time order.
func (g *Gen) Stream(n int, end time.Time, span time.Duration, withID bool) []stele.EventBody {
	out := make([]stele.EventBody, n)
	start := end.Add(-span)
	for i := range out {
		t := start.Add(time.Duration(float64(span) * (float64(i) + g.r.Float64()) / float64(n)))
		out[i] = g.Event(t, withID)
	}
	return out
}

// Rand exposes the generator's source for tests that need more choices.
func (g *Gen) Rand() *rand.Rand { return g.r }

func newUUID(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[6] = b[6]&0x0f | 0x70 // version 7
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
