package sse

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// maxChunk is about the most a stream writes at once. A client that fell
// behind gets its backlog in writes of this size, each with its own
// deadline, so a stream's buffer stays near one chunk (plus one event)
// however far behind it is.
const maxChunk = 32 << 10

// Source is where a stream's events come from: a registry makes one for
// each stream it opens, and hands it to NewStream.
type Source interface {
	// Next returns the events the stream has not yet written, the first
	// of them numbered seq, and moves past them; final reports that the
	// last of them is the run's final event. Only the stream's own
	// goroutine calls it. The stream reads events after Next returns,
	// without any lock of the registry's: the registry must not change
	// them afterwards (appending past them is fine).
	Next() (seq uint64, events []Entry, final bool)
	// Delivered records that the stream is about to write the run's final
	// event, numbered seq, so that a fresh stream of the client does not
	// replay a run it has already shown.
	Delivered(seq uint64)
}

// Stream is one open event stream of a client. A registry's Attach makes it
// with NewStream; Serve writes it to an HTTP response.
//
// The registry wakes the stream when its source has news, and ends it when
// it must go: replaced by a newer stream, dropped, its client removed, the
// registry closed. Wake, End and EndWithGap never block, and are safe to
// call from any goroutine, any number of times.
type Stream struct {
	cfg Config
	src Source
	// wake has room for one signal. A Wake that finds it full knows a
	// wake-up is already pending, so waking never blocks; the stream then
	// writes every event its source has since its last write.
	wake chan struct{}
	// gone is closed when the stream must end; ended makes sure that
	// happens once. why and gap (the reason of an EndWithGap) are set
	// before gone is closed and read by Serve only after.
	gone  chan struct{}
	ended atomic.Bool
	why   EndReason
	gap   string
	// result is why Serve returned; only Serve writes it.
	result EndReason
	// opening is the reason of a StartWithGap, written before any event;
	// last is the id of the last event the client has: the one it sent,
	// then each one written. Only Serve uses them once it runs.
	opening string
	last    uint64
	// buf is reused for every write, so a stream in its steady state
	// encodes and writes events without allocating. Only Serve uses it.
	buf []byte

	takeover // a stream that Handoff took over from net/http: takeover.go
}

// NewStream returns a stream that writes the events of src with the retry,
// heartbeat and write timeout of cfg.
func NewStream(cfg Config, src Source) *Stream {
	return &Stream{
		cfg:  cfg,
		src:  src,
		wake: make(chan struct{}, 1),
		gone: make(chan struct{}),
	}
}

// Wake tells the stream that its source has events it has not written.
func (s *Stream) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
	if s.taken.Load() {
		s.nudge()
	}
}

// Flush is Wake for a caller that may write: on a stream taken over
// (Handoff) it writes what the source has on the caller's goroutine,
// without blocking, unless another writer holds the stream, which then
// writes it; any other stream it wakes. Call it where Wake would be
// called, but outside every lock that Source.Next takes. A publisher that
// flushes writes its event as a bare server's goroutine per stream would,
// with no hand-over to the loop's goroutine.
func (s *Stream) Flush() {
	if !s.taken.Load() {
		s.Wake()
		return
	}
	s.dirty.Store(true)
	s.flushHere()
}

// StartWithGap makes the stream start with a gap event (see GapEvent) that
// gives reason and lastEventID, the id the client sent: the registry
// cannot continue from it. The registry calls it before it hands the
// stream over; the stream then goes on as any other.
func (s *Stream) StartWithGap(reason string, lastEventID uint64) {
	s.opening, s.last = reason, lastEventID
}

// OpensWithGap reports whether the stream starts with a gap event, and why.
func (s *Stream) OpensWithGap() (reason string, ok bool) {
	return s.opening, s.opening != ""
}

// EndReason says why a stream ended, in words fit for a metric's label.
type EndReason string

// Why a stream ends. The registry gives the first few to End; Serve finds
// the others.
const (
	EndReplaced EndReason = "replaced" // a newer stream of the client took its place
	EndDropped  EndReason = "dropped"  // Registry.Drop
	EndRemoved  EndReason = "removed"  // Registry.Remove, or the client forgotten
	EndShutdown EndReason = "shutdown" // the registry closed
	// EndResync: the registry ends the stream so that the client comes
	// back and reads what it missed (on Redis, an event that never came).
	EndResync EndReason = "resync"
	EndLost   EndReason = "lost" // EndWithGap

	EndClose        EndReason = "close"         // it wrote the run's final event
	EndClientLeft   EndReason = "client_left"   // the client went away
	EndExpired      EndReason = "expired"       // its deadline passed (Handoff's until, ctx's)
	EndWriteTimeout EndReason = "write_timeout" // a write missed its deadline
	EndWriteFailed  EndReason = "write_failed"  // a write failed otherwise
)

