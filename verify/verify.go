// Package verify checks Stele's exports and checkpoints with nothing but the
// log's public key, independently of the server: it recomputes every leaf
// from the exported JSON (RFC 8785, RFC 6962), checks inclusion, range and
// consistency proofs with golang.org/x/mod/sumdb/tlog and signed checkpoints
// with golang.org/x/mod/sumdb/note, and never trusts a hash it was handed
// when it can recompute it. It does no I/O of its own: the CLI (stele
// verify) reads files and fetches from servers, and hands the bytes here.
//
// Its verdicts, and what they do and do not prove, are documented in
// docs/verification.md.
package verify

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/stele-log/stele/bundle"
	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// Status is the verdict on one event.
type Status int

const (
	// Verified: the leaf recomputed from the event is in the signed tree.
	Verified Status = iota
	// Failed: a check failed for this event (see Result.Check).
	Failed
	// Unverified: nothing failed for the event itself, but it could not be
	// proven (see Result.Check): never to be read as valid.
	Unverified
	// Uncovered: the event's seq is beyond the checkpoint (an NDJSON export
	// newer than its checkpoint): a later checkpoint is needed.
	Uncovered
	// Pruned: retention removed the event's body; only its leaf hash took
	// part in the proof.
	Pruned
)

func (s Status) String() string {
	return [...]string{"ok", "FAILED", "unverified", "not covered", "pruned"}[s]
}

// Checks named in results and failures.
const (
	CheckFormat    = "format"    // the line is not a well-formed event or bundle line
	CheckLeaf      = "leaf"      // C1: the recomputed leaf differs from leaf_hash
	CheckInclusion = "inclusion" // C2: the inclusion proof does not lead to the signed root
	CheckProof     = "proof"     // the proof is missing or is for another index
	CheckRange     = "range"     // C2: the range's leaves do not lead to the signed root
	CheckRoot      = "root"      // C2: the leaves 0..N-1 do not hash to the signed root
	CheckSequence  = "sequence"  // C4: a position is missing, repeated or out of order
	CheckOrder     = "order"     // a filtered bundle's lines are not oldest first
	CheckCoverage  = "coverage"  // the event is beyond the checkpoint
	CheckTime      = "time"      // C8: the event was received after its checkpoint was signed
	CheckSignature = "signature" // C3: the checkpoint is not signed by the key
	CheckOrigin    = "origin"    // C3: the checkpoint or header names another log
	CheckEnd       = "end"       // the bundle was cut short or has lines after its end
)

// Result is the verdict on one event.
type Result struct {
	Line   int   // 1-based line of the input
	Seq    int64 // as the line says; -1 if unreadable
	ID     string
	Type   string
	Status Status
	Check  string // for Failed and Unverified: which check
	Detail string
}

// Failure is a failed check of the input as a whole.
type Failure struct {
	Check  string
	Detail string
}

func (f Failure) String() string { return f.Check + ": " + f.Detail }

// Report is the outcome of verifying one file.
type Report struct {
	Mode       string // "range", "proofs" (bundles) or "ndjson"
	Origin     string
	Checkpoint *checkpoint.Opened
	Range      *bundle.Range // range bundles
	// Counts of events by status.
	Verified, Failed, Unverified, Uncovered, Pruned int64
	// Failures are the failed checks of the input as a whole.
	Failures []Failure
	// Unproven says why events that passed their own checks could not be
	// proven (their verdict is unverified), when that is so.
	Unproven []Failure
}

// OK reports whether nothing failed and every event the checkpoint covers
// was verified (or pruned by retention).
func (r *Report) OK() bool { return r.Failed == 0 && len(r.Failures) == 0 && r.Unverified == 0 }

func (r *Report) fail(check, format string, args ...any) {
	r.Failures = append(r.Failures, Failure{Check: check, Detail: fmt.Sprintf(format, args...)})
}

