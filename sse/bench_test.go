package sse_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
)

// update is an update event as the progress run sends it.
var update = sse.Event{Name: "update", ID: "17", Data: `{"id":"1700000000000","count":80}`}

func benchConfig() sse.Config {
	cfg := ssetest.Config()
	cfg.MaxStreams = 1 << 20
	return cfg
}

func BenchmarkEventAppendTo(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 256)
	for b.Loop() {
		var err error
		if buf, err = update.AppendTo(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func TestAppendToAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(1000, func() { buf, _ = update.AppendTo(buf[:0]) })
	if allocs != 0 {
		t.Fatalf("AppendTo allocates %v times per event into a buffer with room", allocs)
	}
}

// served is a stream being served to a flushWriter, and the run that
// publishes to it. The run sends what it is given on send and finishes when
// send is closed.
type served struct {
	reg     *sse.MemoryRegistry
	w       *flushWriter
	send    chan string
	done    chan error    // Serve's result
	stopped chan struct{} // closed when the run returns
}

// serve attaches a stream for client id, serves it, starts a run and waits
// for the stream's first flush, the retry block.
func serve(tb testing.TB, reg *sse.MemoryRegistry, id string, last uint64) *served {
	tb.Helper()
	stream, detach, err := reg.Attach(context.Background(), id, last)
	if err != nil {
		tb.Fatal(err)
	}
	s := &served{
		reg:     reg,
		w:       &flushWriter{header: http.Header{}, flushed: make(chan struct{}, 1)},
		send:    make(chan string),
		done:    make(chan error, 1),
		stopped: make(chan struct{}),
	}
	go func() {
		defer detach()
		s.done <- stream.Serve(context.Background(), s.w)
	}()
	<-s.w.flushed
	err = reg.Start(context.Background(), id, func(_ context.Context, r *sse.Run) {
		defer close(s.stopped)
		for data := range s.send {
			_ = r.Send(update.Name, data)
		}
		_ = r.Finish("close", "done")
	})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// update publishes one update and waits until the stream has flushed it.
func (s *served) update() {
	s.send <- update.Data
	<-s.w.flushed
}

// finish ends the run and returns once the stream has written the close
// and the run's goroutine has returned.
func (s *served) finish(tb testing.TB) {
	tb.Helper()
	close(s.send)
	<-s.w.flushed
	if err := <-s.done; err != nil {
		tb.Fatal(err)
	}
	<-s.stopped
}

// BenchmarkStreamUpdate measures an update from Run.Send to the stream's
// flush: the publish under the registry's lock, the wake-up, and Serve encoding
// and writing the event. Its bytes per op are the run's log doubling as it
// grows, spread over the updates.
func BenchmarkStreamUpdate(b *testing.B) {
	reg := sse.NewMemoryRegistry(benchConfig())
	defer reg.Close()
	s := serve(b, reg, "a", 0)

	b.ReportAllocs()
	for b.Loop() {
		s.update()
	}
	b.StopTimer()
	s.finish(b)
}

// BenchmarkStreamUpdateCounted is BenchmarkStreamUpdate with an event
// counter on Config.OnWrite, as the server's metrics set it.
func BenchmarkStreamUpdateCounted(b *testing.B) {
	cfg := benchConfig()
	var written atomic.Int64
	cfg.OnWrite = func(n int) { written.Add(int64(n)) }
	reg := sse.NewMemoryRegistry(cfg)
	defer reg.Close()
	s := serve(b, reg, "a", 0)

	b.ReportAllocs()
	for b.Loop() {
		s.update()
	}
	b.StopTimer()
	s.finish(b)
}

// TestStreamUpdateAllocatesNothing shows the steady state of a stream: once
// the run's log has room, an update from Send to Flush allocates nothing.
// A client's next run gets a log the size of its last one, so the second
// run here never grows its log.
func TestStreamUpdateAllocatesNothing(t *testing.T) {
	cfg := benchConfig()
	var written atomic.Int64
	cfg.OnWrite = func(n int) { written.Add(int64(n)) } // as an operator's counter would
	reg := sse.NewMemoryRegistry(cfg)
	defer reg.Close()

	first := serve(t, reg, "a", 0)
	for range 2000 {
		first.update()
	}
	first.finish(t)

	second := serve(t, reg, "a", 0)
	allocs := testing.AllocsPerRun(1000, second.update)
	second.finish(t)
	if allocs != 0 {
		t.Fatalf("an update allocates %v times per event from Send to Flush", allocs)
	}
}

// BenchmarkAttach measures a reconnect: a stream attached to a known client
// in place of the one it had, and detached.
func BenchmarkAttach(b *testing.B) {
	reg := sse.NewMemoryRegistry(benchConfig())
	defer reg.Close()
	_, detach, err := reg.Attach(context.Background(), "a", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer detach()

	b.ReportAllocs()
	for b.Loop() {
		_, detach, err := reg.Attach(context.Background(), "a", 0)
		if err != nil {
			b.Fatal(err)
		}
		detach()
	}
}

// BenchmarkRun measures a whole run of 21 updates and a close, as the page
// starts it, on one stream: Start, the publishes, and the stream writing
// each event.
func BenchmarkRun(b *testing.B) {
	reg := sse.NewMemoryRegistry(benchConfig())
	defer reg.Close()

	b.ReportAllocs()
	for b.Loop() {
		s := serve(b, reg, "a", 0)
		for range 21 {
			s.update()
		}
		s.finish(b)
	}
}

// BenchmarkPublishParallel measures publishing from many runs at once, with
// no stream attached: the cost of the registry's one lock under contention.
func BenchmarkPublishParallel(b *testing.B) {
	reg := sse.NewMemoryRegistry(benchConfig())
	defer reg.Close()
	var clients atomic.Int64

	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		id := strconv.FormatInt(clients.Add(1), 10)
		if _, _, err := reg.Attach(context.Background(), id, 0); err != nil {
			b.Error(err)
			return
		}
		runs := make(chan *sse.Run, 1)
		err := reg.Start(context.Background(), id, func(ctx context.Context, r *sse.Run) { runs <- r; <-ctx.Done() })
		if err != nil {
			b.Error(err)
			return
		}
		run := <-runs
		for pb.Next() {
			if err := run.Send(update.Name, update.Data); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// flushWriter is a ResponseWriter that throws the bytes away and reports
// each flush, with the write deadline a real connection has.
type flushWriter struct {
	header  http.Header
	flushed chan struct{}
}

func (w *flushWriter) Header() http.Header              { return w.header }
func (w *flushWriter) WriteHeader(int)                  {}
func (w *flushWriter) Write(p []byte) (int, error)      { return len(p), nil }
func (w *flushWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *flushWriter) Flush()                           { w.flushed <- struct{}{} }

// takenOver is a stream taken over by Handoff, on a real loopback socket
// whose other end is read and thrown away, and the run that publishes to
// it: each Send writes the event before it returns.
type takenOver struct {
	run  *sse.Run
	stop func()
}

func takeOver(tb testing.TB, reg *sse.MemoryRegistry, id string) *takenOver {
	tb.Helper()
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	client, err := new(net.Dialer).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		_, _ = io.Copy(io.Discard, client)
	}()

	stream, detach, err := reg.Attach(context.Background(), id, 0)
	if err != nil {
		tb.Fatal(err)
	}
	ended := make(chan struct{})
	req := httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/", nil)
	stream.Handoff(&hijackWriter{header: http.Header{}, conn: server}, req, time.Time{}, func(error) {
		detach()
		close(ended)
	})
	runs := make(chan *sse.Run, 1)
	stopped := make(chan struct{})
	err = reg.Start(context.Background(), id, func(ctx context.Context, r *sse.Run) {
		defer close(stopped)
		runs <- r
		<-ctx.Done()
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &takenOver{run: <-runs, stop: func() {
		if err := reg.Remove(context.Background(), id); err != nil {
			tb.Error(err)
		}
		<-stopped
		<-ended
		_ = client.Close()
		<-read
	}}
}

// BenchmarkTakenOverUpdate measures an update from Run.Send to the socket
// on a stream taken over from net/http: the publish under the registry's
// lock, then the stream encoding and writing the event on the run's
// goroutine.
func BenchmarkTakenOverUpdate(b *testing.B) {
	reg := sse.NewMemoryRegistry(benchConfig())
	defer reg.Close()
	s := takeOver(b, reg, "a")

	b.ReportAllocs()
	for b.Loop() {
		_ = s.run.Send(update.Name, update.Data)
	}
	b.StopTimer()
	s.stop()
}

// TestTakenOverUpdateAllocatesNothing: on a stream taken over, once the
// run's log has room, an update from Send to the socket allocates nothing.
func TestTakenOverUpdateAllocatesNothing(t *testing.T) {
	cfg := benchConfig()
	var written atomic.Int64
	cfg.OnWrite = func(n int) { written.Add(int64(n)) }
	reg := sse.NewMemoryRegistry(cfg)
	defer reg.Close()
	s := takeOver(t, reg, "a")
	for range 2000 { // the log grows to its size
		_ = s.run.Send(update.Name, update.Data)
	}
	allocs := testing.AllocsPerRun(1000, func() { _ = s.run.Send(update.Name, update.Data) })
	// A reader slower than the sends (the race detector, a busy machine)
	// leaves a backlog to a goroutine of its own; stop ends the stream,
	// and would drop what it has not written yet.
	for deadline := time.Now().Add(10 * time.Second); written.Load() < 3000 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	s.stop()
	if allocs != 0 {
		t.Fatalf("an update allocates %v times per event from Send to the socket", allocs)
	}
	if written.Load() < 3000 {
		t.Fatalf("%d events written within 10 s, want every one", written.Load())
	}
}

// hijackWriter is a ResponseWriter whose connection Handoff takes over.
type hijackWriter struct {
	header http.Header
	conn   net.Conn
}

func (w *hijackWriter) Header() http.Header         { return w.header }
func (w *hijackWriter) WriteHeader(int)             {}
func (w *hijackWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, nil, nil
}

// BenchmarkStartScheduled measures starting a run on a Schedule, with every
// run before it still going (as at a load test's peak): the registry's and
// the run's share of a POST's cost.
func BenchmarkStartScheduled(b *testing.B) {
	reg := sse.NewMemoryRegistry(benchConfig())
	sched := sse.NewSchedule()
	defer sched.Close()
	defer reg.Close()
	wait := sched.Every(time.Hour, func(*sse.Run, int) bool { return true })

	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		id := strconv.Itoa(i)
		if _, _, err := reg.Attach(context.Background(), id, 0); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := reg.Start(context.Background(), id, wait); err != nil {
			b.Fatal(err)
		}
	}
}
