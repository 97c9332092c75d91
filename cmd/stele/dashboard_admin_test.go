package main

import (
	"crypto/rand"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/mod/sumdb/note"
)

// appendWith posts one event with key and returns the status.
func appendWith(t *testing.T, ts *testServer, key string) int {
	t.Helper()
	status, _, _ := call(t, "POST", ts.URL+"/v1/events", key, "application/json", []byte(`{"type":"node.added","actor":{"type":"service","id":"ci"}}`))
	return status
}

// clickConfirm answers the open confirmation dialog with its confirm button.
func (tb *tab) clickConfirm() {
	tb.t.Helper()
	tb.do("confirm", chromedp.WaitVisible(chromedp.CSS(`dialog[open] button[type=submit]`)), chromedp.Click(chromedp.CSS(`dialog[open] button[type=submit]`)))
	tb.waitJS("the dialog to close", `!document.querySelector('dialog[open]')`)
}

func (tb *tab) secret() string {
	tb.t.Helper()
	tb.waitJS("the secret", `!!document.querySelector('#secret-value')`)
	return eval[string](tb, `document.querySelector('#secret-value').value`)
}

// TestDashboardAdmin manages keys and users through the admin pages and
// checks each change against the API; a viewer sees no admin pages.
func TestDashboardAdmin(t *testing.T) {
	ts := startServer(t, "")
	tb := newTab(t, ts)
	tb.do("open the dashboard", chromedp.Navigate(ts.URL+"/"))
	tb.login(adminEmail, adminPassword)
	tb.waitLog(url.Values{})

	run := &adminRun{tb: tb, ts: ts}
	for _, step := range []struct {
		name string
		run  func(*adminRun, *testing.T)
	}{
		{"API keys: create, rotate, revoke", (*adminRun).keys},
		{"users: add, change role, disable", (*adminRun).users},
		{"settings", (*adminRun).settings},
		{"a viewer sees no admin pages", (*adminRun).viewer},
	} {
		// Each step builds on the one before: stop at the first that fails.
		if !t.Run(step.name, func(t *testing.T) { step.run(run, t) }) {
			break
		}
	}
}

// keys: API keys are created (secret shown once), rotated and revoked, as
// the API confirms.
func (r *adminRun) keys(t *testing.T) {
	tb, ts := r.tab(t), r.ts
	tb.do("open API keys", chromedp.Click(chromedp.CSS(`nav a[href="/admin/keys"]`)), chromedp.WaitVisible(chromedp.ID("key-form")))
	if p := eval[string](tb, `location.pathname`); p != "/admin/keys" {
		t.Errorf("path %q", p)
	}
	tb.do("create a key", chromedp.SendKeys(chromedp.ID("key-name"), "ci-ingest"), chromedp.Click(chromedp.ID("key-create")))
	first := tb.secret()
	if !strings.HasPrefix(first, "stl_default_") {
		t.Fatalf("secret shown: %q", first)
	}
	tb.screenshot("api-key-created.png")
	if u := tb.unlabeled(); len(u) > 0 {
		t.Errorf("form controls without a label: %v", u)
	}
	if s := appendWith(t, ts, first); s != 201 {
		t.Errorf("append with the new key: %d", s)
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(first, "stl_default_"), "_")
	row := `#keys-body tr[data-id="` + id + `"]`
	tb.waitJS("the key's row", `!!document.querySelector('`+row+`')`)
	if got := tb.text(row + " td:nth-child(3)"); got != "events:write" {
		t.Errorf("scopes shown %q", got)
	}

	tb.do("rotate", chromedp.Click(chromedp.CSS(row+` button[data-action=rotate]`)))
	tb.clickConfirm()
	tb.waitJS("a new secret", `document.querySelector('#secret-value')?.value !== `+jsString(first))
	second := tb.secret()
	if second == first || !strings.HasPrefix(second, "stl_default_"+id+"_") {
		t.Fatalf("rotated secret %q (was %q)", second, first)
	}
	if s := appendWith(t, ts, first); s != 401 {
		t.Errorf("old secret after rotation: %d, want 401", s)
	}
	if s := appendWith(t, ts, second); s != 201 {
		t.Errorf("new secret: %d, want 201", s)
	}

	tb.do("revoke", chromedp.Click(chromedp.CSS(row+` button[data-action=revoke]`)))
	tb.clickConfirm()
	tb.waitJS("the revoked status", `document.querySelector('`+row+`')?.innerText.includes('Revoked')`)
	if s := appendWith(t, ts, second); s != 401 {
		t.Errorf("revoked key: %d, want 401", s)
	}
	_, body, _ := call(t, "GET", ts.URL+"/v1/events?type=api_key.*&actor="+url.QueryEscape(adminEmail), ts.Key, "", nil)
	for _, typ := range []string{"api_key.created", "api_key.rotated", "api_key.revoked"} {
		if !strings.Contains(string(body), `"`+typ+`"`) {
			t.Errorf("no %s event by the admin: %s", typ, body)
		}
	}
}

