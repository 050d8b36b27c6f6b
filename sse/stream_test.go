package sse_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/internal/ssetest"
	"gin-sse-progress/sse"
)

// newServer serves hub's streams from a plain net/http handler, the way a
// project without Gin would use the package.
func newServer(t *testing.T, cfg sse.Config) (*sse.Hub, *httptest.Server) {
	t.Helper()
	hub := sse.NewHub(cfg)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last, err := sse.LastEventID(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		stream, detach, err := hub.Attach(context.Background(), r.URL.Query().Get("id"), last)
		if errors.Is(err, sse.ErrFinished) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		defer detach()
		_ = stream.Serve(r.Context(), w)
	}))
	// Cleanups run last first: the hub ends the streams, then the server
	// closes with no request left open.
	t.Cleanup(srv.Close)
	t.Cleanup(hub.Close)
	return hub, srv
}

func streamConfig() sse.Config {
	return sse.Config{
		Retry:        1500 * time.Millisecond,
		Heartbeat:    time.Minute,
		Grace:        time.Minute,
		MaxStreams:   10,
		WriteTimeout: time.Second,
	}
}

func get(t *testing.T, url string, header http.Header) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

func closeBody(resp *http.Response) { _ = resp.Body.Close() }

// progress sends n updates and a final close, as fast as it can.
func progress(n int) sse.RunFunc {
	return func(_ context.Context, r *sse.Run) {
		for i := range n {
			_ = r.Send("update", string(rune('a'+i)))
		}
		_ = r.Finish("close", "bye")
	}
}

func TestServeWritesHeadersRetryEventsAndEnds(t *testing.T) {
	hub, srv := newServer(t, streamConfig())
	resp := get(t, srv.URL+"?id=a", nil)
	defer closeBody(resp)

	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	assert.Equal(t, "no", resp.Header.Get("X-Accel-Buffering"))
	assert.Empty(t, resp.Header.Get("Content-Encoding"))

	// The retry block arrives before any event exists.
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "retry: 1500\n", line)

	require.NoError(t, hub.Start(context.Background(), "a", progress(3)))
	body, err := io.ReadAll(br) // the stream ends after the final event
	require.NoError(t, err)
	events, _, err := ssetest.Parse(body)
	require.NoError(t, err)
	assert.Equal(t, []ssetest.Event{
		{Type: "update", ID: "1", Data: "a"},
		{Type: "update", ID: "2", Data: "b"},
		{Type: "update", ID: "3", Data: "c"},
		{Type: "close", ID: "4", Data: "bye"},
	}, events)
}

func TestServeResumesFromHeaderOrQuery(t *testing.T) {
	hub, srv := newServer(t, streamConfig())
	first := get(t, srv.URL+"?id=a", nil)
	defer closeBody(first)
	require.Equal(t, http.StatusOK, first.StatusCode)
	require.NoError(t, hub.Start(context.Background(), "a", progress(3)))
	_, err := io.ReadAll(first.Body)
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		query  string
		header http.Header
	}{
		"header":      {"?id=a", http.Header{"Last-Event-Id": {"2"}}},
		"query":       {"?id=a&lastEventId=2", nil},
		"header wins": {"?id=a&lastEventId=1", http.Header{"Last-Event-Id": {"2"}}},
	} {
		t.Run(name, func(t *testing.T) {
			resp := get(t, srv.URL+tc.query, tc.header)
			defer closeBody(resp)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			events, r, err := ssetest.Parse(body)
			require.NoError(t, err)
			assert.Equal(t, int64(1500), r.Retry)
			assert.Equal(t, []ssetest.Event{
				{Type: "update", ID: "3", Data: "c"},
				{Type: "close", ID: "4", Data: "bye"},
			}, events)
		})
	}

	resp := get(t, srv.URL+"?id=a", http.Header{"Last-Event-Id": {"4"}})
	defer closeBody(resp)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode, "nothing after the final event")
}

func TestServeSendsHeartbeatsWhenIdle(t *testing.T) {
	cfg := streamConfig()
	cfg.Heartbeat = 10 * time.Millisecond
	_, srv := newServer(t, cfg)
	resp := get(t, srv.URL+"?id=a", nil)
	defer closeBody(resp)

	br := bufio.NewReader(resp.Body)
	want := []string{"retry: 1500\n", "\n", ": ping\n", "\n", ": ping\n", "\n"}
	for _, w := range want {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, w, line)
	}
}

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
			assert.ErrorIs(t, err, sse.ErrBadLastEventID, "header %q query %q", tc.header, tc.query)
			continue
		}
		assert.NoError(t, err)
		assert.Equal(t, tc.want, got)
	}
}

func TestServeSendsNoHeartbeatWhileBusy(t *testing.T) {
	cfg := streamConfig()
	cfg.Heartbeat = 200 * time.Millisecond
	hub, srv := newServer(t, cfg)
	resp := get(t, srv.URL+"?id=a", nil)
	defer closeBody(resp)

	// Events every 10ms for three heartbeat periods: the stream is never
	// idle for a whole period, so no comment is due.
	require.NoError(t, hub.Start(context.Background(), "a", func(ctx context.Context, r *sse.Run) {
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
	}))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	events, r, err := ssetest.Parse(body)
	require.NoError(t, err)
	assert.Len(t, events, 61)
	assert.Zero(t, r.Comments, "heartbeats on a busy stream")
}
