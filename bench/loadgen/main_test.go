package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	"gin-sse-progress/sseredis"
	"gin-sse-progress/sseredis/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// measureAgainst runs the generator against the server at urls (one, or a
// comma-separated list of instances), with this process as the server's
// pid, and returns its JSON result.
func measureAgainst(t *testing.T, urls string, clients int) result {
	t.Helper()
	var stdout bytes.Buffer
	args := []string{"loadgen", "-url", urls, "-c", strconv.Itoa(clients), "-rate", "2000",
		"-tick", "5ms", "-pid", strconv.Itoa(os.Getpid()), "-timeout", "30s", "-label", "test"}
	require.NoError(t, run(context.Background(), args, &stdout, io.Discard))

	lines := bytes.Split(bytes.TrimSpace(stdout.Bytes()), []byte("\n"))
	var res result
	require.NoError(t, json.Unmarshal(lines[len(lines)-1], &res), "the last line is the JSON result")
	assert.Contains(t, stdout.String(), "updates received / expected", "the table comes first")
	return res
}

func TestMeasuresTheServer(t *testing.T) {
	gin.SetMode(gin.TestMode)
	cfg := ssetest.Config()
	cfg.MaxStreams = 1000
	reg := sse.NewMemoryRegistry(cfg)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(handlers.New(logger, reg, handlers.Options{
		Job:   job.Progress{Tick: 5 * time.Millisecond, Step: 5}.Run,
		Retry: cfg.Retry,
	}))
	defer srv.Close()
	defer reg.Close()

	res := measureAgainst(t, srv.URL, 200)
	assert.True(t, res.Complete, "%+v", res)
	assert.Equal(t, 200, res.Connected)
	assert.Equal(t, 200, res.Runs)
	assert.Equal(t, 200*21, res.Updates)
	assert.Equal(t, 200, res.Closes)
	assert.Zero(t, res.OutOfOrder+res.Duplicates+res.Foreign+res.Errors)
	assert.Positive(t, res.RSSOpen, "memory is read from /proc")
	assert.Positive(t, res.GapDevMax, "gaps are measured")
	assert.Less(t, res.GapDevP50, 5.0, "the gaps are about one tick")
	assert.Positive(t, res.FirstP99)
}

// TestMeasuresInstancesOnRedis: with two URLs, the streams are shared
// between the instances and each run is started through the other one.
func TestMeasuresInstancesOnRedis(t *testing.T) {
	gin.SetMode(gin.TestMode)
	redisServer := redistest.Start(t)
	cfg := ssetest.Config()
	cfg.MaxStreams = 1000
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var urls []string
	var requests [2]struct{ push, progress atomic.Int64 }
	for i := range requests {
		reg, err := sseredis.New(t.Context(), redisServer.URL(), cfg, sseredis.Options{})
		require.NoError(t, err)
		t.Cleanup(reg.Close)
		router := handlers.New(logger, reg, handlers.Options{
			Job:   job.Progress{Tick: 5 * time.Millisecond, Step: 5}.Run,
			Retry: cfg.Retry,
		})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/event/push":
				requests[i].push.Add(1)
			case "/event/progress":
				requests[i].progress.Add(1)
			}
			router.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}

	res := measureAgainst(t, strings.Join(urls, ","), 200)
	assert.True(t, res.Complete, "%+v", res)
	assert.Equal(t, 200*21, res.Updates)
	assert.Zero(t, res.OutOfOrder+res.Duplicates+res.Foreign+res.Errors)
	for i := range requests {
		assert.EqualValues(t, 100, requests[i].push.Load(), "instance %d holds half the streams", i)
		assert.EqualValues(t, 100, requests[i].progress.Load(), "instance %d starts the other half's runs", i)
	}
}

// TestFindsWhatIsWrong serves runs that skip the count 50, repeat 70 and
// send 90 before 85: the generator must see each.
func TestFindsWhatIsWrong(t *testing.T) {
	var mu sync.Mutex
	runs := map[string]chan struct{}{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /event/push", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		start := make(chan struct{})
		mu.Lock()
		runs[id] = start
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		select {
		case <-start:
		case <-r.Context().Done():
			return
		}
		for _, count := range []int{0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 55, 60, 65, 70, 70, 75, 80, 90, 85, 95, 100} {
			if _, err := fmt.Fprintf(w, "event: update\ndata: {\"id\":%q,\"count\":%d}\n\n", id, count); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, "event: close\ndata: {}\n\n") // the stream ends here either way
	})
	mux.HandleFunc("POST /event/progress", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ ID string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		close(runs[body.ID])
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res := measureAgainst(t, srv.URL, 3)
	assert.False(t, res.Complete)
	assert.Equal(t, 3*20, res.Updates, "50 is missing")
	assert.Equal(t, 3, res.Duplicates, "70 twice")
	assert.Equal(t, 3, res.OutOfOrder, "85 after 90")
	assert.Equal(t, 3, res.Closes)
}

// TestGapsAfterThePosts: the p99 after the POSTs counts the gaps that began
// after the last POST was answered, and no gap of the time runs were
// still starting.
func TestGapsAfterThePosts(t *testing.T) {
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	o := options{clients: 2, step: 50, tick: time.Second} // 0, 50, 100
	clients := []*client{
		// Its first gap is 100 ms late, while the second run starts.
		{status: http.StatusAccepted, answered: ms(1), arrived: []time.Duration{ms(2), ms(1102), ms(2102)}},
		// The last POST: 2 and 1 ms late after it.
		{status: http.StatusAccepted, answered: ms(500), arrived: []time.Duration{ms(501), ms(1503), ms(2504)}},
	}
	var r result
	r.summarize(clients, o)
	assert.InDelta(t, 100, r.GapDevMax, 0.001, "every gap counts in the whole run's")
	assert.InDelta(t, 2, r.GapAfterPostsP99, 0.001, "the gaps after the last POST: 0, 2 and 1 ms late")
}
