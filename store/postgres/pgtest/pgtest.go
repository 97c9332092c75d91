// Package pgtest gives tests a PostgreSQL database of their own on a real
// server: NewDatabase creates stele_test_<random> and drops it when the test
// ends.
//
// The server is the one STELE_TEST_POSTGRES names (a postgres:// URL of a
// role that may create databases and roles), by default
// postgres://postgres@127.0.0.1:5432/postgres. When it cannot be reached the
// test is skipped, unless STELE_REQUIRE_INTEGRATION=1, where it fails.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the server the tests use unless STELE_TEST_POSTGRES is set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL is the administrative URL of the test server.
func ServerURL() string {
	if u := os.Getenv("STELE_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultURL
}

var (
	reachOnce sync.Once
	reachErr  error
)

// Available reports whether the test server answers; the error says why not.
func Available() error {
	reachOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, ServerURL())
		if err != nil {
			reachErr = err
			return
		}
		reachErr = c.Ping(ctx)
		c.Close(ctx)
	})
	return reachErr
}

// Require skips t when the server is unreachable, or fails it under
// STELE_REQUIRE_INTEGRATION=1.
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("STELE_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("PostgreSQL at %s is required (STELE_REQUIRE_INTEGRATION=1) but unreachable: %v", redacted(), err)
		}
		t.Skipf("PostgreSQL at %s unreachable (%v); set STELE_TEST_POSTGRES to run these tests", redacted(), err)
	}
}

func redacted() string {
	u, err := url.Parse(ServerURL())
	if err != nil {
		return "(unparsable STELE_TEST_POSTGRES)"
	}
	return u.Redacted()
}

// Name returns a fresh random identifier with prefix, fit for a database or
// role name.
func Name(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Exec runs statements on the server's administrative connection.
func Exec(t testing.TB, statements ...string) {
	t.Helper()
	ExecOn(t, ServerURL(), statements...)
}

// ExecOn runs statements on the database dbURL names.
func ExecOn(t testing.TB, dbURL string, statements ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close(ctx)
	for _, s := range statements {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// NewDatabase creates an empty database and returns its URL (same server,
// role and options as the server URL); the database is dropped, with any
// connections left to it, when t ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	Require(t)
	name := Name("stele_test_")
	Exec(t, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING 'UTF8'")
	t.Cleanup(func() { Exec(t, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	return WithDatabase(t, ServerURL(), name)
}

// WithDatabase returns base with its database (path) replaced by name.
func WithDatabase(t testing.TB, base, name string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("STELE_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// WithUser returns base with its user replaced by user (no password: the
// test server trusts local connections, or the operator set PGPASSFILE).
func WithUser(t testing.TB, base, user string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("bad URL: %v", err)
	}
	u.User = url.User(user)
	return u.String()
}

// NewRole creates a login role with a random name and drops it (with what it
// owns or was granted in db) when t ends.
func NewRole(t testing.TB, dbURL string) string {
	t.Helper()
	name := Name("stele_role_")
	Exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN", name))
	t.Cleanup(func() {
		ExecOn(t, dbURL, "DROP OWNED BY "+name)
		Exec(t, "DROP ROLE IF EXISTS "+name)
	})
	return name
}
