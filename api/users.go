package api

import (
	"errors"
	"net/http"
	"net/mail"
	"slices"
	"strings"

	"github.com/stele-log/stele"
)

// createUser is POST /v1/users {"email","name","role","password"?}. Without
// a password one is generated and shown once.
func (s *Server) createUser(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	var req struct {
		Email    string `json:"email"`
		Name     string `json:"name"`
		Role     string `json:"role"`
		Password string `json:"password"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return err
	}
	if req.Role == "" {
		req.Role = stele.RoleViewer
	}
	if err := s.mayGrant(r, p, t, req.Role); err != nil {
		return err
	}
	if len(req.Name) > 200 {
		return stele.FieldError("name", "is longer than 200 bytes")
	}
	generated := req.Password == ""
	if generated {
		req.Password = NewPassword()
	} else if len(req.Password) < MinPasswordLen || len(req.Password) > 1024 {
		return stele.FieldError("password", "must be %d to 1024 characters", MinPasswordLen)
	}
	u := stele.User{ID: "u_" + randomToken(8), Email: email, Name: req.Name, Role: req.Role,
		PasswordHash: HashPassword(req.Password), CreatedAt: s.now().UTC()}
	if err := t.CreateUser(r.Context(), u); err != nil {
		if errors.Is(err, stele.ErrConflict) {
			return &stele.Error{Kind: stele.KindConflict, Field: "email", Message: "this email already has an account"}
		}
		return err
	}
	u.Workspace = t.Workspace()
	if err := s.recordAbout(r.Context(), t.Workspace(), p, "user.created", &stele.Resource{Type: "user", ID: u.ID, Name: u.Email},
		map[string]any{"email": u.Email, "role": u.Role}); err != nil {
		return err
	}
	out := toUserJSON(u)
	if generated {
		out.Password = req.Password
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func normalizeEmail(raw string) (string, error) {
	email := strings.ToLower(strings.TrimSpace(raw))
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > 254 {
		return "", stele.FieldError("email", "must be an email address")
	}
	return email, nil
}

// mayGrant checks that p may give someone role: owners grant any role,
// admins every role but owner — except a workspace's first owner, which an
// admin (such as the admin key a new workspace comes with) may make while
// the workspace has no active owner.
func (s *Server) mayGrant(r *http.Request, p *Principal, t stele.Tenant, role string) error {
	if !slices.Contains(stele.Roles, role) {
		return stele.FieldError("role", "must be owner, admin or viewer")
	}
	if role == stele.RoleOwner && !p.has(scopeOwner) && !p.has(stele.ScopeOperator) {
		users, err := t.Users(r.Context())
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(users, func(u stele.User) bool { return u.Role == stele.RoleOwner && u.DisabledAt.IsZero() }) {
			return nil // the workspace's first owner
		}
		s.failures.denied(r, p, "grant_owner", nil)
		return stele.Errorf(stele.KindForbidden, "only an owner may make or change owners")
	}
	return nil
}

// listUsers is GET /v1/users.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	users, err := t.Users(r.Context())
	if err != nil {
		return err
	}
	out := make([]userJSON, len(users))
	for i, u := range users {
		out[i] = toUserJSON(u)
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}

// getUser is GET /v1/users/{id}.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	u, err := t.User(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
	return nil
}

// updateUser is PATCH /v1/users/{id} {"name"?,"role"?,"disabled"?,"password"?}.
// Disabling a user or changing their password ends their sessions.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	var req struct {
		Name     *string `json:"name"`
		Role     *string `json:"role"`
		Disabled *bool   `json:"disabled"`
		Password *string `json:"password"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	u, err := t.User(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if u.Role == stele.RoleOwner && !p.has(scopeOwner) && !p.has(stele.ScopeOperator) {
		s.failures.denied(r, p, "change_owner", nil)
		return stele.Errorf(stele.KindForbidden, "only an owner may change an owner")
	}
	before := toUserJSON(u)
	changes := map[string]any{}
	endSessions := false
	if req.Name != nil {
		if len(*req.Name) > 200 {
			return stele.FieldError("name", "is longer than 200 bytes")
		}
		u.Name = *req.Name
		changes["name"] = map[string]string{"old": before.Name, "new": u.Name}
	}
	if req.Role != nil && *req.Role != u.Role {
		if err := s.mayGrant(r, p, t, *req.Role); err != nil {
			return err
		}
		changes["role"] = map[string]string{"old": u.Role, "new": *req.Role}
		u.Role = *req.Role
	}
	if req.Disabled != nil && *req.Disabled != !u.DisabledAt.IsZero() {
		if p.User != nil && p.User.ID == u.ID {
			return stele.FieldError("disabled", "you cannot disable yourself")
		}
		if *req.Disabled {
			u.DisabledAt = s.now().UTC()
			endSessions = true
		} else {
			u.DisabledAt = stele.User{}.DisabledAt
		}
		changes["disabled"] = map[string]bool{"old": before.Disabled, "new": *req.Disabled}
	}
	if req.Password != nil {
		if len(*req.Password) < MinPasswordLen || len(*req.Password) > 1024 {
			return stele.FieldError("password", "must be %d to 1024 characters", MinPasswordLen)
		}
		u.PasswordHash = HashPassword(*req.Password)
		changes["password"] = "changed"
		endSessions = true
	}
	if len(changes) == 0 {
		writeJSON(w, http.StatusOK, before)
		return nil
	}
	if err := t.UpdateUser(r.Context(), u); err != nil {
		return err
	}
	if endSessions {
		if err := t.RevokeSessions(r.Context(), u.ID, "", s.now()); err != nil {
			return err
		}
	}
	if err := s.recordAbout(r.Context(), t.Workspace(), p, "user.updated", &stele.Resource{Type: "user", ID: u.ID, Name: u.Email}, changes); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
	return nil
}
