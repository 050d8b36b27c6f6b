package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"gin-sse-progress/auth"
	"gin-sse-progress/sse/ssetest"
	"gin-sse-progress/sseredis/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parseConfig([]string{"app"}, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, ":3000", cfg.addr)
	assert.Equal(t, time.Second, cfg.progress.Tick)
	assert.Equal(t, 5, cfg.progress.Step)
	assert.Equal(t, 3*time.Second, cfg.registry.Retry)
	assert.Equal(t, 15*time.Second, cfg.registry.Heartbeat)
	assert.Equal(t, 30*time.Second, cfg.registry.Grace)
	assert.Equal(t, 10000, cfg.registry.MaxStreams)
	assert.Equal(t, 10*time.Second, cfg.registry.WriteTimeout)
}

func TestParseConfigFlagsAndEnvironment(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c config)
	}{
		{"env sets", nil, map[string]string{"TICK": "50ms", "STEP": "10", "MAX_STREAMS": "7"},
			func(t *testing.T, c config) {
				assert.Equal(t, 50*time.Millisecond, c.progress.Tick)
				assert.Equal(t, 10, c.progress.Step)
				assert.Equal(t, 7, c.registry.MaxStreams)
			}},
		{"flag wins over env", []string{"-tick", "2s"}, map[string]string{"TICK": "50ms"},
			func(t *testing.T, c config) { assert.Equal(t, 2*time.Second, c.progress.Tick) }},
		{"PORT", nil, map[string]string{"PORT": "8080"},
			func(t *testing.T, c config) { assert.Equal(t, ":8080", c.addr) }},
		{"ADDR wins over PORT", nil, map[string]string{"PORT": "8080", "ADDR": "127.0.0.1:9"},
			func(t *testing.T, c config) { assert.Equal(t, "127.0.0.1:9", c.addr) }},
		{"-addr wins over PORT", []string{"-addr", ":1"}, map[string]string{"PORT": "8080"},
			func(t *testing.T, c config) { assert.Equal(t, ":1", c.addr) }},
		{"all durations", []string{"-retry", "1s", "-heartbeat", "2s", "-grace", "3s", "-write-timeout", "4s"}, nil,
			func(t *testing.T, c config) {
				assert.Equal(t, time.Second, c.registry.Retry)
				assert.Equal(t, 2*time.Second, c.registry.Heartbeat)
				assert.Equal(t, 3*time.Second, c.registry.Grace)
				assert.Equal(t, 4*time.Second, c.registry.WriteTimeout)
			}},
		{"allowed origins", []string{"-allow-origin", "https://App.example, http://localhost:5173"}, nil,
			func(t *testing.T, c config) {
				assert.Equal(t, origins{"https://app.example", "http://localhost:5173"}, c.allowOrigins)
			}},
		{"allowed origins from env", nil, map[string]string{"ALLOW_ORIGIN": "https://a.example"},
			func(t *testing.T, c config) { assert.Equal(t, origins{"https://a.example"}, c.allowOrigins) }},
		{"profiles off by default", nil, nil,
			func(t *testing.T, c config) { assert.Empty(t, c.pprofAddr) }},
		{"profiles from env", nil, map[string]string{"PPROF": "127.0.0.1:6060"},
			func(t *testing.T, c config) { assert.Equal(t, "127.0.0.1:6060", c.pprofAddr) }},
		{"no origins by default", nil, nil,
			func(t *testing.T, c config) { assert.Empty(t, c.allowOrigins) }},
		{"registry in memory by default", nil, nil,
			func(t *testing.T, c config) { assert.Empty(t, c.redisURL) }},
		{"redis from env", nil, map[string]string{"REDIS_URL": "redis://10.0.0.5:6380/2"},
			func(t *testing.T, c config) { assert.Equal(t, "redis://10.0.0.5:6380/2", c.redisURL) }},
		{"-redis wins over env", []string{"-redis", "redis://127.0.0.1:6379/0"}, map[string]string{"REDIS_URL": "redis://x:1/0"},
			func(t *testing.T, c config) { assert.Equal(t, "redis://127.0.0.1:6379/0", c.redisURL) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(append([]string{"app"}, tc.args...), env(tc.env), io.Discard)
			require.NoError(t, err)
			tc.check(t, cfg)
		})
	}
}

