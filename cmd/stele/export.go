package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// runExport downloads every event that matches the filters, in one of the
// API's export formats, to a file (or standard output), showing progress on
// standard error. A file appears under its name only once the export is
// complete: it is written beside it first and renamed.
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", stderr)
	var cf clientFlags
	var ff filterFlags
	cf.register(fs)
	ff.register(fs)
	format := fs.String("format", "ndjson", "csv, json, ndjson or bundle (ndjson and json are lossless: every leaf can be recomputed; bundle adds the signed checkpoint and proofs, for stele verify)")
	fromSeq := fs.String("from-seq", "", "bundle: first position of a range of the log (inclusive)")
	toSeq := fs.String("to-seq", "", "bundle: end of a range of the log (exclusive)")
	out := fs.String("o", "-", "file to write; - for standard output")
	quiet := fs.Bool("quiet", false, "no progress line")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (filters are flags: --actor, --type, ...)", fs.Arg(0))
	}
	params := ff.params()
	switch *format {
	case "csv", "json", "ndjson":
		if *fromSeq != "" || *toSeq != "" {
			return errors.New("--from-seq and --to-seq go with --format bundle")
		}
	case "bundle":
		if *fromSeq != "" {
			params.Set("from_seq", *fromSeq)
		}
		if *toSeq != "" {
			params.Set("to_seq", *toSeq)
		}
	default:
		return fmt.Errorf("--format %q: want csv, json, ndjson or bundle", *format)
	}
	c, err := cf.serverClient()
	if err != nil {
		return err
	}
	var dst io.Writer = stdout
	var file *os.File
	if *out != "-" {
		file, err = os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".partial-*")
		if err != nil {
			return err
		}
		defer func() {
			if file != nil {
				file.Close()
				os.Remove(file.Name())
			}
		}()
		dst = file
	}
	cw := &countingWriter{w: dst, format: *format}
	var p *progress
	if !*quiet {
		p = startProgress(stderr, cw)
	}
	err = c.Export(ctx, *format, params, cw)
	if p != nil {
		p.stop(err == nil)
	}
	if err != nil {
		return err
	}
	if file != nil {
		if err := file.Sync(); err != nil {
			return err
		}
		if err := file.Close(); err != nil {
			return err
		}
		if err := os.Rename(file.Name(), *out); err != nil {
			return err
		}
		file = nil
	}
	return nil
}

// countingWriter passes an export through and counts its events and bytes:
// events are the records of the stream — lines of NDJSON, the event lines
// of a JSON array (the exporter writes one event per line), and CSV records
// after the header (newlines outside quotes).
type countingWriter struct {
	w      io.Writer
	format string

	mu       sync.Mutex
	bytes    int64
	newlines int64  // record ends seen (bundle: of event lines)
	quoted   bool   // inside a quoted CSV field
	line     []byte // bundle: the first bytes of the current line
}

// bundleEventLine begins every event line of a bundle.
const bundleEventLine = `{"event"`

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bytes += int64(n)
	for _, b := range p[:n] {
		switch {
		case b == '"' && c.format == "csv":
			c.quoted = !c.quoted
		case b == '\n' && c.format == "bundle":
			if string(c.line) == bundleEventLine {
				c.newlines++
			}
			c.line = c.line[:0]
		case b == '\n' && !c.quoted:
			c.newlines++
		}
		if c.format == "bundle" && b != '\n' && len(c.line) < len(bundleEventLine) {
			c.line = append(c.line, b)
		}
	}
	return n, err
}

// counts returns the events and bytes written so far.
func (c *countingWriter) counts() (events, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	events = c.newlines
	switch c.format {
	case "csv": // the header
		events--
	case "json": // "[" and "]" lines; an empty array is one line
		events -= 2
	}
	return max(events, 0), c.bytes
}

// progress prints "N events written (R events/s, M MB)" on one line of
// stderr, refreshed four times a second, and a final line at the end.
type progress struct {
	w     io.Writer
	c     *countingWriter
	start time.Time
	done  chan struct{}
	wg    sync.WaitGroup
}

func startProgress(w io.Writer, c *countingWriter) *progress {
	p := &progress{w: w, c: c, start: time.Now(), done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				fmt.Fprintf(p.w, "\r%s", p.line())
			}
		}
	}()
	return p
}

func (p *progress) line() string {
	events, bytes := p.c.counts()
	secs := time.Since(p.start).Seconds()
	return fmt.Sprintf("%d events written (%.0f events/s, %.1f MB)", events, float64(events)/max(secs, 1e-3), float64(bytes)/1e6)
}

// stop ends the progress line, with "done" when the export completed.
func (p *progress) stop(ok bool) {
	close(p.done)
	p.wg.Wait()
	status := "interrupted"
	if ok {
		status = "done"
	}
	fmt.Fprintf(p.w, "\r%s, %s in %.1fs\n", p.line(), status, time.Since(p.start).Seconds())
}
