package handlers_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"gin-sse-progress/handlers"
	"gin-sse-progress/job"
	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}

// server is the whole HTTP surface on a real listener, with a short tick,
// on the in-memory registry: the registry's own rules are checked, for
// every registry, by ssetest.TestRegistry.
type server struct {
	*httptest.Server
	reg *sse.MemoryRegistry
	r   *gin.Engine
}

func newServer(t testing.TB, cfg sse.Config, tick time.Duration, allowOrigins ...string) *server {
	t.Helper()
	reg := sse.NewMemoryRegistry(cfg)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := handlers.New(logger, reg, handlers.Options{
		Job:          progressJob(t, tick),
		Retry:        cfg.Retry,
		AllowOrigins: allowOrigins,
	})
	srv := httptest.NewServer(r)
	// Last registered, first run: the registry ends the streams, so the
	// server's Close has no open request to wait for.
	t.Cleanup(srv.Close)
	t.Cleanup(reg.Close)
	return &server{Server: srv, reg: reg, r: r}
}

// progressJob is the demo's job, its runs on a schedule as in main. Call it
// before the registry's Close is registered as a cleanup: the schedule
// closes after the registry.
func progressJob(t testing.TB, tick time.Duration) func(id string) sse.RunFunc {
	s := sse.NewSchedule()
	t.Cleanup(s.Close)
	return job.Progress{Tick: tick, Step: 5, Schedule: s}.Run
}

// reply is a whole response, its body read.
type reply struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// do sends a request that is expected to end, and reads the whole reply.
func (s *server) do(t *testing.T, method, path string, body io.Reader, header http.Header) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, body)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{StatusCode: resp.StatusCode, Header: resp.Header, Body: b}
}

// stream is an open event stream, read as a browser would.
type stream struct {
	*ssetest.Stream
	resp *http.Response
}

// open opens a stream and checks it was accepted. extra is added to the
// query string.
func (s *server) open(t *testing.T, id, extra string, header http.Header) *stream {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
		s.URL+"/event/push?id="+url.QueryEscape(id)+extra, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp := ssetest.Do(t, s.Client(), req)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return &stream{Stream: ssetest.NewStream(resp), resp: resp}
}

func (s *server) start(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	resp := s.do(t, http.MethodPost, "/event/progress", strings.NewReader(body), jsonHeader())
	return resp.StatusCode, decode(t, resp)
}

// jsonHeader is the header of a JSON request body.
func jsonHeader() http.Header {
	return http.Header{"Content-Type": {"application/json"}}
}

func decode(t *testing.T, r reply) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), "body must be JSON: %q", r.Body)
	return m
}

// counts extracts the counts of update events for client id, and checks
// every event's data names that client.
func counts(t *testing.T, id string, events []ssetest.Event) []int {
	t.Helper()
	var out []int
	for _, ev := range events {
		if ev.Type != "update" {
			continue
		}
		var d struct {
			ID    string `json:"id"`
			Count int    `json:"count"`
		}
		require.NoError(t, json.Unmarshal([]byte(ev.Data), &d))
		require.Equal(t, id, d.ID)
		out = append(out, d.Count)
	}
	return out
}

func fullRun() []int {
	var out []int
	for n := 0; n <= 100; n += 5 {
		out = append(out, n)
	}
	return out
}

func TestWholeRun(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Millisecond)
	st := s.open(t, "42", "", nil)

	status, body := s.start(t, `{"id":"42"}`)
	require.Equal(t, http.StatusAccepted, status)
	assert.Equal(t, "42", body["id"])

	events := st.Rest(t)
	require.Len(t, events, 22)
	for i, ev := range events[:21] {
		assert.Equal(t, "update", ev.Type)
		assert.Equal(t, fmt.Sprint(i+1), ev.ID)
		assert.Equal(t, fmt.Sprintf(`{"id":"42","count":%d}`, 5*i), ev.Data)
	}
	assert.Equal(t, ssetest.Event{Type: "close", ID: "22", Data: `{"id":"42","done":true}`}, events[21])
	mean := ssetest.Config().Retry.Milliseconds()
	assert.GreaterOrEqual(t, st.Reader().Retry, mean/2, "retry: around its mean")
	assert.Less(t, st.Reader().Retry, mean*3/2)
}

