package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stele-log/stele/api"
	"golang.org/x/mod/sumdb/note"
)

// credential is one way of calling the API in the matrix.
type credential struct {
	name    string
	key     string       // Authorization: Bearer
	session *httpSession // cookie + CSRF
	// can says which route classes it may use; others are 401 (invalid) or 403.
	valid bool
	can   map[string]bool
	// rejectIn is the workspace (besides the system log) where a 401 is recorded.
	rejectIn string
}

type httpSession struct {
	client *http.Client
	csrf   string
}

// login signs in and returns a cookie-carrying client and the CSRF token.
func login(t *testing.T, base, email, password string) (*httpSession, int) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	resp, err := c.Post(base+"/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		CSRF string `json:"csrf_token"`
	}
	json.NewDecoder(resp.Body).Decode(&s)
	return &httpSession{client: c, csrf: s.CSRF}, resp.StatusCode
}

// do sends a request as cred.
func do(t *testing.T, base string, cred credential, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := http.DefaultClient
	if cred.session != nil {
		c = cred.session.client
		if method != "GET" {
			req.Header.Set("X-CSRF-Token", cred.session.csrf)
		}
	} else if cred.key != "" {
		req.Header.Set("Authorization", "Bearer "+cred.key)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	seenMu.Lock()
	seen = append(seen, b.String())
	seenMu.Unlock()
	return resp.StatusCode, b.Bytes()
}

// seen collects every response body of the matrix, to check that none
// reveals a secret (AUT-15).
var (
	seenMu sync.Mutex
	seen   []string
)

type fixture struct {
	ts          *testServer
	keys        map[string]string // name → full key, in default
	otherKey    string            // admin of workspace "other"
	eventID     string            // an event of default
	otherEvent  string            // an event of other
	otherKeyID  string
	otherUserID string
}

func createKey(t *testing.T, ts *testServer, admin, name, scopes string, extra string) (full, id string) {
	t.Helper()
	status, b, _ := call(t, "POST", ts.URL+"/v1/keys", admin, "application/json", []byte(`{"name":"`+name+`","scopes":`+scopes+extra+`}`))
	var k struct{ Key, ID string }
	json.Unmarshal(b, &k)
	if status != 201 {
		t.Fatalf("create key %s: %d %s", name, status, b)
	}
	return k.Key, k.ID
}

func createUser(t *testing.T, ts *testServer, admin, email, role string) string {
	t.Helper()
	status, b, _ := call(t, "POST", ts.URL+"/v1/users", admin, "application/json",
		[]byte(`{"email":"`+email+`","name":"`+email+`","role":"`+role+`","password":"`+adminPassword+`"}`))
	var u struct{ ID string }
	json.Unmarshal(b, &u)
	if status != 201 {
		t.Fatalf("create user %s: %d %s", email, status, b)
	}
	return u.ID
}

func appendOne(t *testing.T, ts *testServer, key string) string {
	t.Helper()
	status, b, _ := call(t, "POST", ts.URL+"/v1/events", key, "application/json", []byte(`{"type":"incident.opened","actor":{"type":"system","id":"system"}}`))
	var r struct{ Events []struct{ ID string } }
	json.Unmarshal(b, &r)
	if status != 201 {
		t.Fatalf("append: %d %s", status, b)
	}
	return r.Events[0].ID
}

func newFixture(t *testing.T) *fixture {
	ts := startServer(t, "")
	f := &fixture{ts: ts, keys: map[string]string{}}
	f.keys["write"], _ = createKey(t, ts, ts.Key, "writer", `["events:write"]`, "")
	f.keys["read"], _ = createKey(t, ts, ts.Key, "reader", `["events:read"]`, "")
	f.keys["admin"], _ = createKey(t, ts, ts.Key, "admin", `["admin"]`, "")
	revoked, revokedID := createKey(t, ts, ts.Key, "revoked", `["events:read"]`, "")
	if status, _, _ := call(t, "DELETE", ts.URL+"/v1/keys/"+revokedID, ts.Key, "", nil); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	f.keys["revoked"] = revoked
	f.keys["expired"], _ = createKey(t, ts, ts.Key, "expiring", `["events:read"]`, `,"expires_at":"`+time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)+`"`)
	createUser(t, ts, ts.Key, "viewer@stele.test", "viewer")
	createUser(t, ts, ts.Key, "admin2@stele.test", "admin")
	status, b, _ := call(t, "POST", ts.URL+"/v1/workspaces", ts.Key, "application/json", []byte(`{"id":"other"}`))
	var created struct{ Key struct{ Key string } }
	json.Unmarshal(b, &created)
	if status != 201 {
		t.Fatalf("create workspace: %d %s", status, b)
	}
	f.otherKey = created.Key.Key
	f.eventID = appendOne(t, ts, ts.Key)
	f.otherEvent = appendOne(t, ts, f.otherKey)
	_, f.otherKeyID = createKey(t, ts, f.otherKey, "victim-key", `["events:read"]`, "")
	f.otherUserID = createUser(t, ts, f.otherKey, "victim@other.test", "viewer")
	time.Sleep(1100 * time.Millisecond) // the expiring key expires
	return f
}