func TestParseConfigRejectsBadValues(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		flag string // the message names it, or says this
	}{
		{[]string{"-tick", "0s"}, nil, "-tick"},
		{[]string{"-tick", "-1s"}, nil, "-tick"},
		{[]string{"-tick", "soon"}, nil, "-tick"},
		{nil, map[string]string{"TICK": "soon"}, "$TICK"},
		{nil, map[string]string{"TICK": "0"}, "$TICK"},
		{[]string{"-tick", "1"}, nil, "no unit: write 1s"},
		{nil, map[string]string{"TICK": "1"}, "no unit: write 1s"},
		{[]string{"-step", "7"}, nil, "-step"},
		{[]string{"-step", "0"}, nil, "-step"},
		{[]string{"-step", "200"}, nil, "-step"},
		{nil, map[string]string{"STEP": "x"}, "$STEP"},
		{nil, map[string]string{"STEP": "7"}, "$STEP"},
		{[]string{"-retry", "0s"}, nil, "-retry"},
		{[]string{"-retry", "10us"}, nil, "-retry"},
		{[]string{"-heartbeat", "-5s"}, nil, "-heartbeat"},
		{[]string{"-max-streams", "0"}, nil, "-max-streams"},
		{nil, map[string]string{"MAX_STREAMS": "-3"}, "$MAX_STREAMS"},
		{[]string{"-addr", "3000"}, nil, "-addr must be host:port"},
		{[]string{"-addr", "localhost"}, nil, "-addr must be host:port"},
		{nil, map[string]string{"ADDR": "3000"}, "$ADDR must be host:port"},
		{nil, map[string]string{"PORT": "x:y"}, "$PORT must be host:port"},
		{[]string{"-grace", "0s"}, nil, "-grace"},
		{[]string{"-write-timeout", "0s"}, nil, "-write-timeout"},
		{[]string{"-log-level", "loud"}, nil, "-log-level"},
		{[]string{"-allow-origin", "*"}, nil, "-allow-origin"},
		{[]string{"-allow-origin", "https://a.example/"}, nil, "-allow-origin"},
		{[]string{"-allow-origin", "a.example"}, nil, "-allow-origin"},
		{[]string{"-allow-origin", "ftp://a.example"}, nil, "-allow-origin"},
		{nil, map[string]string{"ALLOW_ORIGIN": "https://a.example?x"}, "$ALLOW_ORIGIN"},
		{[]string{"-redis", "http://127.0.0.1:6379"}, nil, "-redis"},
		{[]string{"-redis", "redis://127.0.0.1:6379/x"}, nil, "-redis"},
		{nil, map[string]string{"REDIS_URL": "127.0.0.1:6379"}, "$REDIS_URL"},
		{[]string{"-redis", "redis://127.0.0.1:6379/0?max_retries=3"}, nil, "max_retries"},
		{[]string{"-auth-secret", "short"}, nil, "-auth-secret is 5 bytes; it must be at least 32"},
		{nil, map[string]string{"AUTH_SECRET": "short"}, "$AUTH_SECRET is 5 bytes"},
		{[]string{"-max-streams-per-subject", "0"}, nil, "-max-streams-per-subject"},
		{[]string{"-tls-cert", "c.pem"}, nil, "-tls-cert and -tls-key go together"},
		{nil, map[string]string{"TLS_KEY": "k.pem"}, "-tls-cert and $TLS_KEY go together"},
		{[]string{"-log-format", "xml"}, nil, "-log-format must be text or json"},
		{nil, map[string]string{"LOG_FORMAT": "yaml"}, "$LOG_FORMAT must be text or json"},
		{[]string{"-nope"}, nil, "-nope"},
		{[]string{"extra"}, nil, "extra"},
	}
	for _, tc := range tests {
		_, err := parseConfig(append([]string{"app"}, tc.args...), env(tc.env), io.Discard)
		require.Error(t, err, "%v %v", tc.args, tc.env)
		assert.Contains(t, err.Error(), tc.flag, "%v %v", tc.args, tc.env)
		assert.Equal(t, 2, exitCode(err), "%v %v: usage errors exit 2", tc.args, tc.env)
	}
}