// users: users are added, their role changed and disabled, as the API confirms.
func (r *adminRun) users(t *testing.T) {
	tb, ts := r.tab(t), r.ts
	tb.do("open users", chromedp.Click(chromedp.CSS(`nav a[href="/admin/users"]`)), chromedp.WaitVisible(chromedp.ID("user-form")))
	tb.do("add a user", chromedp.SendKeys(chromedp.ID("user-email"), "carol@acme.com"), chromedp.SendKeys(chromedp.ID("user-name"), "Carol"),
		chromedp.Click(chromedp.ID("user-create")))
	password := tb.secret()
	if len(password) < 12 {
		t.Fatalf("generated password %q", password)
	}
	row := `#users-body tr[data-email="carol@acme.com"]`
	tb.waitJS("carol's row", `!!document.querySelector('`+row+`')`)
	eval[chromedp.Void](tb, `(() => { const s = document.querySelector('`+row+` select'); s.value = 'admin'; s.dispatchEvent(new Event('change')); })()`)
	tb.waitJS("the new role", `document.querySelector('`+row+` select')?.value === 'admin' && document.getElementById('live').textContent.includes('now admin')`)
	user := func() map[string]any {
		_, body, _ := call(t, "GET", ts.URL+"/v1/users", ts.Key, "", nil)
		var r struct{ Users []map[string]any }
		json.Unmarshal(body, &r)
		for _, u := range r.Users {
			if u["email"] == "carol@acme.com" {
				return u
			}
		}
		t.Fatalf("carol is not a user: %s", body)
		return nil
	}
	if u := user(); u["role"] != "admin" || u["name"] != "Carol" {
		t.Errorf("carol after the role change: %v", u)
	}
	tb.do("disable", chromedp.Click(chromedp.CSS(row+` button[data-action=disable]`)))
	tb.clickConfirm()
	tb.waitJS("the disabled status", `document.querySelector('`+row+`')?.innerText.includes('Disabled')`)
	if u := user(); u["disabled"] != true {
		t.Errorf("carol after disabling: %v", u)
	}
	status, _, _ := call(t, "POST", ts.URL+"/v1/auth/login", "", "application/json", []byte(`{"email":"carol@acme.com","password":"`+password+`"}`))
	if status != 401 {
		t.Errorf("a disabled user signs in: %d", status)
	}
	tb.screenshot("users.png")
	if u := tb.unlabeled(); len(u) > 0 {
		t.Errorf("form controls without a label: %v", u)
	}
}

// settings: the settings page shows the log key the API serves, pinned in
// the browser.
func (r *adminRun) settings(t *testing.T) {
	tb, ts := r.tab(t), r.ts
	tb.do("open settings", chromedp.Click(chromedp.CSS(`nav a[href="/admin/settings"]`)), chromedp.WaitVisible(chromedp.ID("log-key")))
	_, vkey, _ := call(t, "GET", ts.URL+"/v1/log/key", ts.Key, "", nil)
	if got := tb.text("#log-key"); got != strings.TrimSpace(string(vkey)) {
		t.Errorf("log key shown %q, API says %q", got, vkey)
	}
	if got := tb.text("#pin-state"); !strings.HasPrefix(got, "Pinned in this browser") {
		t.Errorf("pin state %q", got)
	}
}

