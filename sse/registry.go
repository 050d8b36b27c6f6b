package sse

import "context"

// Registry is what the HTTP handlers need of a registry of clients. Hub keeps
// the registry in the memory of one server instance; RedisHub shares it
// between instances through Redis, so that a run started on one instance
// reaches a stream held by another and a reconnect to a third resumes it.
//
// redis.go (with redis_test.go) is the only file that needs Redis: without
// them, this package builds with the standard library alone.
type Registry interface {
	// Attach opens a stream for client id, which has seen the events up
	// to lastEventID (0 for none). The caller serves the stream, then
	// calls detach.
	Attach(ctx context.Context, id string, lastEventID uint64) (s *Stream, detach func(), err error)
	// Start starts fn as a new run of client id.
	Start(ctx context.Context, id string, fn RunFunc) error
	// Remove stops the client's run, ends its stream and forgets it.
	Remove(ctx context.Context, id string) error
	// Disconnect ends the client's stream as a dropped connection would.
	Disconnect(ctx context.Context, id string) error
	// Stats counts what this instance holds.
	Stats() Stats
	// Health is nil while the registry serves.
	Health(ctx context.Context) error
	// Close ends every stream and run of this instance.
	Close()
}

var _ Registry = (*Hub)(nil)