// route is one endpoint of the matrix. class: read, write, admin, operator, any.
type route struct {
	method, path, class string
	body                func(f *fixture) []byte
	path2               func(f *fixture) string // for paths with ids: a fresh target per call
}

var routes = []route{
	{method: "POST", path: "/v1/events", class: "write", body: func(*fixture) []byte {
		return []byte(`{"type":"incident.opened","actor":{"type":"system","id":"system"}}`)
	}},
	{method: "GET", path: "/v1/events", class: "read"},
	{method: "GET", class: "read", path2: func(f *fixture) string { return "/v1/events/" + f.eventID }},
	{method: "GET", path: "/v1/export?format=csv", class: "read"},
	{method: "GET", path: "/v1/export?format=bundle", class: "read"},
	{method: "GET", path: "/v1/stats/histogram", class: "read"},
	{method: "GET", path: "/v1/stats/count", class: "read"},
	{method: "GET", path: "/v1/proofs/inclusion?index=0&size=1", class: "read"},
	{method: "GET", path: "/v1/proofs/consistency?from=1&to=1", class: "read"},
	{method: "GET", path: "/v1/checkpoint", class: "any"},
	{method: "GET", path: "/v1/log/key", class: "any"},
	{method: "GET", path: "/v1/workspaces", class: "operator"},
	{method: "POST", path: "/v1/workspaces", class: "operator", body: func(*fixture) []byte {
		return []byte(`{"id":"ws-` + fmt.Sprintf("%x", rand.Uint64()) + `"}`)
	}},
	{method: "GET", path: "/v1/system/events", class: "operator"},
	{method: "GET", path: "/v1/keys", class: "admin"},
	{method: "POST", path: "/v1/keys", class: "admin", body: func(*fixture) []byte { return []byte(`{"name":"m","scopes":["events:read"]}`) }},
	{method: "GET", path: "/v1/users", class: "admin"},
	{method: "POST", path: "/v1/users", class: "admin", body: func(*fixture) []byte {
		return []byte(`{"email":"u` + strings.ToLower(api.NewPassword()[:6]) + `@stele.test","role":"viewer"}`)
	}},
}

