package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/stele-log/stele"
)

// Dashboard sessions: an opaque random token in an HttpOnly, SameSite=Strict
// cookie (Secure under TLS), of which only the SHA-256 is stored; a fresh
// token at every login (no fixation); server-side revocation at logout; and
// a per-session CSRF token that every state-changing request made with the
// cookie must echo in the X-CSRF-Token header.
const (
	sessionCookie = "stele_session"
	csrfHeader    = "X-CSRF-Token"
	sessionTTL    = 8 * time.Hour
)

func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) authenticateSession(r *http.Request, token, ip string) (*Principal, *rejection, error) {
	se, err := s.store.SessionByToken(r.Context(), HashSecret(token))
	if errors.Is(err, stele.ErrNotFound) {
		return nil, &rejection{reason: "session"}, errUnauthenticated
	}
	if err != nil {
		return nil, nil, err
	}
	if !se.RevokedAt.IsZero() || !s.now().Before(se.ExpiresAt) {
		return nil, &rejection{reason: "session", workspace: se.Workspace}, errUnauthenticated
	}
	u, err := s.store.User(r.Context(), se.UserID)
	if err != nil || !u.DisabledAt.IsZero() || u.Workspace != se.Workspace {
		return nil, &rejection{reason: "session", workspace: se.Workspace}, errUnauthenticated
	}
	p := &Principal{Workspace: u.Workspace, Scopes: roleScopes[u.Role], IP: ip, User: &u, Session: &se}
	if !safeMethod(r.Method) && !validCSRF(r, &se) {
		return p, nil, &stele.Error{Kind: stele.KindForbidden, Message: "missing or wrong " + csrfHeader + " header for a cookie-authenticated change"}
	}
	return p, nil, nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// validCSRF checks the synchronizer token, and that a browser's Origin, when
// sent, is this server.
func validCSRF(r *http.Request, se *stele.Session) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		o := strings.TrimPrefix(strings.TrimPrefix(origin, "https://"), "http://")
		if o != r.Host {
			return false
		}
	}
	got := r.Header.Get(csrfHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(se.CSRFToken)) == 1
}

type userJSON struct {
	ID         string     `json:"id"`
	Workspace  string     `json:"workspace"`
	Email      string     `json:"email"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	Disabled   bool       `json:"disabled"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
	// Password is set only in the response that created the user without
	// one: shown once.
	Password string `json:"password,omitempty"`
}

func toUserJSON(u stele.User) userJSON {
	out := userJSON{ID: u.ID, Workspace: u.Workspace, Email: u.Email, Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt}
	if !u.DisabledAt.IsZero() {
		t := u.DisabledAt
		out.Disabled, out.DisabledAt = true, &t
	}
	return out
}

type sessionJSON struct {
	User      userJSON  `json:"user"`
	CSRFToken string    `json:"csrf_token"`
	ExpiresAt time.Time `json:"expires_at"`
	Origin    string    `json:"origin"`
	LogKey    string    `json:"log_key"`
}

func (s *Server) sessionJSON(u stele.User, se *stele.Session) sessionJSON {
	origin := s.key.Origin(u.Workspace)
	return sessionJSON{User: toUserJSON(u), CSRFToken: se.CSRFToken, ExpiresAt: se.ExpiresAt, Origin: origin, LogKey: s.key.VerifierKey(origin)}
}

// errBadLogin is the one answer to every failed login: unknown email and
// wrong password are indistinguishable (AUT-10).
var errBadLogin = &stele.Error{Kind: stele.KindUnauthenticated, Message: "wrong email or password"}

// login is POST /v1/auth/login {"email","password"}: a new session.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	ip := s.clientIP(r)
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	email := strings.ToLower(strings.TrimSpace(req.Email))
	if email == "" || len(email) > 254 || req.Password == "" || len(req.Password) > 1024 {
		writeError(w, r, stele.FieldError("email", "email and password are required"))
		return
	}
	if wait, reason := s.logins.allow(email, ip, s.now()); wait > 0 {
		s.failures.loginFailed(r.Context(), email, ip, reason)
		writeError(w, r, &stele.Error{Kind: stele.KindRateLimited, Message: "too many login attempts; retry later", RetryAfter: int(wait.Seconds()) + 1})
		return
	}
	u, err := s.store.UserByEmail(r.Context(), email)
	if err != nil && !errors.Is(err, stele.ErrNotFound) {
		writeError(w, r, err)
		return
	}
	hash := dummyPasswordHash
	if err == nil {
		hash = u.PasswordHash
	}
	ok := CheckPassword(hash, req.Password)
	if err != nil || !ok || !u.DisabledAt.IsZero() {
		reason := "bad_credentials"
		if err == nil && ok {
			reason = "disabled"
		}
		s.logins.failed(email, s.now())
		s.failures.loginFailed(r.Context(), email, ip, reason)
		writeError(w, r, errBadLogin)
		return
	}
	hadFailures := s.logins.succeeded(email)
	token := newToken()
	now := s.now().UTC()
	se := stele.Session{ID: randomToken(8), TokenHash: HashSecret(token), UserID: u.ID, Workspace: u.Workspace,
		CSRFToken: newToken(), IP: ip, CreatedAt: now, ExpiresAt: now.Add(sessionTTL)}
	if err := s.store.CreateSession(r.Context(), se); err != nil {
		writeError(w, r, err)
		return
	}
	p := &Principal{Workspace: u.Workspace, IP: ip, User: &u, Session: &se}
	if err := s.recordAuth(r, p, "user.login", map[string]any{"session": se.ID, "after_failures": hadFailures}); err != nil {
		writeError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", HttpOnly: true, Secure: s.secure(r),
		SameSite: http.SameSiteStrictMode, Expires: se.ExpiresAt})
	writeJSON(w, http.StatusOK, s.sessionJSON(u, &se))
}

// logout is POST /v1/auth/logout: the session ends on the server.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	if p.Session == nil {
		return stele.Errorf(stele.KindInvalid, "logout ends a dashboard session; API keys are revoked with DELETE /v1/keys/{id}")
	}
	if err := s.store.RevokeSessions(r.Context(), p.User.ID, p.Session.ID, s.now()); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: s.secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	if err := s.recordAuth(r, p, "user.logout", map[string]any{"session": p.Session.ID}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "signed out"})
	return nil
}

// session is GET /v1/auth/session: who is signed in, and the CSRF token.
func (s *Server) session(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	if p.Session == nil {
		return stele.Errorf(stele.KindInvalid, "this request is authenticated with an API key, not a session")
	}
	writeJSON(w, http.StatusOK, s.sessionJSON(*p.User, p.Session))
	return nil
}

// secure reports whether the request arrived over TLS (directly, or at a
// trusted proxy that says so).
func (s *Server) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return r.Header.Get("X-Forwarded-Proto") == "https" && s.clientIP(r) != peerIP(r)
}

// recordAuth appends an authentication event about p to its workspace.
func (s *Server) recordAuth(r *http.Request, p *Principal, typ string, context map[string]any) error {
	return s.recordAbout(r.Context(), p.Workspace, p, typ, &stele.Resource{Type: "user", ID: p.User.ID, Name: p.User.Email}, context)
}
