package bundle_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stele-log/stele/bundle"
	"golang.org/x/mod/sumdb/tlog"
)

func TestRoundTrip(t *testing.T) {
	h1, h2 := tlog.RecordHash([]byte("a")), tlog.RecordHash([]byte("b"))
	var b bytes.Buffer
	enc, err := bundle.NewEncoder(&b, bundle.Header{Origin: "o/w", Checkpoint: "o/w\n2\nx\n", Range: &bundle.Range{From: 1, To: 3, Left: []tlog.Hash{h1}, Consistency: []tlog.Hash{}}})
	if err != nil {
		t.Fatal(err)
	}
	enc.WriteEvent([]byte(`{"seq":1,"leaf_hash":"x"}`), &bundle.Proof{Index: 1, Hashes: []tlog.Hash{h1, h2}})
	enc.WritePruned(2, h2)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	dec := bundle.NewDecoder(&b)
	h, err := dec.Header()
	if err != nil || h.Format != bundle.Format || h.Origin != "o/w" || h.Range.To != 3 || h.Range.Left[0] != h1 {
		t.Fatalf("header %+v %v", h, err)
	}
	l, err := dec.Next()
	if err != nil || string(l.Event) != `{"seq":1,"leaf_hash":"x"}` || l.Proof.Index != 1 || l.Proof.Hashes[1] != h2 {
		t.Fatalf("event line %+v %v", l, err)
	}
	if l, err = dec.Next(); err != nil || l.Pruned.Seq != 2 || l.Pruned.LeafHash != h2 {
		t.Fatalf("pruned line %+v %v", l, err)
	}
	if l, err = dec.Next(); err != nil || l.End.Events != 2 {
		t.Fatalf("end line %+v %v", l, err)
	}
	if _, err = dec.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the end: %v", err)
	}
}

func TestStrictLines(t *testing.T) {
	if _, err := bundle.ParseHeader([]byte(`{"seq":1}`)); !errors.Is(err, bundle.ErrNotBundle) {
		t.Errorf("an event line taken for a header: %v", err)
	}
	if _, err := bundle.ParseHeader([]byte(`{"format":"stele-bundle/v9"}`)); err == nil {
		t.Error("an unknown version accepted")
	}
	if _, err := bundle.ParseHeader([]byte(`{"format":"stele-bundle/v1","origin":"a","extra":1}`)); err == nil {
		t.Error("an unknown header member accepted")
	}
	for _, bad := range []string{
		`{"event":{"seq":1},"pruned":{"seq":1,"leaf_hash":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}}`,
		`{"proof":{"index":1,"hashes":[]}}`,
		`{"event":{"seq":1},"event":{"seq":2}}`,
		`{"event":{"seq":1},"proof":{"index":1,"hashes":["AAAA"]}}`,
		`{"event":{"seq":1},"other":1}`,
		`{"end":{"events":1}} {"end":{"events":2}}`,
		`{}`,
	} {
		if _, err := bundle.NewDecoder(strings.NewReader(bad)).Next(); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestTLogProofText(t *testing.T) {
	h := tlog.RecordHash([]byte("a"))
	got := string((&bundle.Proof{Index: 5, Hashes: []tlog.Hash{h}}).TLogProof([]byte("o\n1\nx\n\n— o sig\n")))
	want := "c2sp.org/tlog-proof@v1\nindex 5\n" + h.String() + "\n\no\n1\nx\n\n— o sig\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
