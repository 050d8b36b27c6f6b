package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// redisServer is a redis-server of the soak's own, keeping nothing on disk.
type redisServer struct {
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedis(ctx context.Context, dir string) (*redisServer, error) {
	port, err := freePort(ctx)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(context.Background(), "redis-server", "--port", strconv.Itoa(port),
		"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server (apt-get install redis-server): %w", err)
	}
	r := &redisServer{port: port, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(r.done) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		conn, err := new(net.Dialer).DialContext(ctx, "tcp", r.addr())
		if err == nil {
			_, _ = conn.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(conn).ReadString('\n')
			_ = conn.Close()
			if strings.HasPrefix(line, "+PONG") {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, errors.New("redis-server does not answer")
		}
	}
}

// do sends one command and returns its answer, read loosely: the lines of
// the reply, for a person to read.
func (r *redisServer) do(ctx context.Context, args ...string) string {
	conn, err := new(net.Dialer).DialContext(ctx, "tcp", r.addr())
	if err != nil {
		return err.Error()
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	cmd := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		cmd += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return err.Error()
	}
	var lines []string
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	for {
		line, err := br.ReadString('\n')
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "*") && !strings.HasPrefix(line, "$") {
			lines = append(lines, line)
		}
		if err != nil {
			return strings.Join(lines, " ")
		}
	}
}

func (r *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }
func (r *redisServer) url() string  { return "redis://" + r.addr() + "/0" }

// pause stops Redis with SIGSTOP: its connections stay open, and nothing
// answers on them. resume undoes it.
func (r *redisServer) pause()  { _ = r.cmd.Process.Signal(syscall.SIGSTOP) }
func (r *redisServer) resume() { _ = r.cmd.Process.Signal(syscall.SIGCONT) }

func (r *redisServer) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
	_ = r.cmd.Process.Kill()
	<-r.done
}

// instance is one server process, on a fixed port, so that its proxy
// finds it again after a restart.
type instance struct {
	name string
	addr string
	bin  string
	args []string
	logs *logFile

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

// started returns how many times the instance was started.
func (in *instance) started() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.starts
}

func newInstance(ctx context.Context, name, bin, dir string, args []string) (*instance, error) {
	port, err := freePort(ctx)
	if err != nil {
		return nil, err
	}
	logs, err := openLog(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	return &instance{name: name, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), bin: bin, args: args, logs: logs}, nil
}

// start runs the instance and waits until it answers /healthz.
func (in *instance) start(ctx context.Context) error {
	cmd := exec.CommandContext(context.Background(), in.bin, append([]string{"-addr", in.addr}, in.args...)...)
	cmd.Stdout, cmd.Stderr = in.logs, in.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", in.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	in.mu.Lock()
	in.cmd, in.done = cmd, done
	in.starts++
	in.mu.Unlock()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if in.healthy(ctx) {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited at start; see %s", in.name, in.logs.path)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer; see %s", in.name, in.logs.path)
		}
	}
}

func (in *instance) healthy(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.addr+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop sends sig (SIGTERM: a deploy; SIGKILL: a crash) and waits for the
// process to exit, for up to 15 s.
func (in *instance) stop(sig syscall.Signal) error {
	in.mu.Lock()
	cmd, done := in.cmd, in.done
	in.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not exit within 15 s of %s", in.name, sig)
	}
}

// sample reads the instance's goroutines and resident memory from its
// /metrics.
func (in *instance) sample(ctx context.Context) (goroutines, rss float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			goroutines, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
			rss, _ = strconv.ParseFloat(v, 64)
		}
	}
	return goroutines, rss, nil
}

// runs reads the number of runs the instance owns from its /healthz, which
// says it even while it answers 503.
func (in *instance) runs(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.addr+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	var health struct {
		Registry struct {
			Runs float64 `json:"runs"`
		} `json:"registry"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&health); err != nil {
		return 0, err
	}
	return health.Registry.Runs, nil
}

// logFile keeps an instance's log, across its restarts, and counts its
// ERROR lines by message.
type logFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
	part []byte
	errs map[string]int
}

func openLog(path string) (*logFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &logFile{path: path, f: f, errs: map[string]int{}}, nil
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		line := string(l.part[:i])
		l.part = l.part[i+1:]
		if strings.Contains(line, "level=ERROR") {
			l.errs[message(line)]++
		}
	}
	return l.f.Write(p)
}

// message returns the msg of a log line: a quoted one whole, else up to a
// space.
func message(line string) string {
	_, m, ok := strings.Cut(line, "msg=")
	if !ok {
		return line
	}
	if rest, quoted := strings.CutPrefix(m, `"`); quoted {
		m, _, _ = strings.Cut(rest, `"`)
		return m
	}
	m, _, _ = strings.Cut(m, " ")
	return m
}

func (l *logFile) errors() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.errs))
	for k, v := range l.errs {
		out[k] = v
	}
	return out
}

func freePort(ctx context.Context) (int, error) {
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
