package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"gin-sse-progress/sse/ssetest"
)

// BenchmarkProgress measures POST /event/progress through the whole Gin
// stack, from the handler chain to the run on the schedule, with every run
// before it still going (as at a load test's peak). The request and its
// recorder are made with the timer stopped, and served by the engine
// alone: what is left is the server's share of a POST past net/http's
// parsing.
func BenchmarkProgress(b *testing.B) {
	cfg := ssetest.Config()
	cfg.MaxStreams = 1 << 20
	s := newServer(b, cfg, time.Hour)

	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		id := strconv.Itoa(i)
		if _, _, err := s.reg.Attach(context.Background(), id, 0); err != nil {
			b.Fatal(err)
		}
		req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, "/event/progress", strings.NewReader(`{"id":"`+id+`"}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		b.StartTimer()
		s.r.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
