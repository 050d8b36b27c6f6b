//go:build linux

package sse_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
)

// TestHangUpEndsTakenOverStream: a stream taken over from net/http ends
// as soon as its client closes its end, its heartbeat a minute away: the
// registry's watcher of the sockets saw it, as net/http's background read
// would have.
func TestHangUpEndsTakenOverStream(t *testing.T) {
	reg := sse.NewMemoryRegistry(ssetest.Config())
	defer reg.Close()
	ended := make(chan sse.EndReason, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream, detach, err := reg.Attach(r.Context(), "a", 0)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		stream.Handoff(w, r, time.Time{}, func(error) {
			detach()
			ended <- stream.Ended()
		})
	}))
	defer srv.Close()

	for range 3 { // in turn: each usually gets the socket number of the last
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Its headers are in: the stream is taken over. A hang-up
		// before the watcher has its socket is seen when it adds it.
		ssetest.NewStream(ssetest.Do(t, srv.Client(), req)).Drop()
		select {
		case why := <-ended:
			if why != sse.EndClientLeft {
				t.Fatalf("ended for %q, want %q", why, sse.EndClientLeft)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the stream did not end within 5 s of its client's hang-up")
		}
	}
}
