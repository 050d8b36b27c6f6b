package ssetest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"gin-sse-progress/sse"
)

// Config returns settings for tests: durations long enough that nothing
// fires unless a test shortens them.
func Config() sse.Config {
	return sse.Config{
		Retry:        1500 * time.Millisecond,
		Heartbeat:    time.Minute,
		Grace:        time.Minute,
		MaxStreams:   100,
		WriteTimeout: 5 * time.Second,
	}
}

// timeout bounds every request a test makes, so that a stream that never
// ends fails the test rather than hanging it.
const timeout = 30 * time.Second

// Handler serves the streams of reg the way the smallest net/http program
// would: GET /?id=ID opens the stream of client ID, resuming after its
// Last-Event-ID (the header, or the lastEventId query parameter). A
// finished run answers 204, which tells a browser to stop reconnecting.
// Streams are served with Handoff.
func Handler(reg sse.Registry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last, err := sse.LastEventID(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		stream, detach, err := reg.Attach(r.Context(), r.URL.Query().Get("id"), last)
		switch {
		case errors.Is(err, sse.ErrFinished):
			w.WriteHeader(http.StatusNoContent)
			return
		case errors.Is(err, sse.ErrTooManyStreams), errors.Is(err, sse.ErrUnavailable), errors.Is(err, sse.ErrClosed):
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// A failed write ends the stream; the client reconnects.
		stream.Handoff(w, r, time.Time{}, func(error) { detach() })
	})
}

// Server serves a registry's streams with Handler, on a real listener. Its
// Serve reads, over HTTP too, a stream the test attached itself.
type Server struct {
	*httptest.Server
	Registry sse.Registry

	mu       sync.Mutex
	attached map[string]attached // by key, until Serve's request takes it
	keys     int
}

type attached struct {
	stream *sse.Stream
	detach func()
}

// NewServer serves reg's streams until the test ends. Handoff takes each
// stream over from net/http, as it does in production over HTTP/1.1.
func NewServer(t testing.TB, reg sse.Registry) *Server {
	t.Helper()
	return newServer(t, reg, func(h http.Handler) http.Handler { return h })
}

// NewBlockingServer is NewServer with every stream on a goroutine of its
// own, as over HTTP/2: its ResponseWriters cannot Hijack, so Handoff
// serves with Serve.
func NewBlockingServer(t testing.TB, reg sse.Registry) *Server {
	t.Helper()
	return newServer(t, reg, NoHijack)
}

// NoHijack serves with h through ResponseWriters that can Flush but not
// Hijack, as HTTP/2's: Handoff then serves every stream with Serve.
func NoHijack(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(flushOnly{w}, r)
	})
}

// flushOnly is a ResponseWriter that can Flush, but not Hijack.
type flushOnly struct{ w http.ResponseWriter }

func (f flushOnly) Header() http.Header         { return f.w.Header() }
func (f flushOnly) Write(b []byte) (int, error) { return f.w.Write(b) }
func (f flushOnly) WriteHeader(code int)        { f.w.WriteHeader(code) }
func (f flushOnly) Flush()                      { http.NewResponseController(f.w).Flush() } //nolint:errcheck // as http.Flusher

// SetWriteDeadline lets Serve bound its writes, as net/http's writers do.
func (f flushOnly) SetWriteDeadline(d time.Time) error {
	return http.NewResponseController(f.w).SetWriteDeadline(d)
}

func newServer(t testing.TB, reg sse.Registry, wrap func(http.Handler) http.Handler) *Server {
	t.Helper()
	s := &Server{Registry: reg, attached: map[string]attached{}}
	mux := http.NewServeMux()
	mux.Handle("/", Handler(reg))
	mux.HandleFunc("/attached", s.serveAttached)
	s.Server = httptest.NewServer(wrap(mux))
	// Cleanups run last first: the registry ends the streams, then the
	// server closes with no request left open.
	t.Cleanup(s.Close)
	t.Cleanup(reg.Close)
	return s
}