func TestNumberIDNamesTheSameClient(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Millisecond)
	st := s.open(t, "1700000000000", "", nil)
	status, body := s.start(t, `{"id": 1700000000000}`)
	require.Equal(t, http.StatusAccepted, status, body)
	assert.Equal(t, fullRun(), counts(t, "1700000000000", st.Rest(t)))
}

func TestStreamHeaders(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Millisecond)
	st := s.open(t, "a", "", http.Header{"Accept-Encoding": {"gzip"}})
	h := st.resp.Header
	assert.Equal(t, "text/event-stream", h.Get("Content-Type"))
	assert.Equal(t, "no-cache", h.Get("Cache-Control"))
	assert.Equal(t, "no", h.Get("X-Accel-Buffering"))
	assert.Empty(t, h.Get("Content-Encoding"))
	assert.True(t, st.resp.Close, "taken over from net/http, the connection closes with the stream: Connection: close")
	assert.Equal(t, []string{"chunked"}, st.resp.TransferEncoding, "chunked once")
}

func TestSecondPostConflicts(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Hour)
	s.open(t, "a", "", nil)
	status, _ := s.start(t, `{"id":"a"}`)
	require.Equal(t, http.StatusAccepted, status)
	status, body := s.start(t, `{"id":"a"}`)
	assert.Equal(t, http.StatusConflict, status)
	assert.NotEmpty(t, body["error"])
}

func TestTwoClientsAreIsolated(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Millisecond)
	streamA := s.open(t, "a", "", nil)
	streamB := s.open(t, "b", "", nil)
	for _, id := range []string{"a", "b"} {
		status, _ := s.start(t, fmt.Sprintf(`{"id":%q}`, id))
		require.Equal(t, http.StatusAccepted, status)
	}
	assert.Equal(t, fullRun(), counts(t, "a", streamA.Rest(t)))
	assert.Equal(t, fullRun(), counts(t, "b", streamB.Rest(t)))
}

func TestRemoveEndsStreamAndRun(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Hour)
	st := s.open(t, "a", "", nil)
	status, _ := s.start(t, `{"id":"a"}`)
	require.Equal(t, http.StatusAccepted, status)
	assert.Equal(t, "update", st.Next(t).Type)

	resp := s.do(t, http.MethodGet, "/event/remove?id=a", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "a", decode(t, resp)["id"])
	assert.Empty(t, st.Rest(t), "the stream ends without a close event")
	require.Eventually(t, func() bool { return s.reg.Stats() == sse.Stats{} }, time.Second, time.Millisecond)

	resp = s.do(t, http.MethodGet, "/event/remove?id=a", nil, nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.NotEmpty(t, decode(t, resp)["error"])
	status, _ = s.start(t, `{"id":"a"}`)
	assert.Equal(t, http.StatusNotFound, status)
}

func TestSecondStreamReplacesFirst(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Millisecond)
	first := s.open(t, "a", "", nil)
	second := s.open(t, "a", "", nil)
	assert.Empty(t, first.Rest(t), "the older stream ends")

	status, _ := s.start(t, `{"id":"a"}`)
	require.Equal(t, http.StatusAccepted, status)
	assert.Equal(t, fullRun(), counts(t, "a", second.Rest(t)))
}

