package integrity

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/stele-log/stele/checkpoint"
	"golang.org/x/mod/sumdb/note"
)

// ParseLogKey reads a log's verifier key, as GET /v1/log/key and the
// server's banner print it ("<instance>/<workspace>+<hash>+<key>"), and
// returns the instance name and the Ed25519 key, which every workspace of
// the instance shares.
func ParseLogKey(vkey string) (instance string, pub ed25519.PublicKey, err error) {
	vkey = strings.TrimSpace(vkey)
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return "", nil, fmt.Errorf("not a note verifier key: %w", err)
	}
	parts := strings.SplitN(vkey, "+", 3) // name, hash, base64 key (which may hold '+')
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 0x01 {
		return "", nil, errors.New("not an Ed25519 log key")
	}
	instance, _, ok := strings.Cut(v.Name(), "/")
	if !ok || !checkpoint.ValidName(instance) {
		return "", nil, fmt.Errorf("key name %q is not a log origin <instance>/<workspace>", v.Name())
	}
	return instance, ed25519.PublicKey(raw[1:]), nil
}

// origin is the checkpoint origin of ws's log.
func (o *Options) origin(ws string) string { return o.Instance + "/" + ws }

// VerifierKey returns the note verifier key of ws's checkpoints.
func (o *Options) VerifierKey(ws string) (string, error) {
	return note.NewEd25519VerifierKey(o.origin(ws), o.PublicKey)
}

// openTrusted verifies the externally saved checkpoints and sorts them by
// workspace. A saved checkpoint that does not verify is an error in the
// input, not a finding about the database.
func openTrusted(opts Options) (map[string][]*checkpoint.Opened, error) {
	out := map[string][]*checkpoint.Opened{}
	for i, msg := range opts.Trusted {
		body, _, _ := strings.Cut(string(msg), "\n\n")
		c, err := checkpoint.ParseBody(body + "\n")
		if err != nil {
			return nil, fmt.Errorf("trusted checkpoint %d: %w", i+1, err)
		}
		ws, ok := strings.CutPrefix(c.Origin, opts.Instance+"/")
		if !ok || ws == "" {
			return nil, fmt.Errorf("trusted checkpoint %d: origin %q is not a log of instance %q", i+1, c.Origin, opts.Instance)
		}
		vkey, err := opts.VerifierKey(ws)
		if err != nil {
			return nil, err
		}
		opened, err := checkpoint.Open(msg, vkey)
		if err != nil {
			return nil, fmt.Errorf("trusted checkpoint %d (%s): %w", i+1, c.Origin, err)
		}
		out[ws] = append(out[ws], opened)
	}
	return out, nil
}