// Serve serves stream, which the test got from its registry with detach,
// and returns it as the browser reads it. The server calls detach when the
// stream ends.
func (s *Server) Serve(t testing.TB, stream *sse.Stream, detach func()) *Stream {
	t.Helper()
	s.mu.Lock()
	s.keys++
	key := strconv.Itoa(s.keys)
	s.attached[key] = attached{stream, detach}
	s.mu.Unlock()
	req, err := http.NewRequest(http.MethodGet, s.URL+"/attached?key="+key, nil) //nolint:noctx // Do gives it one
	if err != nil {
		t.Fatal(err)
	}
	resp := Do(t, s.Client(), req) //nolint:bodyclose // closed when the test ends
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("serve an attached stream: status %d", resp.StatusCode)
	}
	return NewStream(resp)
}

func (s *Server) serveAttached(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	a, ok := s.attached[r.URL.Query().Get("key")]
	delete(s.attached, r.URL.Query().Get("key"))
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	a.stream.Handoff(w, r, time.Time{}, func(error) { a.detach() })
}

// Get requests the stream of client id, after lastEventID if it is not
// empty, and returns the response, whatever its status.
func (s *Server) Get(t testing.TB, id, lastEventID string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+"/?id="+url.QueryEscape(id), nil) //nolint:noctx // Do gives it one
	if err != nil {
		t.Fatal(err)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	return Do(t, s.Client(), req)
}

// Do sends req with client and returns the response, whatever its status.
// The request gets a deadline, so that a stream that never ends fails the
// test rather than hanging it, and the response's body is closed when the
// test ends; Stream.Drop cancels the request.
func Do(t testing.TB, client *http.Client, req *http.Request) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	resp.Body = &cancelBody{resp.Body, cancel}
	return resp
}

// Open opens the stream of client id, after lastEventID if it is not
// empty, and fails the test unless it is answered 200.
func (s *Server) Open(t testing.TB, id, lastEventID string) *Stream {
	t.Helper()
	resp := s.Get(t, id, lastEventID) //nolint:bodyclose // closed when the test ends
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream of %q after %q: status %d, want 200", id, lastEventID, resp.StatusCode)
	}
	return NewStream(resp)
}

// cancelBody is the body of a response of Do, whose request can be
// cancelled as a network failure drops a connection.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

// Stream is an open event stream, read as a browser reads it.
type Stream struct {
	Header http.Header
	body   io.ReadCloser
	r      *Reader
}

// NewStream reads the body of resp, a 200 answer of text/event-stream.
func NewStream(resp *http.Response) *Stream {
	return &Stream{Header: resp.Header, body: resp.Body, r: NewReader(resp.Body)}
}

// Reader is the parser of the stream, with its last event id, its retry
// and its count of comments.
func (st *Stream) Reader() *Reader { return st.r }

// LastEventID is the id the browser would send back on a reconnect.
func (st *Stream) LastEventID() string { return st.r.LastEventID }

// Next returns the next event, and fails the test if there is none.
func (st *Stream) Next(t testing.TB) Event {
	t.Helper()
	ev, err := st.r.Next()
	if err != nil {
		t.Fatalf("next event: %v", err)
	}
	return ev
}

// Rest reads events until the server ends the stream.
func (st *Stream) Rest(t testing.TB) []Event {
	t.Helper()
	var events []Event
	for {
		ev, err := st.r.Next()
		if errors.Is(err, io.EOF) {
			return events
		}
		if err != nil {
			t.Fatalf("after %d events: %v", len(events), err)
		}
		events = append(events, ev)
	}
}

// Drop breaks the connection from the client's side, as a network failure
// would: the server notices, and keeps the client for its grace period.
func (st *Stream) Drop() {
	if b, ok := st.body.(*cancelBody); ok {
		b.cancel()
	}
	_ = st.body.Close()
}
