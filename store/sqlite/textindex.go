package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stele-log/stele"
)

// Deferred full-text indexing. Adding rows to the FTS5 index costs a new
// index segment per transaction, which dominates small commits (one event
// per request). So an append commits each event's words into the narrow
// table events_text_pending, in the same durable transaction as the event,
// and the text indexer moves them into events_text in bulk:
//
//   - after textFlushRows staged rows, or textFlushAfter after the first;
//   - before any query with free text runs (settleText), whichever process
//     staged them, so that text search stays exact and read-your-writes;
//   - at Open, for rows a crash left staged; and at Close.
//
// Only the text index is deferred: events, their other indexes and the tree
// are written by the commit itself, so every other read, idempotency and
// verification see an acknowledged event at once.
const (
	textFlushRows  = 256
	textFlushAfter = 100 * time.Millisecond
)

const (
	insertTextPending = "INSERT INTO events_text_pending (rowid, words) VALUES (?, ?)"
	moveText          = "INSERT INTO events_text (rowid, words) SELECT rowid, words FROM events_text_pending ORDER BY rowid"
	clearText         = "DELETE FROM events_text_pending"
)

// textIndexer is the goroutine that moves staged words into events_text.
type textIndexer struct {
	staged atomic.Int64  // rows this process staged and has not moved
	kick   chan struct{} // a commit staged rows
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once // closes stop
}

func (s *Store) startTextIndexer() {
	t := &textIndexer{kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	s.text = t
	go func() {
		defer close(t.done)
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		armed := false
		for {
			select {
			case <-t.stop:
				timer.Stop()
				return
			case <-t.kick:
				if t.staged.Load() < textFlushRows {
					if !armed {
						timer.Reset(textFlushAfter)
						armed = true
					}
					continue
				}
			case <-timer.C:
			}
			if armed {
				timer.Stop()
				armed = false
			}
			if err := s.flushText(context.Background()); err != nil {
				slog.Default().Warn("couldn't move staged words into the text index (retried before the next text query)", "err", err)
			}
		}
	}()
}

// add records that a commit staged n rows of words.
func (t *textIndexer) add(n int) {
	if n == 0 {
		return
	}
	t.staged.Add(int64(n))
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// stopTextIndexer stops the goroutine and moves what is left.
func (s *Store) stopTextIndexer() error {
	if s.text == nil {
		return nil
	}
	s.text.once.Do(func() { close(s.text.stop) })
	<-s.text.done
	return s.flushText(context.Background())
}

// flushText moves every staged row into events_text in one transaction.
func (s *Store) flushText(ctx context.Context) error {
	var moved int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, moveText)
		if err != nil {
			return err
		}
		moved, _ = res.RowsAffected()
		if moved == 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, clearText)
		return err
	})
	if err != nil {
		return fmt.Errorf("couldn't update the text index: %w", err)
	}
	if s.text != nil {
		s.text.staged.Add(-moved)
		if s.text.staged.Load() < 0 {
			s.text.staged.Store(0) // rows staged by other processes
		}
	}
	return nil
}

// settleText makes sure that a query with free text f sees every committed
// event: words still staged (by this or any process sharing the database)
// are moved into the index first.
func (s *Store) settleText(ctx context.Context, f *stele.Filter) error {
	if len(f.Text) == 0 {
		return nil
	}
	var staged bool
	if err := s.r.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM events_text_pending)").Scan(&staged); err != nil {
		return err
	}
	if !staged {
		return nil
	}
	if s.w == nil {
		return fmt.Errorf("%w: free-text search needs the running server to index recent events first", stele.ErrUnavailable)
	}
	return s.flushText(ctx)
}
