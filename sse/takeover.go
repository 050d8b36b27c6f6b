package sse

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A stream taken over from net/http. Once its response head is out, an
// HTTP/1.1 stream needs nothing of net/http: Handoff takes its connection
// (http.Hijacker), which frees net/http's buffers and its goroutines for the
// connection, writes the chunked body itself, and hands the stream to its
// Loop. Whoever writes it holds wmu: the Loop's worker, with writes that
// never block; or, when a write cannot finish at once (the client reads
// slowly), when a run's final event is due and its Source.Delivered may
// wait on a store (Redis's; the memory registry's does not: see
// deliversAtOnce), and when the stream ends, a goroutine of the stream's
// own that writes with the deadline of Config.WriteTimeout, and lets go
// once it has caught up.

// deliversAtOnce is a Source whose Delivered never waits (the memory
// registry's): a stream taken over writes the final event on whichever
// goroutine has it, with no goroutine of its own.
type deliversAtOnce interface{ deliveredAtOnce() }

// takeover is the state of a stream taken over. Handoff sets loop's
// connection fields before taken; the writer that holds wmu owns the rest.
type takeover struct {
	loop   *Loop // the stream's, if a Loop made it
	taken  atomic.Bool
	conn   net.Conn
	raw    syscall.RawConn // nil: every write is a blocking one, on a goroutine
	now    *rawWrite       // writes through raw
	fd     int32           // the socket's number, for the watcher; -1 if unknown
	expiry *time.Timer     // Handoff's until, if any
	done   func(error)

	wmu       sync.Mutex
	queued    atomic.Bool  // in the loop's queue
	dirty     atomic.Bool  // news since the writer last looked
	ping      atomic.Bool  // a heartbeat is due
	lastWrite atomic.Int64 // UnixNano

	deadline      bool    // a write deadline is set on conn
	rest          []byte  // the unwritten end of a chunk
	more          []Entry // events taken from the source, not yet written
	moreSeq       uint64  // the number of more[0]
	moreFinal     bool    // the last of more is the run's final event
	delivered     bool    // Source.Delivered was told of it
	pendingEvents int     // in the chunk being written
	pendingLast   uint64  // the number of its last event
	err           error   // the write that failed
}

// chunkHead is the room kept at the start of a chunk for its size line:
// up to 8 hex digits and a CRLF.
const chunkHead = 10

// lastChunk ends a chunked body.
const lastChunk = "0\r\n\r\n"

// Handoff writes the stream to w, as the answer to r, and calls done once
// it has ended, with the error of a failed write (nil otherwise); the
// stream ends by itself when until passes, unless until is zero.
//
// Where it can, it takes the connection over from net/http and returns at
// once: an HTTP/1.1 request over plain TCP, on a ResponseWriter that can
// Hijack, for a stream made by a Loop. The stream then holds no goroutine
// while it is idle, and done is called from another goroutine. Elsewhere
// (HTTP/2, TLS, a ResponseWriter that cannot Hijack, a stream made by
// NewStream) it serves the stream as Serve does, with r's context, and
// calls done before it returns.
//
// Either way w and r must not be used once Handoff returns, and the
// request's context no longer says when the client leaves: a write that
// fails, or the heartbeat's look at the connection, does.
func (s *Stream) Handoff(w http.ResponseWriter, r *http.Request, until time.Time, done func(error)) {
	// Each path in a function of its own: on the goroutine path, the
	// stream's first write goes down net/http's deepest path below this
	// frame, and the takeover's locals here would double that goroutine's
	// stack (TestIdleStreamsHoldNoGoroutine, in handlers).
	switch {
	case s.loop != nil && r.ProtoMajor == 1 && r.ProtoMinor >= 1 && r.TLS == nil && canHijack(w):
		s.takeOver(w, r, until, done)
	case until.IsZero():
		done(s.Serve(r.Context(), w))
	default:
		s.serveUntil(w, r, until, done)
	}
}