// TestResumeAfterDroppedConnection drops the connection mid-run, again and again, and
// reconnects the way each kind of client does: every count arrives exactly
// once, in order.
func TestResumeAfterDroppedConnection(t *testing.T) {
	for name, reconnect := range map[string]func(lastID string) (string, http.Header){
		"Last-Event-ID header": func(lastID string) (string, http.Header) {
			return "", http.Header{"Last-Event-Id": {lastID}}
		},
		"lastEventId query": func(lastID string) (string, http.Header) {
			return "&lastEventId=" + lastID, nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := newServer(t, ssetest.Config(), 2*time.Millisecond)
			st := s.open(t, "a", "", nil)
			status, _ := s.start(t, `{"id":"a"}`)
			require.Equal(t, http.StatusAccepted, status)

			var events []ssetest.Event
			for drops := 0; drops < 5; drops++ {
				for range 3 {
					events = append(events, st.Next(t))
				}
				st.Drop()
				extra, header := reconnect(st.LastEventID())
				st = s.open(t, "a", extra, header)
			}
			events = append(events, st.Rest(t)...)

			assert.Equal(t, fullRun(), counts(t, "a", events))
			assert.Equal(t, "close", events[len(events)-1].Type)
			for i, ev := range events {
				assert.Equal(t, fmt.Sprint(i+1), ev.ID, "ids increase by one")
			}
		})
	}
}

// TestDropResumes drops the stream from the server's side, as the page's
// "Drop the connection" button does: the stream ends without a close event,
// the client keeps its run, and a reconnect with Last-Event-ID resumes it.
func TestDropResumes(t *testing.T) {
	s := newServer(t, ssetest.Config(), 2*time.Millisecond)
	st := s.open(t, "a", "", nil)
	status, _ := s.start(t, `{"id":"a"}`)
	require.Equal(t, http.StatusAccepted, status)
	events := []ssetest.Event{st.Next(t), st.Next(t)}

	resp := s.do(t, http.MethodPost, "/event/drop?id=a", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "dropped", decode(t, resp)["status"])
	rest := st.Rest(t)
	for _, ev := range rest {
		assert.NotEqual(t, "close", ev.Type, "a dropped stream ends without close")
	}
	events = append(events, rest...)

	// Until the browser is back, there is no stream to drop.
	require.Eventually(t, func() bool { return s.reg.Stats().Streams == 0 }, time.Second, time.Millisecond)
	resp = s.do(t, http.MethodPost, "/event/drop?id=a", nil, nil)
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	assert.NotEmpty(t, decode(t, resp)["error"])

	st = s.open(t, "a", "", http.Header{"Last-Event-Id": {st.LastEventID()}})
	events = append(events, st.Rest(t)...)
	assert.Equal(t, fullRun(), counts(t, "a", events))
	assert.Equal(t, "close", events[len(events)-1].Type)
}

func TestReconnectAfterCloseIsNoContent(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Millisecond)
	st := s.open(t, "a", "", nil)
	status, _ := s.start(t, `{"id":"a"}`)
	require.Equal(t, http.StatusAccepted, status)
	events := st.Rest(t)
	require.Equal(t, "close", events[len(events)-1].Type)

	for _, tc := range []struct {
		extra  string
		header http.Header
	}{
		{"", http.Header{"Last-Event-Id": {st.LastEventID()}}},
		{"&lastEventId=" + st.LastEventID(), nil},
	} {
		resp := s.do(t, http.MethodGet, "/event/push?id=a"+tc.extra, nil, tc.header)
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	}

	// A fresh EventSource (no Last-Event-ID) gets a live stream for the
	// next run, not a replay of the one it has seen.
	next := s.open(t, "a", "", nil)
	status, _ = s.start(t, `{"id":"a"}`)
	require.Equal(t, http.StatusAccepted, status)
	again := next.Rest(t)
	assert.Equal(t, fullRun(), counts(t, "a", again))
	assert.Equal(t, "23", again[0].ID, "ids go on increasing across runs")
}

