package verify_test

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/verify"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TestAdvance: the monitor pins the key on first use, accepts growth proven
// consistent, and raises an alarm with evidence on a foreign key, a foreign
// origin, a rollback, a fork and an inconsistent history (C3, C5).
func TestAdvance(t *testing.T) {
	l := newTestLog(t, 40)
	proofs := 0
	prove := func(log *testLog) verify.ProofFunc {
		return func(from, to int64) ([]tlog.Hash, error) {
			proofs++
			return tlog.ProveTree(to, from, log)
		}
	}
	now := time.Now()
	st, msg, err := verify.Advance(verify.State{}, l.vkey, []byte(l.sign(t, 10)), prove(l), now)
	if err != nil || st.LogKey != l.vkey || st.Size != 10 || !strings.Contains(msg, "pinned") {
		t.Fatalf("first use: %+v %q %v", st, msg, err)
	}
	st, msg, err = verify.Advance(st, l.vkey, []byte(l.sign(t, 25)), prove(l), now)
	if err != nil || st.Size != 25 || proofs != 1 || !strings.Contains(msg, "grew from 10 to 25") {
		t.Fatalf("growth: %+v %q %v", st, msg, err)
	}
	if same, msg, err := verify.Advance(st, l.vkey, []byte(l.sign(t, 25)), prove(l), now); err != nil || same.Size != 25 || !strings.Contains(msg, "unchanged") {
		t.Fatalf("no growth: %q %v", msg, err)
	}

	// A log forked after position 20: same key, other events.
	fork := &testLog{origin: l.origin, skey: l.skey, vkey: l.vkey}
	for i := range 40 {
		src := l
		if i >= 20 {
			src = newTestLogOnce(t)
		}
		c := src.canon[i]
		hs, _ := tlog.StoredHashes(int64(i), c, fork)
		fork.stored = append(fork.stored, hs...)
		fork.canon = append(fork.canon, c)
	}
	otherSkey, otherVkey, _ := note.GenerateKey(rand.Reader, l.origin)
	foreign := *l
	foreign.skey, foreign.vkey = otherSkey, otherVkey
	ws2 := *l
	ws2.origin = "verify.test/ws2"
	ws2.skey, ws2.vkey, _ = note.GenerateKey(rand.Reader, ws2.origin)

	cases := []struct {
		name, key string
		note      string
		prove     verify.ProofFunc
		alarm     string
	}{
		{"rollback", l.vkey, l.sign(t, 24), prove(l), "rollback"},
		{"fork at the same size", l.vkey, fork.sign(t, 25), prove(fork), "fork"},
		{"inconsistent growth", l.vkey, fork.sign(t, 30), prove(fork), "consistency"},
		{"growth with a forged proof", l.vkey, l.sign(t, 30), prove(fork), "consistency"},
		{"another key served", otherVkey, foreign.sign(t, 30), prove(l), "key"},
		{"checkpoint by another key", l.vkey, foreign.sign(t, 30), prove(l), "signature"},
		{"another log's checkpoint", l.vkey, ws2.sign(t, 30), prove(l), "origin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kept, _, err := verify.Advance(st, c.key, []byte(c.note), c.prove, now)
			var alarm *verify.Alarm
			if !errors.As(err, &alarm) || alarm.Check != c.alarm {
				t.Fatalf("got %v, want a %s alarm", err, c.alarm)
			}
			if alarm.Evidence == "" || kept.Size != 25 {
				t.Errorf("evidence %q, state size %d", alarm.Evidence, kept.Size)
			}
		})
	}

	// A state file whose size was edited is refused: its checkpoint rules.
	bad := st
	bad.Checkpoint = strings.Replace(bad.Checkpoint, "\n25\n", "\n26\n", 1)
	if _, _, err := verify.Advance(bad, l.vkey, []byte(l.sign(t, 30)), prove(l), now); err == nil {
		t.Error("an altered state checkpoint was accepted")
	}
}

var onceLog *testLog

// newTestLogOnce returns a second, unrelated log (other events).
func newTestLogOnce(t *testing.T) *testLog {
	if onceLog == nil {
		onceLog = newTestLogSeed(t, 40, 99)
	}
	return onceLog
}

// TestAdvanceTime: a log that grew under a checkpoint whose signing time
// did not advance is an alarm (C8); the times come from the timestamped
// cosignature lines of Stele's checkpoints.
func TestAdvanceTime(t *testing.T) {
	skey, err := checkpoint.GenerateKey("verify.test")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := checkpoint.ParseKey(skey)
	l := newTestLog(t, 20)
	l.origin = key.Origin("ws1")
	vkey := key.VerifierKey(l.origin)
	at := time.Unix(1_800_000_000, 0)
	sign := func(size int64, t0 time.Time) []byte {
		msg, err := key.Sign(l.origin, size, l.root(t, size), t0)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	prove := func(from, to int64) ([]tlog.Hash, error) { return tlog.ProveTree(to, from, l) }
	st, _, err := verify.Advance(verify.State{}, vkey, sign(10, at), prove, at)
	if err != nil || !st.Time.Equal(at) {
		t.Fatalf("first use: %+v %v", st, err)
	}
	if _, _, err := verify.Advance(st, vkey, sign(15, at.Add(time.Second)), prove, at); err != nil {
		t.Fatalf("growth with a later time: %v", err)
	}
	_, _, err = verify.Advance(st, vkey, sign(15, at), prove, at)
	var alarm *verify.Alarm
	if !errors.As(err, &alarm) || alarm.Check != "time" {
		t.Fatalf("growth without a later time: %v", err)
	}
}
