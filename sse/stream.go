package sse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// maxChunk is about the most a stream writes at once. A client that fell
// behind gets its backlog in writes of this size, each with its own
// deadline, so a stream's buffer stays near one chunk (plus one event)
// however far behind it is.
const maxChunk = 32 << 10

// ErrBadLastEventID is returned by LastEventID for a value that is not an id
// this package hands out (a decimal number below 2^53).
var ErrBadLastEventID = errors.New("sse: invalid last event id")

// LastEventID returns the id of the last event a reconnecting client has
// seen, or 0 for none. Browsers send it in the Last-Event-ID header; polyfills
// that cannot set headers on their request (event-source-polyfill, for one)
// send it as the lastEventId query parameter. The header wins.
func LastEventID(r *http.Request) (uint64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("lastEventId")
	}
	if v == "" {
		return 0, nil
	}
	// Ids stay below 2^53 so that JavaScript numbers hold them exactly.
	n, err := strconv.ParseUint(v, 10, 53)
	if err != nil {
		return 0, fmt.Errorf("%w %q", ErrBadLastEventID, v)
	}
	return n, nil
}

// Stream is one open event stream of a client. A registry's Attach makes it;
// Serve writes it to an HTTP response.
type Stream struct {
	cfg  Config
	feed feed
	// wake has room for one signal. A publish that finds it full knows a
	// wake-up is already pending, so publishing never blocks; the stream
	// then writes every event logged since its last write.
	wake chan struct{}
	// gone is closed when the stream must end: replaced by a newer stream,
	// disconnected, its client removed, or the registry closed or cut off.
	// ended makes sure it is closed once, and lost says the registry lost
	// events the stream may not have written (see GapEvent). Both are
	// guarded by the lock of the registry that made the stream, and read by
	// Serve only after gone is closed.
	gone  chan struct{}
	ended bool
	lost  bool
	// buf is reused for every write, so a stream in its steady state
	// encodes and writes events without allocating. Only Serve uses it.
	buf []byte
}

// feed is the registry's side of one stream: where its events come from.
type feed interface {
	// next returns the events the stream has not yet written, the first
	// of them numbered seq, and moves past them. final reports that the
	// last of them is the run's final event.
	next() (seq uint64, events []entry, final bool)
	// delivered records that the stream has written the run's final
	// event, numbered seq.
	delivered(seq uint64)
}

func newStream(cfg Config, f feed) *Stream {
	return &Stream{
		cfg:  cfg,
		feed: f,
		wake: make(chan struct{}, 1),
		gone: make(chan struct{}),
	}
}

// notify wakes the stream. The caller holds the registry's lock.
func (s *Stream) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// end tells Serve to return. The caller holds the registry's lock.
func (s *Stream) end() {
	if !s.ended {
		s.ended = true
		close(s.gone)
	}
}

// lose ends the stream with a gap event: the registry can no longer say
// which events the client missed. The caller holds the registry's lock.
func (s *Stream) lose() {
	if !s.ended {
		s.lost = true
		s.end()
	}
}

// Serve writes the stream to w: the headers and the retry field at once, then
// the client's events as they are published, and a comment line whenever the
// stream has been quiet for the hub's Heartbeat.
//
// It returns nil once it has written the run's final event, when the hub ends
// the stream, or when ctx is done (the client went away); it returns the
// error of a failed write. w must not have been written to.
func (s *Stream) Serve(ctx context.Context, w http.ResponseWriter) error {
	cfg := s.cfg
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// nginx buffers proxied responses unless the upstream says not to.
	h.Set("X-Accel-Buffering", "no")
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
	if err := write(AppendRetry(s.buf, cfg.Retry)); err != nil {
		return err
	}

	return s.loop(ctx, write)
}

// loop writes the stream's events and heartbeats until it ends; see Serve.
// It is a function of its own so that the first write, which sends the
// headers down net/http's deepest path, is made from Serve's small frame.
// With the loop's locals in that frame too, each stream's goroutine stack
// grew from 8 to 16 KiB (TestStreamStackStaysSmall, in handlers).
func (s *Stream) loop(ctx context.Context, write func([]byte) error) error {
	cfg := s.cfg
	heartbeat := time.NewTicker(cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		if seq, events, final := s.feed.next(); len(events) > 0 {
			// A client that fell behind may have many events waiting:
			// write them in chunks, so the buffer stays small and each
			// chunk gets a deadline of its own.
			buf := s.buf
			for i, ev := range events {
				buf = ev.appendTo(buf, seq+uint64(i))
				if len(buf) >= maxChunk {
					if err := write(buf); err != nil {
						return err
					}
					buf = s.buf
				}
			}
			if len(buf) > 0 {
				if err := write(buf); err != nil {
					return err
				}
			}
			if final {
				s.feed.delivered(seq + uint64(len(events)) - 1)
				return nil
			}
			heartbeat.Reset(cfg.Heartbeat)
		}

		select {
		case <-ctx.Done():
			return nil
		case <-s.gone:
			if s.lost {
				return write(appendEvent(s.buf, GapEvent, "", GapData))
			}
			return nil
		case <-s.wake:
		case <-heartbeat.C:
			if err := write(AppendComment(s.buf, "ping")); err != nil {
				return err
			}
		}
	}
}