// viewer: a viewer is offered no admin page and is refused one by URL.
func (r *adminRun) viewer(t *testing.T) {
	ts := r.ts
	status, body, _ := call(t, "POST", ts.URL+"/v1/users", ts.Key, "application/json",
		[]byte(`{"email":"dave@acme.com","role":"viewer","password":"dave's long password"}`))
	if status != 201 {
		t.Fatalf("create a viewer: %d %s", status, body)
	}
	viewer := newTab(t, ts)
	viewer.do("open the keys page", chromedp.Navigate(ts.URL+"/admin/keys"))
	viewer.login("dave@acme.com", "dave's long password")
	viewer.waitJS("the page", `!!document.querySelector('main h1') && document.querySelector('main h1').textContent === 'API keys'`)
	if got := viewer.text("main"); !strings.Contains(got, "Your role (viewer) cannot manage this") {
		t.Errorf("viewer on /admin/keys sees %q", got)
	}
	if n := eval[int](viewer, `document.querySelectorAll('nav a[href="/admin/keys"], nav a[href="/admin/users"]').length`); n != 0 {
		t.Errorf("viewer's navigation offers %d admin pages", n)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestDashboardLogKeyChange pins the log key on first use and then shows a
// server that presents another key: a loud warning, and events that fail
// verification at the signature step until the new key is accepted.
func TestDashboardLogKeyChange(t *testing.T) {
	ts := startServer(t, "")
	events := seed(t, ts, dashboardEvents(time.Now())[:3])
	tb := newTab(t, ts)
	tb.do("open the dashboard", chromedp.Navigate(ts.URL+"/"))
	tb.login(adminEmail, adminPassword)
	tb.waitLog(url.Values{})
	if hidden := eval[bool](tb, `document.querySelector('#key-banner').hidden`); !hidden {
		t.Fatal("key warning shown on first use")
	}
	// Another key under the same name is pinned, as if the server's key
	// had changed since this browser first saw it.
	_, other, err := note.GenerateKey(rand.Reader, "stele.test/default")
	if err != nil {
		t.Fatal(err)
	}
	eval[chromedp.Void](tb, `localStorage.setItem('stele.pinned-log-key:stele.test/default', JSON.stringify({key: `+jsString(other)+`, since: '2026-01-01T00:00:00Z'}))`)
	tb.do("reload", chromedp.Reload())
	tb.waitLog(url.Values{})
	if got := tb.text("#key-banner"); !strings.Contains(got, "the log’s signing key has changed") {
		t.Errorf("banner %q", got)
	}
	target := events[0]
	tb.do("open an event", chromedp.Click(chromedp.CSS(`#events-body tr[data-id="`+target.ID+`"] button`)))
	if title := tb.verifyTitle(); title != "Verification failed" {
		t.Fatalf("with a changed key: %q", title)
	}
	if got := tb.text("#verify-failure"); !strings.Contains(got, `Step “signature” failed: the checkpoint carries no signature by the pinned key`) {
		t.Errorf("failure %q", got)
	}
	tb.screenshot("log-key-changed.png")
	tb.do("close", chromedp.Click(chromedp.ID("detail-close")))

	// Accepting the presented key (after a confirmation) verifies again.
	tb.do("review", chromedp.Click(chromedp.CSS(`#key-banner button`)))
	tb.clickConfirm()
	tb.waitLog(url.Values{})
	tb.do("the warning goes once the key is accepted", chromedp.WaitNotVisible(chromedp.ID("key-banner")))
	tb.do("open the event again", chromedp.Click(chromedp.CSS(`#events-body tr[data-id="`+target.ID+`"] button`)))
	if title := tb.verifyTitle(); !strings.HasPrefix(title, "Verified against checkpoint") {
		t.Errorf("after accepting the key: %q", title)
	}
}

// adminRun is the state TestDashboardAdmin's steps share.
type adminRun struct {
	tb *tab
	ts *testServer
}

func (r *adminRun) tab(t *testing.T) *tab {
	r.tb.t = t
	return r.tb
}
