package sseredis

import (
	"context"

	"gin-sse-progress/sse"
)

// source is a stream's view of its client's events: those read from the
// log when it attached, then those that arrive on the channel. It is the
// stream's sse.Source.
type source struct {
	reg    *Registry
	id     string
	stream *sse.Stream

	// Guarded by reg.mu.
	epoch  uint64        // of the pub/sub connection it subscribed on, or 0
	gen    uint64        // the attach's number; 0 until Attach has it
	newest uint64        // the newest attach heard of before then
	early  []loggedEvent // live events heard before then
	expect uint64        // number of the next event to take
	seq    uint64        // number of buf[0]
	buf    []sse.Entry   // taken, not yet written
	final  bool          // the last of buf is the run's final event
}

// start gives s its attach number, cursor and the logged events from the
// cursor on, then the live events heard meanwhile. The caller holds reg.mu.
func (s *source) start(gen, cursor uint64, logged []loggedEvent, finished bool) {
	s.gen, s.expect = gen, cursor
	if s.newest > gen {
		s.stream.End(sse.EndReplaced) // a newer stream attached meanwhile
	}
	took := false
	for i, ev := range logged {
		ev.final = finished && i == len(logged)-1
		took = s.push(ev) || took
	}
	for _, ev := range s.early {
		took = s.push(ev) || took
	}
	s.early = nil
	if took {
		s.stream.Wake()
	}
}

// push takes an event, unless s has it already, and reports whether it
// took it: the caller then has the stream write it (Wake, or Flush once it
// has let go of reg.mu). The caller holds reg.mu.
func (s *source) push(ev loggedEvent) bool {
	switch {
	case s.gen == 0:
		s.early = append(s.early, ev)
		return false
	case ev.seq < s.expect:
		return false // read from the log, and heard again
	case ev.seq > s.expect:
		// An event never arrived. End the stream: the browser
		// reconnects with its Last-Event-ID and reads the rest from
		// the log.
		s.stream.End(sse.EndResync)
		return false
	}
	if len(s.buf) == 0 {
		s.seq = ev.seq
	}
	s.buf = append(s.buf, ev.entry)
	s.expect++
	s.final = ev.final
	return true
}

// attached hears of attach number gen for s's client. The caller holds
// reg.mu.
func (s *source) attached(gen uint64) {
	switch {
	case s.gen == 0:
		s.newest = max(s.newest, gen)
	case gen > s.gen:
		s.stream.End(sse.EndReplaced)
	}
}

// Next hands the stream what it has taken; a new buffer takes what comes
// next, so the stream may read the old one without the lock.
func (s *source) Next() (seq uint64, events []sse.Entry, final bool) {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()

	seq, events, final = s.seq, s.buf, s.final
	s.buf, s.final = nil, false
	return seq, events, final
}

func (s *source) Delivered(seq uint64) {
	r := s.reg
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.WriteTimeout)
	defer cancel()
	// If this fails, a fresh EventSource replays the finished run.
	_ = r.scripts.delivered.Run(ctx, r.rdb, []string{hashKey(s.id)}, seq).Err()
}
