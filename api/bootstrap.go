package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/stele-log/stele"
)

// Bootstrap prepares a new instance: the system log, the default
// workspace, and its operator key (admin of default, may create
// workspaces). adminKey, from STELE_ADMIN_KEY, installs a key chosen by the
// operator (it must be a key of the default workspace in Stele's format);
// when empty a key is generated and returned, to be shown once.
func Bootstrap(ctx context.Context, s *Server, adminKey string) (string, error) {
	if err := s.store.CreateWorkspace(ctx, stele.Workspace{ID: SystemWorkspace, Name: "system log", CreatedAt: s.now().UTC()}); err != nil && !errors.Is(err, stele.ErrConflict) {
		return "", fmt.Errorf("couldn't create the system log: %w", err)
	}
	if err := s.store.CreateWorkspace(ctx, stele.Workspace{ID: "default", Name: "default", CreatedAt: s.now().UTC()}); err != nil {
		return "", fmt.Errorf("couldn't create the default workspace: %w", err)
	}
	k := stele.APIKey{Workspace: "default", Name: "operator", Scopes: []string{stele.ScopeAdmin, stele.ScopeOperator}, CreatedAt: s.now().UTC(), CreatedBy: "bootstrap"}
	full := ""
	if adminKey != "" {
		ws, id, secret, ok := ParseKey(adminKey)
		if !ok || ws != "default" {
			_, _, ex := NewKeySecret("default")
			return "", fmt.Errorf("STELE_ADMIN_KEY must be a key of the default workspace in Stele's format, such as %s", ex)
		}
		k.ID, k.SecretHash = id, HashSecret(secret)
		if err := s.store.CreateKey(ctx, k); err != nil {
			return "", err
		}
	} else {
		var err error
		if full, err = s.issueKey(ctx, &k); err != nil {
			return "", err
		}
	}
	sys := systemPrincipal()
	raw, _ := json.Marshal(map[string]any{"name": "default", "origin": s.key.Origin("default")})
	if err := s.record(ctx, SystemWorkspace, stele.EventBody{Type: "workspace.created", Actor: sys.actor(),
		Resource: &stele.Resource{Type: "workspace", ID: "default", Name: "default"}, Context: raw}); err != nil {
		return "", err
	}
	if err := s.recordKeyEvent(ctx, sys, "api_key.created", k); err != nil {
		return "", err
	}
	return full, nil
}

// CreateDemoWorkspace creates workspace id for sample events and returns
// its admin key.
func CreateDemoWorkspace(ctx context.Context, s *Server, id string) (string, error) {
	_, key, err := CreateWorkspace(ctx, s, id, "Demo (sample events)", nil)
	return key.Key, err
}

// RecordSystem appends an event about the service itself to the system log.
func (s *Server) RecordSystem(ctx context.Context, typ string, context map[string]any) error {
	raw, err := json.Marshal(context)
	if err != nil {
		return err
	}
	return s.record(ctx, SystemWorkspace, stele.EventBody{Type: typ, Actor: systemPrincipal().actor(), Context: raw,
		Resource: &stele.Resource{Type: "instance", ID: s.key.Name()}})
}
