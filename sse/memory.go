package sse

import (
	"context"
	"sync"
	"time"
)

// MemoryRegistry is the Registry of one server instance, kept in memory. A
// client is named by an id of the caller's choice; it has at most one open
// stream, at most one run, and the log of the events of its current run.
//
// Publishing never waits for a stream: an event is appended to the client's
// log and the stream is woken. The stream's own goroutine writes whatever it
// has not written yet, so a slow or stuck client falls behind (and is dropped by
// the write deadline) without holding up a run or any other client, and a
// client that reconnects resumes from its Last-Event-ID out of the same log.
//
// One mutex guards all of the registry's state; every method takes it, and
// none holds it while it writes to the network.
type MemoryRegistry struct {
	cfg  Config
	loop *Loop // writes the streams that Handoff takes over

	// runs counts the runs going, so Close can wait for them to end.
	runs      sync.WaitGroup
	closeOnce sync.Once

	mu      sync.Mutex
	clients map[string]*client
	streams int // open streams, replaced ones included until they end
	closed  bool
}

var (
	_ Registry      = (*MemoryRegistry)(nil)
	_ HealthChecker = (*MemoryRegistry)(nil)
	_ StatsReporter = (*MemoryRegistry)(nil)
)

// client is one entry of the registry. Its fields are guarded by
// MemoryRegistry.mu.
type client struct {
	id string

	// log holds the events of the current run, the last of them numbered
	// next-1; an event's sequence number is its id. A new run starts a new
	// slice rather than reusing the old one, so a stream may read a prefix
	// of log outside the lock: appends only ever write past it.
	log  []Entry
	next uint64 // sequence number of the next event
	// finished is set when the current run has sent its final event, and
	// finalSent once a stream has written that event.
	finished  bool
	finalSent bool

	run     *Run    // the current run, until its goroutine returns
	runs    uint64  // counts runs: the number of run
	stopRun func()  // stops the last run started; nothing once it is over
	stream  *Stream // the attached stream, or nil
	// gen counts attaches and detaches, so that a grace timer that fires
	// late can tell whether it still belongs to the current detach.
	gen    uint64
	expiry *time.Timer
}

// first returns the sequence number of log[0].
func (c *client) first() uint64 {
	return c.next - uint64(len(c.log))
}

// going reports whether c's run is going: started, and its final event not
// yet sent.
func (c *client) going() bool {
	return c.run != nil && !c.finished
}

// memSource is a stream's view of its client's log.
type memSource struct {
	reg    *MemoryRegistry
	client *client
	// cursor is the sequence number of the next event to write. Guarded
	// by MemoryRegistry.mu.
	cursor uint64
}

func (m *memSource) Next() (seq uint64, events []Entry, final bool) {
	m.reg.mu.Lock()
	defer m.reg.mu.Unlock()

	c := m.client
	first := c.first()
	if m.cursor < first {
		m.cursor = first // a new run began: all of its events are new
	}
	if m.cursor >= c.next {
		return 0, nil, false
	}
	// The slice is read after the lock is released; see client.log.
	seq, events = m.cursor, c.log[m.cursor-first:]
	m.cursor = c.next
	return seq, events, c.finished
}

// deliveredAtOnce makes memSource a deliversAtOnce: its Delivered takes
// the registry's lock and returns.
func (*memSource) deliveredAtOnce() {}

func (m *memSource) Delivered(seq uint64) {
	m.reg.mu.Lock()
	defer m.reg.mu.Unlock()

	if c := m.client; c.finished && seq == c.next-1 {
		c.finalSent = true
	}
}

// NewMemoryRegistry returns a MemoryRegistry with the given settings.
func NewMemoryRegistry(cfg Config) *MemoryRegistry {
	return &MemoryRegistry{
		cfg:     cfg,
		loop:    NewLoop(cfg),
		clients: make(map[string]*client),
	}
}

