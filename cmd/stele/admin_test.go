package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// stele runs the CLI in-process and returns its output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestAdminCLI(t *testing.T) {
	ts := startServer(t, "")
	srv := []string{"--server", ts.URL, "--key", ts.Key}
	out, err := runCLI(t, append([]string{"workspaces", "create", "--id", "acme", "--name", "Acme Corp"}, srv...)...)
	if err != nil || !strings.Contains(out, "origin:    stele.test/acme") || !strings.Contains(out, "admin key: stl_acme_") {
		t.Fatalf("workspaces create: %v\n%s", err, out)
	}
	out, err = runCLI(t, append([]string{"workspaces", "list"}, srv...)...)
	if err != nil || !strings.Contains(out, "acme") || !strings.Contains(out, "default") {
		t.Fatalf("workspaces list: %v\n%s", err, out)
	}
	out, err = runCLI(t, append([]string{"keys", "create", "--name", "ci\x1b[31m", "--scopes", "events:write"}, srv...)...)
	if err != nil || !strings.Contains(out, "secret, shown once: stl_default_") {
		t.Fatalf("keys create: %v\n%s", err, out)
	}
	id := strings.Fields(out)[1]
	out, err = runCLI(t, append([]string{"keys", "list"}, srv...)...)
	if err != nil || !strings.Contains(out, id) || strings.Contains(out, "\x1b") || !strings.Contains(out, `ci\x1b[31m`) {
		t.Fatalf("keys list (the name's escape must be shown, not sent): %v\n%q", err, out)
	}
	out, err = runCLI(t, append([]string{"keys", "rotate", "--grace", "1m", id}, srv...)...)
	if err != nil || !strings.Contains(out, "secret, shown once:") {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	out, err = runCLI(t, append([]string{"keys", "revoke", id}, srv...)...)
	if err != nil || !strings.Contains(out, "revoked at") {
		t.Fatalf("keys revoke: %v\n%s", err, out)
	}
	out, err = runCLI(t, append([]string{"users", "create", "--email", "bob@acme.com", "--role", "admin"}, srv...)...)
	if err != nil || !strings.Contains(out, "password, shown once:") {
		t.Fatalf("users create: %v\n%s", err, out)
	}
	uid := strings.Fields(out)[1]
	out, err = runCLI(t, append([]string{"users", "disable", uid}, srv...)...)
	if err != nil || !strings.Contains(out, "(disabled)") {
		t.Fatalf("users disable: %v\n%s", err, out)
	}
	out, err = runCLI(t, append([]string{"users", "list"}, srv...)...)
	if err != nil || !strings.Contains(out, "bob@acme.com") || !strings.Contains(out, "disabled") {
		t.Fatalf("users list: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "keys", "list", "--server", ts.URL, "--key", "stl_default_aaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a bad key: %v", err)
	}
}