// Options configure File.
type Options struct {
	// Key is the log's note verifier key ("<origin>+<hash>+<key>"), from
	// GET /v1/log/key; its name is the origin every checkpoint must carry.
	Key string
	// Checkpoint is the signed checkpoint an NDJSON export is checked
	// against; bundles carry their own.
	Checkpoint []byte
	// OnEvent, when set, receives every event's verdict in input order.
	// (For range bundles and NDJSON exports the verdicts are final only at
	// the end of the input, so they are held until then.)
	OnEvent func(Result)
	// FailuresOnly limits OnEvent to failed events, which are final at
	// once: nothing is held, and memory stays constant whatever the size.
	FailuresOnly bool
}

// File verifies a bundle or an NDJSON export read from r. It returns an
// error only when it cannot verify at all (unreadable input, a malformed
// key, an NDJSON export without a checkpoint); everything found wrong in the
// input is in the report.
func File(r io.Reader, opts Options) (*Report, error) {
	if opts.Key == "" {
		return nil, errors.New("no log key: pass the verifier key of GET /v1/log/key")
	}
	dec := bundle.NewDecoder(r)
	first, err := dec.Raw()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("the file is empty")
	}
	if err != nil {
		return nil, err
	}
	h, err := bundle.ParseHeader(first)
	v := &run{opts: opts, dec: dec, rep: &Report{}}
	switch {
	case errors.Is(err, bundle.ErrNotBundle):
		if opts.Checkpoint == nil {
			return nil, errors.New("an NDJSON export is verified against a checkpoint: pass --checkpoint FILE (GET /v1/checkpoint, fetched before the export), or export format=bundle")
		}
		v.rep.Mode = "ndjson"
		if !v.open(opts.Checkpoint, "") {
			return v.rep, nil
		}
		return v.rep, v.ndjson(first)
	case err != nil:
		v.rep.fail(CheckFormat, "line 1: %v", err)
		return v.rep, nil
	}
	if opts.Checkpoint != nil {
		return nil, errors.New("a bundle carries its own checkpoint: --checkpoint is for NDJSON exports")
	}
	v.rep.Origin = h.Origin
	if !v.open([]byte(h.Checkpoint), h.Origin) {
		return v.rep, nil
	}
	if h.Range != nil {
		v.rep.Mode, v.rep.Range = "range", h.Range
		return v.rep, v.rangeBundle(h.Range)
	}
	v.rep.Mode = "proofs"
	return v.rep, v.proofsBundle()
}

// run is the state of one File call.
type run struct {
	opts Options
	dec  *bundle.Decoder
	rep  *Report
	cp   *checkpoint.Opened
	held []Result // verdicts held until the end of the input
	hold bool
}

// open verifies the checkpoint (C3): signed by the key, whose name is its
// origin, and the origin the bundle's header names.
func (v *run) open(note []byte, origin string) bool {
	cp, err := checkpoint.Open(note, v.opts.Key)
	if err != nil {
		parsed, perr := checkpoint.ParseBody(noteText(note))
		if perr == nil && parsed.Origin != keyName(v.opts.Key) {
			v.rep.fail(CheckOrigin, "the checkpoint is of log %q, the key is of log %q", parsed.Origin, keyName(v.opts.Key))
		} else {
			v.rep.fail(CheckSignature, "the checkpoint does not verify with the log key: %v", err)
		}
		return false
	}
	if origin != "" && origin != cp.Origin {
		v.rep.fail(CheckOrigin, "the header names log %q but its checkpoint is of %q", origin, cp.Origin)
		return false
	}
	v.cp, v.rep.Checkpoint = cp, cp
	if v.rep.Origin == "" {
		v.rep.Origin = cp.Origin
	}
	return true
}

// emit records a verdict: counted at once, or held for the end.
func (v *run) emit(r Result) {
	if v.hold {
		v.held = append(v.held, r)
		return
	}
	v.count(r)
}

func (v *run) count(r Result) {
	switch r.Status {
	case Verified:
		v.rep.Verified++
	case Failed:
		v.rep.Failed++
	case Unverified:
		v.rep.Unverified++
	case Uncovered:
		v.rep.Uncovered++
	case Pruned:
		v.rep.Pruned++
	}
	if v.opts.OnEvent != nil && (r.Status == Failed || !v.opts.FailuresOnly) {
		v.opts.OnEvent(r)
	}
}

