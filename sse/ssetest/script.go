package ssetest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"gin-sse-progress/sse"
)

// Script is a run that publishes what the test tells it, when it tells it,
// so that a test decides exactly when each event happens. Its Run is the
// RunFunc to start.
type Script struct {
	events    chan scripted
	published chan error
	stopped   chan struct{}
}

type scripted struct {
	name, data string
	final      bool
}

// NewScript returns a script for one run.
func NewScript() *Script {
	return &Script{
		events:    make(chan scripted),
		published: make(chan error),
		stopped:   make(chan struct{}),
	}
}

// Run is the script's RunFunc. It returns after the final event, or when
// ctx is done.
func (s *Script) Run(ctx context.Context, r *sse.Run) {
	defer close(s.stopped)
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-s.events:
			if ev.final {
				s.published <- r.Finish(ev.name, ev.data)
				return
			}
			s.published <- r.Send(ev.name, ev.data)
		}
	}
}

// Send publishes an event and returns once the registry has it.
func (s *Script) Send(t testing.TB, name, data string) {
	t.Helper()
	s.publish(t, scripted{name: name, data: data})
}

// Finish publishes the run's final event and returns once the registry has
// it.
func (s *Script) Finish(t testing.TB, name, data string) {
	t.Helper()
	s.publish(t, scripted{name: name, data: data, final: true})
}

func (s *Script) publish(t testing.TB, ev scripted) {
	t.Helper()
	select {
	case s.events <- ev:
	case <-s.stopped:
		t.Fatalf("publish %q: the run has stopped", ev.name)
	case <-time.After(timeout):
		t.Fatalf("publish %q: the run is not listening", ev.name)
	}
	if err := <-s.published; err != nil {
		t.Fatalf("publish %q: %v", ev.name, err)
	}
}

// Stopped is closed when Run returns.
func (s *Script) Stopped() <-chan struct{} { return s.stopped }

// Updates returns a run that sends n "update" events, their data 0 to n-1,
// as fast as it can, then a final "close" whose data is "done".
func Updates(n int) sse.RunFunc {
	return func(_ context.Context, r *sse.Run) {
		for i := range n {
			_ = r.Send("update", strconv.Itoa(i))
		}
		_ = r.Finish("close", "done")
	}
}

// Ticks returns a run that sends an "update" event every tick, their data
// 0, 1, 2, ..., until ctx is done. It never finishes.
func Ticks(tick time.Duration) sse.RunFunc {
	return func(ctx context.Context, r *sse.Run) {
		t := time.NewTicker(tick)
		defer t.Stop()
		for i := 0; ; i++ {
			_ = r.Send("update", strconv.Itoa(i))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}
