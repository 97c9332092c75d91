package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gowebpki/jcs"
	"github.com/stele-log/stele"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// canonVectors are JSON texts, none in canonical form, whose RFC 8785
// canonicalization must agree between the dashboard's JavaScript and Go:
// number forms (1e21, -0, 1.50, subnormals), escapes, key order by UTF-16
// code units (U+1F600 sorts before U+E000), and a __proto__ member.
var canonVectors = []string{
	`{"b":1,"a":2}`,
	`[1e21,1e20,1E-7,0.000001,-0.0,0,1.5,1.50,4.50,2e-3,333333333.33333329,5e-324,1.7976931348623157e308,9007199254740991,-9007199254740991,0.1,100,1e+2,123456789012345680000,1E30,0.000000000000000000000000001]`,
	`{"s":"\u0041\/\"\\\b\f\n\r\t\u0000\u001f\u007f\u0080\u2028\u2029\ud83d\ude00\u00e9 <&>"}`,
	`{"\ue000":1,"\ud83d\ude00":2,"é":3,"a":4,"A":5,"":6,"\u0080":7,"aa":8,"a\u0000":9}`,
	`{"z":[{"y":null,"x":true}],"a":{"c":false,"b":[]},"m":{}}`,
	`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}`,
	`{"__proto__":{"x":1},"constructor":2,"a":1}`,
	`"\u202egnp.exe"`,
}

// trickyBodies are events whose leaves the browser recomputes from their
// non-canonical JSON (struct order, HTML-escaped by encoding/json).
func trickyBodies() []stele.EventBody {
	at := time.Date(2026, 3, 9, 14, 2, 11, 123456789, time.UTC)
	em := stele.Emitter{Workspace: "default", KeyID: "k1", IP: "127.0.0.1"}
	return []stele.EventBody{
		{ID: "0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978", Time: at, ReceivedAt: at, Type: "incident.opened", Category: "incidents",
			Actor: stele.Actor{Type: "system", ID: "system", Name: "system (auto)"}, Node: "nyc-edge-01",
			Resource: &stele.Resource{Type: "incident", ID: "a3f7c2b1"}, Outcome: "success", Emitter: em,
			Context: json.RawMessage(`{"peak_bps":4.82E10,"ratio":1.50,"zero":-0.0,"big":1e21,"tiny":1e-7}`)},
		{ID: "0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6979", Time: at, ReceivedAt: at.Add(time.Millisecond), Type: "user.login", Category: "auth",
			Actor: stele.Actor{Type: "user", ID: "<img src=x onerror=alert(1)>", Name: "Zoë \u202eevil\u202c 😀"}, IP: "2001:db8::1",
			Outcome: "failure", Emitter: stele.Emitter{Workspace: "default"},
			Context: json.RawMessage(`{"\ue000":"private use","😀":"astral","é":"\u0000\u001b[31m\r\n","a":[true,null,{"b":"\u2028"}]}`)},
	}
}

