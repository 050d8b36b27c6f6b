package ssetest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"gin-sse-progress/sse"
)

// The rules of runs that go on after their RunFunc returns (Run.Hold), as
// a Schedule's do.

// held is a run whose RunFunc has returned, holding it.
type held struct {
	ctx     context.Context
	r       *sse.Run
	release func()
	stopped chan struct{} // closed by the hold's stopped
}

// startHeld starts a run of client id whose RunFunc holds it and returns,
// and returns once that RunFunc has returned.
func startHeld(t *testing.T, reg sse.Registry, id string) held {
	t.Helper()
	runs := make(chan held, 1)
	returned := make(chan struct{})
	start(t, reg, id, func(ctx context.Context, r *sse.Run) {
		defer close(returned)
		stopped := make(chan struct{})
		runs <- held{ctx, r, r.Hold(func() { close(stopped) }), stopped}
	})
	select {
	case <-returned:
		return <-runs
	case <-time.After(timeout):
		t.Fatal("the run did not start")
		return held{}
	}
}

// testHeldRunGoesOn: a held run is going until it is released, and what
// it publishes meanwhile reaches the stream.
func testHeldRunGoesOn(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	st := srv.Open(t, "a", "")
	h := startHeld(t, reg, "a")
	// Without the hold the registry would end the run as its RunFunc
	// returned; give it the time to.
	time.Sleep(20 * time.Millisecond)
	wantErr(t, "start while a held run goes on", reg.Start(t.Context(), "a", Updates(1)), sse.ErrRunning)
	if err := h.r.Send("update", "0"); err != nil {
		t.Fatal(err)
	}
	if ev := st.Next(t); ev.Type != "update" || ev.Data != "0" {
		t.Fatalf("event %+v, want update 0", ev)
	}

	// Released without a final event: the run is over, another may start.
	h.release()
	eventually(t, "the released run makes room", func() bool {
		return reg.Start(t.Context(), "a", Updates(1)) == nil
	})
	wantUpdates(t, st.Rest(t), 1, true)
}

// testCloseWaitsForHeldRuns: Close stops a held run, through its context
// and its hold's stopped, and returns only once it is released.
func testCloseWaitsForHeldRuns(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	srv.Open(t, "a", "")
	h := startHeld(t, reg, "a")
	closed := make(chan struct{})
	go func() {
		reg.Close()
		close(closed)
	}()
	select {
	case <-h.ctx.Done():
	case <-time.After(timeout):
		t.Fatal("Close did not cancel the held run's context")
	}
	select {
	case <-h.stopped:
	case <-time.After(timeout):
		t.Fatal("Close did not call the hold's stopped")
	}
	select {
	case <-closed:
		t.Fatal("Close returned before the held run was released")
	case <-time.After(50 * time.Millisecond):
	}
	h.release()
	select {
	case <-closed:
	case <-time.After(timeout):
		t.Fatal("Close did not return once the run was released")
	}
}

// testRemoveStopsHeldRun: a remove stops a held run, through its context
// and its hold's stopped; once released, the run is over.
func testRemoveStopsHeldRun(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	st := srv.Open(t, "a", "")
	h := startHeld(t, reg, "a")
	if err := reg.Remove(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	st.Rest(t)
	for what, done := range map[string]<-chan struct{}{"cancel its context": h.ctx.Done(), "call stopped": h.stopped} {
		select {
		case <-done:
		case <-time.After(timeout):
			t.Fatalf("the remove did not %s", what)
		}
	}
	h.release()
	// A client of the same id starts afresh, and runs.
	st = srv.Open(t, "a", "")
	start(t, reg, "a", Updates(1))
	wantUpdates(t, st.Rest(t), 1, true)
}

// testScheduledRun: a Schedule's run shows every step to its end, and a
// remove stops its steps.
func testScheduledRun(t *testing.T, newRegistry maker) {
	sched := sse.NewSchedule()
	t.Cleanup(sched.Close) // after the registry's Close: cleanups run last first
	reg, srv := serve(t, newRegistry, Config())

	st := srv.Open(t, "a", "")
	start(t, reg, "a", sched.Every(time.Millisecond, func(r *sse.Run, n int) bool {
		if n < 20 {
			_ = r.Send("update", strconv.Itoa(n))
			return true
		}
		_ = r.Finish("close", "done")
		return false
	}))
	events := st.Rest(t)
	wantUpdates(t, events, 20, true)
	wantIDs(t, events, 1)

	st = srv.Open(t, "b", "")
	var steps atomic.Int32
	start(t, reg, "b", sched.Every(time.Millisecond, func(r *sse.Run, n int) bool {
		steps.Add(1)
		_ = r.Send("update", strconv.Itoa(n))
		return true
	}))
	st.Next(t)
	if err := reg.Remove(t.Context(), "b"); err != nil {
		t.Fatal(err)
	}
	st.Rest(t)
	time.Sleep(10 * time.Millisecond) // a step running at the remove comes back
	after := steps.Load()
	time.Sleep(50 * time.Millisecond)
	if n := steps.Load(); n != after {
		t.Errorf("%d steps after the remove", n-after)
	}
}

// testScheduledRunCutMidRun: a Schedule's run whose steps send two events
// each (which leave in one write) shows every event once, in order, to its
// close, through a stream cut and resumed five times mid-run.
func testScheduledRunCutMidRun(t *testing.T, newRegistry maker) {
	sched := sse.NewSchedule()
	t.Cleanup(sched.Close) // after the registry's Close: cleanups run last first
	reg, srv := serve(t, newRegistry, Config())

	const steps = 40
	st := srv.Open(t, "a", "")
	start(t, reg, "a", sched.Every(2*time.Millisecond, func(r *sse.Run, n int) bool {
		_ = r.Send("update", strconv.Itoa(2*n))
		if n < steps-1 {
			_ = r.Send("update", strconv.Itoa(2*n+1))
			return true
		}
		_ = r.Finish("close", "done")
		return false
	}))
	var events []Event
	for range 5 {
		events = append(events, st.Next(t), st.Next(t), st.Next(t))
		st.Drop()
		st = srv.Open(t, "a", st.LastEventID())
	}
	events = append(events, st.Rest(t)...)
	wantUpdates(t, events, 2*steps-1, true)
	wantIDs(t, events, 1)
}
