package api

import (
	"errors"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stele-log/stele"
)

func TestPasswordHashing(t *testing.T) {
	h := HashPassword("correct horse battery staple")
	if !CheckPassword(h, "correct horse battery staple") {
		t.Fatal("the right password does not match")
	}
	for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple"} {
		if CheckPassword(h, wrong) {
			t.Errorf("%q matches", wrong)
		}
	}
	if h2 := HashPassword("correct horse battery staple"); h2 == h {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, bad := range []string{"", "$argon2id$", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=99999999,t=1,p=1$AA$AA"} {
		if CheckPassword(bad, "x") {
			t.Errorf("malformed hash %q matches", bad)
		}
	}
}

func TestKeyFormat(t *testing.T) {
	id, secret, full := NewKeySecret("acme-prod")
	ws, gotID, gotSecret, ok := ParseKey(full)
	if !ok || ws != "acme-prod" || gotID != id || gotSecret != secret {
		t.Fatalf("ParseKey(%q) = %q %q %q %v", full, ws, gotID, gotSecret, ok)
	}
	for _, bad := range []string{"", "stl_", "stl_acme_x_y", "stl_ACME_" + id + "_" + secret, "xyz_acme_" + id + "_" + secret, full + "_extra"} {
		if _, _, _, ok := ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestClientIP(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	cases := []struct {
		peer, xff, want string
	}{
		{"192.0.2.1:1234", "", "192.0.2.1"},
		{"192.0.2.1:1234", "198.51.100.7", "192.0.2.1"},                // untrusted peer: header ignored
		{"10.0.0.5:1234", "198.51.100.7", "198.51.100.7"},              // trusted proxy
		{"10.0.0.5:1234", "203.0.113.9, 198.51.100.7", "198.51.100.7"}, // right-most untrusted
		{"10.0.0.5:1234", "198.51.100.7, 10.0.0.9", "198.51.100.7"},    // skip trusted hops
		{"10.0.0.5:1234", "garbage", "10.0.0.5"},                       // unparsable: stop at the proxy
		{"[::ffff:192.0.2.1]:1234", "", "192.0.2.1"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := s.clientIP(r); got != c.want {
			t.Errorf("peer %s XFF %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}

func TestLoginThrottle(t *testing.T) {
	th := newLoginThrottle(Limits{LoginsPerMinutePerIP: 600, LoginFreeFailures: 3, LoginMaxLockout: 10 * time.Second})
	now := time.Unix(1000, 0)
	for i := range 3 {
		if wait, _ := th.allow("a@x", "ip", now); wait != 0 {
			t.Fatalf("attempt %d refused", i)
		}
		th.failed("a@x", now)
	}
	th.failed("a@x", now) // 4th failure: wait 1 s
	if wait, reason := th.allow("a@x", "ip", now); wait != time.Second || reason != "locked" {
		t.Errorf("after 4 failures: wait %v %s, want 1s locked", wait, reason)
	}
	for range 20 {
		th.failed("a@x", now)
	}
	if wait, _ := th.allow("a@x", "ip", now); wait != 10*time.Second {
		t.Errorf("lockout %v, want capped at 10s", wait)
	}
	if wait, _ := th.allow("b@x", "ip", now); wait != 0 {
		t.Error("another account is locked too")
	}
	if n := th.succeeded("a@x"); n != 24 {
		t.Errorf("succeeded reports %d failures", n)
	}
	if wait, _ := th.allow("a@x", "ip", now); wait != 0 {
		t.Error("a success did not clear the account")
	}
}

func TestRateLimiter(t *testing.T) {
	rl := newRateLimiter(10) // burst 21
	now := time.Unix(1000, 0)
	allowed := 0
	for range 30 {
		if rl.allow("k", now) == 0 {
			allowed++
		}
	}
	if allowed != 21 {
		t.Errorf("allowed %d at once, want the burst of 21", allowed)
	}
	if rl.allow("k", now.Add(time.Second)) != 0 {
		t.Error("no token after a second at 10/s")
	}
	if rl.allow("other", now) != 0 {
		t.Error("another credential shares the bucket")
	}
	var off *rateLimiter
	if off.allow("k", now) != 0 || newRateLimiter(0).allow("k", now) != 0 {
		t.Error("a disabled limiter limits")
	}
}

func TestStatusTable(t *testing.T) {
	for kind, status := range map[stele.Kind]int{
		stele.KindInvalid: 400, stele.KindUnauthenticated: 401, stele.KindForbidden: 403, stele.KindNotFound: 404,
		stele.KindConflict: 409, stele.KindTooLarge: 413, stele.KindUnsupported: 415, stele.KindRateLimited: 429,
		stele.KindPushback: 503, stele.KindUnavailable: 503, stele.KindInternal: 500,
	} {
		if got := statusOf(&stele.Error{Kind: kind}); got != status {
			t.Errorf("%v → %d, want %d", kind, got, status)
		}
	}
	if statusOf(&stele.ForeignError{}) != 404 {
		t.Error("a foreign reference is not a 404")
	}
}

// TestDecodeJSON: administrative bodies name the member at fault and take
// exactly one JSON value.
func TestDecodeJSON(t *testing.T) {
	type body struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	for _, c := range []struct{ in, field string }{
		{`{"name":"a","extra":1}`, "extra"},
		{`{"count":"x"}`, "count"},
		{`{"name":"a"} {"name":"b"}`, ""},
		{`{"name":`, ""},
	} {
		r := httptest.NewRequest("POST", "/v1/users", strings.NewReader(c.in))
		var v body
		err := decodeJSON(httptest.NewRecorder(), r, &v)
		var e *stele.Error
		if !errors.As(err, &e) || e.Kind != stele.KindInvalid || e.Field != c.field {
			t.Errorf("%s: %v, want invalid naming %q", c.in, err, c.field)
		}
	}
	r := httptest.NewRequest("POST", "/v1/users", strings.NewReader(`{"name":"a","count":2}`+"\n"))
	var v body
	if err := decodeJSON(httptest.NewRecorder(), r, &v); err != nil || v.Name != "a" || v.Count != 2 {
		t.Errorf("a good body: %+v %v", v, err)
	}
}
