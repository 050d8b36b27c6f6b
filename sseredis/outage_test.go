package sseredis

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
	"gin-sse-progress/sseredis/redistest"
)

// healthy reports whether in serves, and fails the test on an error that
// is not sse.ErrUnavailable.
func (in *instance) healthy(t *testing.T) bool {
	err := in.Health(t.Context())
	if err != nil && !errors.Is(err, sse.ErrUnavailable) {
		t.Fatalf("health: %v", err)
	}
	return err == nil
}

// counts returns the data of the update events, as numbers.
func counts(t *testing.T, events []ssetest.Event) []int {
	t.Helper()
	var out []int
	for _, ev := range events {
		if ev.Type == "update" {
			n, err := strconv.Atoi(ev.Data)
			require.NoError(t, err)
			out = append(out, n)
		}
	}
	return out
}

// TestRedisRestart stops Redis mid-run and starts it again, empty. The
// instances say so in their logs and their health; the stream ends cleanly
// with a gap event; a reconnect is refused with sse.ErrUnavailable while
// Redis is down and let in once it is back; no event arrives twice, and the
// next run goes through.
func TestRedisRestart(t *testing.T) {
	redis := redistest.Start(t)
	c := cluster(t, redis, 2, ssetest.Config(), 0)
	a, b := c[0], c[1]
	st := a.srv.Open(t, "a", "")
	require.NoError(t, b.Start(t.Context(), "a", ssetest.Ticks(5*time.Millisecond)))
	events := []ssetest.Event{st.Next(t), st.Next(t), st.Next(t)}

	redis.Stop()
	rest := st.Rest(t) // ends at EOF, with no error
	require.NotEmpty(t, rest)
	gap := rest[len(rest)-1]
	lastSeen, err := strconv.ParseUint(st.LastEventID(), 10, 64)
	require.NoError(t, err)
	assert.Equal(t, ssetest.Event{Type: sse.GapEvent, ID: st.LastEventID(), Data: sse.GapData(sse.ReasonLost, lastSeen)}, gap,
		"the stream ends with a gap event that keeps the last id, and names it")
	events = append(events, rest[:len(rest)-1]...)
	for _, in := range c {
		require.Eventually(t, func() bool { return !in.healthy(t) }, 5*time.Second, 10*time.Millisecond)
		assert.Contains(t, in.log.String(), "redis link lost")
	}
	_, _, err = b.Attach(t.Context(), "a", 1)
	assert.ErrorIs(t, err, sse.ErrUnavailable)
	assert.ErrorIs(t, a.Start(t.Context(), "a", ssetest.Updates(1)), sse.ErrUnavailable)

	redis.Restart()
	for _, in := range c {
		require.Eventually(t, func() bool { return in.healthy(t) }, 10*time.Second, 10*time.Millisecond)
		assert.Contains(t, in.log.String(), "redis link restored")
	}
	assert.Equal(t, 0, b.Stats().Runs, "the run stopped with the outage")

	// Redis came back empty: the run is lost, and the reconnect says so
	// with a gap event before anything else. Then the next run, nothing
	// twice, its ids going on from the last one the client saw.
	last := st.LastEventID()
	st = b.srv.Open(t, "a", last)
	require.NoError(t, a.Start(t.Context(), "a", ssetest.Updates(21)))
	next := st.Rest(t)
	require.NotEmpty(t, next)
	assert.Equal(t, ssetest.Event{Type: sse.GapEvent, Data: sse.GapData(sse.ReasonUnknownClient, lastSeen)}, next[0])
	next = next[1:]
	assert.Len(t, counts(t, next), 21)
	assert.Equal(t, strconv.FormatUint(lastSeen+1, 10), next[0].ID, "ids go on from the last one the client saw")

	seen := counts(t, events)
	require.NotEmpty(t, seen)
	for i, n := range seen {
		assert.Equal(t, i, n, "before the outage: in order, none twice")
	}
	assert.NotContains(t, strings.ToLower(a.log.String()+b.log.String()), "panic")
}

