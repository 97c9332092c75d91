package sequencer

import (
	"context"
	"errors"
	"fmt"

	"github.com/stele-log/stele"
	"github.com/stele-log/stele/checkpoint"
	"github.com/stele-log/stele/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// RecoverStore is what the start-up self-check reads.
type RecoverStore interface {
	stele.LogReader
	stele.CheckpointStore
}

// Recover is the start-up self-check of one workspace's log (RELIABILITY.md
// DUR-05). It opens the latest stored checkpoint with the instance's key
// (C3), checks that the stored tree leads to its root (C2 at the right
// edge), then re-verifies every event after it — leaf hash (C1), row MAC,
// tree hashes — up to the stored head. It returns the verified head and
// frontier, or an *stele.ErrIntegrity describing the first contradiction.
//
// Its cost is O(log n) plus the unsigned tail, which is normally under a
// second of appends.
func Recover(ctx context.Context, store RecoverStore, key *checkpoint.Key, ws string) (stele.Head, *tree.Frontier, error) {
	bad := func(seq int64, check, format string, args ...any) error {
		return &stele.ErrIntegrity{Workspace: ws, Seq: seq, Check: check, Detail: fmt.Sprintf(format, args...)}
	}
	// The checkpoint before the head: another process sharing the database
	// may append and sign meanwhile, and a checkpoint only ever covers a
	// committed head, so this order never sees one beyond the head.
	var size int64
	root, _ := tlog.TreeHash(0, nil)
	cp, err := store.LatestCheckpoint(ctx, ws)
	switch {
	case errors.Is(err, stele.ErrNotFound):
	case err != nil:
		return stele.Head{}, nil, fmt.Errorf("couldn't read the latest checkpoint of %s: %w", ws, err)
	default:
		opened, err := checkpoint.Open(cp.Note, key.VerifierKey(key.Origin(ws)))
		if err != nil {
			return stele.Head{}, nil, bad(cp.Size, "signature", "the latest checkpoint does not verify with this instance's key: %v", err)
		}
		if opened.Size != cp.Size || opened.Root != cp.Root {
			return stele.Head{}, nil, bad(cp.Size, "signature", "the stored checkpoint columns differ from its signed text")
		}
		size, root = cp.Size, cp.Root
	}
	head, err := store.Head(ctx, ws)
	if err != nil {
		return stele.Head{}, nil, fmt.Errorf("couldn't read the head of %s: %w", ws, err)
	}
	if head.Size < size {
		return stele.Head{}, nil, bad(head.Size, "sequence", "the log holds %d events but its checkpoint covers %d: events were removed or an older copy restored", head.Size, size)
	}
	hashes, err := store.TreeHashes(ctx, ws, tree.FrontierIndexes(size))
	if err != nil {
		return stele.Head{}, nil, bad(size, "tree", "couldn't read the tree at the checkpoint: %v", err)
	}
	f, err := tree.NewFrontier(size, hashes)
	if err != nil {
		return stele.Head{}, nil, err
	}
	if f.Root() != root {
		return stele.Head{}, nil, bad(size-1, "root", "the stored tree of %d events does not hash to the signed root", size)
	}
	var tail []stele.Leaf
	errEnough := errors.New("at the head")
	err = store.ScanLeaves(ctx, ws, size, func(l stele.Leaf) error {
		if l.Seq >= head.Size {
			return errEnough // appended by another process after the head was read
		}
		tail = append(tail, l)
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return stele.Head{}, nil, fmt.Errorf("couldn't read the unsigned tail of %s: %w", ws, err)
	}
	f, err = ExtendVerified(key.MACKey(), ws, f, size, tail)
	if err != nil {
		return stele.Head{}, nil, err
	}
	if f.Size() != head.Size || f.Root() != head.Root {
		return stele.Head{}, nil, bad(head.Size-1, "head", "the stored head (%d, %v) differs from the verified tree (%d, %v)", head.Size, head.Root, f.Size(), f.Root())
	}
	return head, f, nil
}
