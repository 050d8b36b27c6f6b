package sse

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testConfig has durations long enough that nothing fires unless a test
// asks for it.
func testConfig() Config {
	return Config{
		Retry:        time.Second,
		Heartbeat:    time.Minute,
		Grace:        time.Minute,
		MaxStreams:   100,
		WriteTimeout: time.Second,
	}
}

func newTestHub(t *testing.T, cfg Config) *Hub {
	t.Helper()
	h := NewHub(cfg)
	t.Cleanup(h.Close)
	return h
}

func attach(t *testing.T, h *Hub, id string, last uint64) (*Stream, func()) {
	t.Helper()
	s, detach, err := h.Attach(context.Background(), id, last)
	require.NoError(t, err)
	return s, detach
}

// scripted is a RunFunc that publishes what the test sends it, so a test
// decides exactly when each event happens. A name starting with "final:"
// is sent with Finish.
type scripted struct {
	events    chan [2]string
	published chan struct{} // one value after each event is published
	stopped   chan struct{}
}

func newScripted() *scripted {
	return &scripted{
		events:    make(chan [2]string),
		published: make(chan struct{}),
		stopped:   make(chan struct{}),
	}
}

func (s *scripted) run(ctx context.Context, r *Run) {
	defer close(s.stopped)
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-s.events:
			if name, ok := strings.CutPrefix(ev[0], "final:"); ok {
				_ = r.Finish(name, ev[1])
				s.published <- struct{}{}
				return
			}
			_ = r.Send(ev[0], ev[1])
			s.published <- struct{}{}
		}
	}
}

func (s *scripted) send(t *testing.T, name, data string) {
	t.Helper()
	select {
	case s.events <- [2]string{name, data}:
	case <-time.After(time.Second):
		t.Fatal("run is not listening")
	}
	<-s.published
}

func assertWoken(t *testing.T, s *Stream) {
	t.Helper()
	select {
	case <-s.wake:
	default:
		t.Fatal("stream was not woken")
	}
}

func assertEnded(t *testing.T, s *Stream) {
	t.Helper()
	select {
	case <-s.gone:
	default:
		t.Fatal("stream was not ended")
	}
}

func assertLive(t *testing.T, s *Stream) {
	t.Helper()
	select {
	case <-s.gone:
		t.Fatal("stream was ended")
	default:
	}
}

// pending returns what the stream's feed returns, as the events a reader would see.
func pending(s *Stream) (events []Event, final bool) {
	seq, entries, final := s.feed.next()
	for i, e := range entries {
		id := strconv.FormatUint(seq+uint64(i), 10)
		events = append(events, Event{Name: e.name, ID: id, Data: e.data})
	}
	return events, final
}

func ids(events []Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.ID
	}
	return out
}

func TestAttachRegistersClient(t *testing.T) {
	h := newTestHub(t, testConfig())
	s, detach := attach(t, h, "a", 0)
	defer detach()

	assert.Equal(t, Stats{Clients: 1, Streams: 1}, h.Stats())
	events, final := pending(s)
	assert.Empty(t, events)
	assert.False(t, final)
}

func TestSecondAttachReplacesStream(t *testing.T) {
	h := newTestHub(t, testConfig())
	run := newScripted()
	old, detachOld := attach(t, h, "a", 0)
	require.NoError(t, h.Start(context.Background(), "a", run.run))
	run.send(t, "update", "1")

	s, detach := attach(t, h, "a", 0)
	defer detach()
	assertEnded(t, old)
	assertLive(t, s)

	// The old handler returns and detaches: the new stream stays.
	detachOld()
	assertLive(t, s)
	assert.Equal(t, Stats{Clients: 1, Streams: 1, Runs: 1}, h.Stats())

	// The run and its events carried over to the new stream.
	events, _ := pending(s)
	assert.Equal(t, []string{"1"}, ids(events))
	run.send(t, "update", "2")
	assertWoken(t, s)
}

func TestDetachKeepsClientForGrace(t *testing.T) {
	cfg := testConfig()
	cfg.Grace = 20 * time.Millisecond
	h := newTestHub(t, cfg)
	run := newScripted()
	_, detach := attach(t, h, "a", 0)
	require.NoError(t, h.Start(context.Background(), "a", run.run))
	detach()
	detach() // a second call does nothing

	assert.Equal(t, Stats{Clients: 1, Streams: 0, Runs: 1}, h.Stats(), "kept during grace")
	select {
	case <-run.stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("grace expiry did not stop the run")
	}
	assert.Equal(t, Stats{}, h.Stats(), "forgotten after grace")
	assert.ErrorIs(t, h.Start(context.Background(), "a", newScripted().run), ErrUnknownClient)
}

