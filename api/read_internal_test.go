package api

import (
	"strings"
	"testing"
	"time"

	"github.com/stele-log/stele"
)

// TestExportFilename checks that no workspace id can break out of the
// Content-Disposition header or a path (INP-16).
func TestExportFilename(t *testing.T) {
	at := time.Date(2026, 3, 9, 14, 2, 11, 0, time.FixedZone("x", 3600))
	tests := map[string]string{
		"default":       "stele-default-20260309T130211Z.csv",
		"_system":       "stele-system-20260309T130211Z.csv",
		"../etc/passwd": "stele-_etc_passwd-20260309T130211Z.csv",
		"a\"b\r\nX: y":  "stele-a_b__X__y-20260309T130211Z.csv",
		"":              "stele-log-20260309T130211Z.csv",
		"é":             "stele-__-20260309T130211Z.csv",
	}
	for ws, want := range tests {
		if got := exportFilename(ws, at, "csv"); got != want {
			t.Errorf("exportFilename(%q) = %q, want %q", ws, got, want)
		}
	}
}

// TestCursorCodec checks that a cursor decodes only as issued: any change
// to its payload or signature, or another key, is refused.
func TestCursorCodec(t *testing.T) {
	c := cursorCodec{key: derive([]byte("master"), "cursor")}
	cur := cursor{Order: stele.OldestFirst, TimeNS: 1741528931000000000, Seq: 42, Below: 100, Now: 1741528999000000000, Query: "abc"}
	s := c.encode(cur)
	if got, ok := c.decode(s); !ok || got != cur {
		t.Fatalf("decode(encode(c)) = %+v, %v", got, ok)
	}
	for i := range len(s) {
		for _, r := range "AZaz09-_." {
			if byte(r) == s[i] {
				continue
			}
			b := []byte(s)
			b[i] = byte(r)
			if got, ok := c.decode(string(b)); ok && got != cur {
				t.Fatalf("a changed cursor %q decoded to %+v", b, got)
			}
		}
	}
	other := cursorCodec{key: derive([]byte("other"), "cursor")}
	if _, ok := other.decode(s); ok {
		t.Error("a cursor decoded under another key")
	}
	for _, bad := range []string{"", ".", "x.y", strings.Repeat("A", 100), s + "A", s[:len(s)-1]} {
		if _, ok := c.decode(bad); ok {
			t.Errorf("decode(%q) accepted", bad)
		}
	}
}
