package sse_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"gin-sse-progress/sse"
)

// update is an update event as the progress run sends it.
var update = sse.Event{Name: "update", ID: "17", Data: `{"id":"1700000000000","count":80}`}

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

// BenchmarkStreamUpdate measures an update from Run.Send to the stream's
// flush: the publish under the hub's lock, the wake-up, and Serve encoding
// and writing the event.
func BenchmarkStreamUpdate(b *testing.B) {
	hub := sse.NewHub(sse.Config{
		Retry: time.Second, Heartbeat: time.Hour, Grace: time.Minute,
		MaxStreams: 1, WriteTimeout: time.Second,
	})
	defer hub.Close()
	stream, detach, err := hub.Attach("a", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer detach()
	runs := make(chan *sse.Run, 1)
	if err := hub.Start("a", func(ctx context.Context, r *sse.Run) { runs <- r; <-ctx.Done() }); err != nil {
		b.Fatal(err)
	}
	run := <-runs

	w := &flushWriter{header: http.Header{}, flushed: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- stream.Serve(ctx, w) }()
	<-w.flushed // the retry block

	b.ReportAllocs()
	for b.Loop() {
		if err := run.Send(update.Name, update.Data); err != nil {
			b.Fatal(err)
		}
		<-w.flushed
	}
	b.StopTimer()
	cancel()
	if err := <-served; err != nil {
		b.Fatal(err)
	}
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
