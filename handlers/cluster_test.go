package handlers_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/handlers"
	"gin-sse-progress/internal/redistest"
	"gin-sse-progress/internal/ssetest"
	"gin-sse-progress/sse"
)

// instance is one server instance on a shared Redis, as a replica behind a
// load balancer would be: a registry, router and listener of its own.
type instance struct {
	*server
	rdb *redis.Client
	log *logBuffer
}

func newInstance(t *testing.T, srv *redistest.Server, cfg sse.Config, lease time.Duration, tick time.Duration) *instance {
	t.Helper()
	log := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(log, nil))
	rdb := srv.Client()
	hub, err := sse.NewRedisHub(t.Context(), cfg, rdb, sse.RedisOptions{Lease: lease, Logger: logger})
	require.NoError(t, err)
	r := handlers.New(logger, hub, handlers.Options{
		Progress: handlers.Progress{Tick: tick, Step: 5},
		Retry:    cfg.Retry,
	})
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	t.Cleanup(hub.Close)
	return &instance{server: &server{Server: ts, hub: hub, r: r}, rdb: rdb, log: log}
}

// cluster starts n instances on an empty Redis.
func cluster(t *testing.T, srv *redistest.Server, n int, cfg sse.Config, tick time.Duration) []*instance {
	t.Helper()
	require.NoError(t, srv.Client().FlushDB(t.Context()).Err())
	out := make([]*instance, n)
	for i := range out {
		out[i] = newInstance(t, srv, cfg, 0, tick)
	}
	return out
}

// logBuffer is a log that tests read while the server writes it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// health returns the status of GET /healthz.
func (s *server) health(t *testing.T) int {
	t.Helper()
	return s.do(t, http.MethodGet, "/healthz", nil, nil).StatusCode
}

