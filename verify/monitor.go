package verify

import (
	"fmt"
	"strings"
	"time"

	"github.com/stele-log/stele/checkpoint"
	"golang.org/x/mod/sumdb/tlog"
)

// State is what a monitor remembers between runs: the log key it pinned and
// the last checkpoint it verified. It is the monitor's trust anchor outside
// the server (RELIABILITY.md D5): keep it where the server's operators cannot
// write.
type State struct {
	Server string `json:"server"`
	// LogKey is the note verifier key pinned on first use.
	LogKey string `json:"log_key"`
	Origin string `json:"origin"`
	// Size, Root and Checkpoint are the last verified checkpoint.
	Size       int64     `json:"size"`
	Root       tlog.Hash `json:"root"`
	Time       time.Time `json:"time,omitzero"`
	Checkpoint string    `json:"checkpoint,omitempty"`
	CheckedAt  time.Time `json:"checked_at"`
}

// Alarm is evidence that the log is not what the monitor saw before: a
// foreign key or origin, a bad signature, a rollback, a fork or an
// inconsistent history (C3, C5, C8).
type Alarm struct {
	Check    string // "key", "signature", "origin", "rollback", "fork", "consistency", "time"
	Message  string
	Evidence string // the checkpoints and proof that show it
}

func (a *Alarm) Error() string { return a.Check + ": " + a.Message }

// ProofFunc fetches the consistency proof from the tree of from leaves to
// the tree of to leaves (GET /v1/proofs/consistency).
type ProofFunc func(from, to int64) ([]tlog.Hash, error)

// Advance checks a checkpoint the server serves now (note, signed, with the
// log key it serves now) against the monitor's state, and returns the state
// to save and a one-line summary. The pinned key is st.LogKey; on first use
// (st.LogKey empty) logKey is pinned. The new checkpoint must verify with the
// pinned key and be of the pinned origin; if the state holds a checkpoint,
// the new one must be at least as large, equal to it at the same size, later
// in time, and provably consistent with it (RFC 6962 consistency proof,
// fetched with proof). Anything else is an *Alarm; an error of proof is
// returned as is.
func Advance(st State, logKey string, note []byte, proof ProofFunc, now time.Time) (State, string, error) {
	logKey = strings.TrimSpace(logKey)
	first := st.LogKey == ""
	if first {
		st.LogKey = logKey
		st.Origin = keyName(logKey)
	}
	if logKey != st.LogKey {
		return st, "", &Alarm{Check: "key", Message: "the server's log key is not the pinned one: it signs with another key, or another log is served in its place",
			Evidence: "pinned: " + st.LogKey + "\nserved: " + logKey + "\n"}
	}
	if st.Checkpoint != "" {
		// The state's own checkpoint is what is trusted, not its size and
		// root fields: it must still verify with the pinned key.
		old, err := checkpoint.Open([]byte(st.Checkpoint), st.LogKey)
		if err != nil {
			return st, "", fmt.Errorf("the state's last checkpoint does not verify with its pinned key (%v): the state file was altered; restore it from a copy", err)
		}
		st.Size, st.Root, st.Time = old.Size, old.Root, old.Time
	}
	cp, err := checkpoint.Open(note, st.LogKey)
	if err != nil {
		check := "signature"
		if parsed, perr := checkpoint.ParseBody(noteText(note)); perr == nil && parsed.Origin != st.Origin {
			check = "origin"
		}
		return st, "", &Alarm{Check: check, Message: fmt.Sprintf("the served checkpoint does not verify with the pinned key of %s: %v", st.Origin, err),
			Evidence: "served checkpoint:\n" + string(note)}
	}
	next := st
	next.Size, next.Root, next.Time, next.Checkpoint, next.CheckedAt = cp.Size, cp.Root, cp.Time, string(note), now.UTC()
	if first || st.Checkpoint == "" {
		return next, fmt.Sprintf("pinned the log key of %s; trusting its checkpoint of %d events (first use: nothing earlier to compare with)", st.Origin, cp.Size), nil
	}
	evidence := func(extra string) string {
		return "last verified checkpoint:\n" + st.Checkpoint + "\nserved checkpoint:\n" + string(note) + extra
	}
	switch {
	case cp.Size < st.Size:
		return st, "", &Alarm{Check: "rollback", Message: fmt.Sprintf("the log shrank from %d to %d events: events were removed or an older copy restored", st.Size, cp.Size), Evidence: evidence("")}
	case cp.Size == st.Size && cp.Root != st.Root:
		return st, "", &Alarm{Check: "fork", Message: fmt.Sprintf("two checkpoints of %d events with different roots (%v, %v), both signed by the log key: history was rewritten or two views are served", cp.Size, st.Root, cp.Root), Evidence: evidence("")}
	case cp.Size == st.Size:
		same := st
		same.CheckedAt = now.UTC()
		return same, fmt.Sprintf("%s unchanged at %d events", st.Origin, cp.Size), nil
	case !st.Time.IsZero() && !cp.Time.After(st.Time):
		return st, "", &Alarm{Check: "time", Message: fmt.Sprintf("the log grew but its checkpoint time went from %v to %v", st.Time, cp.Time), Evidence: evidence("")}
	}
	if st.Size == 0 {
		return next, fmt.Sprintf("%s grew from 0 to %d events", st.Origin, cp.Size), nil
	}
	hashes, err := proof(st.Size, cp.Size)
	if err != nil {
		return st, "", fmt.Errorf("couldn't fetch the consistency proof from %d to %d: %w", st.Size, cp.Size, err)
	}
	if err := tlog.CheckTree(hashes, cp.Size, cp.Root, st.Size, st.Root); err != nil {
		var b strings.Builder
		fmt.Fprintf(&b, "consistency proof from %d to %d served:\n", st.Size, cp.Size)
		for _, h := range hashes {
			b.WriteString(h.String() + "\n")
		}
		return st, "", &Alarm{Check: "consistency", Message: fmt.Sprintf("the checkpoint of %d events is not an extension of the one of %d the monitor verified: history was rewritten", cp.Size, st.Size), Evidence: evidence(b.String())}
	}
	return next, fmt.Sprintf("%s grew from %d to %d events, consistently (proof of %d hashes)", st.Origin, st.Size, cp.Size, len(hashes)), nil
}
