package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/stele-log/stele"
	"github.com/stele-log/stele/client"
	"github.com/stele-log/stele/eventgen"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times (100 on
// every Linux architecture Go supports).
const clockTicks = 100

// procCPU returns the user+sys CPU time of process pid in clock ticks.
func procCPU(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces: fields count
	// from the last ')'. utime and stime are fields 14 and 15 of stat.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return u + s, nil
}

// selfCPU returns the user+sys CPU time of this process.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// eventPool is the benchmark's events: a seeded stream, so that the client
// side and the baseline process (which builds its own pool) use the same
// rows.
type eventPool struct {
	bodies []stele.EventBody
	// tails are the events as an emitter sends them, without their id: the
	// JSON object after its opening brace.
	tails [][]byte
}

func newEventPool(n int) (*eventPool, error) {
	g := eventgen.New(20261205)
	bodies := g.Stream(n, time.Now().Add(-time.Minute), 24*time.Hour, false)
	p := &eventPool{bodies: bodies}
	for i := range bodies {
		b := &bodies[i]
		t := b.Time
		raw, err := json.Marshal(client.Event{Time: &t, Type: b.Type, Category: b.Category, Actor: b.Actor, Node: b.Node,
			Resource: b.Resource, IP: b.IP, Outcome: b.Outcome, Context: b.Context})
		if err != nil {
			return nil, err
		}
		p.tails = append(p.tails, raw[1:])
	}
	return p, nil
}

// appendEvent appends pool event i with a fresh UUIDv7, as the Go client
// sends it (the client always sets ids, so that retries are idempotent).
func (p *eventPool) appendEvent(buf []byte, i int) []byte {
	buf = append(buf, `{"id":"`...)
	buf = append(buf, uuid.Must(uuid.NewV7()).String()...)
	buf = append(buf, `",`...)
	return append(buf, p.tails[i%len(p.tails)]...)
}

// commits returns the server's count of committed batches, from /metrics.
func (s *benchServer) commits(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "stele_commit_batch_events_count "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("no stele_commit_batch_events_count in /metrics (status %d)", resp.StatusCode)
}

// steleLoad drives the server with one workload's clients.
type steleLoad struct {
	srv  *benchServer
	w    ingestWorkload
	pool *eventPool
	next atomic.Int64 // pool position
}

// round runs the workload's clients for d and measures the server process.
func (l *steleLoad) round(ctx context.Context, d time.Duration) (roundResult, error) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		total  atomic.Int64
		lat    []time.Duration
		errs   []error
		failed atomic.Bool
	)
	commits0, err := l.srv.commits(ctx)
	if err != nil {
		return roundResult{}, err
	}
	cpu0, err := procCPU(l.srv.pid())
	if err != nil {
		return roundResult{}, err
	}
	self0 := selfCPU()
	start := time.Now()
	deadline := start.Add(d)
	for range l.w.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var buf []byte
			for time.Now().Before(deadline) && !failed.Load() && ctx.Err() == nil {
				buf = buf[:0]
				first := int(l.next.Add(int64(l.w.Batch))) - l.w.Batch
				if l.w.Batch == 1 {
					buf = l.pool.appendEvent(buf, first)
				} else {
					buf = append(buf, `{"events":[`...)
					for i := range l.w.Batch {
						if i > 0 {
							buf = append(buf, ',')
						}
						buf = l.pool.appendEvent(buf, first+i)
					}
					buf = append(buf, "]}"...)
				}
				t0 := time.Now()
				err := l.post(ctx, buf)
				mine = append(mine, time.Since(t0))
				if err != nil {
					failed.Store(true)
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				total.Add(int64(l.w.Batch))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	clientCPU := selfCPU() - self0
	cpu1, err := procCPU(l.srv.pid())
	if err != nil {
		return roundResult{}, err
	}
	if len(errs) > 0 {
		return roundResult{}, fmt.Errorf("append failed: %w\nserver log:\n%s", errs[0], l.srv.logTail())
	}
	commits1, err := l.srv.commits(ctx)
	if err != nil {
		return roundResult{}, err
	}
	return roundResult{events: total.Load(), elapsed: elapsed, cpuTicks: cpu1 - cpu0, clientCPU: clientCPU, latencies: lat, commits: commits1 - commits0}, ctx.Err()
}

func (l *steleLoad) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.srv.url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.srv.key)
	resp, err := l.srv.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("status %d: %s", resp.StatusCode, answer)
	}
	return nil
}
