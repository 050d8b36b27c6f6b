package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// update is the wire form of an update of count n with id id.
func update(id, n int) string {
	return fmt.Sprintf("event: update\nid: %d\ndata: {\"id\":\"soak-0\",\"count\":%d}\n\n", id, n)
}

// counts is the updates of the counts from, from+5, ... to, their ids
// going on from id.
func counts(id, from, to int) string {
	var b strings.Builder
	for n := from; n <= to; n += 5 {
		b.WriteString(update(id, n))
		id++
	}
	return b.String()
}

func closing(id int) string { return fmt.Sprintf("event: close\nid: %d\ndata: {}\n\n", id) }

const gap = "event: gap\ndata: {\"reason\":\"test\"}\n\n"

// scripted serves the streams of one client: each GET gets the next of
// parts, ending when it is written (a cut), and every POST gets 202.
func scripted(t *testing.T, parts ...string) *httptest.Server {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		mu.Lock()
		if len(parts) == 0 {
			mu.Unlock()
			http.Error(w, "no more streams", http.StatusServiceUnavailable)
			return
		}
		part := parts[0]
		parts = parts[1:]
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte(part))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// tallyOf is what a client counts of one run through parts.
func tallyOf(t *testing.T, doneID int, parts ...string) *tally {
	t.Helper()
	srv := scripted(t, parts...)
	tl := &tally{gaps: map[string]int{}, stuckWhy: map[string]int{}, trails: map[string][]string{}, countsWrong: map[string]string{}}
	c := &client{id: "soak-0", urls: []string{srv.URL}, http: srv.Client(), step: 5, retry: time.Millisecond, t: tl, doneID: doneID}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c.run(ctx)
	require.NoError(t, ctx.Err(), "the run ends with its close")
	return tl
}

// TestTallyFindsWhatIsWrong: the soak's clients notice every fault the
// soak looks for, and count a correct run as one.
func TestTallyFindsWhatIsWrong(t *testing.T) {
	t.Run("a whole run", func(t *testing.T) {
		tl := tallyOf(t, 0, counts(1, 0, 100)+closing(22))
		assert.Equal(t, 1, tl.runsDone)
		assert.Equal(t, 21, tl.updates)
		assert.Zero(t, tl.duplicates+tl.outOfOrder+tl.silentLosses+tl.reconnects+tl.replays)
	})
	t.Run("a count missing", func(t *testing.T) {
		tl := tallyOf(t, 0, counts(1, 0, 45)+counts(11, 55, 100)+closing(21))
		assert.Equal(t, 1, tl.silentLosses)
		assert.Equal(t, "update 55 came after event 10, which 50 should have followed", tl.countsWrong["soak-0"])
	})
	t.Run("a count missing after a gap", func(t *testing.T) {
		tl := tallyOf(t, 0, counts(1, 0, 45)+gap+counts(11, 55, 100)+closing(21))
		assert.Zero(t, tl.silentLosses)
		assert.Equal(t, map[string]int{"test": 1}, tl.gaps)
	})
	t.Run("a count again after a cut", func(t *testing.T) {
		tl := tallyOf(t, 0, counts(1, 0, 25), counts(6, 25, 100)+closing(22))
		assert.Equal(t, 1, tl.duplicates)
		assert.Equal(t, "update 25 came again as event 6, first as event 6", tl.countsWrong["soak-0"])
		assert.Equal(t, 1, tl.reconnects)
		assert.Zero(t, tl.silentLosses)
	})
	t.Run("counts out of order", func(t *testing.T) {
		tl := tallyOf(t, 0, counts(1, 0, 5)+update(3, 15)+update(4, 10)+counts(5, 20, 100)+closing(22))
		assert.Equal(t, 1, tl.outOfOrder)
		assert.Equal(t, 1, tl.silentLosses, "10 was missing when 15 came")
	})
	t.Run("a close too early", func(t *testing.T) {
		tl := tallyOf(t, 0, counts(1, 0, 50)+closing(12))
		assert.Equal(t, 10, tl.silentLosses)
	})
	t.Run("the last run again", func(t *testing.T) {
		tl := tallyOf(t, 22, counts(19, 90, 100)+closing(22)+counts(23, 0, 100)+closing(44))
		assert.Equal(t, 4, tl.replays)
		assert.Equal(t, 21, tl.updates)
		assert.Zero(t, tl.duplicates+tl.silentLosses)
	})
}

// TestTargets: a result with any fault misses a target.
func TestTargets(t *testing.T) {
	good := result{Faults: map[string]int{"SIGKILL and restart": 1}, RunsStarted: 10, RunsDone: 10, Updates: 210, UpdatesExpected: 210,
		KeptRSSMiB: [2]float64{30, 31}, KeptGoroutines: [2]float64{20, 30}, KeptRuns: [2]float64{80, 150},
		KeptIdleGoroutines: [2]float64{12, 12}}
	assert.Empty(t, good.targets())
	for name, spoil := range map[string]func(*result){
		"duplicates":               func(r *result) { r.Duplicates = 1 },
		"out of order":             func(r *result) { r.OutOfOrder = 1 },
		"silent losses":            func(r *result) { r.SilentLosses = 1 },
		"every run completes":      func(r *result) { r.RunsDone = 9 },
		"RSS flat":                 func(r *result) { r.KeptRSSMiB[1] = 60 },
		"goroutines flat":          func(r *result) { r.KeptGoroutines[1] = 60 },
		"no goroutine left behind": func(r *result) { r.KeptIdleGoroutines[1] = 30 },
		"no SIGKILL and restart":   func(r *result) { r.Faults = map[string]int{"SIGKILL and restart": 0} },
	} {
		r := good
		spoil(&r)
		assert.Equal(t, []string{name}, r.targets(), name)
	}
}
