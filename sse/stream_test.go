package sse_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
)

// serving serves the streams of a MemoryRegistry with cfg from a plain
// net/http handler, the way a project without Gin would use the package.
type serving func(t *testing.T, cfg sse.Config) (*sse.MemoryRegistry, *ssetest.Server)

// bothPaths runs test on each of Handoff's paths: streams taken over from
// net/http, and streams on a goroutine of their own.
func bothPaths(t *testing.T, test func(t *testing.T, serve serving)) {
	for _, path := range []struct {
		name      string
		newServer func(testing.TB, sse.Registry) *ssetest.Server
	}{{"TakenOver", ssetest.NewServer}, {"Goroutine", ssetest.NewBlockingServer}} {
		t.Run(path.name, func(t *testing.T) {
			test(t, func(t *testing.T, cfg sse.Config) (*sse.MemoryRegistry, *ssetest.Server) {
				t.Helper()
				reg := sse.NewMemoryRegistry(cfg)
				return reg, path.newServer(t, reg)
			})
		})
	}
}

func readLine(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("read a line: %v", err)
	}
	return line
}

func TestServeWritesHeadersRetryEventsAndEnds(t *testing.T) {
	bothPaths(t, testServeWritesHeadersRetryEventsAndEnds)
}

func testServeWritesHeadersRetryEventsAndEnds(t *testing.T, serveMemory serving) {
	reg, srv := serveMemory(t, ssetest.Config())
	resp := srv.Get(t, "a", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for name, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
		"Content-Encoding":  "",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}

	// The retry block arrives before any event exists.
	br := bufio.NewReader(resp.Body)
	if line := readLine(t, br); !retryLine(line) {
		t.Errorf("first line %q, want a retry: around 1500", line)
	}

	if err := reg.Start(t.Context(), "a", ssetest.Updates(3)); err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(br) // the stream ends after the final event
	if err != nil {
		t.Fatal(err)
	}
	events, _, err := ssetest.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	want := []ssetest.Event{
		{Type: "update", ID: "1", Data: "0"},
		{Type: "update", ID: "2", Data: "1"},
		{Type: "update", ID: "3", Data: "2"},
		{Type: "close", ID: "4", Data: "done"},
	}
	if !reflect.DeepEqual(events, want) {
		t.Errorf("events %+v, want %+v", events, want)
	}
}

// TestServeResumesFromHeaderOrQuery: LastEventID takes the header, or the
// query parameter of the polyfills that cannot set one.
func TestServeResumesFromHeaderOrQuery(t *testing.T) { bothPaths(t, testServeResumesFromHeaderOrQuery) }

func testServeResumesFromHeaderOrQuery(t *testing.T, serveMemory serving) {
	reg, srv := serveMemory(t, ssetest.Config())
	first := srv.Open(t, "a", "")
	if err := reg.Start(t.Context(), "a", ssetest.Updates(3)); err != nil {
		t.Fatal(err)
	}
	first.Rest(t)

	for name, tc := range map[string]struct {
		query  string
		header http.Header
	}{
		"header":      {"?id=a", http.Header{"Last-Event-Id": {"2"}}},
		"query":       {"?id=a&lastEventId=2", nil},
		"header wins": {"?id=a&lastEventId=1", http.Header{"Last-Event-Id": {"2"}}},
	} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+tc.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tc.header
			st := ssetest.NewStream(ssetest.Do(t, srv.Client(), req))
			events := st.Rest(t)
			want := []ssetest.Event{{Type: "update", ID: "3", Data: "2"}, {Type: "close", ID: "4", Data: "done"}}
			if !reflect.DeepEqual(events, want) {
				t.Errorf("events %+v, want %+v", events, want)
			}
			if r := st.Reader().Retry; r < 750 || r >= 2250 {
				t.Errorf("retry %d, want [750, 2250)", r)
			}
		})
	}
}

func TestServeSendsHeartbeatsWhenIdle(t *testing.T) { bothPaths(t, testServeSendsHeartbeatsWhenIdle) }

func testServeSendsHeartbeatsWhenIdle(t *testing.T, serveMemory serving) {
	cfg := ssetest.Config()
	cfg.Heartbeat = 10 * time.Millisecond
	_, srv := serveMemory(t, cfg)
	br := bufio.NewReader(srv.Get(t, "a", "").Body)
	if line := readLine(t, br); !retryLine(line) {
		t.Fatalf("first line %q", line)
	}
	for _, want := range []string{"\n", ": ping\n", "\n", ": ping\n", "\n"} {
		if line := readLine(t, br); line != want {
			t.Fatalf("line %q, want %q", line, want)
		}
	}
}