func TestCluster(t *testing.T) {
	srv := redistest.Start(t)

	t.Run("a run started on B reaches the stream on A", func(t *testing.T) {
		c := cluster(t, srv, 2, hubConfig(), time.Millisecond)
		a, b := c[0], c[1]
		st := a.open(t, "42", "", nil)
		status, body := b.start(t, `{"id":42}`)
		require.Equal(t, http.StatusAccepted, status, body)

		events := st.rest(t)
		assert.Equal(t, fullRun(), counts(t, "42", events))
		require.Len(t, events, 22)
		assert.Equal(t, ssetest.Event{Type: "close", ID: "22", Data: `{"id":"42","done":true}`}, events[21])
	})

	t.Run("cut on A and resumed on C: each count once", func(t *testing.T) {
		c := cluster(t, srv, 3, hubConfig(), 2*time.Millisecond)
		a, b, third := c[0], c[1], c[2]
		st := a.open(t, "a", "", nil)
		status, _ := b.start(t, `{"id":"a"}`)
		require.Equal(t, http.StatusAccepted, status)

		events := []ssetest.Event{st.next(t), st.next(t), st.next(t)}
		st.cut()
		st = third.open(t, "a", "", http.Header{"Last-Event-Id": {st.r.LastEventID}})
		events = append(events, st.rest(t)...)

		assert.Equal(t, fullRun(), counts(t, "a", events))
		for i, ev := range events {
			assert.Equal(t, strconv.Itoa(i+1), ev.ID, "ids increase by one")
		}
		assert.Equal(t, "close", events[len(events)-1].Type)
	})

	t.Run("a second POST on any instance is 409", func(t *testing.T) {
		c := cluster(t, srv, 3, hubConfig(), time.Hour)
		c[0].open(t, "a", "", nil)
		status, _ := c[1].start(t, `{"id":"a"}`)
		require.Equal(t, http.StatusAccepted, status)
		for _, in := range c {
			status, body := in.start(t, `{"id":"a"}`)
			assert.Equal(t, http.StatusConflict, status)
			assert.NotEmpty(t, body["error"])
		}
	})

	t.Run("remove on B ends the stream on A and the run on C", func(t *testing.T) {
		c := cluster(t, srv, 3, hubConfig(), time.Hour)
		a, b, third := c[0], c[1], c[2]
		st := a.open(t, "a", "", nil)
		status, _ := third.start(t, `{"id":"a"}`)
		require.Equal(t, http.StatusAccepted, status)
		assert.Equal(t, "update", st.next(t).Type)

		resp := b.do(t, http.MethodGet, "/event/remove?id=a", nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Empty(t, st.rest(t), "the stream ends without a close event")
		require.Eventually(t, func() bool { return third.hub.Stats().Runs == 0 }, time.Second, time.Millisecond,
			"the run stops")
		status, _ = a.start(t, `{"id":"a"}`)
		assert.Equal(t, http.StatusNotFound, status, "the client is gone everywhere")
	})

	t.Run("drop on B cuts the stream on A, which resumes on B", func(t *testing.T) {
		c := cluster(t, srv, 2, hubConfig(), 2*time.Millisecond)
		a, b := c[0], c[1]
		st := a.open(t, "a", "", nil)
		status, _ := a.start(t, `{"id":"a"}`)
		require.Equal(t, http.StatusAccepted, status)
		events := []ssetest.Event{st.next(t)}

		resp := b.do(t, http.MethodPost, "/event/drop?id=a", nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		events = append(events, st.rest(t)...)
		st = b.open(t, "a", "", http.Header{"Last-Event-Id": {st.r.LastEventID}})
		events = append(events, st.rest(t)...)
		assert.Equal(t, fullRun(), counts(t, "a", events))
	})

	t.Run("a stream on C replaces the one on A", func(t *testing.T) {
		c := cluster(t, srv, 3, hubConfig(), time.Millisecond)
		first := c[0].open(t, "a", "", nil)
		second := c[2].open(t, "a", "", nil)
		assert.Empty(t, first.rest(t), "the older stream ends")
		status, _ := c[1].start(t, `{"id":"a"}`)
		require.Equal(t, http.StatusAccepted, status)
		assert.Equal(t, fullRun(), counts(t, "a", second.rest(t)))
	})

	t.Run("-max-clients limits each instance", func(t *testing.T) {
		cfg := hubConfig()
		cfg.MaxStreams = 1
		c := cluster(t, srv, 2, cfg, time.Hour)
		c[0].open(t, "a", "", nil)
		resp := c[0].do(t, http.MethodGet, "/event/push?id=b", nil, nil)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		c[1].open(t, "b", "", nil)
	})

	t.Run("a run whose owner is gone can start again after the lease", func(t *testing.T) {
		require.NoError(t, srv.Client().FlushDB(t.Context()).Err())
		const lease = 300 * time.Millisecond
		a := newInstance(t, srv, hubConfig(), lease, time.Hour)
		b := newInstance(t, srv, hubConfig(), lease, time.Hour)
		st := a.open(t, "a", "", nil)
		status, _ := b.start(t, `{"id":"a"}`)
		require.Equal(t, http.StatusAccepted, status)
		assert.Equal(t, "update", st.next(t).Type)

		// B loses Redis for good, as if it had died: it cannot renew
		// its claim, nor let go of it.
		require.NoError(t, b.rdb.Close())
		began := time.Now()
		status, _ = a.start(t, `{"id":"a"}`)
		assert.Equal(t, http.StatusConflict, status, "the claim holds until its lease ends")
		require.Eventually(t, func() bool {
			status, _ := a.start(t, `{"id":"a"}`)
			return status == http.StatusAccepted
		}, 5*time.Second, 20*time.Millisecond)
		assert.Less(t, time.Since(began), lease+time.Second)
		ev := st.next(t)
		assert.Equal(t, "update", ev.Type, "the new run reaches the stream")
		assert.Equal(t, []int{0}, counts(t, "a", []ssetest.Event{ev}))
	})
}

// TestRedisRestart stops Redis mid-run and starts it again, empty. The
// instances say so in their logs and /healthz; the stream ends cleanly with
// a gap event; a reconnect is refused with 503 while Redis is down and let in
// once it is back; no count arrives twice, and the next run goes through.
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	c := cluster(t, srv, 2, hubConfig(), 5*time.Millisecond)
	a, b := c[0], c[1]
	st := a.open(t, "a", "", nil)
	status, _ := b.start(t, `{"id":"a"}`)
	require.Equal(t, http.StatusAccepted, status)
	events := []ssetest.Event{st.next(t), st.next(t), st.next(t)}

	srv.Stop()
	rest := st.rest(t) // ends at EOF, with no error
	require.NotEmpty(t, rest)
	gap := rest[len(rest)-1]
	assert.Equal(t, ssetest.Event{Type: sse.GapEvent, ID: st.r.LastEventID, Data: sse.GapData}, gap,
		"the stream ends with a gap event that keeps the last id")
	events = append(events, rest[:len(rest)-1]...)
	for _, in := range c {
		require.Eventually(t, func() bool { return in.health(t) == http.StatusServiceUnavailable },
			5*time.Second, 10*time.Millisecond)
		assert.Contains(t, in.log.String(), "redis link lost")
	}
	resp := b.do(t, http.MethodGet, "/event/push?id=a", nil, http.Header{"Last-Event-Id": {st.r.LastEventID}})
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.NotEmpty(t, decode(t, resp)["error"])

	srv.Restart()
	for _, in := range c {
		require.Eventually(t, func() bool { return in.health(t) == http.StatusOK },
			10*time.Second, 10*time.Millisecond)
		assert.Contains(t, in.log.String(), "redis link restored")
	}
	assert.Equal(t, 0, b.hub.Stats().Runs, "the run stopped with the outage")

	// Redis came back empty: the run is lost. The client reconnects,
	// gets nothing twice, and starts the next run.
	last := st.r.LastEventID
	st = b.open(t, "a", "", http.Header{"Last-Event-Id": {last}})
	status, _ = a.start(t, `{"id":"a"}`)
	require.Equal(t, http.StatusAccepted, status)
	next := st.rest(t)
	assert.Equal(t, fullRun(), counts(t, "a", next))
	lastID, err := strconv.Atoi(last)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(lastID+1), next[0].ID, "ids go on from the last one the client saw")

	seen := counts(t, "a", events)
	require.NotEmpty(t, seen)
	for i := 1; i < len(seen); i++ {
		assert.Equal(t, seen[i-1]+5, seen[i], "before the outage: in order, none twice")
	}
	assert.Less(t, seen[len(seen)-1], 100, "the run was cut: the gap event said so")
	assert.NotContains(t, strings.ToLower(a.log.String()+b.log.String()), "panic")
}

