// Package e2e drives the page in a real browser, Debian's Chromium through
// chromedp, against the real server binary. It runs with `make e2e`; a
// machine without Chromium fails it with a message that says how to install
// it. It is a module of its own, so that the app's module, and `make test`,
// need nothing of the browser driver.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

var screenshotPath = flag.String("screenshot", "", "write the screenshot of TestScreenshot to this `file` (make screenshot)")

// env is what every test shares: the server binary and one browser. Each test
// starts a server of its own, so each page has an origin, and so a
// localStorage, of its own.
type env struct {
	serverBin string
	browser   context.Context
}

var shared env // set once by TestMain, read only by the tests

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	chromium, err := findChromium()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}

	dir, err := os.MkdirTemp("", "gin-sse-progress-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()

	// The server is built with the race detector: the browser drives it as
	// a user would, and a race found that way fails the test at shutdown.
	shared.serverBin = filepath.Join(dir, "gin-sse-progress")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-race", "-o", shared.serverBin, ".")
	build.Dir = ".." // the app's module
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build the server:", err)
		return 1
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(filepath.Join(dir, "chromium")),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// Without these Chromium reaches for Google's servers as it starts.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		// The HTTPS tests serve a self-signed certificate of their own.
		chromedp.Flag("ignore-certificate-errors", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// The first Run starts the browser; it must not have a deadline.
	if err := chromedp.Do(browser); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: start %s: %v\n", chromium, err)
		return 1
	}
	shared.browser = browser

	code := m.Run()
	cancelBrowser()
	cancelAlloc()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: goroutines left behind:", err)
			return 1
		}
	}
	return code
}

// findChromium returns the browser to drive: $CHROMIUM, or the first of the
// usual names on PATH.
func findChromium() (string, error) {
	if path := os.Getenv("CHROMIUM"); path != "" {
		return path, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", errors.New("Chromium is not installed: `apt-get install chromium` " +
		"(Debian), or set CHROMIUM to a Chrome or Chromium binary")
}

// server is the server binary running on a free loopback port, and a
// client that trusts its certificate if it serves HTTPS.
type server struct {
	URL    string
	logs   *logWriter
	client *http.Client
}

// startServer runs the server with args added to its defaults for tests. It
// stops it when the test ends, with SIGTERM, and checks that it exits 0.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	logs := &logWriter{addr: make(chan string, 1)}
	args = append([]string{"-addr", "127.0.0.1:0", "-log-level", "debug", "-tick", "20ms",
		"-retry", "300ms", "-grace", "1m"}, args...)
	// Stopping the command's context sends SIGTERM; if the server has not
	// exited 10 s later it is killed, and the test fails.
	ctx, stop := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, shared.serverBin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stop()
		// Wait reports the cancel itself as an error; the status tells.
		err := <-exited
		assert.Equal(t, 0, cmd.ProcessState.ExitCode(),
			"the server exits 0 on SIGTERM, within 10 s (%v); its log:\n%s", err, logs)
		if t.Failed() {
			t.Logf("the log of the server at %s:\n%s", args, logs)
		}
	})

	select {
	case url := <-logs.addr:
		return &server{URL: url, logs: logs, client: clientFor(t, args)}
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("the server exited at start: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not start listening; its log:\n%s", logs)
	}
	return nil
}

// clientFor returns a client of a server run with args: one that trusts
// its -tls-cert, if it has one.
func clientFor(t *testing.T, args []string) *http.Client {
	t.Helper()
	i := slices.Index(args, "-tls-cert")
	if i < 0 {
		return http.DefaultClient
	}
	pemBytes, err := os.ReadFile(args[i+1])
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(pemBytes))
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport}
}

// health returns the registry's numbers from /healthz.
func (s *server) health(t *testing.T) map[string]int {
	t.Helper()
	var body struct {
		Registry map[string]int `json:"registry"`
	}
	resp := s.get(t, "/healthz")
	require.Equal(t, http.StatusOK, resp.status)
	require.NoError(t, json.Unmarshal(resp.body, &body))
	return body.Registry
}

// waitHealthy waits until /healthz answers 200.
func (s *server) waitHealthy(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/healthz", nil)
		require.NoError(t, err)
		resp, err := s.client.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond, "%s is not healthy; its log:\n%s", s.URL, s.logs)
}

// post sends a JSON body.
func (s *server) post(t *testing.T, path, body string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{status: resp.StatusCode, body: b}
}

type reply struct {
	status int
	body   []byte
}

func (s *server) get(t *testing.T, path string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	require.NoError(t, err)
	resp, err := s.client.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{status: resp.StatusCode, body: body}
}

// logWriter keeps the server's log and finds the address it listens on.
type logWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	addr  chan string // gets the URL it serves once
	found bool
}

var listening = regexp.MustCompile(`msg=listening addr=\S+ url=(\S+)`)

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.found {
		if m := listening.FindSubmatch(w.buf.Bytes()); m != nil {
			w.found = true
			w.addr <- string(m[1])
		}
	}
	return len(p), nil
}

func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
