package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// One headless Chromium serves every browser test of the package: it starts
// on first use and stops in TestMain. Each test gets its own browser context
// (cookies, storage and downloads of its own) in that browser.
var (
	browserOnce   sync.Once
	browserCtx    context.Context
	browserCancel context.CancelFunc
	browserErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if browserCancel != nil {
		browserCancel()
	}
	os.Exit(code)
}

// requireIntegration reports whether a missing real component must fail
// the test rather than skip it (CI sets STELE_REQUIRE_INTEGRATION=1).
func requireIntegration() bool { return os.Getenv("STELE_REQUIRE_INTEGRATION") == "1" }

func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// startBrowser returns the package's browser, skipping the test when there
// is none (failing it under STELE_REQUIRE_INTEGRATION=1).
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	browserOnce.Do(func() {
		path := chromiumPath()
		if path == "" {
			browserErr = errors.New("no chromium in PATH (apt-get install chromium)")
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
			chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-quic", true),
			chromedp.WindowSize(1280, 800))
		actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, cancelB := chromedp.NewContext(actx)
		browserCtx = bctx
		browserCancel = func() { cancelB(); cancelA() }
		if err := chromedp.Do(bctx); err != nil {
			browserErr = fmt.Errorf("couldn't start %s: %w", path, err)
		}
	})
	if browserErr != nil {
		if requireIntegration() {
			t.Fatalf("browser tests need Chromium: %v", browserErr)
		}
		t.Skipf("browser tests need Chromium: %v", browserErr)
	}
	return browserCtx
}

// tab is one page of a fresh browser context, showing a test server.
type tab struct {
	t   *testing.T
	ctx context.Context
	ts  *testServer
	mu  sync.Mutex
	bad []string // uncaught exceptions and security (CSP) messages
	// dialogs counts JavaScript dialogs (alert, confirm) the page opened.
	dialogs int
}

// newTab opens a page in a new browser context of the shared browser, with
// a 1280×800 viewport (a laptop screen).
func newTab(t *testing.T, ts *testServer) *tab {
	t.Helper()
	root := startBrowser(t)
	ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancel() })
	tb := &tab{t: t, ctx: ctx, ts: ts}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("couldn't open a tab: %v", err)
	}
	console := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || m.Source == "security" || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Trusted Type") {
				tb.mu.Lock()
				tb.bad = append(tb.bad, m.String())
				tb.mu.Unlock()
			}
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.dialogs++
			tb.mu.Unlock()
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			_ = ev
		}
	}()
	t.Cleanup(func() {
		// Messages arrive asynchronously; give the last ones a moment.
		time.Sleep(100 * time.Millisecond)
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, m := range tb.bad {
			t.Errorf("page console: %s", m)
		}
		if tb.dialogs > 0 {
			t.Errorf("the page opened %d JavaScript dialogs", tb.dialogs)
		}
	})
	return tb
}

// do runs actions, failing the test with what on error.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	// A bound, not a timing assertion: generous, as CI machines are shared.
	ctx, cancel := context.WithTimeout(tb.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v\npage: %s", what, err, tb.describe())
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) into T.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluate %.200s: %v", expr, err)
	}
	return v
}

// waitJS waits until the JavaScript condition holds.
func (tb *tab) waitJS(what, cond string) {
	tb.t.Helper()
	_, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(time.Minute), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		tb.t.Fatalf("waiting for %s: %v\npage: %s", what, err, tb.describe())
	}
}

// describe summarizes the page for failure messages.
func (tb *tab) describe() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 3000)`))
	if err != nil {
		return "(unavailable: " + err.Error() + ")"
	}
	return s
}

// unlabeled lists the form controls of the page that have no label.
func (tb *tab) unlabeled() []string {
	tb.t.Helper()
	return eval[[]string](tb, `[...document.querySelectorAll('input, select, textarea')]
		.filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
		.map((el) => el.outerHTML.slice(0, 120))`)
}

// text returns the visible text of the element matching the CSS selector.
func (tb *tab) text(css string) string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		tb.t.Fatalf("text of %s: %v\npage: %s", css, err, tb.describe())
	}
	return s
}

// screenshot saves a PNG of the whole page as name under the repository's
// git-ignored screenshots folder.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join(repoRoot(tb.t), "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// allowDownloads saves the tab's downloads into dir and returns a function
// that waits for the next completed download and returns its path.
func (tb *tab) allowDownloads(dir string) func(trigger chromedp.Action[chromedp.Void]) string {
	tb.t.Helper()
	bc := chromedp.FromContext(tb.ctx).BrowserContextID
	events := true
	_, err := chromedp.CallBrowser(tb.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, BrowserContextID: bc, DownloadPath: dir, EventsEnabled: &events})
	if err != nil {
		tb.t.Fatalf("set download behavior: %v", err)
	}
	return func(trigger chromedp.Action[chromedp.Void]) string {
		tb.t.Helper()
		ctx, cancel := context.WithTimeout(tb.ctx, time.Minute)
		defer cancel()
		begin := chromedp.BrowserEvents(ctx, browser.DownloadWillBegin)
		progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
		if err := chromedp.Do(tb.ctx, trigger); err != nil {
			tb.t.Fatalf("start download: %v", err)
		}
		var name string
		for ev, err := range begin {
			if err != nil {
				tb.t.Fatalf("no download began: %v\npage: %s", err, tb.describe())
			}
			name = ev.SuggestedFilename
			break
		}
		for ev, err := range progress {
			if err != nil {
				tb.t.Fatalf("download of %s did not complete: %v", name, err)
			}
			if ev.State == browser.DownloadProgressStateCanceled {
				tb.t.Fatalf("download of %s was canceled", name)
			}
			if ev.State == browser.DownloadProgressStateCompleted {
				if ev.FilePath != "" {
					return ev.FilePath
				}
				return filepath.Join(dir, name)
			}
		}
		return ""
	}
}