// End tells Serve to return, without a final event, for why: the browser
// reconnects after its retry delay.
func (s *Stream) End(why EndReason) {
	if s.ended.CompareAndSwap(false, true) {
		s.why = why
		close(s.gone)
		if s.taken.Load() {
			s.nudge()
		}
	}
}

// Ended says why the stream ended. Call it after Serve has returned.
func (s *Stream) Ended() EndReason {
	return s.result
}

// EndWithGap ends the stream with a gap event (see GapEvent) that gives
// reason: the registry can no longer say which events the client missed.
// A stream that has already ended is left as it is.
func (s *Stream) EndWithGap(reason string) {
	if s.ended.CompareAndSwap(false, true) {
		s.why, s.gap = EndLost, reason
		close(s.gone)
		if s.taken.Load() {
			s.nudge()
		}
	}
}

// Jitter returns a reconnection delay drawn uniformly from [d/2, 3d/2), the
// retry a stream sends: when a server restarts, every stream breaks in the
// same moment, and with one retry for all every browser would come back in
// the same moment again. d stays the mean.
func Jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d) // math/rand/v2: per-goroutine state, no lock
}

// Serve writes the stream to w: the headers and the retry field (see
// Jitter) at once, then
// the client's events as they are published, and a comment line whenever the
// stream has been quiet for Config.Heartbeat.
//
// It returns nil once it has written the run's final event, when the
// registry ends the stream, or when ctx is done (the client went away); it
// returns the error of a failed write. w must not have been written to.
func (s *Stream) Serve(ctx context.Context, w http.ResponseWriter) error {
	cfg := s.cfg
	setHeaders(w.Header())
	w.WriteHeader(http.StatusOK)

	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{}) //nolint:errcheck // best effort, the stream is over
	write := func(buf []byte) error {
		s.buf = buf[:0] // keep the grown buffer for the next write
		err := rc.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		if err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		return rc.Flush()
	}

	// Room for a small event, so that the buffer is allocated once rather
	// than grown by doubling from a few bytes; a backlog grows it.
	s.buf = make([]byte, 0, 256)
	// The headers alone may sit in a buffer; the first line makes the
	// browser's open event fire before there is any event to send.
	if err := write(s.hello()); err != nil {
		return s.failed(err)
	}
	return s.writeLoop(ctx, write)
}

// failed records why a failed write ended the stream, and returns err.
func (s *Stream) failed(err error) error {
	s.result = EndWriteFailed
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.result = EndWriteTimeout
	}
	return err
}

// hello is the stream's first write: the retry field, and the opening gap
// if there is one. It is a function of its own, like writeLoop, to keep Serve's
// frame small.
func (s *Stream) hello() []byte {
	buf := AppendRetry(s.buf, Jitter(s.cfg.Retry))
	if s.opening != "" {
		buf = appendEvent(buf, GapEvent, "", GapData(s.opening, s.last))
	}
	return buf
}

// writeLoop writes the stream's events and heartbeats until it ends; see Serve.
// It is a function of its own so that the first write, which sends the
// headers down net/http's deepest path, is made from Serve's small frame:
// with the loop's locals in that frame too, each stream's goroutine needs
// a 16 KiB stack rather than 8 (TestStreamStackStaysSmall, in handlers).
func (s *Stream) writeLoop(ctx context.Context, write func([]byte) error) error {
	cfg := s.cfg
	heartbeat := time.NewTicker(cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		if seq, events, final := s.src.Next(); len(events) > 0 {
			if final {
				// Recorded before the write, not after: a client that has
				// the final event may open its next stream at once, and
				// that fresh stream must not be shown this run again. If
				// the write fails, a reconnect with Last-Event-ID still
				// gets the final event from the log.
				s.src.Delivered(seq + uint64(len(events)) - 1)
			}
			// A client that fell behind may have many events waiting:
			// write them in chunks, so the buffer stays small and each
			// chunk gets a deadline of its own.
			buf := s.buf
			for i, ev := range events {
				buf = ev.appendTo(buf, seq+uint64(i))
				if len(buf) >= maxChunk {
					if err := write(buf); err != nil {
						return s.failed(err)
					}
					buf = s.buf
				}
			}
			if len(buf) > 0 {
				if err := write(buf); err != nil {
					return s.failed(err)
				}
			}
			s.last = seq + uint64(len(events)) - 1
			if cfg.OnWrite != nil {
				cfg.OnWrite(len(events))
			}
			if final {
				s.result = EndClose
				return nil
			}
			heartbeat.Reset(cfg.Heartbeat)
		}

		select {
		case <-ctx.Done():
			s.result = EndClientLeft
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				s.result = EndExpired
			}
			return nil
		case <-s.gone:
			s.result = s.why
			if s.gap != "" {
				if err := write(appendEvent(s.buf, GapEvent, "", GapData(s.gap, s.last))); err != nil {
					return s.failed(err)
				}
			}
			return nil
		case <-s.wake:
		case <-heartbeat.C:
			if err := write(AppendComment(s.buf, "ping")); err != nil {
				return s.failed(err)
			}
		}
	}
}