// TestRouteCredentialMatrix is AUT-01, AUT-02, AUT-05: every route with
// every kind of credential, checking the status and, for refusals, the
// audit event with its source address.
func TestRouteCredentialMatrix(t *testing.T) {
	f := newFixture(t)
	ts := f.ts
	viewer, st := login(t, ts.URL, "viewer@stele.test", adminPassword)
	if st != 200 {
		t.Fatalf("viewer login: %d", st)
	}
	admin, st := login(t, ts.URL, "admin2@stele.test", adminPassword)
	if st != 200 {
		t.Fatalf("admin login: %d", st)
	}
	all := map[string]bool{"read": true, "write": true, "admin": true, "operator": true, "any": true}
	creds := []credential{
		{name: "none"},
		{name: "malformed", key: "not-a-key"},
		{name: "unknown", key: "stl_default_aaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", rejectIn: "default"},
		{name: "wrong secret", key: flipLast(f.keys["read"]), rejectIn: "default"},
		{name: "revoked", key: f.keys["revoked"], rejectIn: "default"},
		{name: "expired", key: f.keys["expired"], rejectIn: "default"},
		{name: "write-only key", key: f.keys["write"], valid: true, can: map[string]bool{"write": true, "any": true}},
		{name: "read-only key", key: f.keys["read"], valid: true, can: map[string]bool{"read": true, "any": true}},
		{name: "admin key", key: f.keys["admin"], valid: true, can: map[string]bool{"read": true, "write": true, "admin": true, "any": true}},
		{name: "operator key", key: ts.Key, valid: true, can: all},
		{name: "viewer session", session: viewer, valid: true, can: map[string]bool{"read": true, "any": true}},
		{name: "admin session", session: admin, valid: true, can: map[string]bool{"read": true, "admin": true, "any": true}},
		{name: "other workspace's key", key: f.otherKey, valid: true, can: map[string]bool{"read": true, "write": true, "admin": true, "any": true}},
	}
	type expectation struct {
		cred, method, path string
		status             int
	}
	var refusals []expectation
	for _, c := range creds {
		for _, rt := range routes {
			path := rt.path
			if rt.path2 != nil {
				path = rt.path2(f)
			}
			var body []byte
			if rt.body != nil {
				body = rt.body(f)
			}
			want := 401
			if c.valid {
				want = 403
				if c.can[rt.class] {
					want = map[string]int{"POST": 201, "GET": 200}[rt.method]
					if rt.path2 != nil && c.name == "other workspace's key" {
						want = 404 // default's event, asked for by other's key
					}
				}
			}
			status, b := do(t, ts.URL, c, rt.method, path, body)
			if status != want {
				t.Errorf("%s %s with %s: %d, want %d (%s)", rt.method, path, c.name, status, want, b)
			}
			if status == 401 || status == 403 {
				refusals = append(refusals, expectation{c.name, rt.method, path, status})
			}
		}
	}
	// No answer reveals a secret, a secret's hash or a password hash.
	seenMu.Lock()
	corpus := strings.Join(seen, "\n")
	seenMu.Unlock()
	for name, key := range f.keys {
		_, _, secret, _ := api.ParseKey(key)
		for _, leak := range []string{secret, base64.StdEncoding.EncodeToString(api.HashSecret(secret)), hex.EncodeToString(api.HashSecret(secret))} {
			if strings.Contains(corpus, leak) {
				t.Errorf("a response reveals the %s key's secret or its hash", name)
			}
		}
	}
	for _, leak := range []string{adminPassword, "$argon2id$", "secret_hash", "password_hash"} {
		if strings.Contains(corpus, leak) {
			t.Errorf("a response contains %q", leak)
		}
	}
	// Every refusal is in the log with method, path and source address.
	waitRefusalsRecorded(t, ts)
	sys := systemEvents(t, ts)
	def := workspaceEvents(t, ts, ts.Key, "")
	for _, c := range creds {
		if c.valid {
			continue
		}
		if n := countEvents(sys, "api_key.rejected", "127.0.0.1"); n == 0 {
			t.Fatalf("no api_key.rejected in the system log")
		}
		if c.rejectIn != "" && countEvents(def, "api_key.rejected", "127.0.0.1") == 0 {
			t.Errorf("%s: no api_key.rejected in the workspace its prefix names", c.name)
		}
	}
	for _, name := range []string{"unknown", "revoked", "expired", "wrong_secret", "missing", "malformed"} {
		if !hasContext(sys, "api_key.rejected", "reason", name) {
			t.Errorf("no api_key.rejected with reason %s in the system log", name)
		}
	}
	if !hasContext(def, "access.denied", "reason", "scope") {
		t.Error("no access.denied (scope) in the workspace's log")
	}
	for _, e := range def {
		if e.Type == "access.denied" && (e.IP != "127.0.0.1" || e.Context["method"] == nil || e.Context["path"] == nil) {
			t.Errorf("access.denied without method, path or IP: %+v", e)
		}
	}
}

// loggedEvent is an event read back from the API, for assertions.
type loggedEvent struct {
	Seq     int64          `json:"seq"`
	ID      string         `json:"id"`
	Type    string         `json:"type"`
	IP      string         `json:"ip"`
	Outcome string         `json:"outcome"`
	Actor   map[string]any `json:"actor"`
	Context map[string]any `json:"context"`
}

