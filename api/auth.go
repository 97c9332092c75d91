package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stele-log/stele"
)

// API keys look like stl_<workspace>_<key id>_<secret>. The public prefix
// stl_<workspace>_<key id> names the key and its workspace; the secret is
// 160 random bits. Only SHA-256 of the secret is stored, and it is compared
// in constant time.
const keyPrefix = "stl_"

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return strings.ToLower(b32.EncodeToString(b))
}

// NewKeySecret returns a new key id and secret, and the full key string.
func NewKeySecret(ws string) (id, secret, full string) {
	id, secret = randomToken(8), randomToken(20)
	return id, secret, keyPrefix + ws + "_" + id + "_" + secret
}

// HashSecret is the stored form of a key secret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// ParseKey splits a full API key into workspace, key id and secret.
func ParseKey(full string) (ws, id, secret string, ok bool) {
	rest, found := strings.CutPrefix(full, keyPrefix)
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, "_")
	if len(parts) != 3 || !ValidWorkspaceID(parts[0]) || len(parts[1]) != 13 || len(parts[2]) != 32 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// ValidWorkspaceID reports whether id can name a workspace: 1 to 63
// lowercase letters, digits and hyphens, starting with a letter or digit.
func ValidWorkspaceID(id string) bool {
	if len(id) == 0 || len(id) > 63 || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Principal is who is making a request: always one workspace.
type Principal struct {
	Workspace string
	KeyID     string
	KeyName   string
	Scopes    []string
	IP        string // source address (see clientIP)
}

// scopeAny admits every authenticated principal.
const scopeAny = ""

// has reports whether p holds scope; admin includes reading and writing events.
func (p *Principal) has(scope string) bool {
	if scope == scopeAny || slices.Contains(p.Scopes, scope) {
		return true
	}
	return (scope == stele.ScopeRead || scope == stele.ScopeWrite) && slices.Contains(p.Scopes, stele.ScopeAdmin)
}

func (p *Principal) require(scope string) error {
	if p.has(scope) {
		return nil
	}
	return stele.Errorf(stele.KindForbidden, "this credential lacks the %s scope", scope)
}

// actor is how p appears in the events the service writes about it.
func (p *Principal) actor() stele.Actor {
	if p.KeyID == "" {
		return stele.Actor{Type: stele.ActorSystem, ID: "stele", Name: p.KeyName}
	}
	return stele.Actor{Type: stele.ActorAPIKey, ID: p.KeyID, Name: p.KeyName}
}

// errUnauthenticated is the one answer to every credential that does not
// work: missing, malformed, unknown, wrong secret, expired or revoked keys
// are indistinguishable from outside (AUT-02).
var errUnauthenticated = &stele.Error{Kind: stele.KindUnauthenticated, Message: "a valid API key is required"}

// dummyHash is compared against when the key id is unknown, so that unknown
// ids cost the same as wrong secrets.
var dummyHash = HashSecret("stele-dummy-secret")

func (s *Server) authenticate(r *http.Request) (*Principal, error) {
	ip := s.clientIP(r)
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return nil, errUnauthenticated
	}
	ws, id, secret, ok := ParseKey(strings.TrimSpace(token))
	if !ok {
		return nil, errUnauthenticated
	}
	k, err := s.store.Key(r.Context(), id)
	if err != nil && !errors.Is(err, stele.ErrNotFound) {
		return nil, err
	}
	want := dummyHash
	if err == nil {
		want = k.SecretHash
	}
	got := HashSecret(secret)
	now := s.now()
	valid := subtle.ConstantTimeCompare(got, want) == 1
	if !valid && err == nil && k.PrevSecretHash != nil && now.Before(k.PrevValidUntil) {
		valid = subtle.ConstantTimeCompare(got, k.PrevSecretHash) == 1
	}
	if err != nil || !valid || k.Workspace != ws || !k.RevokedAt.IsZero() || (!k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)) {
		return nil, errUnauthenticated
	}
	s.keys.touch(s, k.ID, now)
	return &Principal{Workspace: k.Workspace, KeyID: k.ID, KeyName: k.Name, Scopes: k.Scopes, IP: ip}, nil
}

// denied logs a scope failure.
func (s *Server) denied(r *http.Request, p *Principal, err error) {
	s.log.Warn("access denied", "workspace", p.Workspace, "key", p.KeyID, "method", r.Method, "path", r.URL.Path, "ip", p.IP)
}

// keyCache throttles last-used bookkeeping to one store write per key per
// minute, off the request path.
type keyCache struct {
	mu      sync.Mutex
	touched map[string]time.Time
}

func newKeyCache() *keyCache { return &keyCache{touched: map[string]time.Time{}} }

func (c *keyCache) touch(s *Server, id string, now time.Time) {
	c.mu.Lock()
	last, ok := c.touched[id]
	due := !ok || now.Sub(last) >= time.Minute
	if due {
		c.touched[id] = now
	}
	c.mu.Unlock()
	if due {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.store.TouchKey(ctx, id, now); err != nil {
				s.log.Warn("couldn't record key use", "key", id, "err", err)
			}
		}()
	}
}
