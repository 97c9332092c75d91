package checkpoint

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Body returns the C2SP tlog-checkpoint note text: origin, tree size and
// base64 root hash, each on its own line. No extension lines.
func Body(origin string, size int64, root tlog.Hash) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, size, root)
}

// Sign returns the signed checkpoint note of origin's tree of size leaves
// with root, timestamped t (whole seconds).
func (k *Key) Sign(origin string, size int64, root tlog.Hash, t time.Time) ([]byte, error) {
	if t.Unix() <= 0 {
		return nil, errors.New("checkpoint time before 1970")
	}
	pub := k.PublicKey()
	plain := &signer{name: origin, hash: keyHash(origin, algEd25519, pub), sign: func(msg []byte) ([]byte, error) {
		return ed25519.Sign(k.priv, msg), nil
	}}
	ts := uint64(t.Unix())
	cosig := &signer{name: origin, hash: keyHash(origin, algCosigEd25519, pub), sign: func(msg []byte) ([]byte, error) {
		sig := binary.BigEndian.AppendUint64(make([]byte, 0, 8+ed25519.SignatureSize), ts)
		return append(sig, ed25519.Sign(k.priv, cosignedMessage(ts, msg))...), nil
	}}
	return note.Sign(&note.Note{Text: Body(origin, size, root)}, plain, cosig)
}

// cosignedMessage is what a C2SP tlog-cosignature/v1 signature covers.
func cosignedMessage(ts uint64, body []byte) []byte {
	return append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", ts)), body...)
}

type signer struct {
	name string
	hash uint32
	sign func([]byte) ([]byte, error)
}

func (s *signer) Name() string                    { return s.name }
func (s *signer) KeyHash() uint32                 { return s.hash }
func (s *signer) Sign(msg []byte) ([]byte, error) { return s.sign(msg) }

// Opened is a checkpoint whose signature verified.
type Opened struct {
	Origin string
	Size   int64
	Root   tlog.Hash
	// Time is the signing time from the timestamped signature line; zero if
	// the note has no such line by the same key.
	Time time.Time
}

// Open verifies a signed checkpoint against vkey (a note verifier key whose
// name is the log's origin) and parses it. It fails when no signature by that
// key verifies, when the origin line differs from the key name, or when the
// text is not a well-formed checkpoint. Signatures by other keys are ignored,
// as signed notes require.
func Open(msg []byte, vkey string) (*Opened, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("bad verifier key: %w", err)
	}
	var cv note.Verifier
	if ed, ok := ed25519Key(vkey); ok {
		cv = &cosigVerifier{name: v.Name(), hash: keyHash(v.Name(), algCosigEd25519, ed), pub: ed}
	}
	verifiers := []note.Verifier{v}
	if cv != nil {
		verifiers = append(verifiers, cv)
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if !sigFrom(n.Sigs, v) {
		return nil, errors.New("signature: no valid signature by the log's key")
	}
	c, err := ParseBody(n.Text)
	if err != nil {
		return nil, err
	}
	if c.Origin != v.Name() {
		return nil, fmt.Errorf("origin %q is not the key's log %q", c.Origin, v.Name())
	}
	for _, s := range n.Sigs {
		if cv != nil && s.Hash == cv.KeyHash() && s.Name == cv.Name() {
			c.Time = time.Unix(int64(cosigTime(s)), 0).UTC()
		}
	}
	return c, nil
}

func sigFrom(sigs []note.Signature, v note.Verifier) bool {
	for _, s := range sigs {
		if s.Name == v.Name() && s.Hash == v.KeyHash() {
			return true
		}
	}
	return false
}

// ParseBody parses checkpoint note text without verifying anything.
func ParseBody(text string) (*Opened, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 || !strings.HasSuffix(text, "\n") {
		return nil, errors.New("malformed checkpoint: fewer than three lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return nil, errors.New("malformed checkpoint: bad tree size")
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil || root.String() != lines[2] {
		return nil, errors.New("malformed checkpoint: bad root hash")
	}
	for _, ext := range lines[3:] {
		if ext == "" {
			return nil, errors.New("malformed checkpoint: empty extension line")
		}
	}
	if lines[0] == "" {
		return nil, errors.New("malformed checkpoint: empty origin")
	}
	return &Opened{Origin: lines[0], Size: size, Root: root}, nil
}

// ed25519Key extracts the public key of an Ed25519 note verifier key.
func ed25519Key(vkey string) (ed25519.PublicKey, bool) {
	parts := strings.SplitN(vkey, "+", 3) // name, hash, base64 key (which may hold '+')
	if len(parts) != 3 {
		return nil, false
	}
	raw, err := decodeStd(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != algEd25519 {
		return nil, false
	}
	return ed25519.PublicKey(raw[1:]), true
}

// cosigVerifier verifies C2SP tlog-cosignature/v1 Ed25519 signatures:
// an 8-byte big-endian timestamp followed by an Ed25519 signature over
// "cosignature/v1\ntime <ts>\n" and the note text.
type cosigVerifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }
func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig)
	return ed25519.Verify(v.pub, cosignedMessage(ts, msg), sig[8:])
}

func cosigTime(s note.Signature) uint64 {
	raw, err := decodeStd(s.Base64)
	if err != nil || len(raw) < 12 {
		return 0
	}
	return binary.BigEndian.Uint64(raw[4:12]) // after the 4-byte key hash
}

func decodeStd(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