// retryLine reports whether line is the retry field of ssetest.Config's
// 1500 ms, jittered.
func retryLine(line string) bool {
	ms, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "retry: ")
	n, err := strconv.Atoi(ms)
	return ok && err == nil && n >= 750 && n < 2250
}

// TestServeJittersRetry: each stream's retry is drawn from [retry/2,
// 3·retry/2), so that browsers cut at once do not come back at once.
func TestServeJittersRetry(t *testing.T) { bothPaths(t, testServeJittersRetry) }

func testServeJittersRetry(t *testing.T, serveMemory serving) {
	_, srv := serveMemory(t, ssetest.Config())
	seen := map[int64]bool{}
	for i := range 20 {
		st := srv.Open(t, strconv.Itoa(i), "")
		r := st.Reader()
		// The retry block comes first; reading any event would wait,
		// so the first block is read by hand through the reader.
		if _, _, err := r.NextBlock(); err != nil {
			t.Fatal(err)
		}
		if r.Retry < 750 || r.Retry >= 2250 {
			t.Fatalf("retry %d, want [750, 2250)", r.Retry)
		}
		seen[r.Retry] = true
	}
	if len(seen) < 10 {
		t.Errorf("20 streams sent only %d different retries: %v", len(seen), seen)
	}
	for _, d := range []time.Duration{0, 1, 2 * time.Millisecond, time.Hour} {
		if j := sse.Jitter(d); j < d/2 || (d >= 2 && j >= d*3/2) {
			t.Errorf("Jitter(%s) = %s", d, j)
		}
	}
}

func TestServeSendsNoHeartbeatWhileBusy(t *testing.T) {
	bothPaths(t, testServeSendsNoHeartbeatWhileBusy)
}

