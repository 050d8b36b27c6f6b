package sse

import (
	"runtime"
	"sync"
	"time"
)

// yieldEvery is how many streams the loop writes between two yields of
// the processor (runtime.Gosched): each write takes a few µs to tens of
// µs, so others wait well under a millisecond.
const yieldEvery = 16

// Loop writes the streams that Handoff took over from net/http, so that an
// idle stream costs no goroutine: one goroutine writes every stream that
// has news, with writes that never block, and sends the heartbeats of the
// quiet ones. A stream whose client reads too slowly for a write to finish
// at once gets a goroutine of its own until it has caught up, bounded by
// the write deadline; so does the write of a run's final event, and a
// stream's end.
//
// A registry makes one with NewLoop, builds its streams with Loop.NewStream,
// and closes it once it has ended them. Its goroutine runs while it has
// streams, and returns when the last one has ended.
type Loop struct {
	cfg  Config
	goes sync.WaitGroup // the loop's goroutine
	bufs sync.Pool      // of *[]byte, for writers other than the loop's

	mu      sync.Mutex
	queue   []*Stream            // streams with something to write
	spare   []*Stream            // the last queue, reused
	live    map[*Stream]struct{} // taken over and not yet ended
	running bool                 // the goroutine is
	closed  bool
	watch   *watcher      // of the live streams' sockets, made with the first; nil without
	signal  chan struct{} // has room for one: the queue is not empty
	ends    sync.WaitGroup
}

// NewLoop returns a loop for streams with the settings of cfg.
func NewLoop(cfg Config) *Loop {
	return &Loop{
		cfg:    cfg,
		live:   map[*Stream]struct{}{},
		signal: make(chan struct{}, 1),
	}
}

// NewStream returns a stream of src that Handoff can hand to l.
func (l *Loop) NewStream(src Source) *Stream {
	s := NewStream(l.cfg, src)
	s.loop = l
	return s
}

// adopt takes s over: l writes it from now on. It reports false once l is
// closed.
func (l *Loop) adopt(s *Stream) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.live[s] = struct{}{}
	l.ends.Add(1)
	if l.watch == nil {
		l.watch = newWatcher()
	}
	l.watch.add(s)
	if !l.running {
		l.running = true
		l.goes.Go(l.run)
	}
	return true
}

// unwatch stops watching the socket of s, which is about to close.
func (l *Loop) unwatch(s *Stream) {
	l.mu.Lock()
	w := l.watch
	l.mu.Unlock()
	w.remove(s)
}

// forget is called once s has ended and its connection is closed.
func (l *Loop) forget(s *Stream) {
	l.mu.Lock()
	delete(l.live, s)
	l.mu.Unlock()
	l.ends.Done()
	l.wake() // the goroutine returns if s was the last
}

// borrow returns an encoding buffer for a writer on a goroutine of its
// own (a run's, flushing its stream), to give back when done: a pool, so
// that a stream needs no buffer of its own.
func (l *Loop) borrow() *[]byte {
	if b, ok := l.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 512)
	return &b
}

func (l *Loop) giveBack(b *[]byte) {
	if cap(*b) > 4*maxChunk {
		return // a backlog's: let it go
	}
	l.bufs.Put(b)
}

// enqueue asks the loop to write s, unless s is queued already.
func (l *Loop) enqueue(s *Stream) {
	if !s.queued.CompareAndSwap(false, true) {
		return
	}
	l.mu.Lock()
	l.queue = append(l.queue, s)
	l.mu.Unlock()
	l.wake()
}

func (l *Loop) wake() {
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

// run is the loop's goroutine: it writes each queued stream, without
// blocking, and every quarter of the heartbeat sends the heartbeats due.
// It returns once no stream is left.
func (l *Loop) run() {
	t := time.NewTicker(max(l.cfg.Heartbeat/4, time.Millisecond))
	defer t.Stop()
	var buf []byte // shared by every stream: only this goroutine encodes into it
	var due []*Stream
	for {
		select {
		case <-l.signal:
		case <-t.C:
			due = l.sweep(due)
		}
		l.mu.Lock()
		batch := l.queue
		l.queue, l.spare = l.spare[:0], nil
		if len(batch) == 0 && len(l.live) == 0 {
			l.running = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		for i, s := range batch {
			if i > 0 && i%yieldEvery == 0 {
				// A long batch, such as a sweep's heartbeats, never
				// blocks, so no other goroutine runs until the runtime
				// preempts this one (after 10 ms): on one core, a run's
				// step due meanwhile would wait for the whole batch.
				// Yield now and then, and it waits for a few writes.
				runtime.Gosched()
			}
			s.queued.Store(false)
			buf = s.flush(buf)
			batch[i] = nil
		}
		l.mu.Lock()
		if l.spare == nil {
			l.spare = batch
		}
		l.mu.Unlock()
	}
}

// sweep queues a heartbeat for each stream that has been quiet for
// Config.Heartbeat. due is its scratch space, returned for the next sweep.
func (l *Loop) sweep(due []*Stream) []*Stream {
	now := time.Now().UnixNano()
	quiet := int64(l.cfg.Heartbeat)
	l.mu.Lock()
	for s := range l.live {
		if s.quietSince(now) >= quiet {
			due = append(due, s)
		}
	}
	l.mu.Unlock()
	for i, s := range due {
		s.ping.Store(true)
		s.nudge()
		due[i] = nil
	}
	return due[:0]
}

// Close ends every stream l still writes and waits until each has ended,
// its connection closed, and l's goroutine has returned. A registry calls
// it from its own Close, once it has ended its streams.
func (l *Loop) Close() {
	l.mu.Lock()
	l.closed = true
	streams := make([]*Stream, 0, len(l.live))
	for s := range l.live {
		streams = append(streams, s)
	}
	l.mu.Unlock()
	for _, s := range streams {
		s.End(EndShutdown)
	}
	l.ends.Wait()
	l.goes.Wait()
	l.mu.Lock()
	w := l.watch
	l.mu.Unlock()
	w.close()
}
