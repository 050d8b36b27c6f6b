package ssetest

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"gin-sse-progress/sse"
)

// The suite's helpers: each fails the test with a message that says what
// was expected.

// serve makes a registry with cfg and serves it.
func serve(t *testing.T, newRegistry maker, cfg sse.Config) (sse.Registry, *Server) {
	t.Helper()
	reg := newRegistry.make(t, cfg)
	if newRegistry.blocking {
		return reg, NewBlockingServer(t, reg)
	}
	return reg, NewServer(t, reg)
}

// maker makes the registries of a subtest, served one way or the other.
type maker struct {
	newRegistry NewRegistry
	blocking    bool // every stream on a goroutine: NewBlockingServer
}

func (m maker) make(t *testing.T, cfg sse.Config) sse.Registry { return m.newRegistry(t, cfg) }

func start(t *testing.T, reg sse.Registry, id string, fn sse.RunFunc) {
	t.Helper()
	if err := reg.Start(t.Context(), id, fn); err != nil {
		t.Fatalf("start %q: %v", id, err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

// wantIDs checks that events are numbered from first on, one by one.
func wantIDs(t *testing.T, events []Event, first uint64) {
	t.Helper()
	for i, ev := range events {
		if want := strconv.FormatUint(first+uint64(i), 10); ev.ID != want {
			t.Fatalf("event %d (%+v): id %q, want %q; all: %+v", i, ev, ev.ID, want, events)
		}
	}
}

// wantUpdates checks that events are update events whose data count from
// 0, then, if final, a close.
func wantUpdates(t *testing.T, events []Event, updates int, final bool) {
	t.Helper()
	n := updates
	if final {
		n++
	}
	if len(events) != n {
		t.Fatalf("got %d events, want %d: %+v", len(events), n, events)
	}
	for i, ev := range events[:updates] {
		if ev.Type != "update" || ev.Data != strconv.Itoa(i) {
			t.Fatalf("event %d is %+v, want update %d", i, ev, i)
		}
	}
	if final && events[updates].Type != "close" {
		t.Fatalf("last event is %+v, want close", events[updates])
	}
}

// wantGap checks that ev is a gap event for reason and the id the client
// sent.
func wantGap(t *testing.T, ev Event, reason string, lastEventID uint64) {
	t.Helper()
	if ev.Type != sse.GapEvent || ev.Data != sse.GapData(reason, lastEventID) {
		t.Fatalf("event %+v, want a gap for %q after %d", ev, reason, lastEventID)
	}
}

// eventually polls cond until it holds, for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitStopped(t *testing.T, s *Script, why string) {
	t.Helper()
	select {
	case <-s.Stopped():
	case <-time.After(10 * time.Second):
		t.Fatalf("the run goes on after %s", why)
	}
}
