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
	cancel  context.CancelFunc // the context fn was called with
	unhook  func() bool        // takes stop off the parent context

	mu      sync.Mutex
	stopped bool
	onStop  []func() // the holds' stopped
	// stepping is set while one of the run's steps is called (step): a
	// registry in memory then holds back the wake of the stream the
	// step's events go to (holdWake), and step wakes it once the step
	// returns, so that the events of one step leave in one write (the
	// demo's last update and its close).
	stepping bool
	held     *Stream
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

// Go calls fn on a goroutine of its own, with a context of its own under
// parent, and ended once the run is over: when fn has returned and every
// hold on r is released. A registry calls it once, and stops the run with
// the stop it returns, or by cancelling parent. A registry that stops each
// of its runs itself passes an uncancellable parent (context.Background):
// the run then costs parent nothing, where a cancellable one keeps a hook
// per run.
func (r *Run) Go(parent context.Context, fn RunFunc, ended func()) (stop func()) {
	hooked := parent.Done() != nil
	base := parent
	if hooked {
		// parent's cancel comes through stop: one hook on it, not a
		// second for the run's context.
		base = context.WithoutCancel(parent)
	}
	ctx, cancel := context.WithCancel(base)
	r.cancel, r.ended = cancel, ended
	r.holds.Store(1) // fn's own
	if hooked {
		r.unhook = context.AfterFunc(parent, r.stop)
	}
	go func() {
		fn(ctx, r)
		r.release()
	}()
	return r.stop
}

// stop cancels the run's context and calls the stopped of each hold, on
// goroutines of their own: stop may be called with a registry's lock held,
// which ending the run takes.
func (r *Run) stop() {
	r.cancel()
	r.mu.Lock()
	hooks := r.onStop
	r.stopped, r.onStop = true, nil
	r.mu.Unlock()
	for _, h := range hooks {
		go h()
	}
}

// Hold keeps the run going after its RunFunc returns, until release is
// called: for work that goes on without a goroutine of its own. Call
// release once, when the work has ended or soon after the run is stopped;
// the run's Finish, if it came, has been sent by then. stopped, unless
// nil, is called once, on a goroutine of its own, if the run is stopped
// (or has been) before it is over: where the work learns to end, with no
// goroutine or context hook of its own waiting for it.
func (r *Run) Hold(stopped func()) (release func()) {
	r.holds.Add(1)
	if stopped != nil {
		r.mu.Lock()
		now := r.stopped
		if !now {
			r.onStop = append(r.onStop, stopped)
		}
		r.mu.Unlock()
		if now {
			go stopped()
		}
	}
	return sync.OnceFunc(r.release)
}

// step calls fn for the run's step n, and wakes the stream its events went
// to once it returns; see stepping.
func (r *Run) step(fn StepFunc, n int) (more bool) {
	r.mu.Lock()
	r.stepping = true
	r.mu.Unlock()
	more = fn(r, n)
	r.mu.Lock()
	s := r.held
	r.stepping, r.held = false, nil
	r.mu.Unlock()
	if s != nil {
		s.Flush()
	}
	return more
}

// holdWake reports whether a step of the run is being called, and if so
// keeps s to be woken when it returns. A stream kept before, if another,
// was replaced: it has ended, and needs no wake.
func (r *Run) holdWake(s *Stream) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stepping {
		r.held = s
	}
	return r.stepping
}

func (r *Run) release() {
	if r.holds.Add(-1) != 0 {
		return
	}
	r.mu.Lock()
	r.onStop = nil // over: a late stop calls no one
	r.mu.Unlock()
	if r.unhook != nil {
		r.unhook()
	}
	if r.cancel != nil {
		r.cancel() // frees the context; the run is over
	}
	if r.ended != nil {
		r.ended()
	}
}