// takeOver hijacks the connection and hands the stream to its loop; see
// Handoff.
func (s *Stream) takeOver(w http.ResponseWriter, r *http.Request, until time.Time, done func(error)) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil { // a writer that cannot, after all
		s.serveUntil(w, r, until, done)
		return
	}
	s.conn, s.raw, s.done = conn, rawOf(conn), done
	s.fd = fdOf(s.raw)
	if s.raw != nil {
		s.now = newRawWrite(s.raw)
	}
	setHeaders(w.Header())
	if err := s.writeHead(w.Header()); err != nil {
		s.fail(err)
		_ = conn.Close()
		done(err)
		return
	}
	// Writes that never block fail on a deadline that has passed (net/http
	// may have set one too).
	_ = conn.SetWriteDeadline(time.Time{})
	s.deadline = false
	s.lastWrite.Store(time.Now().UnixNano())
	if !s.loop.adopt(s) { // the registry is closing
		s.result = EndShutdown
		_ = s.sendAll([]byte(lastChunk))
		_ = conn.Close()
		done(nil)
		return
	}
	if !until.IsZero() { // a timer costs no goroutine while it waits
		s.expiry = time.AfterFunc(time.Until(until), func() { s.End(EndExpired) })
	}
	// From here Wake and End nudge the loop; what came before, the first
	// flush writes.
	s.taken.Store(true)
	s.nudge()
}

// canHijack reports whether the writer at the bottom of w's wrappers can
// Hijack. A wrapper may have a Hijack of its own that panics when the
// writer it wraps has none (Gin's does).
func canHijack(w http.ResponseWriter) bool {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			_, ok := w.(http.Hijacker)
			return ok
		}
		w = u.Unwrap()
	}
}

// serveUntil serves the stream with Serve, on the caller's goroutine,
// until then (for ever if until is zero).
func (s *Stream) serveUntil(w http.ResponseWriter, r *http.Request, until time.Time, done func(error)) {
	if until.IsZero() {
		done(s.Serve(r.Context(), w))
		return
	}
	ctx, cancel := context.WithDeadline(r.Context(), until)
	defer cancel()
	done(s.Serve(ctx, w))
}

// setHeaders sets the headers of an event stream.
func setHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// nginx buffers proxied responses unless the upstream says not to.
	h.Set("X-Accel-Buffering", "no")
}