// Attach opens a stream for the client id; see Registry. ctx is not used:
// nothing here waits. A client that is new to this instance continues its
// numbering from lastEventID, so that after a restart ids keep increasing
// for a browser that still holds an old one.
func (m *MemoryRegistry) Attach(_ context.Context, id string, lastEventID uint64) (*Stream, func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	c, isNew, err := m.client(id, lastEventID)
	if err != nil {
		return nil, nil, err
	}
	var cursor uint64
	switch {
	case c.finished && lastEventID >= c.next-1:
		return nil, nil, ErrFinished
	case lastEventID > 0:
		gap := m.resumeGap(c, isNew, lastEventID)
		s, detach := m.attach(c, max(lastEventID+1, c.first()))
		if gap != "" {
			s.StartWithGap(gap, lastEventID)
		}
		return s, detach, nil
	case c.finished && c.finalSent:
		// A fresh EventSource (no Last-Event-ID) for a client whose run
		// has been delivered in full: nothing to replay, wait for the
		// next run.
		cursor = c.next
	default:
		// Nothing seen yet: the whole current run.
		cursor = c.first()
	}
	s, detach := m.attach(c, cursor)
	return s, detach, nil
}

// AttachRun resumes the client's run after lastEventID, or starts fn as
// its next run; see Registry.
func (m *MemoryRegistry) AttachRun(_ context.Context, id string, lastEventID uint64, fn RunFunc) (*Stream, func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	c, isNew, err := m.client(id, lastEventID)
	if err != nil {
		return nil, nil, err
	}
	resume := lastEventID > 0 && (c.going() || c.finished)
	switch {
	case resume && c.finished && lastEventID >= c.next-1:
		return nil, nil, ErrFinished
	case !resume && c.going():
		return nil, nil, ErrRunning
	}
	var gap string
	if lastEventID > 0 {
		gap = m.resumeGap(c, isNew, lastEventID)
	}
	if !resume {
		m.start(c, fn)
	}
	s, detach := m.attach(c, max(lastEventID+1, c.first()))
	if gap != "" {
		s.StartWithGap(gap, lastEventID)
	}
	return s, detach, nil
}

// resumeGap says why a stream of c cannot continue from lastEventID, or
// "" if it can: c is new (the registry forgot it, or never knew it), the
// events after the id are no longer kept, or the id is ahead of c's, whose
// numbering then goes on from it, so that ids never go backwards. The
// caller holds m.mu, and has answered a finished run that the id has seen
// whole.
func (m *MemoryRegistry) resumeGap(c *client, isNew bool, lastEventID uint64) string {
	switch {
	case isNew:
		return ReasonUnknownClient
	case lastEventID >= c.next:
		// The events logged so far go: the stream is ahead of them, and
		// a run that goes on numbers its next events from the id on.
		c.log = make([]Entry, 0, cap(c.log))
		c.next = lastEventID + 1
		return ReasonAhead
	case lastEventID+1 < c.first():
		return ReasonNotKept
	}
	return ""
}

// client returns the client id, made if it is new (isNew) with its
// numbering going on from lastEventID, for a stream to attach to. The
// caller holds m.mu.
func (m *MemoryRegistry) client(id string, lastEventID uint64) (c *client, isNew bool, err error) {
	if m.closed {
		return nil, false, ErrClosed
	}
	c = m.clients[id]
	if (c == nil || c.stream == nil) && m.streams >= m.cfg.MaxStreams {
		return nil, false, ErrTooManyStreams
	}
	if c == nil {
		c = &client{id: id, next: lastEventID + 1}
		m.clients[id] = c
		isNew = true
	}
	return c, isNew, nil
}

// attach makes c's stream, starting at event cursor, in place of the one
// it had. The caller holds m.mu.
func (m *MemoryRegistry) attach(c *client, cursor uint64) (*Stream, func()) {
	if c.stream != nil {
		c.stream.End(EndReplaced)
	}
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
	s := m.loop.NewStream(&memSource{reg: m, client: c, cursor: cursor})
	c.stream = s
	c.gen++
	m.streams++
	return s, sync.OnceFunc(func() { m.detach(c, s) })
}

// detach ends s's registration. If s is still c's stream, c is kept for
// Grace and then forgotten, its run stopped.
func (m *MemoryRegistry) detach(c *client, s *Stream) {
	m.mu.Lock()
	defer m.mu.Unlock()

	m.streams--
	if c.stream != s || m.clients[c.id] != c || m.closed {
		return // replaced, removed, or the registry is closing
	}
	c.stream = nil
	c.gen++
	gen := c.gen
	c.expiry = time.AfterFunc(m.cfg.Grace, func() { m.expire(c, gen) })
}

// expire forgets c if it has had no stream since the detach numbered gen.
func (m *MemoryRegistry) expire(c *client, gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()

	if c.gen != gen || m.clients[c.id] != c {
		return
	}
	m.forget(c, EndRemoved)
}