// conclude settles the verdicts of the ownOK events that passed their own
// checks and wait on a proof of the whole: verified when it holds,
// otherwise unverified for the reason given. Without OnEvent they were
// counted as verified on the way (to keep no per-event state).
func (v *run) conclude(proven bool, ownOK int64, check, detail string) {
	if !proven && ownOK > 0 {
		v.rep.Unproven = append(v.rep.Unproven, Failure{Check: check, Detail: detail})
	}
	if !v.hold {
		if !proven {
			v.rep.Verified -= ownOK
			v.rep.Unverified += ownOK
		}
		return
	}
	for _, r := range v.held { // in input order
		if !proven && r.Status == Verified {
			r.Status, r.Check, r.Detail = Unverified, check, detail
		}
		v.count(r)
	}
	v.held = nil
}

// eventLine checks what every event line must satisfy on its own: a
// well-formed event whose leaf_hash is its recomputed leaf, received no
// later than its checkpoint was signed.
func (v *run) eventLine(raw []byte) (*Event, Result, bool) {
	res := Result{Line: v.dec.LineNumber(), Seq: -1}
	ev, err := ParseEvent(raw)
	if err != nil {
		res.Status, res.Check, res.Detail = Failed, CheckFormat, err.Error()
		return nil, res, false
	}
	res.Seq, res.ID, res.Type = ev.Seq, ev.ID, ev.Type
	if ev.Leaf != ev.Claimed {
		res.Status, res.Check = Failed, CheckLeaf
		res.Detail = fmt.Sprintf("the event's content hashes to %v but its leaf_hash says %v: the event or its leaf_hash was altered", ev.Leaf, ev.Claimed)
		return ev, res, false
	}
	if !v.cp.Time.IsZero() && ev.Seq < v.cp.Size && ev.ReceivedAt.Truncate(time.Second).After(v.cp.Time) {
		res.Status, res.Check = Failed, CheckTime
		res.Detail = fmt.Sprintf("received at %v, after its checkpoint was signed (%v)", ev.ReceivedAt, v.cp.Time)
		return ev, res, false
	}
	return ev, res, true
}