// TestDashboardVerifyInBrowser runs the dashboard's verification code (JCS,
// RFC 6962 hashing, inclusion proofs, note signatures) in Chromium against
// Go: canonical forms and leaf hashes computed by gowebpki/jcs and x/mod's
// tlog, a real event with its proof and checkpoint, and that each kind of
// tampering fails at the step that should catch it.
func TestDashboardVerifyInBrowser(t *testing.T) {
	ts := startServer(t, "")
	events := seed(t, ts, dashboardEvents(time.Now())[:14])
	// Every seeded event's proof, the newest first: its proof is taken
	// before the reads append more, so it sits on the tree's right edge.
	var responses []json.RawMessage
	rightEdge := false
	for i := len(events) - 1; i >= 0; i-- {
		_, resp, _ := call(t, "GET", ts.URL+"/v1/events/"+events[i].ID, ts.Key, "", nil)
		var r struct{ Proof struct{ Index, Size int64 } }
		json.Unmarshal(resp, &r)
		rightEdge = rightEdge || r.Proof.Index == r.Proof.Size-1
		responses = append(responses, resp)
	}
	if !rightEdge {
		t.Fatal("no event's proof is of the last leaf of its tree")
	}
	resp := responses[len(responses)/2]
	_, vkey, _ := call(t, "GET", ts.URL+"/v1/log/key", ts.Key, "", nil)
	tb := newTab(t, ts)
	tb.do("open the dashboard", chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(chromedp.ID("login-form")))

	t.Run("canonical JSON and leaf hashes", func(t *testing.T) {
		tb.t = t
		type vector struct {
			Text      string `json:"text"`
			Canonical string `json:"canonical"`
			Leaf      string `json:"leaf"`
			Event     bool   `json:"event"`
		}
		var vectors []vector
		for _, text := range canonVectors {
			c, err := jcs.Transform([]byte(text))
			if err != nil {
				t.Fatalf("jcs %s: %v", text, err)
			}
			vectors = append(vectors, vector{Text: text, Canonical: string(c), Leaf: tlog.RecordHash(c).String()})
		}
		for i, b := range trickyBodies() {
			c, err := stele.Canonical(&b)
			if err != nil {
				t.Fatal(err)
			}
			exported, _ := json.Marshal(stele.Event{Seq: int64(i), EventBody: b, LeafHash: stele.LeafHash(c).String()})
			vectors = append(vectors, vector{Text: string(exported), Canonical: string(c), Leaf: stele.LeafHash(c).String(), Event: true})
		}
		in, _ := json.Marshal(vectors)
		type result struct {
			Canonical string `json:"canonical"`
			Leaf      string `json:"leaf"`
			Error     string `json:"error"`
		}
		got := eval[[]result](tb, fmt.Sprintf(`(async (vectors) => {
			const m = await import('/ui/js/verify.js');
			const out = [];
			for (const v of vectors) {
				try {
					let value = JSON.parse(v.text);
					if (v.event) value = m.eventBody(value);
					const canonical = m.canonicalize(value);
					out.push({canonical, leaf: m.encodeBase64(await m.leafHash(canonical)), error: ''});
				} catch (e) { out.push({canonical: '', leaf: '', error: String(e)}); }
			}
			return out;
		})(%s)`, in))
		for i, v := range vectors {
			if got[i].Canonical != v.Canonical || got[i].Leaf != v.Leaf {
				t.Errorf("vector %d %s:\n browser %q %s %s\n      go %q %s", i, v.Text, got[i].Canonical, got[i].Leaf, got[i].Error, v.Canonical, v.Leaf)
			}
		}
	})

	t.Run("inclusion proofs of every leaf of trees of 1 to 33 leaves", func(t *testing.T) {
		tb.t = t
		type proofCase struct {
			Index  int64    `json:"index"`
			Size   int64    `json:"size"`
			Leaf   string   `json:"leaf"`
			Hashes []string `json:"hashes"`
			Root   string   `json:"root"`
		}
		var stored []tlog.Hash
		reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for i, x := range idx {
				out[i] = stored[x]
			}
			return out, nil
		})
		var leaves []tlog.Hash
		var cases []proofCase
		for n := int64(0); n < 33; n++ {
			leaf := tlog.RecordHash([]byte(fmt.Sprintf("leaf %d", n)))
			hs, err := tlog.StoredHashesForRecordHash(n, leaf, reader)
			if err != nil {
				t.Fatal(err)
			}
			stored = append(stored, hs...)
			leaves = append(leaves, leaf)
			size := n + 1
			root, err := tlog.TreeHash(size, reader)
			if err != nil {
				t.Fatal(err)
			}
			for i := int64(0); i < size; i++ {
				p, err := tlog.ProveRecord(size, i, reader)
				if err != nil {
					t.Fatal(err)
				}
				c := proofCase{Index: i, Size: size, Leaf: leaves[i].String(), Root: root.String(), Hashes: []string{}}
				for _, h := range p {
					c.Hashes = append(c.Hashes, h.String())
				}
				cases = append(cases, c)
			}
		}
		in, _ := json.Marshal(cases)
		bad := eval[[]string](tb, fmt.Sprintf(`(async (cases) => {
			const m = await import('/ui/js/verify.js');
			const bad = [];
			for (const c of cases) {
				const root = await m.rootFromInclusionProof(c.index, c.size, m.decodeBase64(c.leaf), c.hashes.map((h) => m.decodeBase64(h)));
				if (m.encodeBase64(root) !== c.root) bad.push(c.index + '/' + c.size);
			}
			return bad;
		})(%s)`, in))
		if len(bad) > 0 {
			t.Errorf("%d of %d proofs fold to a wrong root: %v", len(bad), len(cases), bad)
		}
	})

	t.Run("display names as stele.DisplayName", func(t *testing.T) {
		tb.t = t
		var types []string
		for _, ts := range stele.Catalog() {
			types = append(types, ts...)
		}
		types = append(types, "a.b_c.d", "auditlog.queried", "x1.y_2", "api_key.rotated", "pcap.ip_blocked", "constructor.__proto__")
		in, _ := json.Marshal(types)
		got := eval[[]string](tb, fmt.Sprintf(`import('/ui/js/dom.js').then((m) => %s.map(m.displayName))`, in))
		for i, typ := range types {
			if got[i] != stele.DisplayName(typ) {
				t.Errorf("%s: browser %q, Go %q", typ, got[i], stele.DisplayName(typ))
			}
		}
	})

	t.Run("note key whose base64 holds a plus", func(t *testing.T) {
		tb.t = t
		var skey, vk string
		for strings.Count(vk, "+") < 3 { // the name has none: the key's base64 holds one
			var err error
			if skey, vk, err = note.GenerateKey(rand.Reader, "example.com/log"); err != nil {
				t.Fatal(err)
			}
		}
		signer, _ := note.NewSigner(skey)
		msg, err := note.Sign(&note.Note{Text: "example.com/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"}, signer)
		if err != nil {
			t.Fatal(err)
		}
		in, _ := json.Marshal([]string{vk, string(msg), strings.Replace(string(msg), "\n1\n", "\n2\n", 1)})
		got := eval[[]string](tb, fmt.Sprintf(`(async ([vkey, good, bad]) => {
			const m = await import('/ui/js/verify.js');
			const key = await m.parseVerifierKey(vkey);
			const check = async (msg) => { try { await m.verifyNoteSignature(m.parseNote(msg), key); return 'ok'; } catch (e) { return e.step + ': ' + e.message; } };
			return [key.name, await check(good), await check(bad)];
		})(%s)`, in))
		if got[0] != "example.com/log" || got[1] != "ok" || !strings.HasPrefix(got[2], "signature: ") {
			t.Errorf("vkey %s: %q", vk, got)
		}
	})

	t.Run("verification and tampering", func(t *testing.T) {
		tb.t = t
		_, otherKey, err := note.GenerateKey(rand.Reader, "stele.test/default")
		if err != nil {
			t.Fatal(err)
		}
		_, otherLog, _ := note.GenerateKey(rand.Reader, "stele.test/other")
		in, _ := json.Marshal(map[string]string{"vkey": strings.TrimSpace(string(vkey)), "other": otherKey, "otherLog": otherLog})
		type report struct {
			Status   string `json:"status"`
			Step     string `json:"step"`
			Message  string `json:"message"`
			SignedAt string `json:"signedAt"`
		}
		got := eval[map[string]report](tb, fmt.Sprintf(`(async (resp, keys) => {
			const m = await import('/ui/js/verify.js');
			const origin = 'stele.test/default';
			const clone = () => JSON.parse(JSON.stringify(resp));
			const run = (r, pinnedKey = keys.vkey) => m.verifyEvent(r, {origin, pinnedKey});
			const flip = (b64) => { const b = m.decodeBase64(b64); b[0] ^= 1; return m.encodeBase64(b); };
			const out = {};
			out.intact = await run(clone());
			let r = clone(); r.event.actor.id = 'mallory'; out.fieldAltered = await run(r);
			r = clone(); r.event.actor.id = 'mallory';
			r.event.leaf_hash = m.encodeBase64(await m.leafHash(m.canonicalize(m.eventBody(r.event)))); out.fieldAndLeafAltered = await run(r);
			r = clone(); r.event.seq += 1; out.seqAltered = await run(r);
			r = clone(); r.proof.hashes[0] = flip(r.proof.hashes[0]); out.proofHashAltered = await run(r);
			r = clone(); r.proof.hashes.pop(); out.proofTruncated = await run(r);
			r = clone(); r.checkpoint = r.checkpoint.replace(/\n([0-9]+)\n/, (_, n) => '\n' + (Number(n) + 1) + '\n'); out.checkpointSizeAltered = await run(r);
			r = clone(); out.otherKey = await run(r, keys.other);
			r = clone(); out.otherLog = await run(r, keys.otherLog);
			r = clone(); r.checkpoint = r.checkpoint.split('\n\n')[0] + '\n\n'; out.unsigned = await run(r);
			r = clone(); delete r.proof; delete r.checkpoint; out.pending = await run(r);
			for (const k in out) out[k] = {status: out[k].status, step: out[k].step, message: out[k].message, signedAt: out[k].signedAt ? out[k].signedAt.toISOString() : ''};
			return out;
		})(%s, %s)`, resp, in))
		want := map[string][2]string{
			"intact":                {"verified", ""},
			"fieldAltered":          {"failed", "leaf"},
			"fieldAndLeafAltered":   {"failed", "proof"},
			"seqAltered":            {"failed", "checkpoint"},
			"proofHashAltered":      {"failed", "proof"},
			"proofTruncated":        {"failed", "proof"},
			"checkpointSizeAltered": {"failed", "signature"},
			"otherKey":              {"failed", "signature"},
			"otherLog":              {"failed", "key"},
			"unsigned":              {"failed", "signature"},
			"pending":               {"pending", ""},
		}
		for name, w := range want {
			r := got[name]
			if r.Status != w[0] || r.Step != w[1] {
				t.Errorf("%s: %s at %q (%s), want %s at %q", name, r.Status, r.Step, r.Message, w[0], w[1])
			}
		}
		if m := got["intact"].Message; !strings.HasPrefix(m, "Verified against checkpoint ") {
			t.Errorf("intact: %q", m)
		}
		if at, err := time.Parse(time.RFC3339, got["intact"].SignedAt); err != nil || time.Since(at) > time.Minute {
			t.Errorf("checkpoint signing time %q (%v)", got["intact"].SignedAt, err)
		}
		if m := got["pending"].Message; m != "pending: not yet covered by a checkpoint" {
			t.Errorf("pending: %q", m)
		}
		all, _ := json.Marshal(responses)
		results := eval[[]string](tb, fmt.Sprintf(`(async (responses, vkey) => {
			const m = await import('/ui/js/verify.js');
			const out = [];
			for (const r of responses) out.push((await m.verifyEvent(r, {origin: 'stele.test/default', pinnedKey: vkey})).message);
			return out;
		})(%s, %q)`, all, strings.TrimSpace(string(vkey))))
		for i, m := range results {
			if !strings.HasPrefix(m, "Verified against checkpoint ") {
				t.Errorf("event %d: %s", i, m)
			}
		}
	})
}