// forget removes c from the registry, stops its run and ends its stream,
// for why. The caller holds m.mu.
func (m *MemoryRegistry) forget(c *client, why EndReason) {
	delete(m.clients, c.id)
	if c.run != nil {
		c.stopRun()
		c.run = nil
	}
	if c.stream != nil {
		c.stream.End(why)
		c.stream = nil
	}
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
	c.gen++
}

// firstLog is the room a client's first run's log starts with.
const firstLog = 32

// Start starts fn as the next run of client id; see Registry. A run that
// has sent its final event no longer counts as going, even before its
// goroutine has returned.
func (m *MemoryRegistry) Start(_ context.Context, id string, fn RunFunc) error {
	m.mu.Lock()
	defer m.mu.Unlock()

	if m.closed {
		return ErrClosed
	}
	c := m.clients[id]
	if c == nil {
		return ErrUnknownClient
	}
	if c.going() {
		return ErrRunning
	}
	m.start(c, fn)
	return nil
}

// start starts fn as c's next run. The events of the previous run are
// dropped. The caller holds m.mu, and has checked that no run is going.
func (m *MemoryRegistry) start(c *client, fn RunFunc) {
	// A new array, since streams may still be reading the old one. It is
	// made as large as the last run's, the likely size of this one; a
	// client's first run gets room for firstLog events rather than grow
	// from one, leaving five arrays behind on the way to 32.
	c.log = make([]Entry, 0, max(cap(c.log), firstLog))
	c.finished = false
	c.finalSent = false

	if c.stopRun != nil {
		// The last run, finished, may not have returned yet: its
		// events are dropped, so its work can end.
		c.stopRun()
	}
	c.runs++
	n := c.runs
	var r *Run
	r = NewRun(func(name, data string, final bool) error {
		m.publish(r, c, n, name, data, final)
		return nil
	})
	m.runs.Add(1)
	// The registry stops each run itself (forget, Close): an
	// uncancellable parent spares a hook per run.
	c.run = r
	c.stopRun = r.Go(context.Background(), fn, func() {
		defer m.runs.Done()
		m.mu.Lock()
		if c.runs == n {
			c.run = nil
		}
		m.mu.Unlock()
	})
}

// publish logs an event of c's run number n, unless that run has been
// stopped or has sent its final event.
//
// A stream taken over from net/http is written here, on the run's
// goroutine, once the lock is released (or, in a step, once the step has
// returned: Run.step): as a bare server's goroutine per stream would, and
// with no hand-over to the loop's goroutine.
func (m *MemoryRegistry) publish(r *Run, c *client, n uint64, name, data string, final bool) {
	m.mu.Lock()
	if c.run == nil || c.runs != n || c.finished {
		m.mu.Unlock()
		return // stopped: removed, expired, replaced, or the registry closed
	}
	c.log = append(c.log, Entry{Name: name, Data: data})
	c.next++
	c.finished = final
	s := c.stream
	m.mu.Unlock()
	if s != nil && !r.holdWake(s) {
		s.Flush() // Next takes m.mu
	}
}

// Remove stops the client's run, ends its stream and forgets it.
func (m *MemoryRegistry) Remove(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()

	c := m.clients[id]
	if c == nil {
		return ErrUnknownClient
	}
	m.forget(c, EndRemoved)
	return nil
}

// Drop ends the client's open stream without a final event; see Registry.
func (m *MemoryRegistry) Drop(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()

	c := m.clients[id]
	switch {
	case c == nil:
		return ErrUnknownClient
	case c.stream == nil:
		return ErrNoStream
	}
	// The stream's detach, when Serve returns, starts the grace period.
	c.stream.End(EndDropped)
	return nil
}

// Stats returns the number of clients, open streams and runs going.
func (m *MemoryRegistry) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()

	st := Stats{Clients: len(m.clients), Streams: m.streams}
	for _, c := range m.clients {
		if c.going() {
			st.Runs++
		}
	}
	return st
}

// Health reports whether the registry serves: nil, or ErrClosed once it is
// closing.
func (m *MemoryRegistry) Health(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()

	if m.closed {
		return ErrClosed
	}
	return nil
}

// Close ends every stream and run, forgets every client and waits for the
// runs' goroutines to return; see Registry.
func (m *MemoryRegistry) Close() {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		for _, c := range m.clients {
			m.forget(c, EndShutdown)
		}
		m.mu.Unlock()

		m.runs.Wait()
		m.loop.Close() // the streams taken over from net/http
	})
}
