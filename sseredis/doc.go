// Package sseredis is an sse.Registry kept in Redis, so that several
// instances of a server behind a load balancer serve the same clients: a
// run started on one reaches a stream held by another, and a reconnect to a
// third resumes it. It is the only package of this project that needs a
// Redis client (github.com/redis/go-redis/v9).
//
// For each client, Redis holds a hash of its numbering, a Redis stream of
// the events of its current run, and the claim of the instance that owns
// its run (keys.go names them). Every step that touches them is one Lua
// script (lua/), so it is atomic; the runs' events go to Redis in
// pipelines, all those waiting at once (appends.go).
//
// Each instance subscribes, on one pub/sub connection (link.go), to the
// channel of every client it holds a stream for, before it reads the
// client's log: so a stream gets the events logged before it attached from
// the log and the later ones from the channel, and drops those it got
// twice (source.go). An event that never arrives ends the stream, and the
// browser's reconnect reads it from the log.
//
// The instance that holds a stream renews the client's keys every Lease/3;
// they expire Grace after its last stream went away. The instance that owns
// a run renews its claim (claims.go); if that instance dies, the claim
// expires after Lease and any instance may start the client's next run.
//
// If the pub/sub connection breaks, or Redis says nothing on it for Lease,
// the instance cannot tell which events it missed: it ends every stream it
// holds with a gap event (sse.GapEvent) and stops the runs it owns, answers
// sse.ErrUnavailable until Redis is back, and then serves again. Browsers
// reconnect with their Last-Event-ID and resume from the log, if Redis
// still has it.
package sseredis
