package sse

import (
	"context"
	"sync"
	"sync/atomic"
)

// RunFunc is the work of a run. It publishes events through r, must return
// soon after ctx is done, and calls r.Finish with its last event when it
// completes. The registry starts it in a goroutine of its own (Run.Go) and
// waits for it in Close. Work that goes on without a goroutine (a
// Schedule's) holds the run (Run.Hold) and returns at once.
//
// A registry shared by several instances may move a run whose instance
// went away to another instance: it then calls a RunFunc there with r.Last
// set to the last event the run logged, and the work goes on from it.
type RunFunc func(ctx context.Context, r *Run)

// PublishFunc logs an event of a run, the run's final one if final is set,
// and wakes the streams that show it. A registry passes one to NewRun.
type PublishFunc func(name, data string, final bool) error

// Run is the handle a RunFunc publishes through.
type Run struct {
	publish PublishFunc
	last    *Entry // the last event the run logged before it moved, or nil
	waits   bool   // publish waits on a store
	holds   atomic.Int32
	ended   func()
}

// NewRun returns the handle of a run whose events go to publish. Send and
// Finish check the event's name before they call it.
func NewRun(publish PublishFunc) *Run {
	return &Run{publish: publish}
}

// ContinueRun returns the handle of a run that goes on after last, the
// last event it logged on the instance it moved from.
func ContinueRun(publish PublishFunc, last Entry) *Run {
	return &Run{publish: publish, last: &last}
}

// Waiting marks r as a run whose publish waits on a store (a round trip
// to it), and returns r: a registry whose Send blocks says so, and a
// Schedule then calls the run's steps on goroutines of their own.
func (r *Run) Waiting() *Run {
	r.waits = true
	return r
}

// Waits reports whether the run's publish waits on a store (Waiting).
func (r *Run) Waits() bool { return r.waits }

// Last returns the last event the run logged before it moved to this
// instance, and ok; or ok false for a run that starts afresh.
func (r *Run) Last() (last Entry, ok bool) {
	if r.last == nil {
		return Entry{}, false
	}
	return *r.last, true
}

// Send appends an event to the client's log and wakes its stream. The
// registry numbers the event. It fails with ErrInvalidField for a name with
// CR, LF or NUL, and with the error of a registry that could not store the
// event, which then stops the run; after the run is stopped it does nothing.
func (r *Run) Send(name, data string) error {
	if err := (Event{Name: name}).Validate(); err != nil {
		return err
	}
	return r.publish(name, data, false)
}

// Finish sends the run's final event. A stream that has written it ends, and
// a reconnect that names it is answered with ErrFinished.
func (r *Run) Finish(name, data string) error {
	if err := (Event{Name: name}).Validate(); err != nil {
		return err
	}
	return r.publish(name, data, true)
}

// Go calls fn with ctx and r on a goroutine of its own, and ended once the
// run is over: when fn has returned and every hold on r is released. A
// registry calls it once, with the run's context, which it cancels to stop
// the run.
func (r *Run) Go(ctx context.Context, fn RunFunc, ended func()) {
	r.ended = ended
	r.holds.Store(1) // fn's own
	go func() {
		fn(ctx, r)
		r.release()
	}()
}

// Hold keeps the run going after its RunFunc returns, until release is
// called: for work that goes on without a goroutine of its own. Call
// release once, when the work has ended or soon after the run's context is
// done; the run's Finish, if it came, has been sent by then.
func (r *Run) Hold() (release func()) {
	r.holds.Add(1)
	return sync.OnceFunc(r.release)
}

func (r *Run) release() {
	if r.holds.Add(-1) == 0 && r.ended != nil {
		r.ended()
	}
}