func testServeSendsNoHeartbeatWhileBusy(t *testing.T, serveMemory serving) {
	cfg := ssetest.Config()
	cfg.Heartbeat = 200 * time.Millisecond
	reg, srv := serveMemory(t, cfg)
	st := srv.Open(t, "a", "")

	// Events every 10ms for three heartbeat periods: the stream is never
	// idle for a whole period, so no comment is due.
	err := reg.Start(t.Context(), "a", func(ctx context.Context, r *sse.Run) {
		ticker := time.NewTicker(10 * time.Millisecond)
		defer ticker.Stop()
		for range 60 {
			_ = r.Send("update", "x")
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
		_ = r.Finish("close", "")
	})
	if err != nil {
		t.Fatal(err)
	}
	if events := st.Rest(t); len(events) != 61 {
		t.Errorf("%d events, want 61", len(events))
	}
	if n := st.Reader().Comments; n != 0 {
		t.Errorf("%d heartbeats on a busy stream", n)
	}
}

// TestServeEndsWithGap: a stream its registry ends with a gap says why, in
// an event without an id, so the browser keeps its last one.
func TestServeEndsWithGap(t *testing.T) {
	stream := sse.NewStream(ssetest.Config(), emptySource{})
	w := httptest.NewRecorder()
	stream.EndWithGap(sse.ReasonLost)
	stream.End(sse.EndDropped) // the first end wins
	if err := stream.Serve(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	events, r, err := ssetest.Parse(w.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []ssetest.Event{{Type: sse.GapEvent, Data: sse.GapData(sse.ReasonLost, 0)}}
	if !reflect.DeepEqual(events, want) || r.LastEventID != "" {
		t.Errorf("events %+v, last id %q; want %+v and none", events, r.LastEventID, want)
	}
	if why := stream.Ended(); why != sse.EndLost {
		t.Errorf("ended for %q, want %q", why, sse.EndLost)
	}
}

// emptySource is the source of a stream that has no events.
type emptySource struct{}

func (emptySource) Next() (uint64, []sse.Entry, bool) { return 0, nil, false }
func (emptySource) Delivered(uint64)                  {}

func TestLastEventID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header, query string
		want          uint64
		wantErr       bool
	}{
		{"", "", 0, false},
		{"17", "", 17, false},
		{"", "17", 17, false},
		{"9007199254740991", "", 1<<53 - 1, false},
		{"9007199254740992", "", 0, true},
		{"-1", "", 0, true},
		{"abc", "", 0, true},
		{"", "1.5", 0, true},
	}
	for _, tc := range tests {
		r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/?lastEventId="+tc.query, nil)
		if tc.header != "" {
			r.Header.Set("Last-Event-ID", tc.header)
		}
		got, err := sse.LastEventID(r)
		if tc.wantErr {
			if !errors.Is(err, sse.ErrBadLastEventID) {
				t.Errorf("header %q query %q: %v, want ErrBadLastEventID", tc.header, tc.query, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("header %q query %q: %d, %v; want %d", tc.header, tc.query, got, err, tc.want)
		}
	}
}

// TestStreamSaysWhyItEnded serves a MemoryRegistry's streams and ends them
// each way there is: Ended names each, on both of Handoff's paths.
func TestStreamSaysWhyItEnded(t *testing.T) {
	for _, path := range []struct {
		name string
		wrap func(http.Handler) http.Handler
	}{{"TakenOver", func(h http.Handler) http.Handler { return h }}, {"Goroutine", ssetest.NoHijack}} {
		t.Run(path.name, func(t *testing.T) { testStreamSaysWhyItEnded(t, path.wrap) })
	}
}

func testStreamSaysWhyItEnded(t *testing.T, wrap func(http.Handler) http.Handler) {
	cfg := ssetest.Config()
	cfg.Heartbeat = 50 * time.Millisecond // how a taken-over stream hears its client leave
	reg := sse.NewMemoryRegistry(cfg)
	ended := make(chan sse.EndReason, 1)
	srv := httptest.NewServer(wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last, _ := sse.LastEventID(r)
		stream, detach, err := reg.Attach(r.Context(), r.URL.Query().Get("id"), last)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		var until time.Time
		if r.URL.Query().Has("until") {
			until = time.Now().Add(100 * time.Millisecond)
		}
		stream.Handoff(w, r, until, func(error) {
			detach()
			ended <- stream.Ended()
		})
	})))
	defer srv.Close()
	defer reg.Close()
	open := func(id string) *ssetest.Stream {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"?id="+id, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ssetest.NewStream(ssetest.Do(t, srv.Client(), req))
	}
	want := func(why sse.EndReason) {
		t.Helper()
		select {
		case got := <-ended:
			if got != why {
				t.Errorf("ended for %q, want %q", got, why)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no stream ended; want one ended for %q", why)
		}
	}

	open("u&until=1").Rest(t)
	want(sse.EndExpired)

	st := open("a")
	if err := reg.Start(t.Context(), "a", ssetest.Updates(2)); err != nil {
		t.Fatal(err)
	}
	st.Rest(t)
	want(sse.EndClose)

	open("b").Drop()
	want(sse.EndClientLeft)

	open("c")
	open("c")
	want(sse.EndReplaced)
	if err := reg.Drop(t.Context(), "c"); err != nil {
		t.Fatal(err)
	}
	want(sse.EndDropped)

	open("d")
	if err := reg.Remove(t.Context(), "d"); err != nil {
		t.Fatal(err)
	}
	want(sse.EndRemoved)

	open("e")
	reg.Close()
	want(sse.EndShutdown)
}

// TestOnWriteCountsEvents: Config.OnWrite hears of every event written.
func TestOnWriteCountsEvents(t *testing.T) {
	var written atomic.Int64
	cfg := ssetest.Config()
	cfg.OnWrite = func(n int) { written.Add(int64(n)) }
	reg := sse.NewMemoryRegistry(cfg)
	srv := ssetest.NewServer(t, reg)
	st := srv.Open(t, "a", "")
	if err := reg.Start(t.Context(), "a", ssetest.Updates(20)); err != nil {
		t.Fatal(err)
	}
	st.Rest(t)
	if n := written.Load(); n != 21 {
		t.Errorf("OnWrite counted %d events, want 21", n)
	}
}

// TestWritesLongAfterTheDeadline: a write's deadline bounds that write
// only; a stream that has been open for many of them still gets its
// events.
func TestWritesLongAfterTheDeadline(t *testing.T) { bothPaths(t, testWritesLongAfterTheDeadline) }

func testWritesLongAfterTheDeadline(t *testing.T, serveMemory serving) {
	cfg := ssetest.Config()
	cfg.WriteTimeout = 50 * time.Millisecond
	cfg.Heartbeat = 20 * time.Millisecond
	reg, srv := serveMemory(t, cfg)
	st := srv.Open(t, "a", "")
	time.Sleep(5 * cfg.WriteTimeout) // heartbeats meanwhile, each with its deadline
	if err := reg.Start(t.Context(), "a", ssetest.Updates(5)); err != nil {
		t.Fatal(err)
	}
	if events := st.Rest(t); len(events) != 6 || events[5].Type != "close" {
		t.Errorf("events %+v, want 5 updates and a close", events)
	}
}
