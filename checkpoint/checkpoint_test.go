package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func testKey(t *testing.T, name string) *Key {
	t.Helper()
	skey, err := GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignOpenRoundTrip(t *testing.T) {
	for range 50 { // keys whose base64 holds '+' included
		testSignOpen(t, testKey(t, "audit.example.com"))
	}
}

func testSignOpen(t *testing.T, k *Key) {
	origin := k.Origin("acme")
	root := tlog.RecordHash([]byte("x"))
	at := time.Date(2026, 3, 9, 14, 2, 11, 0, time.UTC)
	msg, err := k.Sign(origin, 42, root, at)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(msg, k.VerifierKey(origin))
	if err != nil {
		t.Fatal(err)
	}
	if c.Origin != origin || c.Size != 42 || c.Root != root || !c.Time.Equal(at) {
		t.Errorf("Open = %+v, want origin %s size 42 root %v time %v", c, origin, root, at)
	}
	if !strings.HasPrefix(string(msg), "audit.example.com/acme\n42\n"+root.String()+"\n\n— audit.example.com/acme ") {
		t.Errorf("note text is not a C2SP checkpoint:\n%s", msg)
	}
}

// TestInteropWithXModAndTransparencyDev checks our checkpoints with code we
// did not write: x/mod's note verifier, transparency-dev's checkpoint parser
// and its cosignature/v1 verifier.
func TestInteropWithXModAndTransparencyDev(t *testing.T) {
	k := testKey(t, "stele.test")
	origin := k.Origin("default")
	root := tlog.RecordHash([]byte("leaf"))
	at := time.Unix(1_800_000_000, 0)
	msg, err := k.Sign(origin, 7, root, at)
	if err != nil {
		t.Fatal(err)
	}
	vkey := k.VerifierKey(origin)

	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatalf("x/mod note.Open: %v", err)
	}
	if len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 1 {
		t.Fatalf("x/mod sees %d verified and %d unknown signatures, want 1 and 1", len(n.Sigs), len(n.UnverifiedSigs))
	}

	cp, _, _, err := flog.ParseCheckpoint(msg, origin, v)
	if err != nil {
		t.Fatalf("formats/log.ParseCheckpoint: %v", err)
	}
	if cp.Size != 7 || !bytes.Equal(cp.Hash, root[:]) {
		t.Errorf("formats/log parsed size %d hash %x", cp.Size, cp.Hash)
	}

	cv, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err = note.Open(msg, note.VerifierList(cv))
	if err != nil {
		t.Fatalf("cosignature/v1 line does not verify with transparency-dev: %v", err)
	}
	ts, err := fnote.CoSigV1Timestamp(n.Sigs[0])
	if err != nil || !ts.Equal(at) {
		t.Errorf("cosignature timestamp %v, %v; want %v", ts, err, at)
	}
}

func TestOpenRejects(t *testing.T) {
	k := testKey(t, "stele.test")
	other := testKey(t, "stele.test")
	origin := k.Origin("a")
	root := tlog.RecordHash([]byte("r"))
	msg, err := k.Sign(origin, 3, root, time.Unix(1_800_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		msg  []byte
		vkey string
	}{
		"foreign key":       {msg, other.VerifierKey(origin)},
		"other workspace":   {msg, k.VerifierKey(k.Origin("b"))},
		"edited size":       {bytes.Replace(msg, []byte("\n3\n"), []byte("\n4\n"), 1), k.VerifierKey(origin)},
		"edited root":       {bytes.Replace(msg, []byte(root.String()), []byte(tlog.RecordHash([]byte("s")).String()), 1), k.VerifierKey(origin)},
		"no signature line": {[]byte(Body(origin, 3, root)), k.VerifierKey(origin)},
	}
	for name, c := range cases {
		if _, err := Open(c.msg, c.vkey); err == nil {
			t.Errorf("%s: Open accepted it", name)
		}
	}
	// A note correctly signed by the key but naming another origin.
	forged, err := note.Sign(&note.Note{Text: Body(k.Origin("b"), 3, root)}, mustSigner(t, k, origin))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(forged, k.VerifierKey(origin)); err == nil || !strings.Contains(err.Error(), "origin") {
		t.Errorf("origin mismatch: err = %v", err)
	}
}

func mustSigner(t *testing.T, k *Key, name string) note.Signer {
	pub := k.PublicKey()
	return &signer{name: name, hash: keyHash(name, algEd25519, pub), sign: func(m []byte) ([]byte, error) {
		return ed25519.Sign(k.priv, m), nil
	}}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "signing.key")
	k1, created, err := LoadOrCreateKey(path, "stele.test")
	if err != nil || !created {
		t.Fatalf("create: %v, created=%v", err, created)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, created, err := LoadOrCreateKey(path, "stele.test")
	if err != nil || created {
		t.Fatalf("load: %v, created=%v", err, created)
	}
	if !k1.PublicKey().Equal(k2.PublicKey()) {
		t.Error("reloaded key differs")
	}
	if _, _, err := LoadOrCreateKey(path, "other.name"); err == nil {
		t.Error("a key of another instance name was accepted")
	}
	os.Chmod(path, 0o644)
	if _, _, err := LoadOrCreateKey(path, "stele.test"); err == nil {
		t.Error("a world-readable key file was accepted")
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{"audit.example.com": true, "": false, "a b": false, "a+b": false, "a/b": false} {
		if ValidName(name) != want {
			t.Errorf("ValidName(%q) = %v", name, !want)
		}
	}
}
