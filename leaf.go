package stele

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/tlog"
)

// Canonical returns the leaf bytes of b: the RFC 8785 (JCS) canonical JSON
// of the event body, which is the event without seq and leaf_hash.
//
// Anyone can recompute them from an exported event with any JCS library:
// drop seq and leaf_hash, canonicalize, and hash with LeafHash.
//
// The canonicalization is jsontext's RFC 8785 mode (sorted keys by UTF-16
// code units, ES6 number forms, minimal string escapes), about three times
// faster than gowebpki/jcs on event bodies; leaf_jcs_test.go checks, by
// table and by fuzzing, that it yields the same bytes as gowebpki/jcs.
func Canonical(b *EventBody) ([]byte, error) {
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	return canonicalJSON(raw)
}

// canonicalJSON rewrites the JSON value raw in place into its RFC 8785 form.
func canonicalJSON(raw []byte) ([]byte, error) {
	v := jsontext.Value(raw)
	if err := v.Canonicalize(); err != nil {
		return nil, err
	}
	return v, nil
}

// LeafHash returns the RFC 6962 leaf hash of canonical bytes:
// SHA-256(0x00 ‖ canonical).
func LeafHash(canonical []byte) tlog.Hash { return tlog.RecordHash(canonical) }

// Seal completes a draft into the body the log stores: it stamps the
// server's receipt time and emitter, defaults time to receivedAt, and assigns
// a fresh UUIDv7 when the emitter sent no id. It returns the body with its
// canonical bytes and leaf hash.
func Seal(d *Draft, receivedAt time.Time, emitter Emitter) (EventBody, []byte, tlog.Hash, error) {
	b := d.Body
	b.ReceivedAt = receivedAt.UTC()
	if b.Time.IsZero() {
		b.Time = b.ReceivedAt
	}
	b.Emitter = emitter
	if b.ID == "" {
		id, err := newEventID()
		if err != nil {
			return EventBody{}, nil, tlog.Hash{}, err
		}
		b.ID = id
	}
	canon, err := Canonical(&b)
	if err != nil {
		return EventBody{}, nil, tlog.Hash{}, err
	}
	return b, canon, LeafHash(canon), nil
}

// RequestHash identifies what an emitter asked to log, for idempotent
// retries: the SHA-256 of the draft's fields as validation normalized them
// (time in UTC, IP in canonical form, context in RFC 8785 form), before the
// server stamped received_at and emitter or defaulted time and id. Two
// submissions of the same id are the same event exactly when their request
// hashes are equal: the same fields, however the JSON spelled them.
//
// The fields are hashed in a length-prefixed binary form, not as canonical
// JSON: equal drafts encode equally and different drafts differently, at a
// fraction of the cost (RequestHash runs for every event that carries an id).
func RequestHash(d *Draft) ([32]byte, error) {
	b := &d.Body
	buf := make([]byte, 0, 256+len(b.Context))
	buf = append(buf, "stele request v2\n"...)
	str := func(s string) { buf = binary.AppendUvarint(buf, uint64(len(s))); buf = append(buf, s...) }
	str(b.ID)
	if b.Time.IsZero() {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 1)
		buf = binary.BigEndian.AppendUint64(buf, uint64(b.Time.UnixNano()))
	}
	str(b.Type)
	str(b.Category)
	str(b.Actor.Type)
	str(b.Actor.ID)
	str(b.Actor.Name)
	str(b.Node)
	if b.Resource == nil {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 1)
		str(b.Resource.Type)
		str(b.Resource.ID)
		str(b.Resource.Name)
	}
	str(b.IP)
	str(b.Outcome)
	str(string(b.Context))
	return sha256.Sum256(buf), nil
}

// newEventID returns a fresh UUIDv7: time-ordered, so ids of recent events
// share index pages.
func newEventID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	return u.String(), nil
}
