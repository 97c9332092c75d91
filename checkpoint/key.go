// Package checkpoint signs and opens Stele's checkpoints: C2SP
// tlog-checkpoint notes (origin, tree size, root hash) signed with the
// instance's Ed25519 key through golang.org/x/mod/sumdb/note.
//
// Each workspace's log has its own origin, "<instance name>/<workspace id>",
// and, as C2SP recommends, its checkpoints are signed under a key name equal
// to that origin. Every checkpoint carries two signature lines made with the
// same Ed25519 key: a plain Ed25519 note signature, which any signed-note
// verifier checks with the workspace's verifier key (GET /v1/log/key), and a
// timestamped C2SP tlog-cosignature/v1 signature, which carries the signing
// time that the checks of checkpoint times (C8) rely on.
//
// The package does no I/O beyond reading and writing the key file.
package checkpoint

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"golang.org/x/mod/sumdb/note"
)

// Note signature algorithm bytes (C2SP signed-note).
const (
	algEd25519      = 0x01
	algCosigEd25519 = 0x04
)

// Key is the instance's signing key. The private key never leaves the
// process: it is read from a file outside the database (RELIABILITY.md D5).
type Key struct {
	name string // instance name; the prefix of every origin
	priv ed25519.PrivateKey
}

// ValidName reports whether name can be an instance name: a non-empty note
// key name (no spaces, no '+') without '/'. Use a host name you control, such
// as audit.example.com.
func ValidName(name string) bool {
	if name == "" || strings.ContainsAny(name, "+/") {
		return false
	}
	for _, r := range name {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// GenerateKey returns a new signing key for the instance name, in the note
// private key format ("PRIVATE+KEY+name+hash+key").
func GenerateKey(name string) (string, error) {
	if !ValidName(name) {
		return "", fmt.Errorf("invalid instance name %q: use a host name such as audit.example.com", name)
	}
	skey, _, err := note.GenerateKey(rand.Reader, name)
	return skey, err
}

// ParseKey reads a key in the note private key format. The key's name is the
// instance name.
func ParseKey(skey string) (*Key, error) {
	skey = strings.TrimSpace(skey)
	if _, err := note.NewSigner(skey); err != nil {
		return nil, fmt.Errorf("malformed signing key: %w", err)
	}
	parts := strings.SplitN(skey, "+", 5) // PRIVATE, KEY, name, hash, key
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != algEd25519 {
		return nil, errors.New("malformed signing key: not an Ed25519 note key")
	}
	if !ValidName(parts[2]) {
		return nil, fmt.Errorf("signing key name %q cannot be an instance name", parts[2])
	}
	return &Key{name: parts[2], priv: ed25519.NewKeyFromSeed(raw[1:])}, nil
}

// LoadOrCreateKey reads the key file at path, or, when there is none,
// generates a key for name and writes it there with mode 0600. created
// reports which. A key file readable by others is refused.
func LoadOrCreateKey(path, name string) (k *Key, created bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		skey, err := GenerateKey(name)
		if err != nil {
			return nil, false, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("couldn't create signing key file: %w", err)
		}
		if _, err := f.WriteString(skey + "\n"); err != nil {
			f.Close()
			return nil, false, err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, false, err
		}
		if err := f.Close(); err != nil {
			return nil, false, err
		}
		k, err := ParseKey(skey)
		return k, true, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("couldn't read signing key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("signing key file %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	k, err = ParseKey(string(data))
	if err != nil {
		return nil, false, err
	}
	if name != "" && k.name != name {
		return nil, false, fmt.Errorf("signing key %s belongs to instance %q, not %q: the instance name is part of every origin and cannot change", path, k.name, name)
	}
	return k, false, nil
}

// Name returns the instance name.
func (k *Key) Name() string { return k.name }

// Origin returns the checkpoint origin of a workspace's log.
func (k *Key) Origin(workspace string) string { return k.name + "/" + workspace }

// PublicKey returns the Ed25519 public key.
func (k *Key) PublicKey() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// VerifierKey returns the note verifier key ("name+hash+key") for origin's
// checkpoints.
func (k *Key) VerifierKey(origin string) string {
	vkey, err := note.NewEd25519VerifierKey(origin, k.PublicKey())
	if err != nil {
		panic("checkpoint: origin is not a valid key name: " + origin)
	}
	return vkey
}

// MACKey derives the key that authenticates stored rows as written by this
// instance (see sequencer). It is independent of the signing key in use:
// knowing it does not allow signing.
func (k *Key) MACKey() []byte {
	m := hmac.New(sha256.New, k.priv.Seed())
	m.Write([]byte("stele row authentication v1"))
	return m.Sum(nil)
}

// keyHash is the signed-note key hash: the first four bytes of
// SHA-256(name ‖ "\n" ‖ alg ‖ public key).
func keyHash(name string, alg byte, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{alg})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}
