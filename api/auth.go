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

// HashSecret is the stored form of a key secret or session token.
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

// Principal is who is making a request: an API key or a signed-in user,
// always of exactly one workspace.
type Principal struct {
	Workspace string
	Scopes    []string
	IP        string // source address (see clientIP)

	KeyID   string // set for API keys
	KeyName string

	User    *stele.User // set for dashboard sessions
	Session *stele.Session
}

// scopeAny admits every authenticated principal.
const scopeAny = ""

// roleScopes are what a signed-in user may do.
var roleScopes = map[string][]string{
	stele.RoleOwner:  {stele.ScopeRead, stele.ScopeAdmin, scopeOwner},
	stele.RoleAdmin:  {stele.ScopeRead, stele.ScopeAdmin},
	stele.RoleViewer: {stele.ScopeRead},
}

// scopeOwner lets a user manage other owners; no API key holds it.
const scopeOwner = "owner"

// has reports whether p holds scope. A key's admin scope includes reading
// and writing events; a user's admin role includes reading them.
func (p *Principal) has(scope string) bool {
	if scope == scopeAny || slices.Contains(p.Scopes, scope) {
		return true
	}
	if p.User == nil && (scope == stele.ScopeRead || scope == stele.ScopeWrite) {
		return slices.Contains(p.Scopes, stele.ScopeAdmin)
	}
	return false
}

func (p *Principal) require(scope string) error {
	if p.has(scope) {
		return nil
	}
	what := "credential"
	if p.User != nil {
		what = p.User.Role + " role"
	}
	return &stele.Error{Kind: stele.KindForbidden, Message: "this " + what + " lacks the " + scope + " scope"}
}

// actor is how p appears in the events the service writes about it.
func (p *Principal) actor() stele.Actor {
	switch {
	case p.User != nil:
		return stele.Actor{Type: stele.ActorUser, ID: p.User.Email, Name: p.User.Name}
	case p.KeyID == "":
		return stele.Actor{Type: stele.ActorSystem, ID: "stele", Name: p.KeyName}
	}
	return stele.Actor{Type: stele.ActorAPIKey, ID: p.KeyID, Name: p.KeyName}
}

// errUnauthenticated is the one answer to every credential that does not
// work: missing, malformed, unknown, wrong secret, expired or revoked keys,
// and dead sessions, are indistinguishable from outside (AUT-02).
var errUnauthenticated = &stele.Error{Kind: stele.KindUnauthenticated, Message: "a valid API key or session is required"}

// dummyHash is compared against when the key id is unknown, so that unknown
// ids cost the same as wrong secrets.
var dummyHash = HashSecret("stele-dummy-secret")

// rejection is why a credential was refused: recorded, never answered.
type rejection struct {
	reason    string // missing, malformed, unknown, wrong_secret, wrong_workspace, revoked, expired, session
	workspace string // the workspace the key's prefix names, if any
	keyID     string
}

func (s *Server) authenticate(r *http.Request) (*Principal, *rejection, error) {
	ip := s.clientIP(r)
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if c, err := r.Cookie(sessionCookie); err == nil {
			return s.authenticateSession(r, c.Value, ip)
		}
		return nil, &rejection{reason: "missing"}, errUnauthenticated
	}
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return nil, &rejection{reason: "malformed"}, errUnauthenticated
	}
	ws, id, secret, ok := ParseKey(strings.TrimSpace(token))
	if !ok {
		return nil, &rejection{reason: "malformed"}, errUnauthenticated
	}
	k, err := s.store.Key(r.Context(), id)
	if err != nil && !errors.Is(err, stele.ErrNotFound) {
		return nil, nil, err
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
	rej := &rejection{workspace: ws, keyID: id}
	switch {
	case err != nil:
		rej.reason = "unknown"
	case !valid:
		rej.reason = "wrong_secret"
	case k.Workspace != ws:
		rej.reason = "wrong_workspace"
	case !k.RevokedAt.IsZero():
		rej.reason = "revoked"
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		rej.reason = "expired"
	default:
		s.keys.touch(s, k.ID, now)
		return &Principal{Workspace: k.Workspace, KeyID: k.ID, KeyName: k.Name, Scopes: k.Scopes, IP: ip}, nil, nil
	}
	return nil, rej, errUnauthenticated
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
