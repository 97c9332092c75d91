package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits are the API's abuse limits, per credential and per source.
type Limits struct {
	// IngestPerSecond and ReadPerSecond are token-bucket rates per API key
	// or user (bursts are twice the rate). Zero disables the limit.
	IngestPerSecond float64
	ReadPerSecond   float64
	// LoginsPerMinutePerIP bounds login attempts from one address.
	LoginsPerMinutePerIP int
	// LoginFreeFailures is how many consecutive failures an account may
	// have before each further attempt must wait, doubling up to
	// LoginMaxLockout.
	LoginFreeFailures int
	LoginMaxLockout   time.Duration
	// FailuresPerMinute is how many refusals per workspace, type and source
	// address are logged one by one each minute before the rest are
	// aggregated (AUT-14).
	FailuresPerMinute int
}

// DefaultLimits are the limits when the configuration says nothing.
var DefaultLimits = Limits{IngestPerSecond: 500, ReadPerSecond: 50, LoginsPerMinutePerIP: 30, LoginFreeFailures: 5,
	LoginMaxLockout: 15 * time.Minute, FailuresPerMinute: 10}

// maxLimiters bounds the limiter maps; beyond it, idle entries are dropped.
const maxLimiters = 100000

// rateLimiter keeps one token bucket per credential.
type rateLimiter struct {
	perSecond float64
	mu        sync.Mutex
	buckets   map[string]*bucket
}

type bucket struct {
	l    *rate.Limiter
	used time.Time
}

func newRateLimiter(perSecond float64) *rateLimiter {
	return &rateLimiter{perSecond: perSecond, buckets: map[string]*bucket{}}
}

// allow takes a token for id; when none is left it returns how long to wait.
func (rl *rateLimiter) allow(id string, now time.Time) time.Duration {
	if rl == nil || rl.perSecond <= 0 {
		return 0
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	b := rl.buckets[id]
	if b == nil {
		if len(rl.buckets) >= maxLimiters {
			for k, v := range rl.buckets {
				if now.Sub(v.used) > time.Minute {
					delete(rl.buckets, k)
				}
			}
		}
		b = &bucket{l: rate.NewLimiter(rate.Limit(rl.perSecond), int(2*rl.perSecond)+1)}
		rl.buckets[id] = b
	}
	b.used = now
	r := b.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// loginThrottle slows password guessing per account and per address
// (RELIABILITY.md AUT-10). Unknown and known accounts are throttled alike,
// so the throttle reveals nothing. An account's lockout is bounded
// (LoginMaxLockout), so an attacker can delay its owner but never lock them
// out for good; a success clears it.
type loginThrottle struct {
	limits   Limits
	perIP    *rateLimiter
	mu       sync.Mutex // guards accounts
	accounts map[string]*loginState
}

type loginState struct {
	failures int
	until    time.Time // no attempt before this
	last     time.Time
}

func newLoginThrottle(l Limits) *loginThrottle {
	return &loginThrottle{limits: l, perIP: newRateLimiter(float64(l.LoginsPerMinutePerIP) / 60), accounts: map[string]*loginState{}}
}

// allow reports how long email, from ip, must wait before an attempt, and why.
func (t *loginThrottle) allow(email, ip string, now time.Time) (time.Duration, string) {
	if d := t.perIP.allow(ip, now); d > 0 {
		return d, "throttled_ip"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.accounts[email]; st != nil && now.Before(st.until) {
		return st.until.Sub(now), "locked"
	}
	return 0, ""
}

func (t *loginThrottle) failed(email string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.accounts[email]
	if st == nil {
		if len(t.accounts) >= maxLimiters {
			for k, v := range t.accounts {
				if now.Sub(v.last) > t.limits.LoginMaxLockout {
					delete(t.accounts, k)
				}
			}
		}
		st = &loginState{}
		t.accounts[email] = st
	}
	st.failures++
	st.last = now
	if over := st.failures - t.limits.LoginFreeFailures; over > 0 {
		wait := time.Second << min(over-1, 20)
		st.until = now.Add(min(wait, t.limits.LoginMaxLockout))
	}
}

// succeeded clears an account's failures and returns how many there were.
func (t *loginThrottle) succeeded(email string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	if st := t.accounts[email]; st != nil {
		n = st.failures
	}
	delete(t.accounts, email)
	return n
}
