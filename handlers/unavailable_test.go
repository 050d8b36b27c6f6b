package handlers_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/handlers"
	"gin-sse-progress/job"
	"gin-sse-progress/sse/ssetest"
	"gin-sse-progress/sseredis"
	"gin-sse-progress/sseredis/redistest"
)

// TestRegistryUnavailable serves the API on the Redis registry and stops
// Redis: /healthz says so, and every call that needs the registry gets a 503
// with Retry-After and a JSON error, never a 500. Once Redis is back, the
// server serves again. The 503s are logged as warnings: "not now" is not a
// fault.
func TestRegistryUnavailable(t *testing.T) {
	redis := redistest.Start(t)
	cfg := ssetest.Config()
	reg, err := sseredis.New(t.Context(), redis.URL(), cfg, sseredis.Options{})
	require.NoError(t, err)
	log := &lockedLog{}
	r := handlers.New(slog.New(slog.NewTextHandler(log, nil)), reg, handlers.Options{
		Job:   job.Progress{Tick: time.Hour, Step: 5}.Run,
		Retry: cfg.Retry,
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	t.Cleanup(reg.Close)
	s := &server{Server: srv, r: r}
	s.open(t, "a", "", nil)

	redis.Stop()
	require.Eventually(t, func() bool {
		return s.do(t, http.MethodGet, "/healthz", nil, nil).StatusCode == http.StatusServiceUnavailable
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, "unavailable", decode(t, s.do(t, http.MethodGet, "/healthz", nil, nil))["status"])

	for _, req := range []struct{ method, path, body string }{
		{http.MethodGet, "/event/push?id=a", ""},
		{http.MethodPost, "/event/progress", `{"id":"a"}`},
		{http.MethodGet, "/event/remove?id=a", ""},
		{http.MethodPost, "/event/drop?id=a", ""},
	} {
		resp := s.do(t, req.method, req.path, strings.NewReader(req.body), jsonHeader())
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, req.path)
		assert.NotEmpty(t, resp.Header.Get("Retry-After"), req.path)
		assert.NotEmpty(t, decode(t, resp)["error"], req.path)
	}
	assert.Eventually(t, func() bool { return strings.Count(log.String(), "level=WARN msg=request") >= 4 },
		time.Second, 10*time.Millisecond, "each 503 logged as a warning")
	assert.NotContains(t, log.String(), "level=ERROR")

	redis.Restart()
	require.Eventually(t, func() bool {
		return s.do(t, http.MethodGet, "/healthz", nil, nil).StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond)
	s.open(t, "a", "", nil)
}

// lockedLog is a log that the server writes while the test reads it.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