// TestRedisStopsAnswering pauses Redis mid-run with its connections left
// open, as a hung Redis or a network that drops packets would: the
// instances notice within three renewal rounds, end the stream with a gap
// event and say so in /healthz. Redis comes back with its data, so a
// reconnect with Last-Event-ID gets the rest from the log: across the
// pause, every id once, one after the other.
func TestRedisStopsAnswering(t *testing.T) {
	srv := redistest.Start(t)
	require.NoError(t, srv.Client().FlushDB(t.Context()).Err())
	const lease = 300 * time.Millisecond
	a := newInstance(t, srv, hubConfig(), lease, 5*time.Millisecond)
	b := newInstance(t, srv, hubConfig(), lease, 5*time.Millisecond)
	st := a.open(t, "a", "", nil)
	status, _ := b.start(t, `{"id":"a"}`)
	require.Equal(t, http.StatusAccepted, status)
	events := []ssetest.Event{st.next(t), st.next(t), st.next(t)}

	srv.Pause()
	rest := st.rest(t)
	require.NotEmpty(t, rest)
	assert.Equal(t, sse.GapEvent, rest[len(rest)-1].Type, "the stream ends with a gap event")
	events = append(events, rest[:len(rest)-1]...)
	assert.Equal(t, http.StatusServiceUnavailable, a.health(t))
	assert.Contains(t, a.log.String(), "no answer from Redis")

	srv.Resume()
	for _, in := range []*instance{a, b} {
		require.Eventually(t, func() bool { return in.health(t) == http.StatusOK },
			10*time.Second, 10*time.Millisecond)
	}
	st = b.open(t, "a", "", http.Header{"Last-Event-Id": {st.r.LastEventID}})
	require.Eventually(t, func() bool {
		status, _ := a.start(t, `{"id":"a"}`)
		return status == http.StatusAccepted
	}, 10*time.Second, 20*time.Millisecond, "a new run, once the stopped one's claim is gone")
	events = append(events, st.rest(t)...)

	for i, ev := range events {
		require.Equal(t, strconv.Itoa(i+1), ev.ID, "every id once, in order: %v", events)
	}
	assert.Equal(t, "close", events[len(events)-1].Type)
	assert.Equal(t, fullRun(), counts(t, "a", events)[len(counts(t, "a", events))-21:], "the new run, whole")
}
