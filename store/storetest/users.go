package storetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stele-log/stele"
)

func testUsers(t *testing.T, open Open) {
	h, ctx := harness(t, open)
	s := h.Store
	mustCreate(t, s, "acme")
	mustCreate(t, s, "globex")
	u := stele.User{ID: "u1", Workspace: "acme", Email: "alice@acme.com", Name: "Alice", Role: stele.RoleOwner, PasswordHash: "$argon2id$x", CreatedAt: t0}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	dup := u
	dup.ID, dup.Workspace = "u2", "globex"
	if err := s.CreateUser(ctx, dup); !errors.Is(err, stele.ErrConflict) {
		t.Errorf("an email taken in another workspace: err = %v, want ErrConflict (emails are unique per instance)", err)
	}
	got, err := s.UserByEmail(ctx, "alice@acme.com")
	if err != nil || got.ID != "u1" || got.Workspace != "acme" || got.Role != stele.RoleOwner || got.PasswordHash != "$argon2id$x" || !got.CreatedAt.Equal(t0) {
		t.Errorf("UserByEmail = %+v, %v", got, err)
	}
	got.Role, got.DisabledAt = stele.RoleViewer, t0.Add(time.Hour)
	if err := s.UpdateUser(ctx, got); err != nil {
		t.Fatal(err)
	}
	foreign := got
	foreign.Workspace = "globex"
	if err := s.UpdateUser(ctx, foreign); !errors.Is(err, stele.ErrNotFound) {
		t.Errorf("updating acme's user as globex: err = %v", err)
	}
	again, _ := s.User(ctx, "u1")
	if again.Role != stele.RoleViewer || !again.DisabledAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("after update: %+v", again)
	}
	if list, _ := s.Users(ctx, "globex"); len(list) != 0 {
		t.Errorf("globex lists %d users", len(list))
	}
	if _, err := s.User(ctx, "nope"); !errors.Is(err, stele.ErrNotFound) {
		t.Errorf("User(nope): %v", err)
	}

	se := stele.Session{ID: "s1", TokenHash: []byte("0123456789abcdef0123456789abcdef"), UserID: "u1", Workspace: "acme", CSRFToken: "c", IP: "192.0.2.1",
		CreatedAt: t0, ExpiresAt: t0.Add(8 * time.Hour)}
	if err := s.CreateSession(ctx, se); err != nil {
		t.Fatal(err)
	}
	se2 := se
	se2.ID, se2.TokenHash = "s2", []byte("another token hash 0123456789abc")
	if err := s.CreateSession(ctx, se2); err != nil {
		t.Fatal(err)
	}
	back, err := s.SessionByToken(ctx, se.TokenHash)
	if err != nil || back.ID != "s1" || back.UserID != "u1" || back.Workspace != "acme" || back.CSRFToken != "c" || !back.ExpiresAt.Equal(se.ExpiresAt) || !bytes.Equal(back.TokenHash, se.TokenHash) {
		t.Errorf("SessionByToken = %+v, %v", back, err)
	}
	if err := s.RevokeSessions(ctx, "u1", "s1", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.SessionByToken(ctx, se.TokenHash); b.RevokedAt.IsZero() {
		t.Error("session s1 not revoked")
	}
	if b, _ := s.SessionByToken(ctx, se2.TokenHash); !b.RevokedAt.IsZero() {
		t.Error("revoking s1 revoked s2")
	}
	s.RevokeSessions(ctx, "u1", "", t0.Add(2*time.Minute))
	if b, _ := s.SessionByToken(ctx, se2.TokenHash); b.RevokedAt.IsZero() {
		t.Error("revoking all sessions left s2")
	}
	if _, err := s.SessionByToken(ctx, []byte("unknown")); !errors.Is(err, stele.ErrNotFound) {
		t.Errorf("unknown token: %v", err)
	}
}
