package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/stele-log/stele"
)

// A cursor is opaque to clients: the position after the last event of a
// page, the log size and the clock pinned by the first page, and a digest of
// the query it belongs to, authenticated with an HMAC so that it cannot be
// forged or moved to another query. Pinning the size makes a walk see
// exactly the matching events that existed when it began: none skipped or
// repeated while others are appended (DUR-13). Pinning the clock keeps
// relative times (since=24h) where they were on the first page, so that the
// window does not slide under the walk.
type cursor struct {
	Order  stele.Order `json:"o"`
	TimeNS int64       `json:"t"`
	Seq    int64       `json:"s"`
	Below  int64       `json:"b"`
	Now    int64       `json:"n"` // the first page's clock, Unix nanoseconds
	Query  string      `json:"q"` // digest of workspace, filters and order
}

type cursorCodec struct{ key []byte }

func (c cursorCodec) encode(cur cursor) string {
	raw, _ := json.Marshal(cur)
	payload := base64.RawURLEncoding.EncodeToString(raw)
	return payload + "." + base64.RawURLEncoding.EncodeToString(c.sign(payload))
}

func (c cursorCodec) decode(s string) (cursor, bool) {
	payload, sig, ok := strings.Cut(s, ".")
	if !ok {
		return cursor{}, false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, c.sign(payload)) {
		return cursor{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return cursor{}, false
	}
	var cur cursor
	if json.Unmarshal(raw, &cur) != nil || cur.Below <= 0 {
		return cursor{}, false
	}
	return cur, true
}

func (c cursorCodec) sign(payload string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(payload))
	return m.Sum(nil)[:16]
}

// derive returns a key for one purpose from a master key.
func derive(master []byte, purpose string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("stele " + purpose))
	return m.Sum(nil)
}