// rangeBundle verifies a range bundle: every position of [From, To) in
// order, whose leaves, appended to the tree of From leaves (Left), give a
// tree of To leaves consistent with the checkpoint.
func (v *run) rangeBundle(rg *bundle.Range) error {
	v.hold = v.opts.OnEvent != nil && !v.opts.FailuresOnly
	intact := true // the leaves read so far are exactly the positions from From on
	if rg.From < 0 || rg.From > rg.To || rg.To > v.cp.Size {
		v.rep.fail(CheckRange, "the range [%d, %d) is not within the checkpoint's %d positions", rg.From, rg.To, v.cp.Size)
		intact = false
	}
	f, err := tree.NewFrontier(max(rg.From, 0), rg.Left)
	if err != nil {
		v.rep.fail(CheckRange, "the range's left edge: %v", err)
		intact = false
	}
	next := rg.From
	var ownOK int64
	err = v.lines(func(l *bundle.Line) {
		var res Result
		var leaf tlog.Hash
		ok := true
		switch {
		case l.Pruned != nil:
			res = Result{Line: v.dec.LineNumber(), Seq: l.Pruned.Seq, Status: Pruned}
			leaf = l.Pruned.LeafHash
		default:
			var ev *Event
			ev, res, ok = v.eventLine(l.Event)
			if ev != nil {
				leaf = ev.Leaf
			}
			if ok && l.Proof != nil {
				res.Status, res.Check, res.Detail, ok = Failed, CheckFormat, "a range bundle's events carry no proof of their own", false
			}
		}
		if res.Seq != next {
			if res.Seq >= 0 && ok {
				res.Status, res.Check, ok = Failed, CheckSequence, false
				res.Detail = sequenceDetail(next, res.Seq)
			}
			intact = false
		}
		if intact && f != nil {
			if _, err := f.Append(leaf); err != nil {
				intact = false
			}
		}
		if res.Seq >= next {
			next = res.Seq + 1
		} else if res.Seq < 0 {
			next++
		}
		if ok && res.Status != Pruned {
			ownOK++
		}
		v.emit(res)
	})
	if err != nil {
		return err
	}
	if intact && f != nil && f.Size() != rg.To {
		v.rep.fail(CheckSequence, "the bundle ends at seq %d but its range at %d: positions %d..%d are missing", f.Size(), rg.To, f.Size(), rg.To-1)
		intact = false
	}
	proven := false
	switch {
	case !intact:
		v.rep.fail(CheckRange, "positions [%d, %d) are not all present in order, so the range cannot be proven", rg.From, rg.To)
	case rg.To == 0:
		proven = true
	default:
		root := f.Root()
		if rg.To == v.cp.Size && root != v.cp.Root {
			v.rep.fail(CheckRange, "the %d leaves recomputed from the events give root %v, the checkpoint of %d says %v: an event was altered, added or removed", rg.To-rg.From, root, v.cp.Size, v.cp.Root)
		} else if err := tlog.CheckTree(rg.Consistency, v.cp.Size, v.cp.Root, rg.To, root); rg.To < v.cp.Size && err != nil {
			v.rep.fail(CheckRange, "the tree of %d leaves built from the events (root %v) is not a prefix of the checkpoint's tree of %d: an event was altered, added or removed, or the proof was", rg.To, root, v.cp.Size)
		} else {
			proven = true
		}
	}
	v.conclude(proven, ownOK, CheckRange, "the range proof failed (see the summary)")
	return nil
}

// proofsBundle verifies a filtered bundle: each event with its own
// inclusion proof, oldest first.
func (v *run) proofsBundle() error {
	var prevTime time.Time
	prevSeq := int64(-1)
	return v.lines(func(l *bundle.Line) {
		if l.Pruned != nil {
			v.emit(Result{Line: v.dec.LineNumber(), Seq: l.Pruned.Seq, Status: Failed, Check: CheckFormat, Detail: "a filtered bundle holds no pruned positions"})
			return
		}
		ev, res, ok := v.eventLine(l.Event)
		if ev != nil && ok {
			after := ev.Time.After(prevTime) || ev.Time.Equal(prevTime) && ev.Seq > prevSeq
			switch {
			case prevSeq >= 0 && !after:
				res.Status, res.Check = Failed, CheckOrder
				res.Detail = fmt.Sprintf("seq %d (time %v) comes after seq %d (time %v): lines were reordered or repeated", ev.Seq, ev.Time, prevSeq, prevTime)
			case ev.Seq >= v.cp.Size:
				res.Status, res.Check = Failed, CheckCoverage
				res.Detail = fmt.Sprintf("seq %d is beyond the checkpoint's %d positions", ev.Seq, v.cp.Size)
			case l.Proof == nil:
				res.Status, res.Check, res.Detail = Failed, CheckProof, "the event has no inclusion proof"
			case l.Proof.Index != ev.Seq:
				res.Status, res.Check = Failed, CheckProof
				res.Detail = fmt.Sprintf("the proof is for index %d, the event is at seq %d", l.Proof.Index, ev.Seq)
			default:
				if err := tlog.CheckRecord(l.Proof.Hashes, v.cp.Size, v.cp.Root, ev.Seq, ev.Leaf); err != nil {
					res.Status, res.Check = Failed, CheckInclusion
					res.Detail = fmt.Sprintf("the leaf at seq %d is not in the checkpoint's tree of %d: the event or its proof was altered", ev.Seq, v.cp.Size)
				}
			}
			prevTime, prevSeq = ev.Time, ev.Seq
		}
		v.emit(res)
	})
}

