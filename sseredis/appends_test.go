package sseredis

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
	"gin-sse-progress/sseredis/redistest"
)

// TestWaitCountsAnAnswerThatCameAsTheRunStopped: an append answered by the
// time its run's context is done is known to be answered, every time (a
// plain select picks either at random), and one not answered is not.
func TestWaitCountsAnAnswerThatCameAsTheRunStopped(t *testing.T) {
	stopped, cancel := context.WithCancel(t.Context())
	cancel()
	for range 100 {
		answered := &appendReq{done: make(chan struct{})}
		close(answered.done)
		if !answered.wait(stopped) {
			t.Fatal("an answered append, its run stopped: wait says no answer")
		}
	}
	if (&appendReq{done: make(chan struct{})}).wait(stopped) {
		t.Fatal("an append with no answer, its run stopped: wait says answered")
	}
}

// TestNothingLoggedOnceTheRunStopped: what a run sends after it was
// stopped is not logged, though its claim is still held (an instance
// shutting down hands its runs over only once they end). Otherwise a step
// under way as the run stops, the demo's last with its update and its
// close, could drop the update and log the close: the client's run ends
// with the update missing and no gap to say so. (A select on the send and
// the stop picks either when both are ready: up to half went through.)
func TestNothingLoggedOnceTheRunStopped(t *testing.T) {
	redis := redistest.Start(t)
	redis.Flush()
	in := newInstance(t, redis, ssetest.Config(), time.Hour)
	st := in.srv.Open(t, "a", "")
	sent := make(chan struct{})
	require.NoError(t, in.Start(t.Context(), "a", func(ctx context.Context, r *sse.Run) {
		defer close(sent)
		_ = r.Send("update", "before")
		<-ctx.Done()
		for range 100 {
			_ = r.Send("update", "after")
		}
	}))
	assert.Equal(t, "before", st.Next(t).Data)
	in.mu.Lock()
	run := in.runs["a"]
	in.mu.Unlock()
	run.cancel() // stopped; the claim is held until the run ends
	<-sent
	n, err := in.rdb.XLen(t.Context(), logKey("a")).Result()
	require.NoError(t, err)
	assert.EqualValues(t, 1, n, "events logged")
}
