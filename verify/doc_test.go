package verify_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/verify"
)

// docExample returns the fenced block that follows <!-- example:name -->
// in docs/verification.md.
func docExample(t *testing.T, doc, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "<!-- example:"+name+" -->\n")
	if !ok {
		t.Fatalf("docs/verification.md has no example %q", name)
	}
	_, rest, _ = strings.Cut(rest, "\n") // the opening fence
	block, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatalf("example %q has no closing fence", name)
	}
	return block
}

// TestWorkedExample checks the leaf rule's worked example in
// docs/verification.md: the event gives the canonical bytes shown, whose
// RFC 6962 leaf hash is the one shown — by the verifier, by the server's
// own rule, and by crypto/sha256 alone.
func TestWorkedExample(t *testing.T) {
	raw, err := os.ReadFile("../docs/verification.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	event, canonical, leaf := docExample(t, doc, "event"), docExample(t, doc, "canonical"), docExample(t, doc, "leaf")

	ev, err := verify.ParseEvent([]byte(event))
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Canonical) != canonical {
		t.Errorf("canonical bytes:\n got %s\nwant %s", ev.Canonical, canonical)
	}
	if ev.Leaf.String() != leaf || ev.Claimed.String() != leaf {
		t.Errorf("leaf hash %v (leaf_hash member %v), the doc says %s", ev.Leaf, ev.Claimed, leaf)
	}
	sum := sha256.Sum256(append([]byte{0}, canonical...))
	if got := base64.StdEncoding.EncodeToString(sum[:]); got != leaf {
		t.Errorf("SHA-256(0x00 ‖ canonical) = %s, the doc says %s", got, leaf)
	}

	// The server's rule: the event body, canonicalized by stele.Canonical.
	var m map[string]json.RawMessage
	json.Unmarshal([]byte(event), &m)
	delete(m, "seq")
	delete(m, "leaf_hash")
	body, _ := json.Marshal(m)
	var b stele.EventBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatal(err)
	}
	server, err := stele.Canonical(&b)
	if err != nil || string(server) != canonical {
		t.Errorf("stele.Canonical gives\n%s\nthe doc says\n%s", server, canonical)
	}
}
