package eventgen

import (
	"encoding/json"
	"time"

	"github.com/gowebpki/jcs"
	"github.com/stele-log/stele"
)

func mustCanonical(raw []byte) json.RawMessage {
	c, err := jcs.Transform(raw)
	if err != nil {
		panic(err)
	}
	return c
}

func ctx(v map[string]any) json.RawMessage {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return mustCanonical(raw)
}

// Demo returns the reference customer's sample events, the last one at end:
// incidents opened and resolved, packet captures started and downloaded, a
// maintenance window, an API key rotation and a new node, with the seed's
// nodes and addresses.
func Demo(end time.Time) []stele.EventBody {
	system := stele.Actor{Type: stele.ActorSystem, ID: "system", Name: "system"}
	auto := stele.Actor{Type: stele.ActorSystem, ID: "system", Name: "system (auto)"}
	alice := stele.Actor{Type: stele.ActorUser, ID: "alice@acme.com", Name: "Alice Chen"}
	bob := stele.Actor{Type: stele.ActorUser, ID: "bob@acme.com", Name: "Bob Okafor"}
	bot := stele.Actor{Type: stele.ActorService, ID: "deploy-bot", Name: "deploy-bot"}
	at := func(ago time.Duration) time.Time { return end.Add(-ago).UTC().Truncate(time.Second) }
	ev := func(ago time.Duration, typ string, a stele.Actor, node string, res *stele.Resource, ip string, c map[string]any) stele.EventBody {
		b := stele.EventBody{Time: at(ago), Type: typ, Category: stele.CategoryOf(typ), Actor: a, Node: node, Resource: res, IP: ip, Outcome: stele.OutcomeSuccess}
		if c != nil {
			b.Context = ctx(c)
		}
		return b
	}
	incident := &stele.Resource{Type: "incident", ID: "a3f7c2b1", Name: "UDP flood on 198.51.100.7"}
	incident2 := &stele.Resource{Type: "incident", ID: "9c41e0d7", Name: "SYN flood on 198.51.100.22"}
	pcap := &stele.Resource{Type: "pcap", ID: "p-5e21b9", Name: "nyc-edge-01 2026-03-09 14:02"}
	mw := &stele.Resource{Type: "maintenance", ID: "mw-0311", Name: "fra-core-01 kernel upgrade"}
	key := &stele.Resource{Type: "api_key", ID: "k-7d2f", Name: "ci-ingest"}
	return []stele.EventBody{
		ev(47*time.Hour, "node.added", alice, "sgp-edge-04", &stele.Resource{Type: "node", ID: "sgp-edge-04"}, "203.0.113.42", map[string]any{"region": "ap-southeast-1", "interfaces": 4}),
		ev(30*time.Hour, "maintenance.created", bob, "fra-core-01", mw, "198.51.100.23", map[string]any{"window": "2026-03-10T02:00Z/PT2H"}),
		ev(26*time.Hour, "maintenance.started", auto, "fra-core-01", mw, "", map[string]any{"trigger": "schedule"}),
		ev(24*time.Hour, "maintenance.ended", auto, "fra-core-01", mw, "", map[string]any{"trigger": "auto", "duration_s": 6840}),
		ev(6*time.Hour, "api_key.rotated", bot, "", key, "192.0.2.10", map[string]any{"grace_period_s": 3600}),
		ev(3*time.Hour, "incident.opened", system, "nyc-edge-01", incident, "", map[string]any{"detected_at": at(3*time.Hour + 20*time.Second).Format(time.RFC3339), "uuid": "5b0e6f6c-2f7e-4c5e-9d8a-a3f7c2b19e10", "peak_bps": 48_200_000_000, "peak_pps": 21_400_000, "vector": "udp flood"}),
		ev(3*time.Hour-time.Minute, "pcap.started", auto, "nyc-edge-01", pcap, "", map[string]any{"trigger": "incident a3f7c2b1", "filter": "udp and dst host 198.51.100.7"}),
		ev(2*time.Hour, "pcap.downloaded", alice, "nyc-edge-01", pcap, "203.0.113.42", map[string]any{"sha256": "9f2c1e0b7a5d4c3b2a190817161514131211100f0e0d0c0b0a09080706050403", "bytes": 734003200}),
		ev(90*time.Minute, "incident.resolved", alice, "nyc-edge-01", incident, "203.0.113.42", map[string]any{"duration_s": 5400, "mitigation": "rate-limit udp/53"}),
		ev(40*time.Minute, "incident.opened", system, "sgp-edge-04", incident2, "", map[string]any{"peak_bps": 12_900_000_000, "peak_pps": 9_800_000, "vector": "syn flood"}),
		ev(10*time.Minute, "threshold.changed", bob, "sgp-edge-04", &stele.Resource{Type: "threshold", ID: "syn-pps"}, "198.51.100.23", map[string]any{"old": 5_000_000, "new": 8_000_000}),
	}
}
