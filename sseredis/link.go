package sseredis

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"gin-sse-progress/sse"
)

// The pub/sub link: one connection per instance, subscribed to the channel
// of every client that has a stream held here or a run owned here.

// subscription is one channel subscribed to for the streams held here and
// the runs owned here.
type subscription struct {
	users int
	ready chan struct{} // closed once Redis has done the SUBSCRIBE
}

// openLink opens a pub/sub connection and checks that Redis answers.
func openLink(ctx context.Context, rdb *redis.Client) (*redis.PubSub, error) {
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, err
	}
	ps := rdb.Subscribe(ctx, handoverChannel)
	if err := ps.Ping(ctx); err != nil {
		_ = ps.Close()
		return nil, err
	}
	return ps, nil
}

// subscribe makes sure this instance is subscribed to channel ch, for a
// stream or a run, and returns the number of the pub/sub connection it is
// subscribed on, for unsubscribe, or 0 if it is not. If wait is set, it
// returns once Redis has done the SUBSCRIBE.
func (r *Registry) subscribe(ctx context.Context, ch string, wait bool) (epoch uint64, err error) {
	r.subMu.Lock()
	if r.ps == nil {
		r.subMu.Unlock()
		return 0, unavailable(errors.New("no link to Redis"))
	}
	sub := r.subs[ch]
	if sub == nil {
		sub = &subscription{ready: make(chan struct{})}
		// Redis answers a PING on a pub/sub connection in turn, after
		// the SUBSCRIBE sent before it.
		r.pinged++
		ping := strconv.FormatUint(r.pinged, 10)
		err := r.ps.Subscribe(ctx, ch)
		if err == nil {
			err = r.ps.Ping(ctx, ping)
		}
		if err != nil {
			r.subMu.Unlock()
			return 0, unavailable(err)
		}
		r.subs[ch] = sub
		r.pings[ping] = sub
	}
	sub.users++
	epoch = r.epoch
	r.subMu.Unlock()

	if !wait {
		return epoch, nil
	}
	select {
	case <-sub.ready:
		return epoch, nil
	case <-ctx.Done():
		return epoch, ctx.Err()
	}
}

// unsubscribe undoes a subscribe that returned epoch.
func (r *Registry) unsubscribe(ch string, epoch uint64) {
	r.subMu.Lock()
	defer r.subMu.Unlock()

	sub := r.subs[ch]
	if epoch != r.epoch || sub == nil || r.ps == nil {
		return // subscribed on a connection since lost
	}
	sub.users--
	if sub.users == 0 {
		delete(r.subs, ch)
		// A failed UNSUBSCRIBE costs only messages to ignore; a broken
		// connection is noticed by listen.
		_ = r.ps.Unsubscribe(r.ctx, ch)
	}
}

// listen reads the pub/sub connection until the registry closes, and brings
// the link back after it breaks.
func (r *Registry) listen(ps *redis.PubSub) {
	for {
		msg, err := ps.Receive(r.ctx)
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			r.lose(ps, err) // unless keep has already
			if ps = r.reconnect(); ps == nil {
				return
			}
			continue
		}
		r.heard.Store(time.Now().UnixNano())
		switch m := msg.(type) {
		case *redis.Message:
			if m.Channel == handoverChannel {
				select {
				case r.nudge <- struct{}{}:
				default: // keep is already due to look
				}
				continue
			}
			r.deliver(clientOf(m.Channel), m.Payload)
		case *redis.Pong:
			r.subMu.Lock()
			if sub := r.pings[m.Payload]; sub != nil {
				delete(r.pings, m.Payload)
				close(sub.ready)
			}
			r.subMu.Unlock()
		}
	}
}

// lose handles a broken link: every stream held here ends with a gap event,
// every run owned here stops, and requests get sse.ErrUnavailable until
// reconnect succeeds.
func (r *Registry) lose(ps *redis.PubSub, err error) {
	r.subMu.Lock()
	if r.ps != ps {
		r.subMu.Unlock()
		return // lost already
	}
	r.logger.Error("redis link lost: ending streams with a gap event, stopping runs", "err", err)
	_ = ps.Close()
	r.ps = nil
	r.epoch++ // never 0: that means "not subscribed"
	clear(r.subs)
	for _, sub := range r.pings {
		close(sub.ready) // the attach goes on to fail, or finds its stream ended
	}
	clear(r.pings)
	r.subMu.Unlock()

	r.mu.Lock()
	defer r.mu.Unlock()
	r.linkErr = err
	r.stopLocal(func(s *sse.Stream) { s.EndWithGap(sse.ReasonLost) })
}

// stopLocal ends every stream held here with end, and stops every run owned
// here, to be handed over. The caller holds r.mu.
func (r *Registry) stopLocal(end func(*sse.Stream)) {
	for _, sources := range r.sources {
		for s := range sources {
			end(s.stream)
		}
	}
	for _, run := range r.runs {
		run.handOff()
	}
}

// reconnect opens a new pub/sub connection once Redis answers, trying with a
// growing delay. It returns nil if the registry closes first.
func (r *Registry) reconnect() *redis.PubSub {
	down := time.Now()
	delay := 50 * time.Millisecond
	for {
		t := time.NewTimer(delay)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, 2*time.Second)

		ps, err := openLink(r.ctx, r.rdb)
		if err != nil {
			continue
		}
		r.subMu.Lock()
		if r.ctx.Err() != nil {
			r.subMu.Unlock()
			_ = ps.Close()
			return nil
		}
		r.ps = ps
		r.subMu.Unlock()

		r.heard.Store(time.Now().UnixNano())
		r.mu.Lock()
		r.linkErr = nil
		r.mu.Unlock()
		r.logger.Info("redis link restored", "down", time.Since(down).Round(time.Millisecond))
		return ps
	}
}

// deliver hands a message of client id's channels to the streams held here
// and the run owned here; see keys.go for the messages.
func (r *Registry) deliver(id, payload string) {
	if payload == "" {
		return
	}
	if payload[0] == msgEvent {
		r.deliverEvent(id, payload)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sources := r.sources[id]
	switch payload[0] {
	case msgAttached:
		gen, err := strconv.ParseUint(payload[1:], 10, 64)
		if err != nil {
			return
		}
		for s := range sources {
			s.attached(gen)
		}
	case msgRemoved:
		for s := range sources {
			s.stream.End(sse.EndRemoved)
		}
		if run := r.runs[id]; run != nil {
			run.cancel()
		}
	case msgDropped:
		for s := range sources {
			s.stream.End(sse.EndDropped)
		}
	}
}

// deliverEvent hands an event to the streams of its client held here, and
// writes them on this goroutine once it has let go of r.mu (sse.Stream.Flush),
// rather than waking another goroutine to write each.
func (r *Registry) deliverEvent(id, payload string) {
	ev, ok := parseEvent(payload[1:])
	if !ok {
		r.logger.Warn("unexpected message", "id", id, "payload", payload)
		return
	}
	var room [2]*sse.Stream // a client has one stream, two while one replaces another
	took := room[:0]
	r.mu.Lock()
	for s := range r.sources[id] {
		if s.push(ev) {
			took = append(took, s.stream)
		}
	}
	r.mu.Unlock()
	for _, s := range took {
		s.Flush()
	}
}