func TestTooManyStreams(t *testing.T) {
	cfg := ssetest.Config()
	cfg.MaxStreams = 1
	s := newServer(t, cfg, time.Hour)
	s.open(t, "a", "", nil)

	resp := s.do(t, http.MethodGet, "/event/push?id=b", nil, nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.NotEmpty(t, decode(t, resp)["error"])

	a := s.open(t, "a", "", nil) // a replacement is let in
	a.Drop()
	require.Eventually(t, func() bool { return s.reg.Stats().Streams == 0 }, time.Second, time.Millisecond,
		"a stream that ends frees its place")
	s.open(t, "b", "", nil)
}

func TestPageAndHealth(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Hour)

	resp := s.do(t, http.MethodGet, "/", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	page := resp.Body
	assert.Contains(t, string(page), `id="sse"`)
	assert.Contains(t, string(page), `class="progress"`)
	assert.Contains(t, string(page), `<progress`)

	for path, ctype := range map[string]string{
		"/app.js":      "javascript",
		"/style.css":   "text/css",
		"/favicon.svg": "image/svg+xml",
	} {
		resp := s.do(t, http.MethodGet, path, nil, nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Contains(t, resp.Header.Get("Content-Type"), ctype, path)
	}

	resp = s.do(t, http.MethodGet, "/healthz", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok", decode(t, resp)["status"])

	resp = s.do(t, http.MethodGet, "/auth/session", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, map[string]any{"auth": "off"}, decode(t, resp), "no token is needed")
}

// TestPageIsGzippedStreamsAreNot: the page and its files are compressed for
// a client that accepts gzip; a stream never is, whatever the client
// accepts, because a compressor holds events back.
func TestPageIsGzippedStreamsAreNot(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Hour)
	gz := http.Header{"Accept-Encoding": {"gzip"}}

	for _, path := range []string{"/", "/app.js", "/style.css", "/favicon.svg"} {
		plain := s.do(t, http.MethodGet, path, nil, nil)
		require.Equal(t, http.StatusOK, plain.StatusCode, path)
		assert.Empty(t, plain.Header.Get("Content-Encoding"), path)

		resp := s.do(t, http.MethodGet, path, nil, gz)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, "gzip", resp.Header.Get("Content-Encoding"), path)
		assert.Contains(t, resp.Header.Values("Vary"), "Accept-Encoding", path)
		zr, err := gzip.NewReader(bytes.NewReader(resp.Body))
		require.NoError(t, err, path)
		body, err := io.ReadAll(zr)
		require.NoError(t, err, path)
		assert.Equal(t, plain.Body, body, "%s decompresses to the file", path)
		assert.Less(t, len(resp.Body), len(plain.Body), path)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/event/push?id=a", nil)
	require.NoError(t, err)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	assert.Empty(t, resp.Header.Get("Content-Encoding"))
	first := make([]byte, len("retry:"))
	_, err = io.ReadFull(resp.Body, first)
	require.NoError(t, err)
	assert.Equal(t, "retry:", string(first), "the stream's bytes are plain text")

	// Errors and the API stay plain too.
	assert.Empty(t, s.do(t, http.MethodGet, "/nope", nil, gz).Header.Get("Content-Encoding"))
	assert.Empty(t, s.do(t, http.MethodGet, "/healthz", nil, gz).Header.Get("Content-Encoding"))
}

func TestCORS(t *testing.T) {
	const app, other = "https://app.example", "https://evil.example"
	s := newServer(t, ssetest.Config(), time.Hour, app)
	s.open(t, "a", "", nil)

	preflight := func(origin string) reply {
		return s.do(t, http.MethodOptions, "/event/progress", nil, http.Header{
			"Origin":                         {origin},
			"Access-Control-Request-Method":  {"POST"},
			"Access-Control-Request-Headers": {"content-type"},
		})
	}

	t.Run("preflight from an allowed origin", func(t *testing.T) {
		resp := preflight(app)
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
		assert.Equal(t, app, resp.Header.Get("Access-Control-Allow-Origin"))
		assert.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
		assert.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
		assert.Contains(t, strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "content-type")
		assert.Contains(t, resp.Header.Values("Vary"), "Origin")
		assert.Equal(t, 0, s.reg.Stats().Runs, "a preflight starts nothing")
	})

	t.Run("requests from an allowed origin", func(t *testing.T) {
		header := http.Header{"Origin": {app}, "Content-Type": {"application/json; charset=utf-8"}}
		resp := s.do(t, http.MethodPost, "/event/progress", strings.NewReader(`{"id":"a"}`), header)
		assert.Equal(t, http.StatusAccepted, resp.StatusCode)
		assert.Equal(t, app, resp.Header.Get("Access-Control-Allow-Origin"))
		assert.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))

		st := s.open(t, "b", "", http.Header{"Origin": {app}})
		assert.Equal(t, app, st.resp.Header.Get("Access-Control-Allow-Origin"), "a credentialed EventSource")
		assert.Equal(t, "true", st.resp.Header.Get("Access-Control-Allow-Credentials"))
	})

	t.Run("preflight from another origin", func(t *testing.T) {
		resp := preflight(other)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.NotEmpty(t, decode(t, resp)["error"])
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	})

	t.Run("requests from another origin get no CORS headers", func(t *testing.T) {
		resp := s.do(t, http.MethodGet, "/healthz", nil, http.Header{"Origin": {other}})
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Credentials"))
	})

	t.Run("never a wildcard", func(t *testing.T) {
		for _, origin := range []string{app, other, "null", "*"} {
			resp := s.do(t, http.MethodGet, "/healthz", nil, http.Header{"Origin": {origin}})
			assert.NotEqual(t, "*", resp.Header.Get("Access-Control-Allow-Origin"), origin)
		}
	})

	t.Run("same-origin only by default", func(t *testing.T) {
		plain := newServer(t, ssetest.Config(), time.Hour)
		resp := plain.do(t, http.MethodOptions, "/event/progress", nil, http.Header{
			"Origin": {app}, "Access-Control-Request-Method": {"POST"},
		})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	})
}