func TestReattachWithinGraceCancelsExpiry(t *testing.T) {
	cfg := testConfig()
	cfg.Grace = 20 * time.Millisecond
	h := newTestHub(t, cfg)
	_, detach := attach(t, h, "a", 0)
	detach()
	_, detach = attach(t, h, "a", 0)
	defer detach()

	time.Sleep(3 * cfg.Grace) // the cancelled expiry would have fired by now
	assert.Equal(t, Stats{Clients: 1, Streams: 1}, h.Stats())
}

func TestStartErrors(t *testing.T) {
	h := newTestHub(t, testConfig())
	assert.ErrorIs(t, h.Start(context.Background(), "nobody", newScripted().run), ErrUnknownClient)

	_, detach := attach(t, h, "a", 0)
	defer detach()
	run := newScripted()
	require.NoError(t, h.Start(context.Background(), "a", run.run))
	assert.ErrorIs(t, h.Start(context.Background(), "a", newScripted().run), ErrRunning)

	run.send(t, "final:close", "")
	<-run.stopped
	require.Eventually(t, func() bool { return h.Stats().Runs == 0 }, time.Second, time.Millisecond)
	second := newScripted()
	assert.NoError(t, h.Start(context.Background(), "a", second.run), "a finished run makes room for the next")
	second.send(t, "final:close", "")
}

func TestRunEventsAreNumberedAndFinal(t *testing.T) {
	h := newTestHub(t, testConfig())
	s, detach := attach(t, h, "a", 0)
	defer detach()
	run := newScripted()
	require.NoError(t, h.Start(context.Background(), "a", run.run))

	run.send(t, "update", "0")
	run.send(t, "update", "5")
	assertWoken(t, s)
	events, final := pending(s)
	assert.Equal(t, []Event{{Name: "update", ID: "1", Data: "0"}, {Name: "update", ID: "2", Data: "5"}}, events)
	assert.False(t, final)

	run.send(t, "final:close", "done")
	events, final = pending(s)
	assert.Equal(t, []Event{{Name: "close", ID: "3", Data: "done"}}, events)
	assert.True(t, final)
}

func TestAttachResumesAfterLastEventID(t *testing.T) {
	h := newTestHub(t, testConfig())
	_, detach := attach(t, h, "a", 0)
	run := newScripted()
	require.NoError(t, h.Start(context.Background(), "a", run.run))
	for _, d := range []string{"0", "5", "10"} {
		run.send(t, "update", d)
	}
	detach()

	s, detach := attach(t, h, "a", 1)
	events, _ := pending(s)
	assert.Equal(t, []string{"2", "3"}, ids(events))
	detach()

	s, detach = attach(t, h, "a", 0)
	defer detach()
	events, _ = pending(s)
	assert.Equal(t, []string{"1", "2", "3"}, ids(events), "no Last-Event-ID: the whole run")
}

func TestAttachAfterFinalEvent(t *testing.T) {
	h := newTestHub(t, testConfig())
	_, detach := attach(t, h, "a", 0)
	run := newScripted()
	require.NoError(t, h.Start(context.Background(), "a", run.run))
	run.send(t, "update", "0")
	run.send(t, "final:close", "")
	<-run.stopped

	// The stream is cut before it writes anything: a fresh stream
	// without Last-Event-ID gets the whole run.
	detach()
	s, detach := attach(t, h, "a", 0)
	events, final := pending(s)
	assert.Equal(t, []string{"1", "2"}, ids(events))
	assert.True(t, final)
	s.feed.delivered(2)
	detach()

	_, _, err := h.Attach(context.Background(), "a", 2)
	assert.ErrorIs(t, err, ErrFinished, "the client named the final event")

	s, detach = attach(t, h, "a", 1)
	events, final = pending(s)
	assert.Equal(t, []string{"2"}, ids(events), "the client missed the final event")
	assert.True(t, final)
	detach()

	s, detach = attach(t, h, "a", 0)
	defer detach()
	events, _ = pending(s)
	assert.Empty(t, events, "a fresh stream after the run was delivered waits for the next run")

	next := newScripted()
	require.NoError(t, h.Start(context.Background(), "a", next.run))
	next.send(t, "update", "0")
	events, _ = pending(s)
	assert.Equal(t, []string{"3"}, ids(events), "ids go on increasing across runs")
	next.send(t, "final:close", "")
}

