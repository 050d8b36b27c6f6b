package sse_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
)

// TestStuckClientsDelayNoOne holds clients that never read while their runs
// publish far more than the socket buffers hold, so their streams block in
// Write. Meanwhile 100 ordinary clients get every event of their runs, and
// are all done while the stuck streams are still blocked. Then the write
// deadline drops the stuck streams; their clients and events stay for the
// grace period, and a reconnect with Last-Event-ID resumes.
func TestStuckClientsDelayNoOne(t *testing.T) { bothPaths(t, testStuckClientsDelayNoOne) }

func testStuckClientsDelayNoOne(t *testing.T, serveMemory serving) {
	const (
		stuck   = 4
		normal  = 100
		updates = 20
		floods  = 256 // events of 64 KiB each: 16 MiB per stuck client
	)
	cfg := ssetest.Config()
	cfg.MaxStreams = stuck + normal
	cfg.WriteTimeout = 3 * time.Second
	reg, srv := serveMemory(t, cfg)

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
	eventually(t, "the stuck streams are open", func() bool { return reg.Stats().Streams == stuck })
	for i := range stuck {
		if err := reg.Start(t.Context(), fmt.Sprintf("stuck-%d", i), flood); err != nil {
			t.Fatal(err)
		}
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
		st := srv.Open(t, fmt.Sprintf("normal-%d", i), "")
		if err := reg.Start(t.Context(), fmt.Sprintf("normal-%d", i), tick); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			r := st.Reader()
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

	if n := reg.Stats().Streams; n != stuck {
		t.Errorf("%d streams open after the ordinary runs, want the %d stuck ones still blocked", n, stuck)
	}
	for i, events := range got {
		if len(events) != updates+1 {
			t.Fatalf("client %d got %d events, want %d", i, len(events), updates+1)
		}
		for n, ev := range events[:updates] {
			if ev.Data != strconv.Itoa(n) {
				t.Fatalf("client %d: event %d is %+v, out of order", i, n, ev)
			}
		}
		if events[updates].Type != "close" {
			t.Errorf("client %d: last event %+v", i, events[updates])
		}
	}

	// The write deadline drops the stuck streams; their clients stay.
	eventually(t, "the write deadline drops a client that stops reading", func() bool { return reg.Stats().Streams == 0 })
	if n := reg.Stats().Clients; n != stuck+normal {
		t.Errorf("%d clients, want %d: dropped clients are kept for the grace period", n, stuck+normal)
	}

	// A stuck client that comes back resumes after the last id it saw.
	const last = floods - 3
	st := srv.Open(t, "stuck-0", strconv.Itoa(last))
	for want := last + 1; want <= floods; want++ {
		if ev := st.Next(t); ev.ID != strconv.Itoa(want) {
			t.Fatalf("event %+v, want id %d", ev, want)
		}
	}
	if ev := st.Next(t); ev.Type != "close" {
		t.Errorf("event %+v, want close", ev)
	}
}

// eventually polls cond until it holds, for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// neverRead opens a stream for id over a raw TCP connection with a small
// receive buffer, and never reads from it. The connection is closed when the
// test ends.
func neverRead(t *testing.T, addr, id string) {
	t.Helper()
	var d net.Dialer
	conn, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(conn, "GET /?id=%s HTTP/1.1\r\nHost: test\r\n\r\n", id); err != nil {
		t.Fatal(err)
	}
}