// TestBadInput checks that every bad request gets a 4xx with a JSON error.
func TestBadInput(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Hour)
	s.open(t, "known", "", nil)

	long := strings.Repeat("x", 129)
	tests := []struct {
		name, method, path, body string
		header                   http.Header
		want                     int
	}{
		{"push without id", "GET", "/event/push", "", nil, 400},
		{"push with empty id", "GET", "/event/push?id=", "", nil, 400},
		{"push with long id", "GET", "/event/push?id=" + long, "", nil, 400},
		{"push with LF in id", "GET", "/event/push?id=a%0Ab", "", nil, 400},
		{"push with CR in id", "GET", "/event/push?id=a%0Db", "", nil, 400},
		{"push with NUL in id", "GET", "/event/push?id=a%00b", "", nil, 400},
		{"push with ESC in id", "GET", "/event/push?id=a%1Bb", "", nil, 400},
		{"push with DEL in id", "GET", "/event/push?id=a%7Fb", "", nil, 400},
		{"push with bad UTF-8 id", "GET", "/event/push?id=a%FFb", "", nil, 400},
		{"push with bad Last-Event-ID", "GET", "/event/push?id=z", "", http.Header{"Last-Event-Id": {"x"}}, 400},
		{"push with bad lastEventId", "GET", "/event/push?id=z&lastEventId=-1", "", nil, 400},
		{"progress with empty body", "POST", "/event/progress", "", nil, 400},
		{"progress with non-JSON", "POST", "/event/progress", "id=1", nil, 400},
		{"progress with truncated JSON", "POST", "/event/progress", `{"id":`, nil, 400},
		{"progress with trailing data", "POST", "/event/progress", `{"id":"known"} {}`, nil, 400},
		{"progress with JSON array", "POST", "/event/progress", `["known"]`, nil, 400},
		{"progress with JSON null", "POST", "/event/progress", `null`, nil, 400},
		{"progress without id", "POST", "/event/progress", `{}`, nil, 400},
		{"progress with ID for id", "POST", "/event/progress", `{"ID":"known"}`, nil, 400},
		{"progress with null id", "POST", "/event/progress", `{"id":null}`, nil, 400},
		{"progress with object id", "POST", "/event/progress", `{"id":{}}`, nil, 400},
		{"progress with array id", "POST", "/event/progress", `{"id":[1]}`, nil, 400},
		{"progress with bool id", "POST", "/event/progress", `{"id":true}`, nil, 400},
		{"progress with float id", "POST", "/event/progress", `{"id":1.5}`, nil, 400},
		{"progress with exponent id", "POST", "/event/progress", `{"id":1e3}`, nil, 400},
		{"progress with huge id", "POST", "/event/progress", `{"id":9007199254740992}`, nil, 400},
		{"progress with empty id", "POST", "/event/progress", `{"id":""}`, nil, 400},
		{"progress with long id", "POST", "/event/progress", `{"id":"` + long + `"}`, nil, 400},
		{"progress with LF in id", "POST", "/event/progress", `{"id":"a\nb"}`, nil, 400},
		{"progress with NUL in id", "POST", "/event/progress", `{"id":"a\u0000b"}`, nil, 400},
		{"progress with body over 64 KiB", "POST", "/event/progress",
			`{"id":"known","pad":"` + strings.Repeat("x", 64<<10) + `"}`, nil, 413},
		{"progress for unknown client", "POST", "/event/progress", `{"id":"nobody"}`, nil, 404},
		{"progress without Content-Type", "POST", "/event/progress", `{"id":"known"}`, http.Header{}, 415},
		{"progress as text/plain", "POST", "/event/progress", `{"id":"known"}`,
			http.Header{"Content-Type": {"text/plain"}}, 415},
		{"progress as a form", "POST", "/event/progress", `{"id":"known"}`,
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, 415},
		{"progress with bad Content-Type", "POST", "/event/progress", `{"id":"known"}`,
			http.Header{"Content-Type": {"application/json; ="}}, 415},
		{"remove without id", "GET", "/event/remove", "", nil, 400},
		{"remove with LF in id", "GET", "/event/remove?id=%0A", "", nil, 400},
		{"remove unknown client", "GET", "/event/remove?id=nobody", "", nil, 404},
		{"drop without id", "POST", "/event/drop", "", nil, 400},
		{"drop unknown client", "POST", "/event/drop?id=nobody", "", nil, 404},
		{"GET to drop", "GET", "/event/drop?id=known", "", nil, 405},
		{"unknown path", "GET", "/nope", "", nil, 404},
		{"unknown event path", "GET", "/event/nope", "", nil, 404},
		{"POST to push", "POST", "/event/push?id=a", "", nil, 405},
		{"GET to progress", "GET", "/event/progress", "", nil, 405},
		{"DELETE to remove", "DELETE", "/event/remove?id=a", "", nil, 405},
		{"POST to the page", "POST", "/", "", nil, 405},
		{"PUT to a page file", "PUT", "/app.js", "", nil, 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.path == "/event/progress" && tc.header == nil {
				tc.header = jsonHeader() // the body is what is wrong
			}
			resp := s.do(t, tc.method, tc.path, strings.NewReader(tc.body), tc.header)
			assert.Equal(t, tc.want, resp.StatusCode)
			assert.Contains(t, resp.Header.Get("Content-Type"), "application/json")
			body := decode(t, resp)
			assert.NotEmpty(t, body["error"])
		})
	}
	assert.Equal(t, 1, s.reg.Stats().Clients, "no bad request registered a client")
}

