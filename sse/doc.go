// Package sse implements Server-Sent Events for net/http: the wire format and
// a registry of clients whose events survive a dropped connection.
//
// # Wire format
//
// An event stream is a text/event-stream response that stays open. The
// server writes blocks of "field: value" lines, each ended by a blank line:
//
//	retry: 3000          how long the browser waits before it reconnects
//
//	: ping               a comment: ignored, keeps an idle connection open
//
//	event: update        the event type the page listens for
//	id: 7                echoed back as Last-Event-ID on reconnect
//	data: {"count":30}   the payload, one data line per line of text
//
// [Event.AppendTo], [AppendComment] and [AppendRetry] write these blocks.
//
// # Registry
//
// A [Hub] holds clients by id. [Hub.Attach] opens a client's stream and
// [Stream.Serve] writes it to an http.ResponseWriter; [Hub.Start] begins a
// run, a goroutine that publishes events with [Run.Send] and ends with
// [Run.Finish]. Each client keeps the events of its current run, so a
// reconnect that names its last event id (see [LastEventID]) gets exactly
// the events it missed and then goes on live. A client whose stream is gone
// is kept for a grace period, then forgotten and its run stopped.
// [Hub.Disconnect] ends a stream as a dropped connection would, to show a
// resume; [Hub.Remove] forgets a client at once.
//
// [Registry] is what the HTTP handlers use of a hub. [Hub] keeps the
// registry in the memory of one instance; [RedisHub] keeps it in Redis, so
// that several instances behind a load balancer serve the same clients: a
// run started on one reaches a stream held by another, and a reconnect to a
// third resumes it. A RedisHub that loses Redis ends its streams with a
// [GapEvent], so a client knows events may be missing.
//
// The package does not depend on any web framework: the handlers of this
// project use it from Gin, and the tests from a plain http.HandlerFunc. Its
// one dependency is the Redis client, github.com/redis/go-redis/v9.
package sse
