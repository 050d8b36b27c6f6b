// Package sse implements Server-Sent Events for net/http: the wire format,
// streams that write it, and a registry of clients whose events survive a
// dropped connection. It uses the standard library alone, and no web
// framework: copy the folder into any net/http program.
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
// # Who calls what
//
// A [Registry] holds clients by id. An HTTP handler calls
// [Registry.Attach] with the client's [LastEventID] to open its stream, and
// [Stream.Handoff] to write it; another handler calls [Registry.Start] to begin
// a run, a [RunFunc] that publishes events with [Run.Send] and ends with
// [Run.Finish]. Each client keeps the events of its current run, so a
// reconnect that names its last event id gets exactly the events it missed
// and then goes on live. A client whose stream is gone is kept for a grace
// period, then forgotten and its run stopped. [Registry.Drop] ends a stream
// as a dropped connection would; [Registry.Remove] forgets a client at once.
//
// Over HTTP/1.1, Handoff takes the connection over from net/http and
// returns: an idle stream then holds no goroutine, and the registry's
// [Loop] writes it when it has news. Over HTTP/2 and TLS it serves the
// stream with [Stream.Serve], on the handler's goroutine. A run whose work
// is a step every tick needs no goroutine either: a [Schedule] calls the
// steps of every run from one ([Schedule.Every]).
//
// [MemoryRegistry] keeps the registry in the memory of one instance. A
// registry in another package can share it between instances: it builds
// each stream with [Loop.NewStream] over a [Source] of its own, writes it
// with [Stream.Flush] (or wakes it with [Stream.Wake] under its lock), ends
// it with [Stream.End] and [Stream.EndWithGap], builds runs with [NewRun]
// and starts them with [Run.Go], and closes its Loop when it closes. The package
// ssetest checks any registry against the rules of this one.
package sse
