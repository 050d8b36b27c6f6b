package sse

import (
	"context"
	"errors"
	"time"
)

// Registry holds clients by id: for each, at most one open stream, at most
// one run, and the events of its current run. It is what the HTTP handlers
// use. MemoryRegistry keeps it in the memory of one server instance; a
// registry in another package (this project's sseredis, say) can share it
// between instances, building its streams with NewStream and its runs with
// NewRun.
//
// The package ssetest holds the rules every Registry follows, as a test
// suite: ssetest.TestRegistry.
type Registry interface {
	// Attach opens a stream for client id, creating the client if it is
	// new. lastEventID is the id of the last event the client has seen (0
	// for none): the stream starts with the logged events after it. A
	// client that already has a stream gets the new one in its place, and
	// the older stream ends. It fails with ErrFinished if lastEventID is
	// the final event of a finished run, and with ErrTooManyStreams over
	// Config.MaxStreams. The caller serves the stream, then calls detach.
	Attach(ctx context.Context, id string, lastEventID uint64) (s *Stream, detach func(), err error)
	// Start starts fn as the next run of client id, whose events are
	// numbered on from the last run's. It fails with ErrUnknownClient, or
	// with ErrRunning while a run is going.
	Start(ctx context.Context, id string, fn RunFunc) error
	// AttachRun opens a stream for client id that shows its run, as one
	// request that both starts the work and reads it back needs (a POST
	// read as an event stream), in one step, so that a retry of that
	// request never starts a second run:
	//
	//   - with a lastEventID and a run going or finished, the stream
	//     resumes the run after lastEventID, as Attach does (ErrFinished
	//     if it names the final event), and fn is not started;
	//   - otherwise fn starts as the client's next run, the client made if
	//     it is new (its numbering going on from lastEventID), and the
	//     stream starts with the run's first event, never with the events
	//     of an earlier run. It fails with ErrRunning while a run is going.
	//
	// A stream the client already has ends, as with Attach. The caller
	// serves the stream, then calls detach.
	AttachRun(ctx context.Context, id string, lastEventID uint64, fn RunFunc) (s *Stream, detach func(), err error)
	// Remove stops the client's run, ends its stream and forgets it. It
	// fails with ErrUnknownClient.
	Remove(ctx context.Context, id string) error
	// Drop ends the client's stream without a final event, as a dropped
	// connection would, and keeps the client, its run and its events for
	// Config.Grace, so that it reconnects and resumes. It fails with
	// ErrUnknownClient or ErrNoStream.
	Drop(ctx context.Context, id string) error
	// Close ends every stream and run of this instance and waits for the
	// runs to return; Attach and Start fail with ErrClosed from then on.
	// Streams end without a final event, so browsers reconnect, to another
	// instance if there is one. It is safe to call more than once.
	Close()
}

// HealthChecker is a Registry that can tell whether it serves. A registry
// that is not one is taken to serve while it is open.
type HealthChecker interface {
	// Health is nil while the registry serves; ErrClosed once it is
	// closing, ErrUnavailable while it cannot reach what it depends on.
	Health(ctx context.Context) error
}

// StatsReporter is a Registry that can count what it holds.
type StatsReporter interface {
	// Stats counts what this instance holds.
	Stats() Stats
}

// Stats is a snapshot of the size of a registry on one instance.
type Stats struct {
	Clients int `json:"clients"`
	Streams int `json:"streams"`
	Runs    int `json:"runs"`
}

// Errors of a Registry.
var (
	ErrClosed         = errors.New("sse: registry closed")
	ErrUnknownClient  = errors.New("sse: unknown client")
	ErrRunning        = errors.New("sse: a run is already going for this client")
	ErrTooManyStreams = errors.New("sse: too many open streams")
	ErrNoStream       = errors.New("sse: client has no open stream")
	// ErrFinished answers an Attach whose lastEventID is the final event
	// of a finished run: the client has seen everything there is.
	ErrFinished = errors.New("sse: nothing left to send")
	// ErrUnavailable is returned by a registry that cannot reach what it
	// depends on, such as the store it shares with other instances. The
	// request may succeed later.
	ErrUnavailable = errors.New("sse: registry unavailable")
)

// Config holds the settings of a registry and of its streams. Every
// duration, and MaxStreams, must be positive.
type Config struct {
	// Retry is sent to each new stream in the "retry:" field: how long the
	// browser waits before it reconnects.
	Retry time.Duration
	// Heartbeat is the interval of comment lines on an idle stream.
	Heartbeat time.Duration
	// Grace is how long a client whose stream is gone is kept, with its run
	// and its events, so that it can reconnect and resume.
	Grace time.Duration
	// MaxStreams is the most streams open at once on one instance. A
	// client that already has a stream there is let in over it: that is
	// what a reconnect looks like before the server has noticed that the
	// old connection died.
	MaxStreams int
	// WriteTimeout bounds each write to a stream; a client that stops
	// reading is dropped when it expires.
	WriteTimeout time.Duration
	// OnWrite, if set, is called after each write of events to a stream
	// with how many it wrote: a counter of events sent. It runs on the
	// stream's goroutine, and must not block.
	OnWrite func(events int)
}