// TestRedisStopsAnswering pauses Redis mid-run with its connections left
// open, as a hung Redis or a network that drops packets would: the
// instances notice within three renewal rounds, end the stream with a gap
// event and say so in their health. Redis comes back with its data, so a
// reconnect with Last-Event-ID gets the rest from the log: across the
// pause, every id once, one after the other.
func TestRedisStopsAnswering(t *testing.T) {
	redis := redistest.Start(t)
	c := cluster(t, redis, 2, ssetest.Config(), 300*time.Millisecond)
	a, b := c[0], c[1]
	st := a.srv.Open(t, "a", "")
	require.NoError(t, b.Start(t.Context(), "a", ssetest.Ticks(5*time.Millisecond)))
	events := []ssetest.Event{st.Next(t), st.Next(t), st.Next(t)}

	redis.Pause()
	rest := st.Rest(t)
	require.NotEmpty(t, rest)
	assert.Equal(t, sse.GapEvent, rest[len(rest)-1].Type, "the stream ends with a gap event")
	events = append(events, rest[:len(rest)-1]...)
	assert.False(t, a.healthy(t))
	assert.Contains(t, a.log.String(), "no answer from Redis")

	redis.Resume()
	for _, in := range c {
		require.Eventually(t, func() bool { return in.healthy(t) }, 10*time.Second, 10*time.Millisecond)
	}
	// The run stopped with the link, and nobody goes on with it (no
	// Resume): once its claim is gone it ends with a final gap, after
	// the events logged before the pause. Across it, every id once.
	st = b.srv.Open(t, "a", st.LastEventID())
	events = append(events, st.Rest(t)...)
	for i, ev := range events {
		require.Equal(t, strconv.Itoa(i+1), ev.ID, "every id once, in order: %v", events)
	}
	lost := events[len(events)-1]
	assert.Equal(t, sse.GapEvent, lost.Type, "the run's end is said, not silent")
	assert.Equal(t, sse.GapData(sse.ReasonRunLost, 0), lost.Data)

	// A new run may start, and goes whole to a fresh stream.
	st = b.srv.Open(t, "a", "")
	require.NoError(t, a.Start(t.Context(), "a", ssetest.Updates(21)))
	next := st.Rest(t)
	assert.Len(t, counts(t, next), 21, "the new run, whole")
	assert.Equal(t, strconv.Itoa(len(events)+1), next[0].ID, "ids go on")
}

// TestScriptsFlushed: Redis forgets its scripts mid-run (SCRIPT FLUSH; a
// restart that keeps the data does the same). The appends and the claim's
// renewals, sent with EVALSHA, load them again: the run keeps its claim
// across several leases, no instance takes it over, and the stream gets
// every count once.
func TestScriptsFlushed(t *testing.T) {
	const updates, tick, lease = 30, 20 * time.Millisecond, 150 * time.Millisecond
	c := movable(t, redistest.Start(t), 2, lease, updates, tick)
	owner, holder := c[0], c[1]
	ctx := t.Context()
	st := holder.srv.Open(t, "a", "")
	require.NoError(t, owner.Start(ctx, "a", counting(updates, tick)))
	events := []ssetest.Event{st.Next(t), st.Next(t), st.Next(t)}
	token, err := owner.rdb.Get(ctx, runKey("a")).Result()
	require.NoError(t, err)

	require.NoError(t, owner.rdb.ScriptFlush(ctx).Err())
	time.Sleep(2 * lease) // six renewal rounds: the claim outlives its lease only if they load the script
	assert.Equal(t, token, owner.rdb.Get(ctx, runKey("a")).Val(), "the claim is the owner's still")
	rest, _ := readAll(t, st)
	wantEveryCount(t, append(events, rest...), updates)
	assert.Zero(t, logsOf(c, "claim was lost")+logsOf(c, "taken over"), "the run never left its owner")
}

// TestFailedAppendHandsTheRunOver: an append that fails (Redis paused past
// the client's read timeout) stops its run, and the run's claim is handed
// over once Redis answers: another instance, or this one, goes on from the
// run's last logged event, and the stream gets every count once. Let go
// instead, the run had no owner, nor an entry in the index for one to find
// it, and its client waited for ever.
func TestFailedAppendHandsTheRunOver(t *testing.T) {
	const updates, tick = 60, 5 * time.Millisecond
	redis := redistest.Start(t)
	redis.Flush()
	c := make([]*instance, 2)
	for i := range c {
		// The read timeout is short, so that a pause of Redis fails
		// the appends it holds, and ends before the stopped run lets go.
		c[i] = newInstanceAt(t, redis.URL()+"?read_timeout=200ms", ssetest.Config(), Options{
			Lease:  3 * time.Second,
			Resume: func(string) sse.RunFunc { return counting(updates, tick) },
		})
	}
	owner, holder := c[0], c[1]
	st := holder.srv.Open(t, "a", "")
	require.NoError(t, owner.Start(t.Context(), "a", counting(updates, tick)))
	events := []ssetest.Event{st.Next(t), st.Next(t), st.Next(t)}

	redis.Pause()
	time.Sleep(300 * time.Millisecond)
	redis.Resume()
	got := make(chan []ssetest.Event, 1)
	go func() {
		rest, _ := readAll(t, st)
		got <- rest
	}()
	select {
	case rest := <-got:
		wantEveryCount(t, append(events, rest...), updates)
	case <-time.After(10 * time.Second):
		t.Fatalf("no close within 10 s of the pause: the run has no owner\n%s", owner.log.String())
	}
	// Once at least: a machine slower than the timeout fails more.
	assert.GreaterOrEqual(t, logsOf(c, "run stopped: Redis failed"), 1)
	assert.GreaterOrEqual(t, logsOf(c, "run taken over"), 1)
}
