//go:build !race

// The race detector makes every frame larger, so these measurements are
// made without it: make test runs them in a pass of their own.

package handlers_test

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/auth"
	"gin-sse-progress/handlers"
	"gin-sse-progress/job"
	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
)

// TestIdleStreamsHoldNoGoroutine holds open streams over raw connections,
// so that only the server's goroutines are counted, and checks what each
// costs once it is idle. Taken over from net/http (HTTP/1.1), a stream
// holds no goroutine and no stack: a GET stream, one with a token, and a
// POST stream (whose run, which never ticks here, is the one goroutine it
// has). On the goroutine path (HTTP/2; here, writers that cannot Hijack)
// a stream's goroutine fits in 8 KiB: one more frame on the path of its
// first write makes every one 16 KiB; see sse.Stream's writeLoop. The
// server is made as main makes it, metrics and all, since each middleware
// is a frame on that path.
func TestIdleStreamsHoldNoGoroutine(t *testing.T) {
	const streams = 500
	get := func(i int, _ string) string {
		return "GET /event/push?id=" + strconv.Itoa(i) + " HTTP/1.1\r\nHost: x\r\n\r\n"
	}
	withToken := func(i int, tok string) string {
		return "GET /event/push?id=" + strconv.Itoa(i) + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
	}
	post := func(i int, _ string) string {
		body := `{"id":"` + strconv.Itoa(i) + `"}`
		return "POST /event/progress HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	for _, tc := range []struct {
		name        string
		auth        bool
		noHijack    bool
		request     func(i int, token string) string
		goroutines  int    // most per stream
		stackBudget uint64 // most stack bytes per stream
	}{
		{"GET", false, false, get, 0, 512},
		{"GET with a token", true, false, withToken, 0, 512},
		{"POST stream", false, false, post, 1, 16 << 10}, // its run's goroutine
		{"GET on the goroutine path", false, true, get, 2, 12 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := stackServer(t, streams, tc.auth, tc.noHijack)
			addr := s.Listener.Addr().String()
			tok := ""
			if tc.auth {
				tok = token(t, "alice", time.Hour)
			}

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			goroutines := runtime.NumGoroutine()
			for i := range streams {
				conn, err := new(net.Dialer).DialContext(t.Context(), "tcp", addr)
				require.NoError(t, err)
				t.Cleanup(func() { _ = conn.Close() })
				_, err = conn.Write([]byte(tc.request(i, tok)))
				require.NoError(t, err)
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				require.NoError(t, err)
				// The connection first: closing the body of an open stream
				// would wait for its end.
				t.Cleanup(func() {
					_ = conn.Close()
					_ = resp.Body.Close()
				})
				require.Equal(t, http.StatusOK, resp.StatusCode)
				line := make([]byte, len("retry: 10\n\n"))
				_, err = resp.Body.Read(line) // the first write has been made
				require.NoError(t, err)
			}
			require.Eventually(t, func() bool {
				return strings.Contains(s.scrape(t), "sse_streams_open "+strconv.Itoa(streams)+"\n")
			}, time.Second, time.Millisecond)
			// The handlers of the streams taken over return just after
			// their first write.
			var g int
			require.Eventually(t, func() bool {
				g = runtime.NumGoroutine() - goroutines
				return g <= tc.goroutines*streams+10
			}, 5*time.Second, 10*time.Millisecond, "goroutines for %d streams", streams)
			runtime.GC()
			runtime.ReadMemStats(&after)

			perStream := (int64(after.StackInuse) - int64(before.StackInuse)) / streams
			heap := (int64(after.HeapInuse) - int64(before.HeapInuse)) / streams
			t.Logf("%d streams: %d goroutines more; per stream %d bytes of stack, %d of heap in use", streams, g, perStream, heap)
			assert.Less(t, perStream, int64(tc.stackBudget))
		})
	}
}

// stackServer serves the HTTP surface as main does, with metrics, and
// with a token required if withAuth is set, and through writers that
// cannot Hijack if noHijack is; its runs never tick.
func stackServer(t *testing.T, streams int, withAuth, noHijack bool) *server {
	t.Helper()
	cfg := ssetest.Config()
	cfg.MaxStreams = streams
	metrics := prometheus.NewRegistry()
	m := handlers.NewMetrics(metrics)
	cfg.OnWrite = m.EventsSent
	reg := sse.NewMemoryRegistry(cfg)
	opts := handlers.Options{
		Job:                  job.Progress{Tick: time.Hour, Step: 5}.Run,
		Retry:                cfg.Retry,
		Metrics:              m,
		MetricsHandler:       promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}),
		MaxStreamsPerSubject: streams,
	}
	if withAuth {
		v, err := auth.NewVerifier(testSecret, auth.MaxLeeway)
		require.NoError(t, err)
		opts.Auth = v
	}
	r := handlers.New(slog.New(slog.NewTextHandler(io.Discard, nil)), reg, opts)
	var h http.Handler = r
	if noHijack {
		h = ssetest.NoHijack(r)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(reg.Close)
	return &server{Server: srv, r: r}
}
