package sse_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/internal/ssetest"
	"gin-sse-progress/sse"
)

// TestStuckClientsDelayNoOne holds clients that never read while their runs
// publish far more than the socket buffers hold, so their streams block in
// Write. Meanwhile 100 ordinary clients get every event of their runs, and
// are all done while the stuck streams are still blocked. Then the write
// deadline cuts the stuck streams; their clients and events stay for the
// grace period, and a reconnect with Last-Event-ID resumes.
func TestStuckClientsDelayNoOne(t *testing.T) {
	const (
		stuck   = 4
		normal  = 100
		updates = 20
		floods  = 256 // events of 64 KiB each: 16 MiB per stuck client
	)
	cfg := streamConfig()
	cfg.MaxStreams = stuck + normal
	cfg.WriteTimeout = 3 * time.Second
	hub, srv := newServer(t, cfg)

	// The events share one string, so the logs hold 16 MiB each at almost
	// no cost.
	big := strings.Repeat("x", 64<<10)
	flood := func(_ context.Context, r *sse.Run) {
		for range floods {
			_ = r.Send("big", big)
		}
		_ = r.Finish("close", "")
	}
	for i := range stuck {
		neverRead(t, srv.Listener.Addr().String(), fmt.Sprintf("stuck-%d", i))
	}
	require.Eventually(t, func() bool { return hub.Stats().Streams == stuck }, 5*time.Second, time.Millisecond)
	for i := range stuck {
		require.NoError(t, hub.Start(context.Background(), fmt.Sprintf("stuck-%d", i), flood))
	}

	// The ordinary clients, each with a run of its own that ticks every
	// millisecond.
	tick := func(ctx context.Context, r *sse.Run) {
		ticker := time.NewTicker(time.Millisecond)
		defer ticker.Stop()
		for i := range updates {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			_ = r.Send("update", strconv.Itoa(i))
		}
		_ = r.Finish("close", "")
	}
	got := make([][]ssetest.Event, normal)
	var wg sync.WaitGroup
	for i := range normal {
		resp := get(t, fmt.Sprintf("%s?id=normal-%d", srv.URL, i), nil)
		defer closeBody(resp)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, hub.Start(context.Background(), fmt.Sprintf("normal-%d", i), tick))
		wg.Go(func() {
			r := ssetest.NewReader(resp.Body)
			for {
				ev, err := r.Next()
				if err != nil {
					return // EOF after the close event
				}
				got[i] = append(got[i], ev)
			}
		})
	}
	wg.Wait()

	assert.Equal(t, stuck, hub.Stats().Streams,
		"every ordinary run was done while the stuck streams were still blocked")
	for i, events := range got {
		require.Len(t, events, updates+1, "client %d gets every event", i)
		for n, ev := range events[:updates] {
			assert.Equal(t, strconv.Itoa(n), ev.Data, "client %d, in order", i)
		}
		assert.Equal(t, "close", events[updates].Type)
	}

	// The write deadline cuts the stuck streams; their clients stay.
	require.Eventually(t, func() bool { return hub.Stats().Streams == 0 }, 10*time.Second, 10*time.Millisecond,
		"the write deadline cuts a client that stops reading")
	assert.Equal(t, stuck+normal, hub.Stats().Clients, "cut clients are kept for the grace period")

	// A stuck client that comes back resumes after the last id it saw.
	const last = floods - 3
	resp := get(t, srv.URL+"?id=stuck-0", http.Header{"Last-Event-Id": {strconv.Itoa(last)}})
	defer closeBody(resp)
	r := ssetest.NewReader(resp.Body)
	for want := last + 1; want <= floods; want++ {
		ev, err := r.Next()
		require.NoError(t, err)
		require.Equal(t, strconv.Itoa(want), ev.ID)
	}
	ev, err := r.Next()
	require.NoError(t, err)
	assert.Equal(t, "close", ev.Type)
}

// neverRead opens a stream for id over a raw TCP connection with a small
// receive buffer, and never reads from it. The connection is closed when the
// test ends.
func neverRead(t *testing.T, addr, id string) {
	t.Helper()
	var d net.Dialer
	conn, err := d.DialContext(t.Context(), "tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(4096))
	_, err = fmt.Fprintf(conn, "GET /?id=%s HTTP/1.1\r\nHost: test\r\n\r\n", id)
	require.NoError(t, err)
}
