package api

import (
	"context"
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
	// PreviousValidUntil is when the secret replaced by the last rotation
	// stops working.
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
	// Key is the full secret key, present only in the response that
	// created or rotated it.
	Key string `json:"key,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toKeyJSON(k stele.APIKey) keyJSON {
	return keyJSON{ID: k.ID, Prefix: keyPrefix + k.Workspace + "_" + k.ID, Workspace: k.Workspace, Name: k.Name, Scopes: k.Scopes,
		CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy, ExpiresAt: optTime(k.ExpiresAt), RevokedAt: optTime(k.RevokedAt),
		LastUsedAt: optTime(k.LastUsedAt), PreviousValidUntil: optTime(k.PrevValidUntil)}
}

// createKey is POST /v1/keys {"name","scopes","expires_at"?}: a new key of
// the caller's workspace, its secret shown once.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	var req struct {
		Name      string     `json:"name"`
		Scopes    []string   `json:"scopes"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
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
			s.failures.denied(r, p, "grant_operator", nil)
			return stele.Errorf(stele.KindForbidden, "only an operator may grant the operator scope")
		}
	}
	k := stele.APIKey{Name: req.Name, Scopes: slices.Compact(slices.Sorted(slices.Values(req.Scopes))),
		CreatedAt: s.now().UTC(), CreatedBy: p.credential()}
	if req.ExpiresAt != nil {
		if !req.ExpiresAt.After(s.now()) {
			return stele.FieldError("expires_at", "must be in the future")
		}
		k.ExpiresAt = req.ExpiresAt.UTC()
	}
	full, err := s.issueKey(r.Context(), t, &k)
	if err != nil {
		return err
	}
	if err := s.recordKeyEvent(r.Context(), t.Workspace(), p, "api_key.created", k, nil); err != nil {
		return err
	}
	resp := toKeyJSON(k)
	resp.Key = full
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

// issueKey generates k's id and secret, stores k in t, and returns the
// full key.
func (s *Server) issueKey(ctx context.Context, t stele.Tenant, k *stele.APIKey) (string, error) {
	k.Workspace = t.Workspace()
	id, secret, full := NewKeySecret(k.Workspace)
	k.ID, k.SecretHash = id, HashSecret(secret)
	return full, t.CreateKey(ctx, *k)
}

// recordKeyEvent appends a key lifecycle event to ws's log.
func (s *Server) recordKeyEvent(ctx context.Context, ws string, p *Principal, typ string, k stele.APIKey, extra map[string]any) error {
	detail := map[string]any{"name": k.Name, "scopes": k.Scopes}
	for name, v := range extra {
		detail[name] = v
	}
	return s.recordAbout(ctx, ws, p, typ, &stele.Resource{Type: "api_key", ID: k.ID, Name: k.Name}, detail)
}

// listKeys is GET /v1/keys.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	keys, err := t.Keys(r.Context())
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

// getKey is GET /v1/keys/{id}.
func (s *Server) getKey(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	k, err := t.Key(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toKeyJSON(k))
	return nil
}

// maxRotationGrace bounds how long an old secret may outlive its rotation.
const maxRotationGrace = 7 * 24 * time.Hour

// rotateKey is POST /v1/keys/{id}/rotate {"grace_seconds"?}: a new secret
// for the key, shown once; the old secret keeps working for the grace period
// (the server's default, 0 unless configured), then never again.
func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	var req struct {
		GraceSeconds *int64 `json:"grace_seconds"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
	}
	grace := s.cfg.KeyRotationGrace
	if req.GraceSeconds != nil {
		grace = time.Duration(*req.GraceSeconds) * time.Second
		if *req.GraceSeconds < 0 || grace > maxRotationGrace {
			return stele.FieldError("grace_seconds", "must be between 0 and %d", int64(maxRotationGrace.Seconds()))
		}
	}
	k, err := t.Key(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if !k.RevokedAt.IsZero() {
		return stele.Errorf(stele.KindConflict, "a revoked key cannot be rotated")
	}
	_, secret, full := NewKeySecret(k.Workspace)
	full = keyPrefix + k.Workspace + "_" + k.ID + "_" + secret
	now := s.now().UTC()
	k.PrevSecretHash, k.PrevValidUntil = nil, time.Time{}
	if grace > 0 {
		k.PrevSecretHash, k.PrevValidUntil = k.SecretHash, now.Add(grace)
	}
	k.SecretHash = HashSecret(secret)
	if err := t.UpdateKey(r.Context(), k); err != nil {
		return err
	}
	if err := s.recordKeyEvent(r.Context(), t.Workspace(), p, "api_key.rotated", k, map[string]any{"grace_seconds": int64(grace.Seconds())}); err != nil {
		return err
	}
	resp := toKeyJSON(k)
	resp.Key = full
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// revokeKey is DELETE /v1/keys/{id}: the key stops working at once.
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request, p *Principal, t stele.Tenant) error {
	k, err := t.Key(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if k.RevokedAt.IsZero() {
		k.RevokedAt = s.now().UTC()
		k.PrevSecretHash, k.PrevValidUntil = nil, time.Time{}
		if err := t.UpdateKey(r.Context(), k); err != nil {
			return err
		}
		if err := s.recordKeyEvent(r.Context(), t.Workspace(), p, "api_key.revoked", k, nil); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, toKeyJSON(k))
	return nil
}
