package main

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stele-log/stele/store/postgres/pgtest"
)

// TestOnPostgres runs the HTTP end-to-end and security suites again with
// the log on PostgreSQL (startServer gives each data directory a database
// of its own). The server is STELE_TEST_POSTGRES, by default the local one
// (see store/postgres/pgtest); STELE_TEST_BACKENDS=sqlite leaves it out.
// Under STELE_REQUIRE_INTEGRATION=1 an unreachable server fails the test.
func TestOnPostgres(t *testing.T) {
	if b := os.Getenv("STELE_TEST_BACKENDS"); b != "" && !strings.Contains(b, "postgres") {
		t.Skipf("STELE_TEST_BACKENDS=%s", b)
	}
	pgtest.Require(t)
	for _, c := range []struct {
		name string
		run  func(*testing.T)
	}{
		// e2e_test.go
		{"IngestEndToEnd", TestIngestEndToEnd},
		{"BadInputStoresNothing", TestBadInputStoresNothing},
		{"BodyLimits", TestBodyLimits},
		{"AuthAndScopes", TestAuthAndScopes},
		{"WorkspacesAreSeparateLogs", TestWorkspacesAreSeparateLogs},
		{"GracefulShutdownSignsEverything", TestGracefulShutdownSignsEverything},
		{"CountEndpoint", TestCountEndpoint},
		// read_test.go, read_access_test.go (TestReadRefusedWhenUnrecorded
		// locks the SQLite file; TestPostgresReadRefusedWhenUnrecorded is its
		// PostgreSQL form)
		{"ReadBadParameters", TestReadBadParameters},
		{"ReadsAreLogged", TestReadsAreLogged},
		{"ExportStopsWhenClientLeaves", TestExportStopsWhenClientLeaves},
		{"ReadFiltersProperty", TestReadFiltersProperty},
		{"ReadCursorUnderConcurrentAppends", TestReadCursorUnderConcurrentAppends},
		{"ExportFormats", TestExportFormats},
		// security_test.go
		{"RouteCredentialMatrix", TestRouteCredentialMatrix},
		{"CrossTenantReferences", TestCrossTenantReferences},
		{"KeyLifecycle", TestKeyLifecycle},
		{"Sessions", TestSessions},
		{"LoginAbuse", TestLoginAbuse},
		{"SourceAddress", TestSourceAddress},
		{"RateLimits", TestRateLimits},
		{"SystemLog", TestSystemLog},
	} {
		t.Run(c.name, c.run)
	}
}

// onPostgres reports whether t runs under TestOnPostgres.
func onPostgres(t *testing.T) bool {
	return strings.HasPrefix(t.Name(), "TestOnPostgres/")
}

// pgDatabases maps a test server's data directory to its database, so that
// a restart over the same directory finds the same log.
var pgDatabases sync.Map

// postgresFor returns the URL of dataDir's database, created on first use
// and dropped when the test that created it ends.
func postgresFor(t *testing.T, dataDir string) string {
	t.Helper()
	if u, ok := pgDatabases.Load(dataDir); ok {
		return u.(string)
	}
	u := pgtest.NewDatabase(t)
	pgDatabases.Store(dataDir, u)
	t.Cleanup(func() { pgDatabases.Delete(dataDir) })
	return u
}
