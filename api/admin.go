package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stele-log/stele"
)

// decodeJSON reads a small JSON request body strictly: one object, no
// unknown fields, within 64 KiB.
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
		// encoding/json names an unknown member only in its message.
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			if unquoted, err := strconv.Unquote(name); err == nil {
				name = unquoted
			}
			return stele.FieldError(name, "unknown member")
		}
		return stele.FieldError("", "invalid JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return stele.FieldError("", "invalid JSON body: more than one JSON value")
	}
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
func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
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
	k := stele.APIKey{Workspace: id, Name: "admin", Scopes: []string{stele.ScopeAdmin}, CreatedAt: s.now().UTC(), CreatedBy: actor.credential()}
	full, err := s.issueKey(ctx, stele.In(s.store, id), &k)
	if err != nil {
		return stele.Workspace{}, keyJSON{}, err
	}
	if err := s.recordAbout(ctx, SystemWorkspace, actor, "workspace.created", &stele.Resource{Type: "workspace", ID: id, Name: name},
		map[string]any{"name": name, "origin": s.key.Origin(id)}); err != nil {
		return stele.Workspace{}, keyJSON{}, err
	}
	if err := s.recordKeyEvent(ctx, id, actor, "api_key.created", k, nil); err != nil {
		return stele.Workspace{}, keyJSON{}, err
	}
	out := toKeyJSON(k)
	out.Key = full
	return ws, out, nil
}

// systemPrincipal is the actor of what the service does on its own.
func systemPrincipal() *Principal {
	return &Principal{Workspace: SystemWorkspace, KeyName: "stele"}
}

// listWorkspaces is GET /v1/workspaces (operator).
func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
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
