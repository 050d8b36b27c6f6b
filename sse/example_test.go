package sse_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"gin-sse-progress/sse"
)

// Example is a whole net/http program on this package alone: GET
// /events?id=ID is the client's stream, POST /start?id=ID starts a run of
// three updates and a close.
func Example() {
	reg := sse.NewMemoryRegistry(sse.Config{
		Retry:        3 * time.Second,
		Heartbeat:    15 * time.Second,
		Grace:        30 * time.Second,
		MaxStreams:   1000,
		WriteTimeout: 10 * time.Second,
	})
	defer reg.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		last, err := sse.LastEventID(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		stream, detach, err := reg.Attach(r.Context(), r.URL.Query().Get("id"), last)
		switch {
		case errors.Is(err, sse.ErrFinished):
			w.WriteHeader(http.StatusNoContent) // the browser stops reconnecting
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		// Over HTTP/1.1 Handoff takes the connection over and returns at
		// once; detach runs when the stream ends.
		stream.Handoff(w, r, time.Time{}, func(error) { detach() })
	})
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, r *http.Request) {
		err := reg.Start(r.Context(), r.URL.Query().Get("id"), func(ctx context.Context, run *sse.Run) {
			for i := 1; i <= 3; i++ {
				_ = run.Send("update", strconv.Itoa(i))
			}
			_ = run.Finish("close", "done")
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := context.Background()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events?id=7", nil)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = stream.Body.Close() }()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/start?id=7", nil)
	started, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = started.Body.Close()
	body, _ := io.ReadAll(stream.Body) // the stream ends after the run's final event
	// The first block is "retry: N", N drawn around 3000 (see Jitter).
	_, events, _ := strings.Cut(string(body), "\n\n")
	fmt.Print(events)
	// Output:
	// event: update
	// id: 1
	// data: 1
	//
	// event: update
	// id: 2
	// data: 2
	//
	// event: update
	// id: 3
	// data: 3
	//
	// event: close
	// id: 4
	// data: done
}

// ExampleSchedule runs a step every tick with no goroutine of its own. In a
// service, the RunFunc goes to the registry: reg.Start(ctx, id,
// sched.Every(tick, step)); here it runs on a Run the way a registry runs
// it, printing what it publishes.
func ExampleSchedule() {
	sched := sse.NewSchedule()
	defer sched.Close() // after the registry's Close, in a service

	step := func(r *sse.Run, n int) bool {
		if n < 3 {
			_ = r.Send("update", strconv.Itoa(n))
			return true // more steps: the next one a tick from now
		}
		_ = r.Finish("close", "done")
		return false
	}
	run := sse.NewRun(func(name, data string, final bool) error {
		fmt.Println(name, data, final)
		return nil
	})
	ended := make(chan struct{})
	run.Go(context.Background(), sched.Every(10*time.Millisecond, step), func() { close(ended) })
	<-ended
	// Output:
	// update 0 false
	// update 1 false
	// update 2 false
	// close done true
}
