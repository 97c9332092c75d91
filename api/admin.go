package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/stele-log/stele"
)

// keyJSON is how keys appear in responses: never a secret or its hash.
type keyJSON struct {
	ID         string     `json:"id"`
	Prefix     string     `json:"prefix"`
	Workspace  string     `json:"workspace"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	// Key is the full secret key, present only in the response that
	// created it.
	Key string `json:"key,omitempty"`
}

func toKeyJSON(k stele.APIKey) keyJSON {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	return keyJSON{ID: k.ID, Prefix: keyPrefix + k.Workspace + "_" + k.ID, Workspace: k.Workspace, Name: k.Name, Scopes: k.Scopes,
		CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy, ExpiresAt: opt(k.ExpiresAt), RevokedAt: opt(k.RevokedAt), LastUsedAt: opt(k.LastUsedAt)}
}

type keyRequest struct {
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// decodeJSON reads a small JSON request body strictly: one object, no
// unknown fields.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r, 64<<10)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytesReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return stele.FieldError(ute.Field, "has the wrong type")
		}
		return stele.FieldError("", "invalid JSON body: %v", err)
	}
	return nil
}

// createKey is POST /v1/keys: a new key of the caller's workspace, its
// secret shown once.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request, p *Principal) error {
	var req keyRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Name == "" || len(req.Name) > 100 {
		return stele.FieldError("name", "is required (at most 100 bytes)")
	}
	if len(req.Scopes) == 0 {
		return stele.FieldError("scopes", "must list at least one of events:write, events:read, admin")
	}
	for i, sc := range req.Scopes {
		if !slices.Contains(stele.Scopes, sc) {
			return stele.FieldError("scopes", "unknown scope %q at %d", sc, i)
		}
		if sc == stele.ScopeOperator && !p.has(stele.ScopeOperator) {
			return stele.Errorf(stele.KindForbidden, "only an operator may grant the operator scope")
		}
	}
	k := stele.APIKey{Workspace: p.Workspace, Name: req.Name, Scopes: slices.Compact(slices.Sorted(slices.Values(req.Scopes))),
		CreatedAt: s.now().UTC(), CreatedBy: p.KeyID}
	if req.ExpiresAt != nil {
		if !req.ExpiresAt.After(s.now()) {
			return stele.FieldError("expires_at", "must be in the future")
		}
		k.ExpiresAt = req.ExpiresAt.UTC()
	}
	full, err := s.issueKey(r.Context(), &k)
	if err != nil {
		return err
	}
	if err := s.recordKeyEvent(r.Context(), p, "api_key.created", k); err != nil {
		return err
	}
	resp := toKeyJSON(k)
	resp.Key = full
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

// issueKey generates k's id and secret, stores k, and returns the full key.
func (s *Server) issueKey(ctx context.Context, k *stele.APIKey) (string, error) {
	id, secret, full := NewKeySecret(k.Workspace)
	k.ID, k.SecretHash = id, HashSecret(secret)
	return full, s.store.CreateKey(ctx, *k)
}

func (s *Server) recordKeyEvent(ctx context.Context, p *Principal, typ string, k stele.APIKey) error {
	raw, _ := json.Marshal(map[string]any{"name": k.Name, "scopes": k.Scopes})
	return s.record(ctx, k.Workspace, stele.EventBody{Type: typ, Actor: p.actor(), IP: p.IP,
		Resource: &stele.Resource{Type: "api_key", ID: k.ID, Name: k.Name}, Context: raw})
}

// listKeys is GET /v1/keys.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, p *Principal) error {
	keys, err := s.store.Keys(r.Context(), p.Workspace)
	if err != nil {
		return err
	}
	out := make([]keyJSON, len(keys))
	for i, k := range keys {
		out[i] = toKeyJSON(k)
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
	return nil
}

type workspaceJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Origin    string    `json:"origin"`
	LogKey    string    `json:"log_key"`
}

func (s *Server) toWorkspaceJSON(w stele.Workspace) workspaceJSON {
	origin := s.key.Origin(w.ID)
	return workspaceJSON{ID: w.ID, Name: w.Name, CreatedAt: w.CreatedAt, Origin: origin, LogKey: s.key.VerifierKey(origin)}
}

// createWorkspace is POST /v1/workspaces (operator): a new workspace and
// its first admin key, shown once.
func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request, p *Principal) error {
	var req struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if !ValidWorkspaceID(req.ID) {
		return stele.FieldError("id", "must be 1 to 63 lowercase letters, digits and hyphens")
	}
	if req.Name == "" {
		req.Name = req.ID
	}
	if len(req.Name) > 200 {
		return stele.FieldError("name", "is longer than 200 bytes")
	}
	ws, key, err := CreateWorkspace(r.Context(), s, req.ID, req.Name, p)
	if errors.Is(err, stele.ErrConflict) {
		return &stele.Error{Kind: stele.KindConflict, Field: "id", Message: "a workspace with this id exists"}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"workspace": s.toWorkspaceJSON(ws), "key": key})
	return nil
}

// CreateWorkspace creates workspace id with a first admin key, records both
// in the system log and in the new workspace's log, and returns the key
// (with its secret). by is the operator acting, or nil at bootstrap.
func CreateWorkspace(ctx context.Context, s *Server, id, name string, by *Principal) (stele.Workspace, keyJSON, error) {
	ws := stele.Workspace{ID: id, Name: name, CreatedAt: s.now().UTC()}
	if err := s.store.CreateWorkspace(ctx, ws); err != nil {
		return stele.Workspace{}, keyJSON{}, err
	}
	actor := systemPrincipal()
	if by != nil {
		actor = by
	}
	k := stele.APIKey{Workspace: id, Name: "admin", Scopes: []string{stele.ScopeAdmin}, CreatedAt: s.now().UTC(), CreatedBy: actor.KeyID}
	full, err := s.issueKey(ctx, &k)
	if err != nil {
		return stele.Workspace{}, keyJSON{}, err
	}
	raw, _ := json.Marshal(map[string]any{"name": name, "origin": s.key.Origin(id)})
	if err := s.record(ctx, SystemWorkspace, stele.EventBody{Type: "workspace.created", Actor: actor.actor(), IP: actor.IP,
		Resource: &stele.Resource{Type: "workspace", ID: id, Name: name}, Context: raw}); err != nil {
		return stele.Workspace{}, keyJSON{}, err
	}
	if err := s.recordKeyEvent(ctx, actor, "api_key.created", k); err != nil {
		return stele.Workspace{}, keyJSON{}, err
	}
	out := toKeyJSON(k)
	out.Key = full
	return ws, out, nil
}

// systemPrincipal is the actor of what the service does on its own.
func systemPrincipal() *Principal {
	return &Principal{Workspace: SystemWorkspace, KeyID: "", KeyName: "stele"}
}

// listWorkspaces is GET /v1/workspaces (operator).
func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request, p *Principal) error {
	all, err := s.store.Workspaces(r.Context())
	if err != nil {
		return err
	}
	out := []workspaceJSON{}
	for _, ws := range all {
		out = append(out, s.toWorkspaceJSON(ws))
	}
	writeJSON(w, http.StatusOK, map[string]any{"workspaces": out})
	return nil
}
