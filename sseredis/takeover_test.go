package sseredis

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
	"gin-sse-progress/sseredis/redistest"
)

// counting is a run of n updates, their data 0 to n-1, one per tick, then
// a close; a run that moved goes on after the last count it logged.
func counting(n int, tick time.Duration) sse.RunFunc {
	return func(ctx context.Context, r *sse.Run) {
		start := 0
		if last, ok := r.Last(); ok {
			if v, err := strconv.Atoi(last.Data); err == nil {
				start = v + 1
			}
		}
		t := time.NewTicker(tick)
		defer t.Stop()
		for i := start; i < n; i++ {
			_ = r.Send("update", strconv.Itoa(i))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		_ = r.Finish("close", "done")
	}
}

// movable starts n instances on an emptied Redis that go on with each
// other's runs of counting(updates, tick).
func movable(t *testing.T, redis *redistest.Server, n int, lease time.Duration, updates int, tick time.Duration) []*instance {
	t.Helper()
	redis.Flush()
	out := make([]*instance, n)
	for i := range out {
		out[i] = newInstanceWith(t, redis, ssetest.Config(), Options{
			Lease:  lease,
			Resume: func(string) sse.RunFunc { return counting(updates, tick) },
		})
	}
	return out
}

// readAll reads st to its end, noting the longest wait between two
// events.
func readAll(t *testing.T, st *ssetest.Stream) (events []ssetest.Event, longest time.Duration) {
	t.Helper()
	prev := time.Now()
	for {
		ev, err := st.Reader().Next()
		if err != nil {
			return events, longest
		}
		longest = max(longest, time.Since(prev))
		prev = time.Now()
		events = append(events, ev)
	}
}

// wantEveryCount checks that events are updates 0 to n-1 and a close,
// their ids one by one from 1.
func wantEveryCount(t *testing.T, events []ssetest.Event, n int) {
	t.Helper()
	require.Len(t, events, n+1, "%v", events)
	for i, ev := range events {
		require.Equal(t, strconv.Itoa(i+1), ev.ID, "ids one by one: %v", events)
		if i < n {
			require.Equal(t, ssetest.Event{Type: "update", ID: ev.ID, Data: strconv.Itoa(i)}, ev)
		}
	}
	assert.Equal(t, "close", events[n].Type)
}

func logsOf(c []*instance, part string) int {
	n := 0
	for _, in := range c {
		n += strings.Count(in.log.String(), part)
	}
	return n
}

// TestHandoverOnShutdown: the owner of a run shuts down mid-run (SIGTERM
// closes its registry); another instance goes on with the run within about
// a tick, not a lease, and the stream held by a third gets every count
// once.
func TestHandoverOnShutdown(t *testing.T) {
	const updates, tick = 40, 20 * time.Millisecond
	c := movable(t, redistest.Start(t), 3, 10*time.Second, updates, tick)
	owner, holder := c[0], c[2]
	st := holder.srv.Open(t, "a", "")
	require.NoError(t, owner.Start(t.Context(), "a", counting(updates, tick)))
	for range 5 {
		st.Next(t)
	}
	began := time.Now()
	owner.Close()
	events, longest := readAll(t, st)
	t.Logf("handover: the longest wait between two events was %s", longest)

	// st read 5 events before the handover; the rest came after it.
	all := append(make([]ssetest.Event, 0, updates+1), firstN(updates, 5)...)
	wantEveryCount(t, append(all, events...), updates)
	assert.Less(t, longest, time.Second, "about a tick, not the 10 s lease")
	assert.Less(t, time.Since(began), 5*time.Second)
	assert.Equal(t, 1, logsOf(c, "run handed over"))
	assert.Equal(t, 1, logsOf(c, "run taken over"))
}

// firstN returns the first k events a stream of counting(n) gets.
func firstN(n, k int) []ssetest.Event {
	out := make([]ssetest.Event, k)
	for i := range out {
		out[i] = ssetest.Event{Type: "update", ID: strconv.Itoa(i + 1), Data: strconv.Itoa(i)}
	}
	return out
}

// TestTakeoverAfterCrash: an owner that dies (its Redis client closed, so
// it can neither append, renew nor let go) keeps its claim until the lease
// runs out; then another instance goes on with the run, every count once.
func TestTakeoverAfterCrash(t *testing.T) {
	const updates, tick, lease = 30, 20 * time.Millisecond, 300 * time.Millisecond
	c := movable(t, redistest.Start(t), 3, lease, updates, tick)
	owner, holder := c[0], c[2]
	st := holder.srv.Open(t, "a", "")
	require.NoError(t, owner.Start(t.Context(), "a", counting(updates, tick)))
	events := []ssetest.Event{st.Next(t), st.Next(t), st.Next(t)}

	require.NoError(t, owner.rdb.Close())
	rest, longest := readAll(t, st)
	t.Logf("crash: the longest wait between two events was %s", longest)
	wantEveryCount(t, append(events, rest...), updates)
	assert.GreaterOrEqual(t, longest, lease/2, "the claim held until its lease ran out")
	assert.Less(t, longest, 5*time.Second)
	assert.Equal(t, 1, logsOf(c[1:], "run taken over"))
}

// TestTakeoverBeforeTheFirstEvent: an owner that dies between claiming a
// run and logging its first event leaves a claim that refuses other starts
// (the client hears that its run is going) until the lease runs out; then
// another instance runs it, from the start.
func TestTakeoverBeforeTheFirstEvent(t *testing.T) {
	const updates, tick, lease = 10, 20 * time.Millisecond, 300 * time.Millisecond
	c := movable(t, redistest.Start(t), 3, lease, updates, tick)
	owner, holder := c[0], c[2]
	st := holder.srv.Open(t, "a", "")
	_, err := owner.claim(t.Context(), "a")
	require.NoError(t, err)
	require.NoError(t, owner.rdb.Close()) // dead before its run began

	require.ErrorIs(t, holder.Start(t.Context(), "a", counting(updates, tick)), sse.ErrRunning)
	events, _ := readAll(t, st)
	wantEveryCount(t, events, updates)
	assert.Equal(t, 1, logsOf(c[1:], "run taken over"))
}

// TestTakeoverOfAPostStreamsRun: AttachRun (a POST read as a stream)
// claims and starts a run in one script; an owner that dies before the run
// logs anything or renews its claim leaves it to be taken over after the
// lease, as Start's, and the client's retry on another instance gets every
// count.
func TestTakeoverOfAPostStreamsRun(t *testing.T) {
	const updates, tick, lease = 10, 20 * time.Millisecond, 300 * time.Millisecond
	c := movable(t, redistest.Start(t), 3, lease, updates, tick)
	owner, holder := c[0], c[2]
	_, detach, err := owner.AttachRun(t.Context(), "a", 0, func(ctx context.Context, _ *sse.Run) { <-ctx.Done() })
	require.NoError(t, err)
	defer detach()
	require.NoError(t, owner.rdb.Close()) // dead before its run logged or renewed anything

	st := holder.srv.Open(t, "a", "") // the client's retry, elsewhere
	events, _ := readAll(t, st)
	wantEveryCount(t, events, updates)
	assert.Equal(t, 1, logsOf(c[1:], "run taken over"))
}

// TestPostStreamRetryTakesTheRunOver: a POST stream's retry that comes
// after its run's owner died and the claim ran out, before any scan has
// taken the run over, resumes the run and takes it over there: the counts
// go on, where starting a new run would show them from 0 again.
func TestPostStreamRetryTakesTheRunOver(t *testing.T) {
	const updates, tick = 10, 20 * time.Millisecond
	redis := redistest.Start(t)
	redis.Flush()
	resume := func(string) sse.RunFunc { return counting(updates, tick) }
	owner := newInstanceWith(t, redis, ssetest.Config(), Options{Lease: 300 * time.Millisecond, Resume: resume})
	// A long lease: other's scans, every third of it, do not come first.
	other := newInstanceWith(t, redis, ssetest.Config(), Options{Lease: time.Minute, Resume: resume})
	c := []*instance{owner, other}
	s, detach, err := owner.AttachRun(t.Context(), "a", 0, counting(updates, tick))
	require.NoError(t, err)
	st := owner.srv.Serve(t, s, detach)
	events := []ssetest.Event{st.Next(t), st.Next(t), st.Next(t)}
	require.NoError(t, owner.rdb.Close()) // dies mid-run
	require.Eventually(t, func() bool { return other.rdb.Exists(t.Context(), runKey("a")).Val() == 0 },
		5*time.Second, time.Millisecond, "the claim runs out")

	s, detach, err = other.AttachRun(t.Context(), "a", 3, counting(updates, tick))
	require.NoError(t, err)
	rest, _ := readAll(t, other.srv.Serve(t, s, detach))
	wantEveryCount(t, append(events, rest...), updates)
	assert.Equal(t, 1, logsOf(c[1:], "run taken over"))
}

// TestLateUnindexOfTheLastRun: the owner of a client's last run takes it
// out of runsIndex once it has finished, on a goroutine of its own; that
// may land after the client's next run, started on another instance as
// soon as the client heard close, has indexed itself. It takes out only its
// own run: if the next run's owner dies before it renews anything, the run
// is still found and taken over.
func TestLateUnindexOfTheLastRun(t *testing.T) {
	const updates, tick, lease = 10, 20 * time.Millisecond, 300 * time.Millisecond
	c := movable(t, redistest.Start(t), 3, lease, updates, tick)
	last, owner, holder := c[0], c[1], c[2]
	st := holder.srv.Open(t, "a", "")
	lastToken, err := last.claim(t.Context(), "a")
	require.NoError(t, err)
	last.release("a", lastToken) // the last run lets go, as its final event does

	_, err = owner.claim(t.Context(), "a") // the next run, indexed
	require.NoError(t, err)
	require.NoError(t, owner.rdb.Close()) // its owner dies before its first event
	last.unindex("a", lastToken)          // the last run's unindex, late

	events, _ := readAll(t, st)
	wantEveryCount(t, events, updates)
	assert.Equal(t, 1, logsOf([]*instance{last, holder}, "run taken over"))
}

// TestTakeoverIsExclusive: five instances race for a handed-over run,
// called at once on top of their own scans: one of them goes on with it,
// and no count comes twice.
func TestTakeoverIsExclusive(t *testing.T) {
	const updates, tick = 30, 20 * time.Millisecond
	c := movable(t, redistest.Start(t), 6, 10*time.Second, updates, tick)
	owner, takers := c[0], c[1:]
	st := takers[0].srv.Open(t, "a", "")
	require.NoError(t, owner.Start(t.Context(), "a", counting(updates, tick)))
	events := []ssetest.Event{st.Next(t), st.Next(t)}

	owner.Close()
	var wg sync.WaitGroup
	for _, in := range takers {
		wg.Go(func() { in.adopt(t.Context()) })
	}
	wg.Wait()
	owners := func() int {
		n := 0
		for _, in := range takers {
			n += in.Stats().Runs
		}
		return n
	}
	// A scan that the handover woke may have won, and be launching it.
	require.Eventually(t, func() bool { return owners() > 0 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, 1, owners(), "one owner")
	rest, _ := readAll(t, st)
	wantEveryCount(t, append(events, rest...), updates)
	assert.Equal(t, 1, logsOf(takers, "run taken over"))
}

// TestRemoveDuringTakeover: a client removed while its run is handed over
// is gone for good: no instance goes on with the run.
func TestRemoveDuringTakeover(t *testing.T) {
	const updates, tick = 50, 20 * time.Millisecond
	c := movable(t, redistest.Start(t), 3, 10*time.Second, updates, tick)
	owner, others := c[0], c[1:]
	st := others[1].srv.Open(t, "a", "")
	require.NoError(t, owner.Start(t.Context(), "a", counting(updates, tick)))
	st.Next(t)

	owner.Close()
	require.NoError(t, others[0].Remove(t.Context(), "a"))
	st.Rest(t) // the stream ends
	time.Sleep(20 * tick)
	for _, in := range others {
		assert.Zero(t, in.Stats().Runs, "no instance runs it")
	}
	assert.ErrorIs(t, others[0].Start(t.Context(), "a", counting(1, tick)), sse.ErrUnknownClient)
}

// TestRunLostWithoutResume: without Options.Resume no instance can go on
// with a run whose owner shut down: its streams get a final gap that says
// so, never silence, and a new run may start.
func TestRunLostWithoutResume(t *testing.T) {
	redis := redistest.Start(t)
	c := cluster(t, redis, 2, ssetest.Config(), 0)
	owner, holder := c[0], c[1]
	st := holder.srv.Open(t, "a", "")
	require.NoError(t, owner.Start(t.Context(), "a", counting(50, 20*time.Millisecond)))
	st.Next(t)
	owner.Close()
	rest := st.Rest(t)
	require.NotEmpty(t, rest)
	assert.Equal(t, ssetest.Event{Type: sse.GapEvent, ID: rest[len(rest)-1].ID, Data: sse.GapData(sse.ReasonRunLost, 0)},
		rest[len(rest)-1], "a final gap: the run is lost")
	require.NoError(t, holder.Start(t.Context(), "a", counting(1, time.Millisecond)))
}

// TestRollingRestart restarts every instance, one by one, during a run, as
// a rolling deploy does: each shutdown hands the run on, each stream that
// ends with its instance reconnects to another with its Last-Event-ID, and
// the run completes with every count once.
func TestRollingRestart(t *testing.T) {
	const updates, tick = 60, 25 * time.Millisecond
	redis := redistest.Start(t)
	c := movable(t, redis, 3, 10*time.Second, updates, tick)
	st := c[1].srv.Open(t, "a", "")
	holder := 1
	require.NoError(t, c[0].Start(t.Context(), "a", counting(updates, tick)))
	var events []ssetest.Event
	// read reads k events, or to the close if k is 0, reconnecting as a
	// browser does when the holder goes away.
	read := func(k int) {
		for {
			ev, err := st.Reader().Next()
			if err != nil { // the holder went away: reconnect elsewhere
				holder = (holder + 1) % len(c)
				st = c[holder].srv.Open(t, "a", st.LastEventID())
				continue
			}
			events = append(events, ev)
			if ev.Type == "close" {
				return
			}
			if k > 0 {
				if k--; k == 0 {
					return
				}
			}
		}
	}
	for i := range c {
		read(4)
		c[i].Close() // SIGTERM: the run, if it is here, is handed on
		c[i] = newInstanceWith(t, redis, ssetest.Config(), Options{
			Lease:  10 * time.Second,
			Resume: func(string) sse.RunFunc { return counting(updates, tick) },
		})
	}
	read(0)
	wantEveryCount(t, events, updates)
}
