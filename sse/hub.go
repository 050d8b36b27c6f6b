package sse

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"
)

// Errors returned by the Hub.
var (
	ErrClosed         = errors.New("sse: hub closed")
	ErrUnknownClient  = errors.New("sse: unknown client")
	ErrRunning        = errors.New("sse: a run is already going for this client")
	ErrTooManyStreams = errors.New("sse: too many open streams")
	ErrNoStream       = errors.New("sse: client has no open stream")
	// ErrUnavailable is returned by a registry that cannot reach the
	// store it shares with other instances.
	ErrUnavailable = errors.New("sse: registry unavailable")
	// ErrFinished answers a reconnect whose Last-Event-ID is the final event
	// of a finished run: the client has seen everything there is.
	ErrFinished = errors.New("sse: nothing left to send")
)

// Config holds the settings of a Hub. Every field must be positive.
type Config struct {
	// Retry is sent to each new stream in the "retry:" field: how long the
	// browser waits before it reconnects.
	Retry time.Duration
	// Heartbeat is the interval of comment lines on an idle stream.
	Heartbeat time.Duration
	// Grace is how long a client whose stream is gone is kept, with its run
	// and its events, so that it can reconnect and resume.
	Grace time.Duration
	// MaxStreams is the most streams open at once.
	MaxStreams int
	// WriteTimeout bounds each write to a stream; a client that stops
	// reading is cut when it expires.
	WriteTimeout time.Duration
}

// RunFunc is the work of a run. It publishes events through r, must return
// soon after ctx is done, and calls r.Finish with its last event when it
// completes. The hub starts it in a goroutine of its own and waits for it in
// Close.
type RunFunc func(ctx context.Context, r *Run)

// Hub is the registry of clients of one server instance, kept in memory. A
// client is named by an id of the caller's
// choice; it has at most one open stream, at most one run, and the log of the
// events of its current run.
//
// Publishing never waits for a stream: an event is appended to the client's
// log and the stream is woken. The stream's own goroutine writes whatever it
// has not written yet, so a slow or stuck client falls behind (and is cut by
// the write deadline) without holding up a run or any other client, and a
// client that reconnects resumes from its Last-Event-ID out of the same log.
//
// One mutex guards all of the hub's state; every method takes it, and none
// holds it while it writes to the network.
type Hub struct {
	cfg Config

	// ctx is the parent of every run's context; cancel stops them all.
	ctx    context.Context
	cancel context.CancelFunc
	// runs counts the run goroutines, so Close can wait for them.
	runs      sync.WaitGroup
	closeOnce sync.Once

	mu      sync.Mutex
	clients map[string]*client
	streams int // open streams, replaced ones included until they end
	closed  bool
}

// client is one entry of the registry. Its fields are guarded by Hub.mu.
type client struct {
	id string

	// log holds the events of the current run, the last of them numbered
	// next-1; an event's sequence number is its id. A new run starts a new
	// slice rather than reusing the old one, so a stream may read a prefix
	// of log outside the lock: appends only ever write past it.
	log  []entry
	next uint64 // sequence number of the next event
	// finished is set when the current run has sent its final event, and
	// finalSent once a stream has written that event.
	finished  bool
	finalSent bool

	run    *Run    // the run going, or nil
	stream *Stream // the attached stream, or nil
	// gen counts attaches and detaches, so that a grace timer that fires
	// late can tell whether it still belongs to the current detach.
	gen    uint64
	expiry *time.Timer
}

// entry is an event of a client's log. Its id is its sequence number, which
// the stream formats as it writes it, so logging an event formats nothing.
type entry struct {
	name, data string
}

// appendTo appends the event's block, with seq as its id, to dst. The id is
// formatted into a small array on the stack, so nothing is allocated.
func (e entry) appendTo(dst []byte, seq uint64) []byte {
	var id [20]byte // the digits of the largest uint64
	return appendEvent(dst, e.name, string(strconv.AppendUint(id[:0], seq, 10)), e.data)
}