func readEvents(t *testing.T, ts *testServer, key, path string) []loggedEvent {
	t.Helper()
	var out []loggedEvent
	cursor := ""
	for {
		q := path + "limit=1000"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		status, b, _ := call(t, "GET", ts.URL+q, key, "", nil)
		if status != 200 {
			t.Fatalf("GET %s: %d %s", q, status, b)
		}
		var page struct {
			Events     []loggedEvent
			NextCursor string `json:"next_cursor"`
		}
		json.Unmarshal(b, &page)
		out = append(out, page.Events...)
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

func systemEvents(t *testing.T, ts *testServer) []loggedEvent {
	return readEvents(t, ts, ts.Key, "/v1/system/events?")
}

func workspaceEvents(t *testing.T, ts *testServer, key, filter string) []loggedEvent {
	return readEvents(t, ts, key, "/v1/events?"+filter+"&")
}

func countEvents(events []loggedEvent, typ, ip string) int {
	n := 0
	for _, e := range events {
		if e.Type == typ && (ip == "" || e.IP == ip) {
			n++
		}
	}
	return n
}

func hasContext(events []loggedEvent, typ, field, value string) bool {
	for _, e := range events {
		if e.Type == typ && fmt.Sprint(e.Context[field]) == value {
			return true
		}
	}
	return false
}

// TestCrossTenantReferences is AUT-06: ids of another workspace's event,
// key and user answer exactly like random ids, change nothing, and the
// attempt is logged in the caller's workspace, the system log and the
// victim's workspace.
func TestCrossTenantReferences(t *testing.T) {
	f := newFixture(t)
	ts := f.ts
	attacker := ts.Key
	random := "0190b1e2-7c4d-7a3b-9f1e-2d3c4b5a6978"
	cases := []struct{ method, foreign, missing string }{
		{"GET", "/v1/events/" + f.otherEvent, "/v1/events/" + random},
		{"GET", "/v1/keys/" + f.otherKeyID, "/v1/keys/aaaaaaaaaaaaa"},
		{"POST", "/v1/keys/" + f.otherKeyID + "/rotate", "/v1/keys/aaaaaaaaaaaaa/rotate"},
		{"DELETE", "/v1/keys/" + f.otherKeyID, "/v1/keys/aaaaaaaaaaaaa"},
		{"GET", "/v1/users/" + f.otherUserID, "/v1/users/u_aaaaaaaaaaaaa"},
		{"PATCH", "/v1/users/" + f.otherUserID, "/v1/users/u_aaaaaaaaaaaaa"},
	}
	for _, c := range cases {
		var body []byte
		if c.method == "PATCH" {
			body = []byte(`{"role":"owner","disabled":true}`)
		}
		s1, b1, _ := call(t, c.method, ts.URL+c.foreign, attacker, "application/json", body)
		s2, b2, _ := call(t, c.method, ts.URL+c.missing, attacker, "application/json", body)
		if s1 != 404 || s2 != 404 || string(b1) != string(b2) {
			t.Errorf("%s %s: %d %s; a missing id gives %d %s", c.method, c.foreign, s1, b1, s2, b2)
		}
	}
	// Nothing changed in the victim's workspace.
	if status, _, _ := call(t, "GET", ts.URL+"/v1/keys/"+f.otherKeyID, f.otherKey, "", nil); status != 200 {
		t.Errorf("victim's key: %d", status)
	}
	_, b, _ := call(t, "GET", ts.URL+"/v1/users/"+f.otherUserID, f.otherKey, "", nil)
	if strings.Contains(string(b), `"disabled":true`) || strings.Contains(string(b), `"owner"`) {
		t.Errorf("victim's user changed: %s", b)
	}
	// Tenant override attempts are refused (AUT-07).
	for _, q := range []string{"?workspace=other", "?workspace_id=other", "?ws=default&ws=other"} {
		if status, _, _ := call(t, "GET", ts.URL+"/v1/events"+q, attacker, "", nil); status != 400 {
			t.Errorf("GET /v1/events%s: %d, want 400", q, status)
		}
	}
	waitRefusalsRecorded(t, ts)
	mine := workspaceEvents(t, ts, attacker, "type=access.denied")
	victim := workspaceEvents(t, ts, f.otherKey, "type=access.denied")
	sys := systemEvents(t, ts)
	for _, c := range cases {
		id := c.foreign[strings.LastIndex(strings.TrimSuffix(c.foreign, "/rotate"), "/")+1:]
		id = strings.TrimSuffix(id, "/rotate")
		found := func(events []loggedEvent) bool {
			for _, e := range events {
				target, _ := e.Context["target"].(map[string]any)
				if e.Type == "access.denied" && target != nil && target["id"] == id && e.IP == "127.0.0.1" {
					return true
				}
			}
			return false
		}
		if !found(mine) {
			t.Errorf("%s %s: no access.denied in the caller's workspace", c.method, c.foreign)
		}
		if !found(victim) {
			t.Errorf("%s %s: no access.denied in the victim's workspace", c.method, c.foreign)
		}
		if !found(sys) {
			t.Errorf("%s %s: no access.denied in the system log", c.method, c.foreign)
		}
	}
	for _, e := range victim {
		if strings.Contains(fmt.Sprint(e.Actor, e.Context), "default") {
			t.Errorf("the victim's record names the caller's workspace: %+v", e)
		}
	}
}

// TestKeyLifecycle is AUT-03 and AUT-04: rotation with and without grace,
// immediate revocation, and the events of each.
func TestKeyLifecycle(t *testing.T) {
	ts := startServer(t, "")
	key, id := createKey(t, ts, ts.Key, "ci-ingest", `["events:read"]`, "")
	read := func(k string) int {
		s, _, _ := call(t, "GET", ts.URL+"/v1/checkpoint", k, "", nil)
		return s
	}
	// Grace 2 s: both secrets work, then only the new one.
	status, b, _ := call(t, "POST", ts.URL+"/v1/keys/"+id+"/rotate", ts.Key, "application/json", []byte(`{"grace_seconds":2}`))
	var rotated struct{ Key, ID string }
	json.Unmarshal(b, &rotated)
	if status != 200 || rotated.ID != id || rotated.Key == key {
		t.Fatalf("rotate: %d %s", status, b)
	}
	if read(key) != 200 || read(rotated.Key) != 200 {
		t.Errorf("during the grace period both secrets must work")
	}
	time.Sleep(2100 * time.Millisecond)
	if read(key) != 401 || read(rotated.Key) != 200 {
		t.Errorf("after the grace period only the new secret may work")
	}
	// Grace 0 (the default): the old secret stops at once.
	status, b, _ = call(t, "POST", ts.URL+"/v1/keys/"+id+"/rotate", ts.Key, "", nil)
	var again struct{ Key string }
	json.Unmarshal(b, &again)
	if status != 200 || read(rotated.Key) != 401 || read(again.Key) != 200 {
		t.Errorf("rotation without grace: %d; old %d new %d", status, read(rotated.Key), read(again.Key))
	}
	// Revocation is immediate.
	if status, _, _ := call(t, "DELETE", ts.URL+"/v1/keys/"+id, ts.Key, "", nil); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	for range 3 {
		if read(again.Key) != 401 {
			t.Fatal("a revoked key still works")
		}
	}
	waitRefusalsRecorded(t, ts)
	events := workspaceEvents(t, ts, ts.Key, "category=auth")
	for _, typ := range []string{"api_key.created", "api_key.rotated", "api_key.revoked"} {
		if countEvents(events, typ, "127.0.0.1") == 0 {
			t.Errorf("no %s with the caller's address", typ)
		}
	}
	if !hasContext(systemEvents(t, ts), "api_key.rejected", "reason", "revoked") {
		t.Error("use of a revoked key was not logged as such")
	}
	// Listing never shows secrets or hashes (AUT-15).
	_, b, _ = call(t, "GET", ts.URL+"/v1/keys", ts.Key, "", nil)
	for _, secret := range []string{key, rotated.Key, again.Key, "secret", "hash"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("GET /v1/keys contains %q", secret)
		}
	}
}

// TestSessions is AUT-11: cookie flags, no fixation, CSRF, server-side
// logout, and the login events.
func TestSessions(t *testing.T) {
	ts := startServer(t, "")
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(ts.URL)
	jar.SetCookies(u, []*http.Cookie{{Name: "stele_session", Value: "attacker-chosen"}})
	c := &http.Client{Jar: jar}
	resp, err := c.Post(ts.URL+"/v1/auth/login", "application/json", strings.NewReader(`{"email":"`+adminEmail+`","password":"`+adminPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var sess struct {
		CSRF string `json:"csrf_token"`
		User struct{ Email, Role string }
	}
	json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	setCookie := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != 200 || sess.CSRF == "" || sess.User.Role != "owner" {
		t.Fatalf("login: %d %+v", resp.StatusCode, sess)
	}
	for _, flag := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(setCookie, flag) {
			t.Errorf("session cookie lacks %s: %s", flag, setCookie)
		}
	}
	if strings.Contains(setCookie, "attacker-chosen") {
		t.Error("login kept the cookie value the client brought (fixation)")
	}
	token := ""
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "stele_session" {
			token = ck.Value
		}
	}
	post := func(csrf, origin string) int {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/keys", strings.NewReader(`{"name":"x","scopes":["events:read"]}`))
		req.Header.Set("Content-Type", "application/json")
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post("", ""); s != 403 {
		t.Errorf("cookie change without a CSRF token: %d, want 403", s)
	}
	if s := post("wrong", ""); s != 403 {
		t.Errorf("cookie change with a wrong CSRF token: %d, want 403", s)
	}
	if s := post(sess.CSRF, "http://evil.example"); s != 403 {
		t.Errorf("cookie change from another origin: %d, want 403", s)
	}
	if s := post(sess.CSRF, ts.URL); s != 201 {
		t.Errorf("cookie change with the CSRF token: %d, want 201", s)
	}
	// Logout ends the session on the server: the old cookie is dead.
	req, _ := http.NewRequest("POST", ts.URL+"/v1/auth/logout", nil)
	req.Header.Set("X-CSRF-Token", sess.CSRF)
	resp, err = c.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("logout: %v %v", err, resp.StatusCode)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("GET", ts.URL+"/v1/events", nil)
	req.AddCookie(&http.Cookie{Name: "stele_session", Value: token})
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 401 {
		t.Errorf("the cookie after logout: %v %d, want 401", err, resp.StatusCode)
	}
	resp.Body.Close()
	waitRefusalsRecorded(t, ts)
	events := workspaceEvents(t, ts, ts.Key, "category=auth")
	if countEvents(events, "user.login", "127.0.0.1") != 1 || countEvents(events, "user.logout", "127.0.0.1") != 1 {
		t.Errorf("login/logout events: %d/%d", countEvents(events, "user.login", ""), countEvents(events, "user.logout", ""))
	}
	if !hasContext(events, "access.denied", "reason", "csrf") {
		t.Error("CSRF refusals were not logged")
	}
}

// TestLoginAbuse is AUT-10 and AUT-14: unknown and known accounts answer
// alike, repeated failures are throttled per account and per address, a
// success clears the account, and a flood of failures is aggregated with
// exact counts.
func TestLoginAbuse(t *testing.T) {
	ts := startServer(t, "", func(c *serveConfig) { c.Limits.FailuresPerMinute = 10 })
	attempt := func(email, password string) (int, string, string) {
		status, b, h := call(t, "POST", ts.URL+"/v1/auth/login", "", "application/json",
			[]byte(`{"email":"`+email+`","password":"`+password+`"}`))
		return status, string(b), h.Get("Retry-After")
	}
	s1, b1, _ := attempt("nobody@stele.test", "whatever-password")
	s2, b2, _ := attempt(adminEmail, "wrong-password-123")
	if s1 != 401 || s2 != 401 || b1 != b2 {
		t.Errorf("unknown user %d %s vs wrong password %d %s: must be identical", s1, b1, s2, b2)
	}
	// Five free failures (one used above), then each attempt must wait.
	total := 2 // failures so far: the unknown user and the wrong password
	for range 4 {
		attempt(adminEmail, "wrong-password-123")
		total++
	}
	attempt(adminEmail, "wrong-password-123") // the sixth failure locks for 1 s
	total++
	status, _, retry := attempt(adminEmail, adminPassword)
	total++
	if status != 429 || retry == "" {
		t.Errorf("attempt during the lockout: %d Retry-After %q, want 429 with Retry-After", status, retry)
	}
	time.Sleep(1100 * time.Millisecond)
	if status, _, _ := attempt(adminEmail, adminPassword); status != 200 {
		t.Errorf("the right password after the lockout: %d", status)
	}
	// The flood: many failures on unknown accounts; the log stays bounded
	// and the counts exact.
	for i := range 40 {
		attempt(fmt.Sprintf("stuffing%d@stele.test", i), "password-guess-1")
		total++
	}
	ts.stop(t) // closing the server records the open aggregates
	ts2 := startServer(t, ts.DataDir, func(c *serveConfig) { c.Limits.FailuresPerMinute = 10 })
	var individual, aggregated int
	count := func(events []loggedEvent) {
		for _, e := range events {
			if e.Type != "user.login_failed" {
				continue
			}
			if e.Context["aggregated"] == true {
				aggregated += int(e.Context["count"].(float64))
			} else {
				individual++
			}
		}
	}
	count(workspaceEvents(t, ts2, ts2.Key, "type=user.login_failed"))
	count(systemEvents(t, ts2))
	if individual+aggregated != total {
		t.Errorf("user.login_failed: %d individual + %d aggregated = %d, want %d attempts", individual, aggregated, individual+aggregated, total)
	}
	if individual > 25 {
		t.Errorf("%d individual failure events: the flood was not aggregated", individual)
	}
}

// TestSourceAddress is INP-09: X-Forwarded-For counts only from trusted
// proxies.
func TestSourceAddress(t *testing.T) {
	untrusted := startServer(t, "")
	trusted := startServer(t, "", func(c *serveConfig) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
	for _, ts := range []*testServer{untrusted, trusted} {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/events", strings.NewReader(`{"type":"a.b","actor":{"type":"system","id":"s"}}`))
		req.Header.Set("Authorization", "Bearer "+ts.Key)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", "198.51.100.77")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	emitterIP := func(ts *testServer) string {
		events := exportAll(t, ts.URL, ts.Key)
		for _, e := range events {
			if e.Type == "a.b" {
				return e.Raw["emitter"].(map[string]any)["ip"].(string)
			}
		}
		return ""
	}
	if ip := emitterIP(untrusted); ip != "127.0.0.1" {
		t.Errorf("a spoofed X-Forwarded-For from an untrusted peer became the source address: %s", ip)
	}
	if ip := emitterIP(trusted); ip != "198.51.100.77" {
		t.Errorf("X-Forwarded-For from a trusted proxy was ignored: %s", ip)
	}
}

// TestRateLimits: per-key read limits answer 429 with Retry-After.
func TestRateLimits(t *testing.T) {
	ts := startServer(t, "", func(c *serveConfig) { c.Limits.ReadPerSecond = 2 })
	limited := 0
	for range 20 {
		status, _, h := call(t, "GET", ts.URL+"/v1/checkpoint", ts.Key, "", nil)
		if status == 429 {
			limited++
			if h.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		}
	}
	if limited == 0 {
		t.Error("20 reads at 2/s were never limited")
	}
}

// TestSystemLog is the operator's view: the instance's own log, with its
// own tree and checkpoints, readable only with an operator key.
func TestSystemLog(t *testing.T) {
	ts := startServer(t, "")
	call(t, "POST", ts.URL+"/v1/workspaces", ts.Key, "application/json", []byte(`{"id":"acme"}`))
	sys := systemEvents(t, ts)
	for _, typ := range []string{"service.started", "workspace.created"} {
		if countEvents(sys, typ, "") == 0 {
			t.Errorf("no %s in the system log", typ)
		}
	}
	_, vkey, _ := call(t, "GET", ts.URL+"/v1/system/log/key", ts.Key, "", nil)
	var cp []byte
	for range 50 {
		var status int
		status, cp, _ = call(t, "GET", ts.URL+"/v1/system/checkpoint", ts.Key, "", nil)
		if status == 200 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cp, note.VerifierList(v))
	if err != nil || !strings.HasPrefix(n.Text, "stele.test/_system\n") {
		t.Fatalf("system checkpoint: %v\n%s", err, cp)
	}
	admin, _ := createKey(t, ts, ts.Key, "ws-admin", `["admin"]`, "")
	if status, _, _ := call(t, "GET", ts.URL+"/v1/system/events", admin, "", nil); status != 403 {
		t.Errorf("a workspace admin read the system log: %d", status)
	}
}

// TestAppendOnlyAPI is RELIABILITY.md TAM-19: PUT, PATCH and DELETE on
// events, checkpoints and proofs answer 405 with the methods that exist,
// change nothing, and each attempt is logged with its method, path and
// source address; a path that exists for no method answers 404, also
// logged.
func TestAppendOnlyAPI(t *testing.T) {
	ts := startServer(t, "")
	status, b, _ := call(t, "POST", ts.URL+"/v1/events?wait=checkpoint", ts.Key, "application/json",
		[]byte(`{"type":"incident.opened","actor":{"type":"system","id":"system"},"node":"nyc-edge-01"}`))
	if status != 201 {
		t.Fatalf("append: %d %s", status, b)
	}
	var receipt struct{ Events []struct{ ID string } }
	json.Unmarshal(b, &receipt)
	id := receipt.Events[0].ID
	_, before, _ := call(t, "GET", ts.URL+"/v1/events/"+id, ts.Key, "", nil)
	paths := []string{"/v1/events/" + id, "/v1/events", "/v1/checkpoint", "/v1/proofs/inclusion?index=0&size=1", "/v1/proofs/consistency?from=1&to=1"}
	for _, path := range paths {
		for _, method := range []string{"PUT", "PATCH", "DELETE"} {
			status, b, h := call(t, method, ts.URL+path, ts.Key, "application/json", []byte(`{"type":"incident.resolved"}`))
			var e struct{ Error struct{ Code string } }
			json.Unmarshal(b, &e)
			if status != 405 || e.Error.Code != "method_not_allowed" || !strings.Contains(h.Get("Allow"), "GET") {
				t.Errorf("%s %s: %d %s, Allow %q; want 405 method_not_allowed", method, path, status, b, h.Get("Allow"))
			}
		}
	}
	if status, _, _ := call(t, "DELETE", ts.URL+"/v1/no/such/thing", ts.Key, "", nil); status != 404 {
		t.Errorf("DELETE on an unknown path: %d, want 404", status)
	}
	_, after, _ := call(t, "GET", ts.URL+"/v1/events/"+id, ts.Key, "", nil)
	var e1, e2 struct{ Event json.RawMessage }
	json.Unmarshal(before, &e1)
	json.Unmarshal(after, &e2)
	if len(e1.Event) == 0 || string(e1.Event) != string(e2.Event) {
		t.Errorf("the event changed:\n%s\n%s", e1.Event, e2.Event)
	}
	waitRefusalsRecorded(t, ts)
	denied := workspaceEvents(t, ts, ts.Key, "type=access.denied")
	for _, path := range paths {
		p, _, _ := strings.Cut(path, "?")
		for _, method := range []string{"PUT", "PATCH", "DELETE"} {
			found := false
			for _, e := range denied {
				found = found || (e.Context["method"] == method && e.Context["path"] == p &&
					e.Context["reason"] == "method_not_allowed" && e.IP == "127.0.0.1")
			}
			if !found {
				t.Errorf("%s %s: no access.denied with its method, path and address", method, p)
			}
		}
	}
	if !hasContext(denied, "access.denied", "reason", "no_such_endpoint") {
		t.Error("the unknown path was not logged")
	}
}

// TestFirstOwnerOfNewWorkspace: a workspace made with POST /v1/workspaces
// comes with an admin key; that key may make the workspace's first owner,
// and no further one while an owner is active.
func TestFirstOwnerOfNewWorkspace(t *testing.T) {
	ts := startServer(t, "")
	status, b, _ := call(t, "POST", ts.URL+"/v1/workspaces", ts.Key, "application/json", []byte(`{"id":"acme"}`))
	if status != 201 {
		t.Fatalf("create workspace: %d %s", status, b)
	}
	var ws struct{ Key struct{ Key string } }
	json.Unmarshal(b, &ws)
	owner := func(email string) int {
		status, _, _ := call(t, "POST", ts.URL+"/v1/users", ws.Key.Key, "application/json",
			[]byte(`{"email":"`+email+`","role":"owner","password":"a long enough password"}`))
		return status
	}
	if status := owner("first@acme.test"); status != 201 {
		t.Fatalf("first owner by the workspace's admin key: %d, want 201", status)
	}
	if status := owner("second@acme.test"); status != 403 {
		t.Errorf("second owner by an admin key: %d, want 403", status)
	}
}
