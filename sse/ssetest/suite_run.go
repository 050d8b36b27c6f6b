package ssetest

import (
	"context"
	"strconv"
	"testing"

	"gin-sse-progress/sse"
)

// The rules of Registry.AttachRun: one call that starts a run and reads it
// back, and whose retries resume that run rather than start another.

func attachRun(t *testing.T, srv *Server, id string, last uint64, fn sse.RunFunc) *Stream {
	t.Helper()
	s, detach, err := srv.Registry.AttachRun(t.Context(), id, last, fn)
	if err != nil {
		t.Fatalf("AttachRun %q after %d: %v", id, last, err)
	}
	return srv.Serve(t, s, detach)
}

// neverRun is the fn of a call that must not start a run.
func neverRun(t *testing.T) sse.RunFunc {
	return func(context.Context, *sse.Run) { t.Error("a call that resumes a run started another") }
}

// testAttachRunWholeRun: for a client new to the registry, one call starts
// the run and shows it to its end; numbering goes on from lastEventID.
func testAttachRunWholeRun(t *testing.T, newRegistry maker) {
	_, srv := serve(t, newRegistry, Config())
	events := attachRun(t, srv, "a", 0, Updates(20)).Rest(t)
	wantUpdates(t, events, 20, true)
	wantIDs(t, events, 1)

	events = attachRun(t, srv, "b", 41, Updates(1)).Rest(t)
	if len(events) == 0 {
		t.Fatal("no events")
	}
	wantGap(t, events[0], sse.ReasonUnknownClient, 41)
	wantUpdates(t, events[1:], 1, true)
	wantIDs(t, events[1:], 42)
}

// testAttachRunWhileRunning: without a lastEventID while a run goes, the
// call is refused and leaves the client's stream alone.
func testAttachRunWhileRunning(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	st := srv.Open(t, "a", "")
	run := NewScript()
	start(t, reg, "a", run.Run)
	_, _, err := reg.AttachRun(t.Context(), "a", 0, neverRun(t))
	wantErr(t, "AttachRun while a run goes", err, sse.ErrRunning)
	run.Send(t, "update", "0")
	run.Finish(t, "close", "done")
	wantUpdates(t, st.Rest(t), 1, true)
}

// testAttachRunRetries drops the stream of one call twice mid-run, with
// events published while it is down, and retries with the last id: every
// event once, in order, and no retry starts a run. Once the run is over, a
// retry that names its final event gets ErrFinished, and one that names an
// earlier id gets the rest.
func testAttachRunRetries(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	run := NewScript()
	st := attachRun(t, srv, "a", 0, run.Run)
	var events []Event
	n := 0
	send := func() {
		run.Send(t, "update", strconv.Itoa(n))
		n++
	}
	for range 2 {
		send()
		send()
		events = append(events, st.Next(t), st.Next(t))
		st.Drop()
		send() // while the connection is down
		last, err := strconv.ParseUint(st.LastEventID(), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		st = attachRun(t, srv, "a", last, neverRun(t))
	}
	send()
	run.Finish(t, "close", "done")
	events = append(events, st.Rest(t)...)
	wantUpdates(t, events, n, true)
	wantIDs(t, events, 1)

	final := uint64(len(events))
	_, _, err := reg.AttachRun(t.Context(), "a", final, neverRun(t))
	wantErr(t, "a retry that names the final event", err, sse.ErrFinished)
	rest := attachRun(t, srv, "a", final-1, neverRun(t)).Rest(t)
	if len(rest) != 1 || rest[0].Type != "close" {
		t.Errorf("a retry that missed the final event gets it: %+v", rest)
	}
}

// testAttachRunNextRun: after a run is over, a call without a lastEventID
// starts the next run, whose ids go on, and shows none of the last run,
// not even one that no stream delivered.
func testAttachRunNextRun(t *testing.T, newRegistry maker) {
	reg, srv := serve(t, newRegistry, Config())
	_, detach, err := reg.Attach(t.Context(), "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	run := NewScript()
	start(t, reg, "a", run.Run)
	run.Send(t, "update", "0")
	run.Finish(t, "close", "done")
	detach()

	events := attachRun(t, srv, "a", 0, Updates(2)).Rest(t)
	wantUpdates(t, events, 2, true)
	wantIDs(t, events, 3)
}

// testAttachRunReplaces: the stream of AttachRun replaces the client's
// stream, and a stream that attaches after it replaces it in turn,
// resuming where it was.
func testAttachRunReplaces(t *testing.T, newRegistry maker) {
	_, srv := serve(t, newRegistry, Config())
	get := srv.Open(t, "a", "")
	run := NewScript()
	post := attachRun(t, srv, "a", 0, run.Run)
	if rest := get.Rest(t); len(rest) > 0 {
		t.Errorf("the older stream ends without events, got %+v", rest)
	}
	run.Send(t, "update", "0")
	events := []Event{post.Next(t)}

	get = srv.Open(t, "a", post.LastEventID())
	events = append(events, post.Rest(t)...)
	run.Send(t, "update", "1")
	run.Finish(t, "close", "done")
	events = append(events, get.Rest(t)...)
	wantUpdates(t, events, 2, true)
	wantIDs(t, events, 1)
}