// TestTokenCommand: `gin-sse-progress token` prints a token the server
// takes, and refuses what would make a useless one, as a usage error.
func TestTokenCommand(t *testing.T) {
	secret := strings.Repeat("k", 32)
	var out bytes.Buffer
	require.NoError(t, runToken([]string{"token", "-sub", "alice", "-ttl", "2m"}, env(map[string]string{"AUTH_SECRET": secret}), &out, io.Discard))
	v, err := auth.NewVerifier([]byte(secret), 0)
	require.NoError(t, err)
	id, err := v.Verify(strings.TrimSpace(out.String()))
	require.NoError(t, err)
	assert.Equal(t, "alice", id.Subject)
	assert.WithinDuration(t, time.Now().Add(2*time.Minute), id.Expires, 5*time.Second)

	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"token"}, map[string]string{"AUTH_SECRET": secret}, "-sub is required"},
		{[]string{"token", "-sub", "a"}, nil, "the secret ($AUTH_SECRET or -secret) is 0 bytes"},
		{[]string{"token", "-sub", "a", "-secret", "short"}, nil, "is 5 bytes"},
		{[]string{"token", "-sub", "a", "-ttl", "0s"}, map[string]string{"AUTH_SECRET": secret}, "-ttl must be positive"},
		{[]string{"token", "-sub", "a", "extra"}, map[string]string{"AUTH_SECRET": secret}, "unexpected argument"},
	} {
		err := runToken(tc.args, env(tc.env), io.Discard, io.Discard)
		require.Error(t, err, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.want)
		assert.Equal(t, 2, exitCode(err), "%v: usage errors exit 2", tc.args)
	}
}

// TestRunNeedsItsCertificate: a -tls-cert that cannot be loaded stops the
// start with an error that names the files (exit 1: the flags were fine).
func TestRunNeedsItsCertificate(t *testing.T) {
	dir := t.TempDir()
	err := run(t.Context(), []string{"app", "-addr", "127.0.0.1:0", "-tls-cert", dir + "/none.crt", "-tls-key", dir + "/none.key"}, env(nil), io.Discard)
	require.Error(t, err)
	assert.Equal(t, 1, exitCode(err))
	assert.Contains(t, err.Error(), "none.crt")
}

