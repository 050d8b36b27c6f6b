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

// TestStreamStackStaysSmall holds open streams over raw connections, so that
// only the server's goroutines are counted, and checks their stacks: a
// stream's connection goroutine fits in 8 KiB. One more frame on the path of
// a stream's first write (the headers) makes every one of them 16 KiB, a
// third more memory per stream; see sse.Stream's loop. The server is made
// as main makes it, metrics and all, since each middleware is a frame on
// that path.
//
// The streams are GET streams without a token. A POST stream decodes its
// JSON body, and a token is a JWT to decode, on the stream's goroutine
// before its first write: both go deep enough to grow that goroutine's
// stack to 16 KiB, which it keeps.
func TestStreamStackStaysSmall(t *testing.T) {
	for _, tc := range []struct {
		name    string
		auth    bool
		request func(i int) string
	}{
		{"GET", false, func(i int) string {
			return "GET /event/push?id=" + strconv.Itoa(i) + " HTTP/1.1\r\nHost: x\r\n\r\n"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const streams = 500
			s := stackServer(t, streams, tc.auth)
			addr := s.Listener.Addr().String()

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range streams {
				conn, err := new(net.Dialer).DialContext(t.Context(), "tcp", addr)
				require.NoError(t, err)
				t.Cleanup(func() { _ = conn.Close() })
				_, err = conn.Write([]byte(tc.request(i)))
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
			runtime.ReadMemStats(&after)

			// A stream has its connection's goroutine and net/http's
			// background reader, whose stack is the smallest there is.
			perStream := (after.StackInuse - before.StackInuse) / streams
			t.Logf("goroutine stacks: %d bytes per stream", perStream)
			assert.Less(t, perStream, uint64(12<<10), "8 KiB and 2 KiB of stack, not 16 and 2")
		})
	}
}

// stackServer serves the HTTP surface as main does, with metrics, and
// with a token required if withAuth is set; its runs never tick.
func stackServer(t *testing.T, streams int, withAuth bool) *server {
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
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	t.Cleanup(reg.Close)
	return &server{Server: srv, r: r}
}
