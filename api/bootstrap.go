package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/stele-log/stele"
)

// BootstrapConfig is what the operator may choose at first start.
type BootstrapConfig struct {
	// AdminKey (STELE_ADMIN_KEY) installs an operator key chosen by the
	// operator: a key of the default workspace in Stele's format. Empty: one
	// is generated.
	AdminKey string
	// AdminEmail (STELE_ADMIN_EMAIL, default admin@localhost) and
	// AdminPassword (STELE_ADMIN_PASSWORD; empty: generated) make the first
	// dashboard user, owner of the default workspace.
	AdminEmail    string
	AdminPassword string
}

// BootstrapResult holds the secrets a first start generated, to be shown
// once.
type BootstrapResult struct {
	OperatorKey   string // empty when installed from AdminKey
	AdminEmail    string
	AdminPassword string // empty when taken from AdminPassword
}

// Bootstrap prepares a new instance: the system log, the default
// workspace, its operator key (admin of default, may create workspaces) and
// its first user (owner).
func Bootstrap(ctx context.Context, s *Server, cfg BootstrapConfig) (BootstrapResult, error) {
	if cfg.AdminEmail == "" {
		cfg.AdminEmail = "admin@localhost"
	}
	if err := s.store.CreateWorkspace(ctx, stele.Workspace{ID: SystemWorkspace, Name: "system log", CreatedAt: s.now().UTC()}); err != nil && !errors.Is(err, stele.ErrConflict) {
		return BootstrapResult{}, fmt.Errorf("couldn't create the system log: %w", err)
	}
	if err := s.store.CreateWorkspace(ctx, stele.Workspace{ID: "default", Name: "default", CreatedAt: s.now().UTC()}); err != nil {
		return BootstrapResult{}, fmt.Errorf("couldn't create the default workspace: %w", err)
	}
	t := stele.In(s.store, "default")
	var res BootstrapResult
	k := stele.APIKey{Name: "operator", Scopes: []string{stele.ScopeAdmin, stele.ScopeOperator}, CreatedAt: s.now().UTC(), CreatedBy: "bootstrap"}
	if cfg.AdminKey != "" {
		ws, id, secret, ok := ParseKey(cfg.AdminKey)
		if !ok || ws != "default" {
			_, _, ex := NewKeySecret("default")
			return BootstrapResult{}, fmt.Errorf("STELE_ADMIN_KEY must be a key of the default workspace in Stele's format, such as %s", ex)
		}
		k.Workspace, k.ID, k.SecretHash = "default", id, HashSecret(secret)
		if err := t.CreateKey(ctx, k); err != nil {
			return BootstrapResult{}, err
		}
	} else {
		var err error
		if res.OperatorKey, err = s.issueKey(ctx, t, &k); err != nil {
			return BootstrapResult{}, err
		}
	}
	email, err := normalizeEmail(cfg.AdminEmail)
	if err != nil {
		return BootstrapResult{}, fmt.Errorf("STELE_ADMIN_EMAIL: %w", err)
	}
	password := cfg.AdminPassword
	if password == "" {
		password = NewPassword()
		res.AdminPassword = password
	} else if len(password) < MinPasswordLen {
		return BootstrapResult{}, fmt.Errorf("STELE_ADMIN_PASSWORD must be at least %d characters", MinPasswordLen)
	}
	res.AdminEmail = email
	u := stele.User{ID: "u_" + randomToken(8), Email: email, Name: "Administrator", Role: stele.RoleOwner,
		PasswordHash: HashPassword(password), CreatedAt: s.now().UTC()}
	if err := t.CreateUser(ctx, u); err != nil {
		return BootstrapResult{}, fmt.Errorf("couldn't create the admin user: %w", err)
	}
	sys := systemPrincipal()
	if err := s.recordAbout(ctx, SystemWorkspace, sys, "workspace.created", &stele.Resource{Type: "workspace", ID: "default", Name: "default"},
		map[string]any{"name": "default", "origin": s.key.Origin("default")}); err != nil {
		return BootstrapResult{}, err
	}
	k.Workspace = "default"
	if err := s.recordKeyEvent(ctx, "default", sys, "api_key.created", k, nil); err != nil {
		return BootstrapResult{}, err
	}
	if err := s.recordAbout(ctx, "default", sys, "user.created", &stele.Resource{Type: "user", ID: u.ID, Name: u.Email},
		map[string]any{"email": u.Email, "role": u.Role}); err != nil {
		return BootstrapResult{}, err
	}
	return res, nil
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