// ndjson verifies an NDJSON export (first is its first line) against the
// checkpoint: it proves its events when they include every position
// 0..N-1 of the checkpoint's tree, in any order, by recomputing its root.
func (v *run) ndjson(first []byte) error {
	v.hold = v.opts.OnEvent != nil && !v.opts.FailuresOnly
	size := v.cp.Size
	leaves := make([]tlog.Hash, size)
	have := make([]bool, size)
	var ownOK int64
	check := func(raw []byte) {
		ev, res, ok := v.eventLine(raw)
		switch {
		case ev == nil || !ok:
		case ev.Seq >= size:
			res.Status, res.Check = Uncovered, CheckCoverage
			res.Detail = fmt.Sprintf("seq %d is beyond the checkpoint's %d positions: verify it with a later checkpoint", ev.Seq, size)
		case have[ev.Seq]:
			res.Status, res.Check = Failed, CheckSequence
			res.Detail = fmt.Sprintf("seq %d appears twice", ev.Seq)
		default:
			leaves[ev.Seq], have[ev.Seq] = ev.Leaf, true
			ownOK++
		}
		v.emit(res)
	}
	check(first)
	for {
		raw, err := v.dec.Raw()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		check(raw)
	}
	for seq := int64(0); seq < size; seq++ {
		if !have[seq] {
			detail := fmt.Sprintf("seq %d is missing: a checkpoint of %d events proves only an export of all of 0..%d (use format=bundle to verify a selection)", seq, size, size-1)
			v.conclude(false, ownOK, CheckSequence, detail)
			return nil
		}
	}
	f, _ := tree.NewFrontier(0, nil)
	for _, l := range leaves {
		if _, err := f.Append(l); err != nil {
			return err
		}
	}
	if root := f.Root(); root != v.cp.Root {
		v.rep.fail(CheckRoot, "the %d leaves recomputed from the export give root %v, the checkpoint says %v: an event was altered", size, root, v.cp.Root)
		v.conclude(false, ownOK, CheckRoot, "the root check failed (see the summary)")
		return nil
	}
	v.conclude(true, ownOK, "", "")
	return nil
}

// lines calls fn for every event or pruned line of a bundle and checks its
// end line.
func (v *run) lines(fn func(*bundle.Line)) error {
	var n int64
	var end *bundle.End
	for {
		raw, err := v.dec.Raw()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if end != nil {
			v.rep.fail(CheckEnd, "line %d: lines after the end line", v.dec.LineNumber())
			break
		}
		l, err := v.dec.Parse(raw)
		if err != nil {
			v.emit(Result{Line: v.dec.LineNumber(), Seq: -1, Status: Failed, Check: CheckFormat, Detail: err.Error()})
			n++
			continue
		}
		if l.End != nil {
			end = l.End
			continue
		}
		n++
		fn(l)
	}
	switch {
	case end == nil:
		v.rep.fail(CheckEnd, "the bundle has no end line: it was cut short after %d events", n)
	case end.Events != n:
		v.rep.fail(CheckEnd, "the end line counts %d events, the bundle holds %d: lines were removed or added", end.Events, n)
	}
	return nil
}

func sequenceDetail(want, got int64) string {
	switch {
	case got == want+1:
		return fmt.Sprintf("expected seq %d, found %d: position %d is missing", want, got, want)
	case got > want:
		return fmt.Sprintf("expected seq %d, found %d: positions %d..%d are missing", want, got, want, got-1)
	case got == want-1:
		return fmt.Sprintf("expected seq %d, found %d again: a line is repeated", want, got)
	default:
		return fmt.Sprintf("expected seq %d, found %d: lines are out of order", want, got)
	}
}

// noteText returns the text of a signed note (before the blank line).
func noteText(msg []byte) string {
	s := string(msg)
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '\n' && s[i+1] == '\n' {
			return s[:i+1]
		}
	}
	return s
}

// keyName returns the name (the origin) of a note verifier key.
func keyName(vkey string) string {
	for i := 0; i < len(vkey); i++ {
		if vkey[i] == '+' {
			return vkey[:i]
		}
	}
	return vkey
}