// TestChunkedBody: a body of unknown length (chunked) is read through a
// reader that caps it, where one of known length is read whole.
func TestChunkedBody(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Hour)
	s.open(t, "known", "", nil)
	chunked := func(body string) io.Reader { return io.MultiReader(strings.NewReader(body)) } // no length: chunked

	resp := s.do(t, http.MethodPost, "/event/progress", chunked(`{"pad":"`+strings.Repeat("x", 64<<10)+`","id":"known"}`), jsonHeader())
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.NotEmpty(t, decode(t, resp)["error"])

	resp = s.do(t, http.MethodPost, "/event/progress", chunked(`{"id":"known"}`), jsonHeader())
	assert.Equal(t, http.StatusAccepted, resp.StatusCode)
	assert.Equal(t, "known", decode(t, resp)["id"])
}

func TestPanicIsRecovered(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Hour)
	s.r.GET("/panic", func(*gin.Context) { panic("boom") })

	resp := s.do(t, http.MethodGet, "/panic", nil, nil)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.NotEmpty(t, decode(t, resp)["error"])

	resp = s.do(t, http.MethodGet, "/healthz", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the server goes on")
}

func TestIDAsStringAndNumber(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Hour)
	for _, id := range []string{"-5", "0", "9007199254740991", "héllo wörld", strings.Repeat("é", 64)} {
		s.open(t, id, "", nil)
	}
	tests := []struct{ body, id string }{
		{`{"id": -5}`, "-5"},
		{`{"id": 0}`, "0"},
		{`{"id": 9007199254740991}`, "9007199254740991"},
		{`{"id": "héllo wörld"}`, "héllo wörld"},
		{`{"id": "` + strings.Repeat("é", 64) + `"}`, strings.Repeat("é", 64)},
		{`{"id": "\u00e9` + strings.Repeat("é", 63) + `", "other": 1}`, strings.Repeat("é", 64)},
	}
	for _, tc := range tests {
		resp := s.do(t, http.MethodPost, "/event/progress", bytes.NewBufferString(tc.body), jsonHeader())
		require.Equal(t, http.StatusAccepted, resp.StatusCode, tc.body)
		assert.Equal(t, tc.id, decode(t, resp)["id"])
		require.NoError(t, s.reg.Remove(context.Background(), tc.id))
		s.open(t, tc.id, "", nil)
	}
}