func TestNewClientContinuesNumbering(t *testing.T) {
	h := newTestHub(t, testConfig())
	// A browser that saw event 41 from an earlier server process.
	s, detach := attach(t, h, "a", 41)
	defer detach()
	run := newScripted()
	require.NoError(t, h.Start(context.Background(), "a", run.run))
	run.send(t, "update", "0")
	events, _ := pending(s)
	assert.Equal(t, []string{"42"}, ids(events))
	run.send(t, "final:close", "")
}

func TestMaxStreams(t *testing.T) {
	cfg := testConfig()
	cfg.MaxStreams = 2
	h := newTestHub(t, cfg)
	_, detachA := attach(t, h, "a", 0)
	_, detachB := attach(t, h, "b", 0)
	defer detachB()

	_, _, err := h.Attach(context.Background(), "c", 0)
	assert.ErrorIs(t, err, ErrTooManyStreams)

	_, detachA2 := attach(t, h, "a", 0) // a replacement is let in at the limit
	defer detachA2()
	detachA()

	_, _, err = h.Attach(context.Background(), "c", 0)
	assert.ErrorIs(t, err, ErrTooManyStreams, "the replaced stream's place went to its replacement")

	detachB()
	_, detachC := attach(t, h, "c", 0)
	defer detachC()
	assert.Equal(t, 2, h.Stats().Streams)
}

func TestRemoveStopsRunAndEndsStream(t *testing.T) {
	h := newTestHub(t, testConfig())
	s, detach := attach(t, h, "a", 0)
	defer detach()
	run := newScripted()
	require.NoError(t, h.Start(context.Background(), "a", run.run))

	require.NoError(t, h.Remove(context.Background(), "a"))
	assertEnded(t, s)
	<-run.stopped
	assert.ErrorIs(t, h.Remove(context.Background(), "a"), ErrUnknownClient)
	detach()
	assert.Equal(t, Stats{}, h.Stats())
}

func TestDisconnectKeepsClientAndRun(t *testing.T) {
	h := newTestHub(t, testConfig())
	assert.ErrorIs(t, h.Disconnect(context.Background(), "a"), ErrUnknownClient)

	s, detach := attach(t, h, "a", 0)
	run := newScripted()
	require.NoError(t, h.Start(context.Background(), "a", run.run))
	run.send(t, "update", "0")
	run.send(t, "update", "5")

	require.NoError(t, h.Disconnect(context.Background(), "a"))
	assertEnded(t, s)
	detach()
	assert.ErrorIs(t, h.Disconnect(context.Background(), "a"), ErrNoStream)
	assert.Equal(t, Stats{Clients: 1, Streams: 0, Runs: 1}, h.Stats(), "the client and its run stay for Grace")

	run.send(t, "update", "10")
	s, detach = attach(t, h, "a", 1)
	defer detach()
	events, _ := pending(s)
	assert.Equal(t, []string{"2", "3"}, ids(events), "the reconnect resumes after its Last-Event-ID")
}

func TestCloseEndsEverything(t *testing.T) {
	h := NewHub(testConfig())
	s, detach := attach(t, h, "a", 0)
	defer detach()
	run := newScripted()
	require.NoError(t, h.Start(context.Background(), "a", run.run))

	h.Close()
	assertEnded(t, s)
	select {
	case <-run.stopped:
	default:
		t.Fatal("Close returned before the run did")
	}
	h.Close() // idempotent

	_, _, err := h.Attach(context.Background(), "b", 0)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, h.Start(context.Background(), "a", newScripted().run), ErrClosed)
}

func TestRunStoppedPublishesNothing(t *testing.T) {
	h := newTestHub(t, testConfig())
	_, detach := attach(t, h, "a", 0)
	defer detach()
	runs := make(chan *Run, 1)
	require.NoError(t, h.Start(context.Background(), "a", func(_ context.Context, r *Run) { runs <- r }))
	r := <-runs
	require.Eventually(t, func() bool { return h.Stats().Runs == 0 }, time.Second, time.Millisecond)

	assert.NoError(t, r.Send("update", "late"))
	assert.ErrorIs(t, r.Send("bad\nname", ""), ErrInvalidField)
	s, detach2 := attach(t, h, "a", 0)
	defer detach2()
	events, _ := pending(s)
	assert.Empty(t, events)
}
