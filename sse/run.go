package sse

import "context"

// RunFunc is the work of a run. It publishes events through r, must return
// soon after ctx is done, and calls r.Finish with its last event when it
// completes. The registry starts it in a goroutine of its own and waits for
// it in Close.
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