// writeHead writes what net/http would have: the status line and the
// headers, chunked, and the stream's first chunk (see hello).
func (s *Stream) writeHead(h http.Header) error {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	if _, ok := h["Date"]; !ok {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	h.Set("Transfer-Encoding", "chunked")
	// The connection closes when the stream ends: a client must not send
	// its next request on it.
	h.Set("Connection", "close")
	_ = h.Write(&b) // a bytes.Buffer does not fail
	b.WriteString("\r\n")
	s.buf = make([]byte, chunkHead, 256)
	hello := s.hello()
	s.buf = nil
	b.Write(frame(hello))
	return s.sendAll(b.Bytes())
}

// frame makes buf, whose first chunkHead bytes were kept for it, one
// chunk of the body, and returns that chunk.
func frame(buf []byte) []byte {
	var size [chunkHead]byte
	head := strconv.AppendUint(size[:0], uint64(len(buf)-chunkHead), 16)
	head = append(head, '\r', '\n')
	start := chunkHead - len(head)
	copy(buf[start:], head)
	return append(buf, '\r', '\n')[start:]
}

// nudge asks the loop to look at s: it has events, an end or a heartbeat
// due. Safe from any goroutine, under any registry's lock.
func (s *Stream) nudge() {
	s.dirty.Store(true)
	s.loop.enqueue(s)
}

// flushHere writes what s has, on the caller's goroutine and without
// blocking, as the loop's worker would; if another writer holds s, that
// writer sees the news (dirty, set first) before it lets go.
func (s *Stream) flushHere() {
	if !s.wmu.TryLock() {
		return
	}
	buf := s.loop.borrow()
	*buf = s.writeHeld(*buf)
	s.loop.giveBack(buf)
}

// over reports whether the stream was ended (End, EndWithGap).
func (s *Stream) over() bool {
	select {
	case <-s.gone:
		return true
	default:
		return false
	}
}

// quietSince returns how long, in ns at now, the stream has written
// nothing.
func (s *Stream) quietSince(now int64) int64 { return now - s.lastWrite.Load() }

// What a drain left the stream in.
type drained int

const (
	caughtUp    drained = iota // nothing left to write
	needsWriter                // a write that must wait: a goroutine finishes it
	finished                   // the stream is over: finish closes it
)

// flush is the worker's look at s: it writes what s has, without blocking,
// and hands s to a goroutine of its own if it must wait. It returns buf,
// the worker's encoding buffer, grown perhaps.
func (s *Stream) flush(buf []byte) []byte {
	if !s.wmu.TryLock() {
		return buf // its writer looks again before it lets go
	}
	return s.writeHeld(buf)
}

// writeHeld writes what s has without blocking, encoding into buf, and
// then lets go of wmu, which the caller holds, or hands it to a goroutine
// that waits on the socket or ends the stream. It returns buf, grown
// perhaps.
func (s *Stream) writeHeld(buf []byte) []byte {
	buf, state := s.drain(buf, false)
	switch state {
	case caughtUp:
		s.letGo()
	case needsWriter:
		go s.catchUp()
	case finished:
		go s.finish()
	}
	return buf
}

// catchUp writes, waiting on the socket within the write deadline, until
// s has nothing left to write; it holds wmu, which the worker handed it.
func (s *Stream) catchUp() {
	buf := s.loop.borrow()
	var state drained
	*buf, state = s.drain(*buf, true)
	s.loop.giveBack(buf)
	if state == finished {
		s.finish()
		return
	}
	if s.deadline { // writes that never block fail on one that has passed
		_ = s.conn.SetWriteDeadline(time.Time{})
		s.deadline = false
	}
	s.letGo()
}

// letGo releases wmu, and queues s again if it had news meanwhile: the
// worker skipped it then.
func (s *Stream) letGo() {
	s.wmu.Unlock()
	if s.dirty.Load() {
		s.loop.enqueue(s)
	}
}

// drain writes the stream's events, heartbeat and pending bytes until
// there is nothing left, it must wait (without blocking), or the stream is
// over. The caller holds wmu.
func (s *Stream) drain(buf []byte, blocking bool) ([]byte, drained) {
	for {
		s.dirty.Store(false)
		if len(s.rest) > 0 {
			n, err := s.send(s.rest, blocking)
			if err != nil {
				return buf, s.fail(err)
			}
			if s.rest = s.rest[n:]; len(s.rest) > 0 {
				return buf, needsWriter
			}
			s.rest = nil
			if s.wrote() {
				return buf, finished
			}
		}
		if s.over() {
			return buf, finished
		}
		if len(s.more) == 0 {
			seq, events, final := s.src.Next()
			if len(events) == 0 {
				if !s.ping.Swap(false) {
					return buf, caughtUp
				}
				if s.raw != nil && peerClosed(s.raw) {
					s.result = EndClientLeft
					return buf, finished
				}
				buf = append(buf[:0], make([]byte, chunkHead)...)
				s.pendingEvents = 0
				if buf, s.rest = s.sendChunk(AppendComment(buf, "ping"), blocking); s.err != nil {
					return buf, finished
				}
				if len(s.rest) > 0 {
					return buf, needsWriter
				}
				s.wrote()
				continue
			}
			s.more, s.moreSeq, s.moreFinal, s.delivered = events, seq, final, false
		}
		if s.moreFinal && !s.delivered {
			if _, atOnce := s.src.(deliversAtOnce); !blocking && !atOnce {
				return buf, needsWriter // Delivered may wait on a store
			}
			// Before the write, as in writeLoop: see there.
			s.src.Delivered(s.moreSeq + uint64(len(s.more)) - 1)
			s.delivered = true
		}
		buf = append(buf[:0], make([]byte, chunkHead)...)
		n := 0
		for n < len(s.more) && len(buf) < maxChunk {
			buf = s.more[n].appendTo(buf, s.moreSeq+uint64(n))
			n++
		}
		s.pendingEvents, s.pendingLast = n, s.moreSeq+uint64(n)-1
		s.more, s.moreSeq = s.more[n:], s.moreSeq+uint64(n)
		if buf, s.rest = s.sendChunk(buf, blocking); s.err != nil {
			return buf, finished
		}
		if len(s.rest) > 0 {
			return buf, needsWriter
		}
		if s.wrote() {
			return buf, finished
		}
	}
}

// sendChunk frames buf as a chunk and writes what of it the socket takes,
// returning buf and the rest, in a buffer of its own, to write next. A
// failed write is in s.err.
func (s *Stream) sendChunk(buf []byte, blocking bool) ([]byte, []byte) {
	chunk := frame(buf)
	n, err := s.send(chunk, blocking)
	if err != nil {
		s.fail(err)
		return buf, nil
	}
	if n == len(chunk) {
		return buf, nil
	}
	return buf, bytes.Clone(chunk[n:])
}

// wrote accounts for a chunk written whole, and reports whether it held
// the run's final event.
func (s *Stream) wrote() bool {
	s.lastWrite.Store(time.Now().UnixNano())
	if s.pendingEvents == 0 {
		return false // a heartbeat
	}
	s.last = s.pendingLast
	if s.cfg.OnWrite != nil {
		s.cfg.OnWrite(s.pendingEvents)
	}
	s.pendingEvents = 0
	if len(s.more) == 0 && s.moreFinal {
		s.result = EndClose
		return true
	}
	return false
}

// send writes b: all of it within the write deadline if blocking, else
// what the socket takes at once (nothing, without a raw connection). What
// the socket takes at once needs no deadline.
func (s *Stream) send(b []byte, blocking bool) (int, error) {
	n := 0
	if s.now != nil {
		var err error
		if n, err = s.now.write(b); err != nil || n == len(b) || !blocking {
			return n, err
		}
	} else if !blocking {
		return 0, nil
	}
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil {
		return n, err
	}
	s.deadline = true
	m, err := s.conn.Write(b[n:])
	return n + m, err
}

// sendAll writes b whole, within the write deadline.
func (s *Stream) sendAll(b []byte) error {
	_, err := s.send(b, true)
	return err
}

// fail records the failed write that ends the stream.
func (s *Stream) fail(err error) drained {
	s.err = err
	switch {
	case isClientGone(err):
		s.result = EndClientLeft
	default:
		_ = s.failed(err) // the error is in s.err
	}
	return finished
}

// isClientGone reports whether err is a write to a client that has closed
// its end: the way a taken-over stream learns that its client left.
func isClientGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// finish ends the stream: the rest of a chunk begun, the gap of an
// EndWithGap, done called, the end of the body, the connection closed.
// It holds wmu, for good.
func (s *Stream) finish() {
	if s.result == "" { // ended by the registry or the loop
		s.result = s.why
	}
	if s.err == nil && len(s.rest) > 0 {
		s.err = s.sendAll(s.rest)
	}
	if s.err == nil && s.result == EndLost {
		buf := appendEvent(make([]byte, chunkHead, 128), GapEvent, "", GapData(s.gap, s.last))
		s.err = s.sendAll(frame(buf))
	}
	if s.expiry != nil {
		s.expiry.Stop()
	}
	// done first, as net/http's handler returns before the end of its
	// body: a client that has read to the end and reconnects at once must
	// find the stream gone from the registry.
	s.done(s.err)
	if s.err == nil {
		_ = s.sendAll([]byte(lastChunk)) // the connection closes next anyway
	}
	s.loop.unwatch(s)
	_ = s.conn.Close()
	s.loop.forget(s)
}
