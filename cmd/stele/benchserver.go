package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/stele-log/stele/api"
)

// benchServe says how a benchmark runs `stele serve`.
type benchServe struct {
	Bin       string   // the stele binary; this one when empty
	DataDir   string   // --data; the server's log goes to DataDir + ".log"
	Key       string   // the operator key (STELE_ADMIN_KEY); generated when empty
	PprofAddr string   // --pprof, when set
	Args      []string // more serve flags
}

// benchServer is `stele serve` running as a child process, with no rate
// limits, so that a benchmark measures the service and not its limits.
type benchServer struct {
	cmd  *exec.Cmd
	url  string
	key  string
	logs *os.File
	hc   *http.Client
	done chan struct{} // closed once the process has exited
}

// startBenchServer starts the server and waits until it is ready. The
// environment's STELE_* variables are not passed on: a benchmark measures
// the defaults.
func startBenchServer(ctx context.Context, c benchServe) (*benchServer, error) {
	if c.Bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		c.Bin = exe
	}
	if c.Key == "" {
		_, _, c.Key = api.NewKeySecret("default")
	}
	logs, err := os.Create(c.DataDir + ".log")
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--data", c.DataDir, "--listen", "127.0.0.1:0",
		"--rate-ingest", "0", "--rate-read", "0", "--log-level", "warn",
		"--full-check-every", "0"} // the daily background check is no part of a measurement
	if c.PprofAddr != "" {
		args = append(args, "--pprof", c.PprofAddr)
	}
	cmd := exec.Command(c.Bin, append(args, c.Args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STELE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "STELE_ADMIN_KEY="+c.Key, "STELE_ADMIN_PASSWORD=bench password, never used")
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		logs.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logs.Close()
		return nil, err
	}
	s := &benchServer{cmd: cmd, key: c.Key, logs: logs, done: make(chan struct{})}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "Stele is serving on "); ok {
				urls <- strings.TrimSpace(u)
			}
		}
		cmd.Wait()
		close(s.done)
	}()
	select {
	case s.url = <-urls:
	case <-s.done:
		s.stop()
		return nil, fmt.Errorf("the server exited before serving:\n%s", s.logTail())
	case <-time.After(5 * time.Minute):
		s.stop()
		return nil, fmt.Errorf("the server did not start within 5 minutes:\n%s", s.logTail())
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	s.hc = &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}}
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := s.hc.Get(s.url + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("the server did not become ready:\n%s", s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *benchServer) pid() int { return s.cmd.Process.Pid }

// stop shuts the server down as an operator would (SIGTERM), and kills it
// if it has not stopped within two minutes.
func (s *benchServer) stop() error {
	defer s.logs.Close()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if st := s.cmd.ProcessState; st != nil && !st.Success() {
			return fmt.Errorf("stele serve: %s", st)
		}
		return nil
	case <-time.After(2 * time.Minute):
		s.cmd.Process.Kill()
		<-s.done
		return errors.New("stele serve did not stop within 2 minutes")
	}
}

// logTail is the end of the server's log, for error messages.
func (s *benchServer) logTail() string {
	b, _ := os.ReadFile(s.logs.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