// first returns the sequence number of log[0].
func (c *client) first() uint64 {
	return c.next - uint64(len(c.log))
}

// memFeed is a stream's view of its client's log.
type memFeed struct {
	hub    *Hub
	client *client
	// cursor is the sequence number of the next event to write. Guarded
	// by Hub.mu.
	cursor uint64
}

func (f *memFeed) next() (seq uint64, events []entry, final bool) {
	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()

	c := f.client
	first := c.first()
	if f.cursor < first {
		f.cursor = first // a new run began: all of its events are new
	}
	if f.cursor >= c.next {
		return 0, nil, false
	}
	// The slice is read after the lock is released; see client.log.
	seq, events = f.cursor, c.log[f.cursor-first:]
	f.cursor = c.next
	return seq, events, c.finished
}

// delivered records that the run's final event has been written, so that a
// fresh stream for the client does not replay a run it has already seen.
func (f *memFeed) delivered(seq uint64) {
	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()

	if c := f.client; c.finished && seq == c.next-1 {
		c.finalSent = true
	}
}

// NewHub returns a Hub with the given settings.
func NewHub(cfg Config) *Hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{
		cfg:     cfg,
		ctx:     ctx,
		cancel:  cancel,
		clients: make(map[string]*client),
	}
}

// Attach opens a stream for the client id, creating the client if it is new.
// ctx is not used: nothing here waits.
// lastEventID is the id of the last event the client has seen (0 for none):
// the stream starts with the logged events after it.
//
// A client that already has a stream gets the new one in its place and the
// older stream ends; this is what a reconnect looks like before the server
// has noticed that the old connection died. A reconnect is let in even when
// MaxStreams are open.
//
// The caller must call detach when it stops serving the stream.
func (h *Hub) Attach(_ context.Context, id string, lastEventID uint64) (s *Stream, detach func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()

	if h.closed {
		return nil, nil, ErrClosed
	}
	c := h.clients[id]
	if (c == nil || c.stream == nil) && h.streams >= h.cfg.MaxStreams {
		return nil, nil, ErrTooManyStreams
	}
	if c == nil {
		// Continue the client's numbering: after a server restart, ids
		// keep increasing for a browser that still holds an old one.
		c = &client{id: id, next: lastEventID + 1}
		h.clients[id] = c
	}

	var cursor uint64
	switch {
	case c.finished && lastEventID >= c.next-1:
		return nil, nil, ErrFinished
	case lastEventID > 0:
		cursor = lastEventID + 1
	case c.finished && c.finalSent:
		// A fresh EventSource (no Last-Event-ID) for a client whose run
		// has been delivered in full: nothing to replay, wait for the
		// next run.
		cursor = c.next
	default:
		// Nothing seen yet: the whole current run.
		cursor = c.first()
	}

	if c.stream != nil {
		c.stream.end()
	}
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
	s = newStream(h.cfg, &memFeed{hub: h, client: c, cursor: cursor})
	c.stream = s
	c.gen++
	h.streams++
	return s, sync.OnceFunc(func() { h.detach(c, s) }), nil
}

// detach ends s's registration. If s is still c's stream, c is kept for
// Grace and then forgotten, its run stopped.
func (h *Hub) detach(c *client, s *Stream) {
	h.mu.Lock()
	defer h.mu.Unlock()

	h.streams--
	if c.stream != s || h.clients[c.id] != c || h.closed {
		return // replaced, removed, or the hub is closing
	}
	c.stream = nil
	c.gen++
	gen := c.gen
	c.expiry = time.AfterFunc(h.cfg.Grace, func() { h.expire(c, gen) })
}

// expire forgets c if it has had no stream since the detach numbered gen.
func (h *Hub) expire(c *client, gen uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()

	if c.gen != gen || h.clients[c.id] != c {
		return
	}
	h.forget(c)
}

