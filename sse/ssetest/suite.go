package ssetest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"gin-sse-progress/sse"
)

// NewRegistry makes the registry under test, with cfg, and closes it when
// the test ends. It may return several instances sharing one store behind
// a RoundRobin.
type NewRegistry func(t *testing.T, cfg sse.Config) sse.Registry

// TestRegistry checks that the registries newRegistry makes follow the
// rules of sse.Registry, as the browser sees them: it serves their streams
// over HTTP with Handler, reads them with Reader, and drives runs with
// Script. Each subtest makes a registry of its own.
//
// MaxStreams limits each instance, so the limit is checked only on a
// registry that is not a RoundRobin.
func TestRegistry(t *testing.T, newRegistry NewRegistry) {
	tests := []struct {
		name string
		test func(t *testing.T, newRegistry maker)
	}{
		{"WholeRun", testWholeRun},
		{"StartErrors", testStartErrors},
		{"TwoClientsAreIsolated", testTwoClientsAreIsolated},
		{"RemoveEndsStreamAndRun", testRemoveEndsStreamAndRun},
		{"SecondStreamReplacesFirst", testSecondStreamReplacesFirst},
		{"ResumeAfterDroppedConnection", testResumeAfterDroppedConnection},
		{"DropResumes", testDropResumes},
		{"FinishedRun", testFinishedRun},
		{"NoReplayAfterClose", testNoReplayAfterClose},
		{"NewClientContinuesNumbering", testNewClientContinuesNumbering},
		{"Gaps", testGaps},
		{"MaxStreams", testMaxStreams},
		{"Grace", testGrace},
		{"Close", testClose},
		{"StoppedRunPublishesNothing", testStoppedRunPublishesNothing},
		{"AttachRunWholeRun", testAttachRunWholeRun},
		{"AttachRunWhileRunning", testAttachRunWhileRunning},
		{"AttachRunRetries", testAttachRunRetries},
		{"AttachRunNextRun", testAttachRunNextRun},
		{"AttachRunReplaces", testAttachRunReplaces},
		{"HeldRunGoesOn", testHeldRunGoesOn},
		{"CloseWaitsForHeldRuns", testCloseWaitsForHeldRuns},
		{"RemoveStopsHeldRun", testRemoveStopsHeldRun},
		{"ScheduledRun", testScheduledRun},
		{"ScheduledRunCutMidRun", testScheduledRunCutMidRun},
		{"NoLeaks", testNoLeaks},
	}
	// Each subtest runs on both of Handoff's paths: streams taken over
	// from net/http and written by the registry's Loop, and streams on a
	// goroutine of their own, as over HTTP/2.
	for _, path := range []struct {
		name     string
		blocking bool
	}{{"TakenOver", false}, {"Goroutine", true}} {
		t.Run(path.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) { tc.test(t, maker{newRegistry, path.blocking}) })
			}
		})
	}
}

func testWholeRun(t *testing.T, newRegistry maker) {
	cfg := Config()
	reg, srv := serve(t, newRegistry, cfg)
	st := srv.Open(t, "42", "")
	start(t, reg, "42", Updates(20))

	events := st.Rest(t)
	wantUpdates(t, events, 20, true)
	wantIDs(t, events, 1)
	if events[20].Data != "done" {
		t.Errorf("close data %q, want done", events[20].Data)
	}
	if got, mean := st.Reader().Retry, cfg.Retry.Milliseconds(); got < mean/2 || got >= mean*3/2 {
		t.Errorf("retry %d, want [%d, %d), around the mean %d", got, mean/2, mean*3/2, mean)
	}
}

func testStartErrors(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	wantErr(t, "start for an unknown client", reg.Start(t.Context(), "nobody", Updates(1)), sse.ErrUnknownClient)

	st := srv.Open(t, "a", "")
	first := NewScript()
	start(t, reg, "a", first.Run)
	wantErr(t, "a second start", reg.Start(t.Context(), "a", Updates(1)), sse.ErrRunning)
	first.Send(t, "update", "0")
	first.Finish(t, "close", "done")
	wantUpdates(t, st.Rest(t), 1, true)

	// A run that has sent its final event makes room for the next at once.
	start(t, reg, "a", Updates(1))
}

func testTwoClientsAreIsolated(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	a, b := srv.Open(t, "a", ""), srv.Open(t, "b", "")
	start(t, reg, "a", Updates(3))
	start(t, reg, "b", Updates(5))
	wantUpdates(t, a.Rest(t), 3, true)
	wantUpdates(t, b.Rest(t), 5, true)
}

