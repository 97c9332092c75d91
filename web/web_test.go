package web

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stele-log/stele"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	d, err := New()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	d.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, b.String()
}

func TestRoutes(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		path   string
		status int
		ctype  string
	}{
		{"/", 200, "text/html; charset=utf-8"},
		{"/?actor=alice%40acme.com&type=incident.opened", 200, "text/html; charset=utf-8"},
		{"/admin/keys", 200, "text/html; charset=utf-8"},
		{"/admin/users", 200, "text/html; charset=utf-8"},
		{"/admin/settings", 200, "text/html; charset=utf-8"},
		{"/admin/other", 404, "text/plain; charset=utf-8"},
		{"/ui/js/app.js", 200, "text/javascript; charset=utf-8"},
		{"/ui/js/verify.js", 200, "text/javascript; charset=utf-8"},
		{"/ui/app.css", 200, "text/css; charset=utf-8"},
		{"/ui/icon.svg", 200, "image/svg+xml"},
		{"/ui/catalog.json", 200, "application/json"},
		{"/ui/nothing.js", 404, "text/plain; charset=utf-8"},
		{"/ui/js", 404, "text/plain; charset=utf-8"},
		{"/ui/shell.html", 404, "text/plain; charset=utf-8"},
	}
	for _, tt := range tests {
		resp, _ := get(t, srv.URL+tt.path)
		if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != tt.ctype {
			t.Errorf("GET %s: %d %q, want %d %q", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.status, tt.ctype)
		}
		// Every dashboard response, errors included, carries the policy.
		if got := resp.Header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
			t.Errorf("GET %s: Content-Security-Policy %q", tt.path, got)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: framing and sniffing headers %v", tt.path, resp.Header)
		}
	}
}

func TestContentSecurityPolicy(t *testing.T) {
	directives := map[string]string{}
	for _, d := range strings.Split(ContentSecurityPolicy, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	want := map[string]string{
		"default-src": "'none'", "script-src": "'self'", "style-src": "'self'", "connect-src": "'self'",
		"frame-ancestors": "'none'", "base-uri": "'none'", "require-trusted-types-for": "'script'", "trusted-types": "'none'",
	}
	for name, v := range want {
		if directives[name] != v {
			t.Errorf("%s = %q, want %q", name, directives[name], v)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe") || strings.Contains(ContentSecurityPolicy, "http") {
		t.Errorf("policy allows unsafe sources or other hosts: %s", ContentSecurityPolicy)
	}
}

func TestAssetsRevalidate(t *testing.T) {
	srv := newServer(t)
	resp, body := get(t, srv.URL+"/ui/js/app.js")
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Cache-Control") != "no-cache" || !strings.Contains(body, "import") {
		t.Fatalf("app.js: etag %q, cache %q", etag, resp.Header.Get("Cache-Control"))
	}
	resp, _ = get(t, srv.URL+"/ui/js/app.js", "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: %d, want 304", resp.StatusCode)
	}
	// The shell links the assets of this build.
	_, shell := get(t, srv.URL+"/")
	m := regexp.MustCompile(`/ui/js/app\.js\?v=([A-Za-z0-9_-]+)"`).FindStringSubmatch(shell)
	if m == nil {
		t.Fatalf("the shell does not load app.js with a version:\n%s", shell)
	}
}

// TestCatalog checks that the event type filter gets the whole catalog,
// grouped by category.
func TestCatalog(t *testing.T) {
	srv := newServer(t)
	_, body := get(t, srv.URL+"/ui/catalog.json")
	var got struct {
		Categories []struct {
			Category string
			Types    []string
		}
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want := stele.Catalog()
	if len(got.Categories) != len(want) {
		t.Fatalf("%d categories, want %d", len(got.Categories), len(want))
	}
	for _, c := range got.Categories {
		w := slices.Sorted(slices.Values(want[c.Category]))
		if !slices.Equal(c.Types, w) {
			t.Errorf("category %s: %v, want %v", c.Category, c.Types, w)
		}
	}
}

// TestAssetsAreSelfContained reads every embedded file: nothing may load
// from another host, the shell may hold no inline script or event-handler
// attribute, and no script may turn strings into markup or code.
func TestAssetsAreSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	markupSinks := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setTimeout\(['"]|\.setAttribute\(['"]on|srcdoc|javascript:`)
	files := map[string]string{"shell.html": shellSource}
	fs.WalkDir(staticFS, "static", func(name string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(staticFS, name)
		files[name] = string(b)
		return err
	})
	if len(files) < 10 {
		t.Fatalf("only %d files embedded", len(files))
	}
	for name, text := range files {
		for _, m := range external.FindAllString(text, -1) {
			if m != "http://www.w3.org" { // the SVG namespace, an identifier
				t.Errorf("%s refers to another host: %q", name, m)
			}
		}
		if strings.HasSuffix(name, ".js") {
			if m := markupSinks.FindString(text); m != "" {
				t.Errorf("%s uses %q", name, m)
			}
		}
		if strings.HasSuffix(name, ".css") && strings.Contains(text, "@import") {
			t.Errorf("%s imports other style sheets", name)
		}
	}
	shell := files["shell.html"]
	if m := regexp.MustCompile(`(?i)\son[a-z]+\s*=`).FindString(shell); m != "" {
		t.Errorf("the shell has an event-handler attribute: %q", m)
	}
	for _, tag := range regexp.MustCompile(`(?is)<script[^>]*>`).FindAllString(shell, -1) {
		if !strings.Contains(tag, "src=") {
			t.Errorf("the shell has an inline script: %s", tag)
		}
	}
}