// forget removes c from the registry, stops its run and ends its stream.
// The caller holds h.mu.
func (h *Hub) forget(c *client) {
	delete(h.clients, c.id)
	if c.run != nil {
		c.run.cancel()
		c.run = nil
	}
	if c.stream != nil {
		c.stream.end()
		c.stream = nil
	}
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
	c.gen++
}

// Start starts fn as a new run of the client id. The events of the previous
// run are dropped and the new run's events are numbered on from them.
func (h *Hub) Start(_ context.Context, id string, fn RunFunc) error {
	h.mu.Lock()
	defer h.mu.Unlock()

	if h.closed {
		return ErrClosed
	}
	c := h.clients[id]
	if c == nil {
		return ErrUnknownClient
	}
	if c.run != nil {
		return ErrRunning
	}
	// A new array, since streams may still be reading the old one. It is
	// made as large as the last run's, the likely size of this one.
	c.log = make([]entry, 0, cap(c.log))
	c.finished = false
	c.finalSent = false

	ctx, cancel := context.WithCancel(h.ctx)
	r := &Run{cancel: cancel}
	r.publish = func(name, data string, final bool) error {
		h.publish(c, r, name, data, final)
		return nil
	}
	c.run = r
	h.runs.Go(func() {
		defer cancel()
		fn(ctx, r)
		h.mu.Lock()
		if c.run == r {
			c.run = nil
		}
		h.mu.Unlock()
	})
	return nil
}

// Remove stops the client's run, ends its stream and forgets it.
func (h *Hub) Remove(_ context.Context, id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()

	c := h.clients[id]
	if c == nil {
		return ErrUnknownClient
	}
	h.forget(c)
	return nil
}

// Disconnect ends the client's open stream without a final event, as a
// dropped connection would, and keeps the client, its run and its events for
// Grace: the client reconnects after its retry delay and resumes from its
// Last-Event-ID. It fails with ErrUnknownClient or ErrNoStream.
func (h *Hub) Disconnect(_ context.Context, id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()

	c := h.clients[id]
	switch {
	case c == nil:
		return ErrUnknownClient
	case c.stream == nil:
		return ErrNoStream
	}
	// The stream's detach, when Serve returns, starts the grace period.
	c.stream.end()
	return nil
}

// Stats is a snapshot of the hub's size.
type Stats struct {
	Clients int `json:"clients"`
	Streams int `json:"streams"`
	Runs    int `json:"runs"`
}

// Stats returns the number of clients, open streams and runs going.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()

	st := Stats{Clients: len(h.clients), Streams: h.streams}
	for _, c := range h.clients {
		if c.run != nil {
			st.Runs++
		}
	}
	return st
}

// Health reports whether the hub serves: nil, or ErrClosed once it is
// closing.
func (h *Hub) Health(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()

	if h.closed {
		return ErrClosed
	}
	return nil
}

// Close ends every stream and run, forgets every client and waits for the
// runs' goroutines to return. Attach and Start fail with ErrClosed from then
// on. Streams end without a final event, so browsers reconnect, to the next
// instance of the server if there is one. Close is safe to call more than
// once and from several goroutines.
func (h *Hub) Close() {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		for _, c := range h.clients {
			h.forget(c)
		}
		h.mu.Unlock()

		h.cancel()
		h.runs.Wait()
	})
}

// Run is the handle a RunFunc publishes through.
type Run struct {
	publish func(name, data string, final bool) error
	cancel  context.CancelFunc
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

// publish logs an event of c's run r, unless r has been stopped.
func (h *Hub) publish(c *client, r *Run, name, data string, final bool) {
	h.mu.Lock()
	defer h.mu.Unlock()

	if c.run != r || c.finished {
		return // stopped: removed, expired, or the hub closed
	}
	c.log = append(c.log, entry{name: name, data: data})
	c.next++
	c.finished = final
	if c.stream != nil {
		c.stream.notify()
	}
}
