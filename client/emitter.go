package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/stele-log/stele"
)

// Emitter batches events in the background: Emit queues one, and a flusher
// sends a batch when it holds MaxBatch events or the oldest has waited
// FlushInterval. Every event gets its id when queued, so the retries of a
// batch never log it twice.
type Emitter struct {
	c             *Client
	MaxBatch      int
	FlushInterval time.Duration

	mu      sync.Mutex // guards pending, waiters, err
	pending []Event
	waiters []chan error
	err     error
	kick    chan struct{}
	done    chan struct{}
	stop    context.CancelFunc
}

// NewEmitter starts a batching emitter on c.
func (c *Client) NewEmitter() *Emitter {
	ctx, cancel := context.WithCancel(context.Background())
	e := &Emitter{c: c, MaxBatch: 500, FlushInterval: 200 * time.Millisecond, kick: make(chan struct{}, 1), done: make(chan struct{}), stop: cancel}
	go e.run(ctx)
	return e
}

// Emit queues ev and returns its id. The returned channel receives nil once
// the event is durably logged, or the error that stopped its batch.
func (e *Emitter) Emit(ev Event) (string, <-chan error) {
	if ev.ID == "" {
		ev.ID = uuid.Must(uuid.NewV7()).String()
	}
	ch := make(chan error, 1)
	e.mu.Lock()
	e.pending = append(e.pending, ev)
	e.waiters = append(e.waiters, ch)
	full := len(e.pending) >= min(e.MaxBatch, stele.MaxBatch)
	e.mu.Unlock()
	if full {
		select {
		case e.kick <- struct{}{}:
		default:
		}
	}
	return ev.ID, ch
}

// Close sends everything queued and stops the flusher.
func (e *Emitter) Close() error {
	e.stop()
	<-e.done
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

func (e *Emitter) run(ctx context.Context) {
	defer close(e.done)
	t := time.NewTicker(e.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for e.flush(context.Background()) {
			}
			return
		case <-t.C:
		case <-e.kick:
		}
		for e.flush(ctx) {
		}
	}
}

// flush sends one batch; it reports whether more are queued.
func (e *Emitter) flush(ctx context.Context) bool {
	e.mu.Lock()
	n := min(len(e.pending), e.MaxBatch, stele.MaxBatch)
	if n == 0 {
		e.mu.Unlock()
		return false
	}
	batch, waiters := e.pending[:n:n], e.waiters[:n:n]
	e.pending, e.waiters = e.pending[n:], e.waiters[n:]
	more := len(e.pending) > 0
	e.mu.Unlock()
	_, err := e.c.Append(ctx, batch, false)
	if errors.Is(err, context.Canceled) {
		_, err = e.c.Append(context.Background(), batch, false)
	}
	if err != nil {
		e.mu.Lock()
		e.err = err
		e.mu.Unlock()
	}
	for _, w := range waiters {
		w <- err
	}
	return more
}
