// Command baseline serves the progress contract with as little as net/http
// allows, as a yardstick for "make bench": GET /event/push?id=ID opens a
// stream, POST /event/progress with {"id": ID} starts a run of update events
// and a close.
//
// It has none of what the real server adds: no Gin, no event log, so no
// resume after a dropped connection, no heartbeats, no write deadlines, no
// stream limit, no input checks beyond the JSON decoder. The difference
// between the two in the benchmark is what those cost. Do not copy it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3000", "listen address")
	tick := flag.Duration("tick", time.Second, "time between updates")
	step := flag.Int("step", 5, "count increment per update; divides 100")
	flag.Int("max-streams", 0, "ignored: accepted so that make bench passes both servers the same flags")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, *addr, &server{tick: *tick, step: *step, clients: map[string]*stream{}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, addr string, s *server) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /event/push", s.push)
	mux.HandleFunc("POST /event/progress", s.progress)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	logger.Info("listening", "addr", ln.Addr().String())
	go func() {
		<-ctx.Done()
		srv.Close() //nolint:errcheck // the streams are cut on purpose
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.runs.Wait()
	return nil
}

// server holds the open streams by client id.
type server struct {
	tick time.Duration
	step int
	runs sync.WaitGroup

	mu      sync.Mutex
	clients map[string]*stream
}

// stream is an open stream: the events of its run, already encoded and
// ended by nil, and a channel closed when the stream's handler returns.
type stream struct {
	events chan []byte
	gone   chan struct{}
}

func (s *server) push(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	st := &stream{events: make(chan []byte, 8), gone: make(chan struct{})}
	s.mu.Lock()
	s.clients[id] = st
	s.mu.Unlock()
	defer func() {
		close(st.gone)
		s.mu.Lock()
		if s.clients[id] == st {
			delete(s.clients, id)
		}
		s.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher := w.(http.Flusher)
	flusher.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-st.events:
			if ev == nil {
				return // the run is over
			}
			if _, err := w.Write(ev); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

func (s *server) progress(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	st := s.clients[body.ID]
	s.mu.Unlock()
	if st == nil {
		http.Error(w, "no such client", http.StatusNotFound)
		return
	}
	s.runs.Go(func() { s.run(body.ID, st) })
	w.WriteHeader(http.StatusAccepted)
}

// run sends the updates and the close to st, or stops when st is gone.
func (s *server) run(id string, st *stream) {
	quoted, _ := json.Marshal(id)
	send := func(ev []byte) bool {
		select {
		case st.events <- ev:
			return true
		case <-st.gone:
			return false
		}
	}
	ticker := time.NewTicker(s.tick)
	defer ticker.Stop()
	seq := 0
	for count := 0; ; count += s.step {
		seq++
		if !send(fmt.Appendf(nil, "event: update\nid: %d\ndata: {\"id\":%s,\"count\":%d}\n\n", seq, quoted, count)) {
			return
		}
		if count >= 100 {
			break
		}
		select {
		case <-st.gone:
			return
		case <-ticker.C:
		}
	}
	if send(fmt.Appendf(nil, "event: close\nid: %d\ndata: {\"id\":%s,\"done\":true}\n\n", seq+1, quoted)) {
		send(nil) // the end of the stream
	}
}