// TestNoLeaks opens and closes thousands of streams, starts runs and
// abandons them, removes clients and lets grace periods expire. Afterwards
// the registry is empty and the goroutine count is back where it started.
func TestNoLeaks(t *testing.T) {
	const clients, workers = 2000, 50
	cfg := ssetest.Config()
	cfg.Grace = 20 * time.Millisecond
	// The server may notice a dropped stream after the worker has opened its
	// next one: the limit is not what this test is about.
	cfg.MaxStreams = clients
	// A stream taken over from net/http learns that its client left at its
	// next write, a heartbeat at the latest.
	cfg.Heartbeat = 50 * time.Millisecond
	s := newServer(t, cfg, time.Millisecond)
	client := s.Client()
	before := runtime.NumGoroutine()

	ids := make(chan int)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range ids {
				if err := s.session(client, i); err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
				}
			}
		})
	}
	for i := range clients {
		ids <- i
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	require.Eventually(t, func() bool { return s.reg.Stats() == sse.Stats{} }, 5*time.Second, 5*time.Millisecond,
		"every client is removed or expires: %+v", s.reg.Stats())
	// Polled here, not with Eventually, whose own goroutines would count.
	client.CloseIdleConnections()
	after := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); after > before && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		after = runtime.NumGoroutine()
	}
	assert.LessOrEqual(t, after, before, "goroutines: %d before, %d after", before, after)
}

// session is one client's life, one of four kinds by i: a stream that is
// dropped at once; a run abandoned mid-way; a run read to its close; a client
// removed while its stream is open. Grace expiry ends the first three.
func (s *server) session(client *http.Client, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := "leak-" + strconv.Itoa(i)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/event/push?id="+id, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("push: %s", resp.Status)
	}
	r := ssetest.NewReader(resp.Body)

	post := func(method, path, body string) error {
		req, err := http.NewRequestWithContext(ctx, method, s.URL+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		return nil
	}
	read := func(n int) error {
		for range n {
			if _, err := r.Next(); err != nil {
				return err
			}
		}
		return nil
	}

	switch i % 4 {
	case 0: // dropped at once
		return nil
	case 1: // a run abandoned mid-way
		if err := post(http.MethodPost, "/event/progress", `{"id":"`+id+`"}`); err != nil {
			return err
		}
		return read(2)
	case 2: // a run read to its end
		if err := post(http.MethodPost, "/event/progress", `{"id":"`+id+`"}`); err != nil {
			return err
		}
		return read(22)
	default: // removed while its stream is open
		if err := post(http.MethodGet, "/event/remove?id="+id, ""); err != nil {
			return err
		}
		switch _, err := r.Next(); {
		case err == nil:
			return errors.New("the stream goes on after remove")
		case !errors.Is(err, io.EOF):
			return fmt.Errorf("after remove: %w", err)
		}
		return nil
	}
}