// TestRunServesHTTP2: with a certificate the server speaks HTTP/2, and ten
// streams and their ten POSTs share one connection, every count once. An
// idle stream on it gets heartbeats, and shutdown ends it.
func TestRunServesHTTP2(t *testing.T) {
	certFile, keyFile, err := writeSelfSigned(t.TempDir(), time.Now())
	require.NoError(t, err)
	pemBytes, err := os.ReadFile(certFile)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(pemBytes))
	var dials atomic.Int32
	transport := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := new(net.Dialer).DialContext(ctx, network, addr)
			if err == nil {
				dials.Add(1) // connections made, not polls before the server listened
			}
			return conn, err
		},
	}
	client := &http.Client{Transport: transport}
	t.Cleanup(transport.CloseIdleConnections)

	addr := freeAddr(t)
	base := "https://" + addr
	stop := startRun(t, []string{"-tls-cert", certFile, "-tls-key", keyFile, "-tick", "5ms", "-heartbeat", "20ms"},
		map[string]string{"ADDR": addr}, client, base)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/event/push?id=idle", nil)
	require.NoError(t, err)
	idle, err := client.Do(req)
	require.NoError(t, err)
	defer func() { _ = idle.Body.Close() }()
	idleReader := ssetest.NewReader(idle.Body)

	const streams = 10
	results := make(chan []string, streams)
	for i := range streams {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/event/push?id="+strconv.Itoa(i), nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, 2, resp.ProtoMajor, "HTTP/2")
		assert.Empty(t, resp.Header.Get("Connection"), "no hop-by-hop header over HTTP/2")
		go func() {
			defer func() { _ = resp.Body.Close() }()
			r := ssetest.NewReader(resp.Body)
			var got []string
			for {
				ev, err := r.Next()
				if err != nil {
					results <- append(got, "error: "+err.Error())
					return
				}
				got = append(got, ev.Data)
				if ev.Type == "close" {
					results <- got
					return
				}
			}
		}()
	}
	for i := range streams {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/event/progress",
			strings.NewReader(`{"id":`+strconv.Itoa(i)+`}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
	}
	for range streams {
		got := <-results
		require.Len(t, got, 22, "21 updates and close: %v", got)
		assert.Contains(t, got[0], `"count":0}`)
		assert.Contains(t, got[20], `"count":100}`)
	}
	assert.EqualValues(t, 1, dials.Load(), "every stream and POST on one connection")

	ended := make(chan error, 1)
	go func() {
		_, err := idleReader.Next() // no event comes: it returns when the stream ends
		ended <- err
	}()
	stop() // asserts that run returns nil
	select {
	case err := <-ended:
		assert.Error(t, err, "shutdown ends the idle stream")
	case <-time.After(10 * time.Second):
		t.Fatal("the idle stream outlived the server")
	}
	assert.Positive(t, idleReader.Comments, "heartbeats over HTTP/2")
}

func TestPageURL(t *testing.T) {
	for addr, want := range map[string]string{
		"[::]:3000":      "http://127.0.0.1:3000",
		"0.0.0.0:8080":   "http://127.0.0.1:8080",
		"127.0.0.1:3000": "http://127.0.0.1:3000",
		"10.0.0.5:80":    "http://10.0.0.5:80",
		"[::1]:3000":     "http://[::1]:3000",
	} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		require.NoError(t, err)
		assert.Equal(t, want, pageURL(tcp, false), addr)
	}
}

func TestExitCode(t *testing.T) {
	assert.Equal(t, 0, exitCode(nil))
	assert.Equal(t, 0, exitCode(flag.ErrHelp))
	assert.Equal(t, 1, exitCode(errors.New("listen: address in use")))
	assert.Equal(t, 2, exitCode(&usageError{errors.New("bad flag")}))
}

func TestRunRefusesBadConfigBeforeListening(t *testing.T) {
	err := run(context.Background(), []string{"app", "-step", "3"}, env(nil), io.Discard)
	assert.Equal(t, 2, exitCode(err))
}

// TestRunNeedsItsRedis: with -redis, a Redis that does not answer stops the
// server at start, with an error that names the flag and hides the password.
func TestRunNeedsItsRedis(t *testing.T) {
	var log bytes.Buffer
	url := "redis://user:secret@" + freeAddr(t) + "/0"
	err := run(t.Context(), []string{"app", "-addr", "127.0.0.1:0", "-redis", url}, env(nil), &log)
	require.Error(t, err)
	assert.Equal(t, 1, exitCode(err))
	assert.Contains(t, err.Error(), "-redis")
	assert.Contains(t, err.Error(), "connection refused")
	assert.NotContains(t, err.Error()+log.String(), "secret")
}

// TestRunTwoInstancesOnRedis runs the program twice on one Redis: a run
// started through B reaches the stream held by A.
func TestRunTwoInstancesOnRedis(t *testing.T) {
	redisURL := redistest.Start(t).URL()
	a, b := freeAddr(t), freeAddr(t)
	args := []string{"-tick", "1ms", "-redis", redisURL}
	startRun(t, args, map[string]string{"ADDR": a})
	startRun(t, args, map[string]string{"ADDR": b})

	stream := ssetest.NewReader(openRaw(t, a, "/event/push?id=7"))
	resp, err := http.Post("http://"+b+"/event/progress", "application/json", //nolint:noctx // the client's default will do
		strings.NewReader(`{"id":7}`))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	var got []string
	for {
		ev, err := stream.Next()
		require.NoError(t, err)
		got = append(got, ev.Type)
		if ev.Type == "close" {
			break
		}
	}
	assert.Len(t, got, 22, "21 updates and close, through Redis: %v", got)

	metrics, err := http.Get("http://" + a + "/metrics") //nolint:noctx // short request
	require.NoError(t, err)
	defer func() { _ = metrics.Body.Close() }()
	body, err := io.ReadAll(metrics.Body)
	require.NoError(t, err)
	assert.Contains(t, string(body), "sse_registry_link_up 1\n")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// startRun runs the program, as main does, with args and the environment
// vars (ADDR among them), and waits until it serves: client and base, if
// given, are how to reach it (HTTPS, say). stop cancels it and asserts that
// run returns nil within 10 s; it runs at the test's end if the test has
// not called it.
func startRun(t *testing.T, args []string, vars map[string]string, reach ...any) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"app"}, args...), env(vars), io.Discard) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("run did not return")
		}
	})
	t.Cleanup(stop)
	client, base := http.DefaultClient, "http://"+vars["ADDR"]
	if len(reach) == 2 {
		client, base = reach[0].(*http.Client), reach[1].(string)
	}
	waitHealthyWith(t, client, base)
	return stop
}

// TestRunServesProfilesApart serves -pprof on its own address: the
// profiles are there and not on the public one, and their listener closes
// with the server.
func TestRunServesProfilesApart(t *testing.T) {
	addr, profiles := freeAddr(t), freeAddr(t)
	stop := startRun(t, []string{"-pprof", profiles}, map[string]string{"ADDR": addr})

	for base, want := range map[string]int{"http://" + profiles: http.StatusOK, "http://" + addr: http.StatusNotFound} {
		resp, err := http.Get(base + "/debug/pprof/goroutine?debug=1") //nolint:noctx // short request
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, want, resp.StatusCode, base)
	}

	stop()
	_, err := net.DialTimeout("tcp", profiles, time.Second) //nolint:noctx // a refused dial is the point
	assert.Error(t, err, "the profiles' listener is closed with the server")
}

// TestRunServesMetrics: GET /metrics on the public address, in the
// Prometheus text format, with the Go and process collectors and the
// server's counters; with -metrics, on a listener of its own, and the
// public address answers 404.
func TestRunServesMetrics(t *testing.T) {
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url) //nolint:noctx // short request
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	addr := freeAddr(t)
	stop := startRun(t, nil, map[string]string{"ADDR": addr})
	status, body := get("http://" + addr + "/metrics")
	assert.Equal(t, http.StatusOK, status)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "sse_streams_open 0", "sse_events_sent_total 0",
		`sse_http_requests_total{code="200",route="/healthz"}`} {
		assert.Contains(t, body, name)
	}
	assert.NotContains(t, body, "sse_registry_link_up", "a registry in memory has no link")
	stop()

	addr, apart := freeAddr(t), freeAddr(t)
	stop = startRun(t, []string{"-metrics", apart}, map[string]string{"ADDR": addr})
	status, body = get("http://" + apart + "/metrics")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "sse_streams_open 0")
	status, _ = get("http://" + addr + "/metrics")
	assert.Equal(t, http.StatusNotFound, status, "not on the public address")
	stop()
	_, err := net.DialTimeout("tcp", apart, time.Second) //nolint:noctx // a refused dial is the point
	assert.Error(t, err, "the metrics' listener is closed with the server")
}

// TestRunLogsJSON: -log-format json writes one JSON object a line.
func TestRunLogsJSON(t *testing.T) {
	var log syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"app", "-addr", "127.0.0.1:0", "-log-format", "json"}, env(nil), &log)
	}()
	require.Eventually(t, func() bool { return strings.Contains(log.String(), `"msg":"listening"`) }, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	for line := range strings.SplitSeq(strings.TrimSpace(log.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "%q", line)
		assert.NotEmpty(t, m["msg"])
	}
}

// syncBuffer is a log a test reads while run writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRunServesAndShutsDown starts the program as main does, opens a stream
// and starts a run, then stops it: run returns nil within the shutdown
// deadline and the stream ends without a close event.
func TestRunServesAndShutsDown(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	stop := startRun(t, nil, map[string]string{"ADDR": addr, "TICK": "1h"})

	resp, err := http.Get(base + "/event/push?id=7") //nolint:noctx // ends with the server
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	r := ssetest.NewReader(resp.Body)

	post, err := http.Post(base+"/event/progress", "application/json", strings.NewReader(`{"id":7}`)) //nolint:noctx // short request
	require.NoError(t, err)
	require.NoError(t, post.Body.Close())
	require.Equal(t, http.StatusAccepted, post.StatusCode)
	ev, err := r.Next()
	require.NoError(t, err)
	assert.Equal(t, `{"id":"7","count":0}`, ev.Data)

	start := time.Now()
	stop()
	_, err = r.Next()
	assert.ErrorIs(t, err, io.EOF, "the stream ends, with no close event")
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestSIGTERMWithThousandStreams sends the process a real SIGTERM while
// 1,000 streams are open and their runs going: run returns nil within the
// 5 s shutdown deadline, and every stream ends without a close event, so
// that browsers reconnect (to the next instance, if there is one).
func TestSIGTERMWithThousandStreams(t *testing.T) {
	const streams = 1000
	addr := freeAddr(t)
	// A run lasts 21 ticks, 21 s here: every run is still going when the
	// signal comes, on however slow a machine.
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"app"}, env(map[string]string{"ADDR": addr, "TICK": "1s"}), io.Discard)
	}()
	waitHealthy(t, "http://"+addr)

	// Raw connections: an http.Client would add two goroutines per
	// connection, and the race detector allows only about 8,000.
	type result struct {
		updates int
		last    string
		err     error
	}
	results := make(chan result, streams)
	var started sync.WaitGroup
	started.Add(streams)
	for i := range streams {
		body := openRaw(t, addr, "/event/push?id="+strconv.Itoa(i))
		go func() {
			r := ssetest.NewReader(body)
			var res result
			for {
				ev, err := r.Next()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						res.err = err
					}
					results <- res
					return
				}
				if res.updates == 0 {
					started.Done()
				}
				res.updates++
				res.last = ev.Type
			}
		}()
	}
	for i := range streams {
		post, err := http.Post("http://"+addr+"/event/progress", "application/json", //nolint:noctx // short request
			strings.NewReader(`{"id":`+strconv.Itoa(i)+`}`))
		require.NoError(t, err)
		require.NoError(t, post.Body.Close())
		require.Equal(t, http.StatusAccepted, post.StatusCode)
	}
	started.Wait() // every run has sent an update

	start := time.Now()
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10 s of SIGTERM")
	}
	took := time.Since(start)
	assert.Less(t, took, 5*time.Second, "shutdown takes less than its deadline")
	t.Logf("shutdown with %d streams took %s", streams, took)

	for range streams {
		res := <-results
		assert.NoError(t, res.err)
		assert.Positive(t, res.updates)
		assert.Equal(t, "update", res.last, "the stream ends without a close event")
	}
}

// openRaw sends GET path over a new TCP connection and returns the body of
// a 200 answer. The connection is closed when the test ends.
func openRaw(t *testing.T, addr, path string) io.Reader {
	t.Helper()
	var d net.Dialer
	conn, err := d.DialContext(t.Context(), "tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return resp.Body
}

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	waitHealthyWith(t, http.DefaultClient, base)
}

func waitHealthyWith(t *testing.T, client *http.Client, base string) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := client.Get(base + "/healthz") //nolint:noctx // a poll with the client's default
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 5*time.Second, 10*time.Millisecond)
}

// TestServerLimits sends what never reaches a handler: bytes that are not
// HTTP and headers over MaxHeaderBytes. net/http answers those itself, with
// a plain-text 4xx, and the server goes on serving.
func TestServerLimits(t *testing.T) {
	addr := freeAddr(t)
	startRun(t, nil, map[string]string{"ADDR": addr})

	for name, tc := range map[string]struct {
		request string
		status  int
	}{
		"garbage":                {"\x00\x01\x02 garbage \xff\xfe\r\n\r\n", http.StatusBadRequest},
		"no method":              {" / HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest},
		"bad header line":        {"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", http.StatusBadRequest},
		"HTTP/1.1 without Host":  {"GET / HTTP/1.1\r\n\r\n", http.StatusBadRequest},
		"headers over 64 KiB":    {"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		"request line of 70 KiB": {"GET /event/push?id=" + strings.Repeat("a", 70<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(name, func(t *testing.T) {
			var d net.Dialer
			conn, err := d.DialContext(t.Context(), "tcp", addr)
			require.NoError(t, err)
			defer func() { _ = conn.Close() }()
			require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
			_, err = io.WriteString(conn, tc.request)
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err)
			defer func() { _ = resp.Body.Close() }()
			assert.Equal(t, tc.status, resp.StatusCode)
		})
	}
	waitHealthy(t, "http://"+addr) // the server goes on
}
