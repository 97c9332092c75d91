// Package web is Stele's dashboard: the pages a person uses to sign in,
// read and filter a workspace's audit log, verify an event in the browser,
// export what the filters show, and administer keys and users.
//
// Everything it serves is embedded in the binary (a page shell rendered
// with html/template, plain CSS and vanilla ES modules, no build step), so
// the dashboard works on a machine with no internet and loads nothing from
// any other host. All data comes from the JSON API under /v1 with the
// session cookie; the package itself reads no store and holds no state
// beyond its assets. It is not the API: it only mounts its pages and files
// beside it.
//
// Every response carries a Content-Security-Policy that allows scripts,
// styles and connections to this origin only, forbids inline scripts and
// event-handler attributes, enforces Trusted Types (so no string can reach
// innerHTML or eval), and forbids framing.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/stele-log/stele"
)

//go:embed shell.html
var shellSource string

//go:embed static
var staticFS embed.FS

// ContentSecurityPolicy is sent with every dashboard response.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

// Pages are the dashboard's paths that serve the page shell; the scripts
// draw the page for the path.
var Pages = []string{"/", "/admin/keys", "/admin/users", "/admin/settings"}

// asset is one file served under /ui/.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// Dashboard serves the pages and assets.
type Dashboard struct {
	shell  asset
	assets map[string]asset // by path under /ui/
}

// New prepares the dashboard: it reads the embedded assets, adds the event
// catalog (/ui/catalog.json) and renders the page shell.
func New() (*Dashboard, error) {
	d := &Dashboard{assets: map[string]asset{}}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	err = fs.WalkDir(sub, ".", func(name string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		body, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("web: no content type for %s", name)
		}
		d.assets[name] = newAsset(body, ct)
		return nil
	})
	if err != nil {
		return nil, err
	}
	catalog, err := catalogJSON()
	if err != nil {
		return nil, err
	}
	d.assets["catalog.json"] = newAsset(catalog, contentTypes[".json"])
	shell, err := renderShell(d.version())
	if err != nil {
		return nil, err
	}
	d.shell = newAsset(shell, "text/html; charset=utf-8")
	return d, nil
}

var contentTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
	".txt":  "text/plain; charset=utf-8",
}

func newAsset(body []byte, contentType string) asset {
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: contentType, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
}

// version identifies this build's assets, so that the shell's links change
// whenever an asset does.
func (d *Dashboard) version() string {
	names := make([]string, 0, len(d.assets))
	for name := range d.assets {
		names = append(names, name)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, name := range names {
		h.Write([]byte(name + "\x00" + d.assets[name].etag + "\x00"))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:9])
}

func renderShell(version string) ([]byte, error) {
	t, err := template.New("shell").Parse(shellSource)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, map[string]string{"Version": version}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// catalogJSON lists the known event types by category, sorted, for the
// event type filter.
func catalogJSON() ([]byte, error) {
	type group struct {
		Category string   `json:"category"`
		Types    []string `json:"types"`
	}
	var groups []group
	for c, types := range stele.Catalog() {
		slices.Sort(types)
		groups = append(groups, group{Category: c, Types: types})
	}
	slices.SortFunc(groups, func(a, b group) int { return strings.Compare(a.Category, b.Category) })
	return json.Marshal(map[string]any{"categories": groups})
}

// Mount adds the dashboard's routes to mux: the pages, and the assets
// under /ui/.
func (d *Dashboard) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", d.servePage)
	mux.HandleFunc("GET /admin/{page}", d.servePage)
	mux.HandleFunc("GET /ui/{file...}", d.serveAsset)
}

// servePage answers every page path with the shell.
func (d *Dashboard) servePage(w http.ResponseWriter, r *http.Request) {
	if !slices.Contains(Pages, r.URL.Path) {
		d.notFound(w)
		return
	}
	d.serve(w, r, d.shell)
}

func (d *Dashboard) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := d.assets[r.PathValue("file")]
	if !ok {
		d.notFound(w)
		return
	}
	d.serve(w, r, a)
}

// serve writes a with the security headers. Assets are revalidated on
// every use (no-cache) and answered 304 when unchanged.
func (d *Dashboard) serve(w http.ResponseWriter, r *http.Request, a asset) {
	setSecurityHeaders(w.Header())
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

func (d *Dashboard) notFound(w http.ResponseWriter) {
	setSecurityHeaders(w.Header())
	http.Error(w, "404 page not found", http.StatusNotFound)
}

// setSecurityHeaders sets the headers every dashboard response carries.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}