func testRemoveEndsStreamAndRun(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	st := srv.Open(t, "a", "")
	run := NewScript()
	start(t, reg, "a", run.Run)
	run.Send(t, "update", "0")
	if ev := st.Next(t); ev.Type != "update" {
		t.Fatalf("first event %+v", ev)
	}

	if err := reg.Remove(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	if rest := st.Rest(t); len(rest) > 0 {
		t.Errorf("the stream ends without a final event, got %+v", rest)
	}
	waitStopped(t, run, "remove")
	wantErr(t, "remove again", reg.Remove(t.Context(), "a"), sse.ErrUnknownClient)
	wantErr(t, "start after remove", reg.Start(t.Context(), "a", Updates(1)), sse.ErrUnknownClient)
	wantErr(t, "drop after remove", reg.Drop(t.Context(), "a"), sse.ErrUnknownClient)
}

func testSecondStreamReplacesFirst(t *testing.T, newRegistry maker) {
	cfg := Config()
	cfg.Grace = 50 * time.Millisecond
	reg, srv := serve(t, newRegistry, cfg)
	first := srv.Open(t, "a", "")
	run := NewScript()
	start(t, reg, "a", run.Run)
	run.Send(t, "update", "0")

	second := srv.Open(t, "a", "")
	for _, ev := range first.Rest(t) {
		if ev.Type != "update" {
			t.Errorf("the older stream ends without a final event, got %+v", ev)
		}
	}
	// The older stream's end does not start the client's grace period.
	time.Sleep(4 * cfg.Grace)
	run.Send(t, "update", "1")
	run.Finish(t, "close", "done")
	events := second.Rest(t)
	wantUpdates(t, events, 2, true)
	wantIDs(t, events, 1) // the run's events carried over to the new stream
}

// testResumeAfterDroppedConnection breaks the connection again and again,
// with events published while it is down: a reconnect with Last-Event-ID
// gets every event once, in order.
func testResumeAfterDroppedConnection(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	st := srv.Open(t, "a", "")
	run := NewScript()
	start(t, reg, "a", run.Run)

	var events []Event
	n := 0
	send := func() {
		run.Send(t, "update", strconv.Itoa(n))
		n++
	}
	for range 5 {
		send()
		send()
		events = append(events, st.Next(t), st.Next(t))
		st.Drop()
		send() // while the connection is down
		st = srv.Open(t, "a", st.LastEventID())
	}
	send()
	run.Finish(t, "close", "done")
	events = append(events, st.Rest(t)...)
	wantUpdates(t, events, n, true)
	wantIDs(t, events, 1)
}

// testDropResumes ends the stream from the server's side: it ends without a
// final event, the client keeps its run, and a reconnect resumes it.
func testDropResumes(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	wantErr(t, "drop for an unknown client", reg.Drop(t.Context(), "a"), sse.ErrUnknownClient)
	st := srv.Open(t, "a", "")
	run := NewScript()
	start(t, reg, "a", run.Run)
	run.Send(t, "update", "0")
	events := []Event{st.Next(t)}

	if err := reg.Drop(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	events = append(events, st.Rest(t)...)
	if len(events) != 1 {
		t.Fatalf("a dropped stream ends without a final event, got %+v", events)
	}
	// Until the browser is back, there is no stream to drop.
	eventually(t, "drop finds no stream", func() bool {
		return errors.Is(reg.Drop(t.Context(), "a"), sse.ErrNoStream)
	})
	run.Send(t, "update", "1")
	st = srv.Open(t, "a", st.LastEventID())
	run.Finish(t, "close", "done")
	events = append(events, st.Rest(t)...)
	wantUpdates(t, events, 2, true)
	wantIDs(t, events, 1)
}

func testFinishedRun(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	// A stream that ends before it writes anything: the run is not
	// delivered, so a fresh stream without Last-Event-ID gets all of it.
	_, detach, err := reg.Attach(t.Context(), "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	run := NewScript()
	start(t, reg, "a", run.Run)
	run.Send(t, "update", "0")
	run.Finish(t, "close", "done")
	detach()
	events := srv.Open(t, "a", "").Rest(t)
	wantUpdates(t, events, 1, true)
	wantIDs(t, events, 1)

	resp := srv.Get(t, "a", "2") //nolint:bodyclose // closed when the test ends
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("a reconnect that names the final event: status %d, want 204", resp.StatusCode)
	}
	_, _, err = reg.Attach(t.Context(), "a", 2)
	wantErr(t, "attach after the final event", err, sse.ErrFinished)
	if events := srv.Open(t, "a", "1").Rest(t); len(events) != 1 || events[0].ID != "2" || events[0].Type != "close" {
		t.Errorf("a client that missed the final event gets it: %+v", events)
	}

	// A fresh stream after the run was delivered waits for the next run,
	// whose ids go on.
	st := srv.Open(t, "a", "")
	next := NewScript()
	start(t, reg, "a", next.Run)
	next.Send(t, "update", "0")
	if ev := st.Next(t); ev.ID != "3" {
		t.Errorf("first event of the next run %+v, want id 3", ev)
	}
	next.Finish(t, "close", "done")
}

// testNoReplayAfterClose opens the client's next stream the moment the
// final event arrives, as a page whose "Run again" is clicked at once
// does: the fresh stream is not shown the run it just had. Twenty times,
// since it is a race.
func testNoReplayAfterClose(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	st := srv.Open(t, "a", "")
	next := uint64(1)
	for range 50 {
		start(t, reg, "a", Updates(2))
		for {
			ev := st.Next(t)
			if ev.ID != strconv.FormatUint(next, 10) {
				t.Fatalf("event %+v, want id %d: a replay of a run the client had", ev, next)
			}
			next++
			if ev.Type == "close" {
				break
			}
		}
		// Attached at once, before the old stream's end is read, and
		// served after.
		s, detach, err := reg.Attach(t.Context(), "a", 0)
		if err != nil {
			t.Fatal(err)
		}
		st = srv.Serve(t, s, detach)
	}
}

func testNewClientContinuesNumbering(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	// Browsers that saw events of an earlier server, up to ids near 2^53:
	// a gap says their events are gone, then the ids go on.
	for _, last := range []uint64{41, 1<<53 - 10} {
		id := fmt.Sprint("client-", last)
		st := srv.Open(t, id, strconv.FormatUint(last, 10))
		wantGap(t, st.Next(t), sse.ReasonUnknownClient, last)
		start(t, reg, id, Updates(2))
		events := st.Rest(t)
		wantUpdates(t, events, 2, true)
		wantIDs(t, events, last+1)
	}
}

// testGaps: a stream whose Last-Event-ID the registry cannot continue from
// starts with a gap event that names the id and why, then goes on, its ids
// never going backwards. A resume the registry can serve whole gets none:
// every other subtest checks that, since a gap would be an event too many.
func testGaps(t *testing.T, newRegistry maker) {
	cfg := Config()
	cfg.Grace = 50 * time.Millisecond
	reg, srv := serve(t, newRegistry, cfg)

	// The log moved on: the client saw id 1 of a run, and the next run
	// replaced it.
	st := srv.Open(t, "moved", "")
	start(t, reg, "moved", Updates(2))
	st.Rest(t)
	next := NewScript()
	start(t, reg, "moved", next.Run)
	next.Send(t, "update", "0")
	st = srv.Open(t, "moved", "1")
	wantGap(t, st.Next(t), sse.ReasonNotKept, 1)
	if ev := st.Next(t); ev.ID != "4" {
		t.Errorf("after the gap, %+v; want the run's first event, id 4", ev)
	}
	next.Finish(t, "close", "done")

	// Ahead of the registry: the ids go on from the client's.
	st = srv.Open(t, "ahead", "")
	run := NewScript()
	start(t, reg, "ahead", run.Run)
	run.Send(t, "update", "0")
	st.Next(t)
	st = srv.Open(t, "ahead", "10")
	wantGap(t, st.Next(t), sse.ReasonAhead, 10)
	run.Send(t, "update", "1")
	run.Finish(t, "close", "done")
	events := st.Rest(t)
	wantIDs(t, events, 11)

	// Forgotten after Grace.
	srv.Open(t, "gone", "").Drop()
	eventually(t, "the client is forgotten", func() bool {
		return errors.Is(reg.Drop(t.Context(), "gone"), sse.ErrUnknownClient)
	})
	st = srv.Open(t, "gone", "7")
	wantGap(t, st.Next(t), sse.ReasonUnknownClient, 7)
}

func testMaxStreams(t *testing.T, newRegistry maker) {
	cfg := Config()
	cfg.MaxStreams = 2
	reg := newRegistry.make(t, cfg)
	if _, spread := reg.(*RoundRobin); spread {
		t.Log("the limit is per instance: not checked on a RoundRobin")
		return
	}
	attach := func(id string) func() {
		t.Helper()
		_, detach, err := reg.Attach(t.Context(), id, 0)
		if err != nil {
			t.Fatalf("attach %q: %v", id, err)
		}
		return detach
	}
	detachA := attach("a")
	detachB := attach("b")
	_, _, err := reg.Attach(t.Context(), "c", 0)
	wantErr(t, "a third stream", err, sse.ErrTooManyStreams)

	detachA2 := attach("a") // a replacement is let in at the limit
	defer detachA2()
	detachA()
	_, _, err = reg.Attach(t.Context(), "c", 0)
	wantErr(t, "after a replacement", err, sse.ErrTooManyStreams)

	detachB()
	attach("c")() // a stream that ends frees its place
}

func testGrace(t *testing.T, newRegistry maker) {
	cfg := Config()
	cfg.Grace = 50 * time.Millisecond
	reg, srv := serve(t, newRegistry, cfg)

	// Kept while its stream is open, and for Grace after; then forgotten,
	// and its run stopped (at once, or at its next event).
	st := srv.Open(t, "a", "")
	stopped := make(chan struct{})
	start(t, reg, "a", func(ctx context.Context, r *sse.Run) {
		defer close(stopped)
		Ticks(5*time.Millisecond)(ctx, r)
	})
	time.Sleep(4 * cfg.Grace)
	wantErr(t, "start while the stream is open", reg.Start(t.Context(), "a", Updates(1)), sse.ErrRunning)
	if ev := st.Next(t); ev.Type != "update" {
		t.Fatalf("event %+v", ev)
	}
	st.Drop()
	eventually(t, "the client is forgotten after Grace", func() bool {
		err := reg.Start(t.Context(), "a", Updates(1))
		if err != nil && !errors.Is(err, sse.ErrRunning) && !errors.Is(err, sse.ErrUnknownClient) {
			t.Fatal(err)
		}
		return errors.Is(err, sse.ErrUnknownClient)
	})
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the run goes on after its client was forgotten")
	}

	// A reconnect within Grace keeps the client.
	st = srv.Open(t, "b", "")
	st.Drop()
	eventually(t, "the dropped stream is gone", func() bool {
		return errors.Is(reg.Drop(t.Context(), "b"), sse.ErrNoStream)
	})
	st = srv.Open(t, "b", "")
	time.Sleep(4 * cfg.Grace)
	start(t, reg, "b", Updates(1))
	wantUpdates(t, st.Rest(t), 1, true)
}

func testClose(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	st := srv.Open(t, "a", "")
	run := NewScript()
	start(t, reg, "a", run.Run)
	run.Send(t, "update", "0")
	st.Next(t)

	reg.Close()
	select {
	case <-run.Stopped():
	default:
		t.Fatal("Close returned before the run did")
	}
	if events := st.Rest(t); len(events) > 0 {
		t.Errorf("the stream ends without a final event: %+v", events)
	}
	reg.Close() // a second call does nothing
	_, _, err := reg.Attach(t.Context(), "b", 0)
	wantErr(t, "attach after Close", err, sse.ErrClosed)
	wantErr(t, "start after Close", reg.Start(t.Context(), "a", Updates(1)), sse.ErrClosed)
}

func testStoppedRunPublishesNothing(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	st := srv.Open(t, "a", "")
	runs := make(chan *sse.Run, 1)
	start(t, reg, "a", func(_ context.Context, r *sse.Run) { runs <- r })
	r := <-runs

	// The run has returned; a new one may start once the registry knows.
	next := NewScript()
	eventually(t, "the returned run makes room", func() bool {
		err := reg.Start(t.Context(), "a", next.Run)
		if err != nil && !errors.Is(err, sse.ErrRunning) {
			t.Fatal(err)
		}
		return err == nil
	})
	if err := r.Send("update", "late"); err != nil {
		t.Errorf("a send after the run returned: %v, want nil", err)
	}
	wantErr(t, "a name with a line break", r.Send("bad\nname", ""), sse.ErrInvalidField)
	next.Send(t, "update", "0")
	next.Finish(t, "close", "done")
	events := st.Rest(t)
	wantUpdates(t, events, 1, true)
	wantIDs(t, events, 1)
}
