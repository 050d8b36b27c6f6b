package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"gin-sse-progress/handlers"
	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
)

// BenchmarkProgress measures POST /event/progress through the whole Gin
// stack, from the handler chain to the run on the schedule, with every run
// before it still going (as at a load test's peak). The request and its
// recorder are made with the timer stopped: what is left is the server's
// share of a POST past net/http's parsing.
func BenchmarkProgress(b *testing.B) {
	cfg := ssetest.Config()
	cfg.MaxStreams = 1 << 20
	reg := sse.NewMemoryRegistry(cfg)
	r := handlers.New(slog.New(slog.NewTextHandler(io.Discard, nil)), reg, handlers.Options{
		Job:   progressJob(b, time.Hour),
		Retry: cfg.Retry,
	})
	b.Cleanup(reg.Close) // before the schedule's: cleanups run last first

	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		id := strconv.Itoa(i)
		if _, _, err := reg.Attach(context.Background(), id, 0); err != nil {
			b.Fatal(err)
		}
		req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, "/event/progress", strings.NewReader(`{"id":"`+id+`"}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		b.StartTimer()
		r.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
