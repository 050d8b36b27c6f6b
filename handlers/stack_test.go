//go:build !race

// The race detector makes every frame larger, so these measurements are
// made without it: make test runs them in a pass of their own.

package handlers_test

import (
	"bufio"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/sse/ssetest"
)

// TestStreamStackStaysSmall holds open streams over raw connections, so that
// only the server's goroutines are counted, and checks their stacks: a
// stream's connection goroutine fits in 8 KiB. One more frame on the path of
// a stream's first write (the headers) makes every one of them 16 KiB, a
// third more memory per stream; see sse.Stream's loop.
func TestStreamStackStaysSmall(t *testing.T) {
	const streams = 500
	cfg := ssetest.Config()
	cfg.MaxStreams = streams
	s := newServer(t, cfg, time.Hour)
	addr := s.Listener.Addr().String()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range streams {
		conn, err := new(net.Dialer).DialContext(t.Context(), "tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		_, err = conn.Write([]byte("GET /event/push?id=" + strconv.Itoa(i) + " HTTP/1.1\r\nHost: x\r\n\r\n"))
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		// The connection first: closing the body of an open stream would
		// wait for its end.
		t.Cleanup(func() {
			_ = conn.Close()
			_ = resp.Body.Close()
		})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		line := make([]byte, len("retry: 10\n\n"))
		_, err = resp.Body.Read(line) // the first write has been made
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return s.reg.Stats().Streams == streams }, time.Second, time.Millisecond)
	runtime.ReadMemStats(&after)

	// A stream has its connection's goroutine and net/http's background
	// reader, whose stack is the smallest there is.
	perStream := (after.StackInuse - before.StackInuse) / streams
	t.Logf("goroutine stacks: %d bytes per stream", perStream)
	assert.Less(t, perStream, uint64(12<<10), "8 KiB and 2 KiB of stack, not 16 and 2")
}
