// Package client is the Go SDK of Stele: it emits events with batching,
// retries and idempotent ids (a retry never logs an event twice), queries
// and exports the log, and fetches checkpoints and proofs. The stele CLI is
// built on it.
package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/stele-log/stele"
)

// Client talks to one Stele server with one API key.
type Client struct {
	base string
	key  string
	hc   *http.Client
	// MaxAttempts bounds tries of a retryable request (default 6).
	MaxAttempts int
	// Backoff is the first retry delay, doubled each time with jitter
	// (default 200ms), or the server's Retry-After when it sends one.
	Backoff time.Duration
}

// New returns a client of the server at baseURL (such as
// http://127.0.0.1:8080) using key.
func New(baseURL, key string) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), key: key, hc: &http.Client{Timeout: 0}, MaxAttempts: 6, Backoff: 200 * time.Millisecond}
}

// WithHTTPClient replaces the HTTP client (for TLS settings or timeouts).
func (c *Client) WithHTTPClient(hc *http.Client) *Client { c.hc = hc; return c }

// Error is a non-2xx answer from the server.
type Error struct {
	Status     int
	Code       string `json:"code"`
	Message    string `json:"message"`
	Field      string `json:"field"`
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("the server answered %d %s: %s", e.Status, e.Code, e.Message)
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	return msg
}

// retryable reports whether a request that failed with err may be sent
// again: transport errors (the outcome is unknown), 429 and 5xx. Emitted
// events carry ids, so resending them is safe.
func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status == http.StatusTooManyRequests || e.Status >= 500
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// do sends a request and decodes a JSON answer into out (if not nil). With
// retry it resends on retryable failures.
func (c *Client) do(ctx context.Context, method, path string, body []byte, contentType string, retry bool, out any) error {
	attempts := 1
	if retry {
		attempts = max(c.MaxAttempts, 1)
	}
	delay := c.Backoff
	var err error
	for i := range attempts {
		var resp *http.Response
		resp, err = c.send(ctx, method, path, body, contentType)
		if err == nil {
			err = decode(resp, out)
		}
		if err == nil || !retryable(err) || i == attempts-1 {
			return err
		}
		wait := delay + time.Duration(rand.Int64N(int64(delay)/2+1))
		var e *Error
		if errors.As(err, &e) && e.RetryAfter > 0 {
			wait = e.RetryAfter
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		delay = min(delay*2, 10*time.Second)
	}
	return err
}

func (c *Client) send(ctx context.Context, method, path string, body []byte, contentType string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if len(body) > 64<<10 {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(body)
		zw.Close()
		req.Body = io.NopCloser(bytes.NewReader(z.Bytes()))
		req.ContentLength = int64(z.Len())
		req.Header.Set("Content-Encoding", "gzip")
	}
	return c.hc.Do(req)
}

func decode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		var wrapper struct {
			Error *Error `json:"error"`
		}
		wrapper.Error = e
		json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&wrapper)
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if w, ok := out.(io.Writer); ok {
		_, err := io.Copy(w, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Receipt acknowledges one logged event.
type Receipt struct {
	ID       string `json:"id"`
	Seq      int64  `json:"seq"`
	LeafHash string `json:"leaf_hash"`
	Replayed bool   `json:"replayed"`
}

// AppendResult is the answer to one append.
type AppendResult struct {
	Events     []Receipt `json:"events"`
	Checkpoint string    `json:"checkpoint"`
}

// Event is an event to emit: the fields an emitter sets.
type Event struct {
	ID       string          `json:"id,omitempty"`
	Time     *time.Time      `json:"time,omitempty"`
	Type     string          `json:"type"`
	Category string          `json:"category,omitempty"`
	Actor    stele.Actor     `json:"actor"`
	Node     string          `json:"node,omitempty"`
	Resource *stele.Resource `json:"resource,omitempty"`
	IP       string          `json:"ip,omitempty"`
	Outcome  string          `json:"outcome,omitempty"`
	Context  json.RawMessage `json:"context,omitempty"`
}

// Append logs events in one request (at most stele.MaxBatch), retrying on
// failures whose outcome is unknown. Events without an id get a UUIDv7
// first, so that every retry is idempotent. waitCheckpoint asks the server to
// answer only once a signed checkpoint covers them.
func (c *Client) Append(ctx context.Context, events []Event, waitCheckpoint bool) (*AppendResult, error) {
	for i := range events {
		if events[i].ID == "" {
			events[i].ID = uuid.Must(uuid.NewV7()).String()
		}
	}
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		return nil, err
	}
	path := "/v1/events"
	if waitCheckpoint {
		path += "?wait=checkpoint"
	}
	var res AppendResult
	if err := c.do(ctx, http.MethodPost, path, body, "application/json", true, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Query returns one page of events matching filters (API parameter names:
// actor, type, since, limit, cursor, ...).
func (c *Client) Query(ctx context.Context, filters url.Values) (events []json.RawMessage, next string, err error) {
	var res struct {
		Events     []json.RawMessage `json:"events"`
		NextCursor string            `json:"next_cursor"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/events?"+filters.Encode(), nil, "", true, &res); err != nil {
		return nil, "", err
	}
	return res.Events, res.NextCursor, nil
}

// Export streams every event matching filters in format (csv, json,
// ndjson) to w. It is not retried: a broken stream is reported, not resumed.
func (c *Client) Export(ctx context.Context, format string, filters url.Values, w io.Writer) error {
	q := url.Values{}
	for k, v := range filters {
		q[k] = v
	}
	q.Set("format", format)
	return c.do(ctx, http.MethodGet, "/v1/export?"+q.Encode(), nil, "", false, w)
}

// Checkpoint returns the latest signed checkpoint note of the key's log.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	var b bytes.Buffer
	err := c.do(ctx, http.MethodGet, "/v1/checkpoint", nil, "", true, &b)
	return b.Bytes(), err
}

// LogKey returns the note verifier key of the key's log.
func (c *Client) LogKey(ctx context.Context) (string, error) {
	var b bytes.Buffer
	err := c.do(ctx, http.MethodGet, "/v1/log/key", nil, "", true, &b)
	return strings.TrimSpace(b.String()), err
}

// Get sends GET path and decodes the JSON answer into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, "", true, out)
}

// Post sends v as JSON to path (once: POSTs other than appends are not
// idempotent) and decodes the answer into out.
func (c *Client) Post(ctx context.Context, path string, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, body, "application/json", false, out)
}

// Delete sends DELETE path.
func (c *Client) Delete(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodDelete, path, nil, "", false, out)
}

// Patch sends v as JSON to path with PATCH and decodes the answer into out.
func (c *Client) Patch(ctx context.Context, path string, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPatch, path, body, "application/json", false, out)
}
