package handlers_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/handlers"
	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
	"gin-sse-progress/sseredis"
	"gin-sse-progress/sseredis/redistest"
)

// registries makes the registry of a test server: in memory, on one Redis
// instance, or on three that take the handlers' calls in turn, as a load
// balancer spreads requests (so each retry lands on another instance).
type registries map[string]func(t *testing.T, cfg sse.Config) sse.Registry

func everyRegistry(t *testing.T) registries {
	redis := redistest.Start(t)
	onRedis := func(t *testing.T, cfg sse.Config) sse.Registry {
		reg, err := sseredis.New(t.Context(), redis.URL(), cfg, sseredis.Options{})
		require.NoError(t, err)
		t.Cleanup(reg.Close)
		return reg
	}
	return registries{
		"memory": func(t *testing.T, cfg sse.Config) sse.Registry {
			reg := sse.NewMemoryRegistry(cfg)
			t.Cleanup(reg.Close)
			return reg
		},
		"redis": func(t *testing.T, cfg sse.Config) sse.Registry {
			redis.Flush()
			return onRedis(t, cfg)
		},
		"three on redis": func(t *testing.T, cfg sse.Config) sse.Registry {
			redis.Flush()
			return ssetest.NewRoundRobin(onRedis(t, cfg), onRedis(t, cfg), onRedis(t, cfg))
		},
	}
}

// serverOn serves the HTTP surface on reg.
func serverOn(t *testing.T, reg sse.Registry, cfg sse.Config, tick time.Duration) *server {
	t.Helper()
	r := handlers.New(slog.New(slog.NewTextHandler(io.Discard, nil)), reg, handlers.Options{
		Job:   progressJob(t, tick),
		Retry: cfg.Retry,
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	t.Cleanup(reg.Close)
	return &server{Server: srv, r: r}
}

// streamHeader is what fetch-event-source sends with its POST.
func streamHeader(extra ...string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}, "Accept": {"text/event-stream"}}
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	return h
}

// post sends POST /event/progress with body and header, and returns the
// response, whatever its status; its body is closed when the test ends.
func (s *server) post(t *testing.T, query, body string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/event/progress"+query, strings.NewReader(body))
	require.NoError(t, err)
	req.Header = header
	return ssetest.Do(t, s.Client(), req)
}

// postStream is post, for a 200 answer read as an event stream.
func (s *server) postStream(t *testing.T, query, body string, header http.Header) *stream {
	t.Helper()
	resp := s.post(t, query, body, header)
	b := ""
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(resp.Body)
		b = string(data)
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, b)
	return &stream{Stream: ssetest.NewStream(resp), resp: resp}
}

func TestPostStream(t *testing.T) {
	for name, newRegistry := range everyRegistry(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("a whole run read from one POST", func(t *testing.T) {
				cfg := ssetest.Config()
				s := serverOn(t, newRegistry(t, cfg), cfg, time.Millisecond)
				st := s.postStream(t, "", `{"id":"42"}`, streamHeader())
				assert.Equal(t, "text/event-stream", st.Header.Get("Content-Type"))
				assert.Equal(t, "no-cache", st.Header.Get("Cache-Control"))
				events := st.Rest(t)
				require.Len(t, events, 22)
				for i, ev := range events[:21] {
					assert.Equal(t, ssetest.Event{Type: "update", ID: fmt.Sprint(i + 1),
						Data: fmt.Sprintf(`{"id":"42","count":%d}`, 5*i)}, ev)
				}
				assert.Equal(t, ssetest.Event{Type: "close", ID: "22", Data: `{"id":"42","done":true}`}, events[21])
				mean := cfg.Retry.Milliseconds()
				assert.GreaterOrEqual(t, st.Reader().Retry, mean/2, "retry: around its mean")
				assert.Less(t, st.Reader().Retry, mean*3/2)
			})

			t.Run("retries resume the run, each count once", func(t *testing.T) {
				cfg := ssetest.Config()
				s := serverOn(t, newRegistry(t, cfg), cfg, 2*time.Millisecond)
				st := s.postStream(t, "", `{"id":7}`, streamHeader())
				events := []ssetest.Event{st.Next(t), st.Next(t), st.Next(t)}
				st.Drop()
				st = s.postStream(t, "", `{"id":7}`, streamHeader("Last-Event-ID", st.LastEventID()))
				events = append(events, st.Next(t), st.Next(t), st.Next(t))
				st.Drop()
				st = s.postStream(t, "?lastEventId="+st.LastEventID(), `{"id":7}`, streamHeader())
				events = append(events, st.Rest(t)...)

				assert.Equal(t, fullRun(), counts(t, "7", events), "one run, every count once")
				for i, ev := range events {
					assert.Equal(t, fmt.Sprint(i+1), ev.ID, "ids increase by one")
				}
				assert.Equal(t, "close", events[len(events)-1].Type)

				// The client stops on 204; a POST without Last-Event-ID
				// runs again, its ids going on.
				resp := s.post(t, "", `{"id":7}`, streamHeader("Last-Event-ID", "22"))
				assert.Equal(t, http.StatusNoContent, resp.StatusCode)
				again := s.postStream(t, "", `{"id":7}`, streamHeader()).Rest(t)
				assert.Equal(t, fullRun(), counts(t, "7", again))
				assert.Equal(t, "23", again[0].ID)
			})

			t.Run("a second POST while the run goes is 409", func(t *testing.T) {
				cfg := ssetest.Config()
				s := serverOn(t, newRegistry(t, cfg), cfg, time.Hour)
				st := s.postStream(t, "", `{"id":"a"}`, streamHeader())
				assert.Equal(t, "update", st.Next(t).Type)
				for _, header := range []http.Header{streamHeader(), jsonHeader()} {
					resp := s.post(t, "", `{"id":"a"}`, header)
					assert.Equal(t, http.StatusConflict, resp.StatusCode)
					assert.NotEmpty(t, decode(t, readReply(t, resp))["error"])
				}
			})

			t.Run("a POST stream and a GET stream replace each other", func(t *testing.T) {
				cfg := ssetest.Config()
				s := serverOn(t, newRegistry(t, cfg), cfg, 5*time.Millisecond)
				get := s.open(t, "a", "", nil)
				post := s.postStream(t, "", `{"id":"a"}`, streamHeader())
				assert.Empty(t, get.Rest(t), "the GET stream ends")
				events := []ssetest.Event{post.Next(t), post.Next(t)}
				get = s.open(t, "a", "", http.Header{"Last-Event-Id": {post.LastEventID()}})
				// The POST stream may write an event or two more before
				// the GET's attach ends it: the GET stream, resuming
				// from the id it was given, writes those again, with
				// the same ids. A client takes each id once.
				events = append(events, post.Rest(t)...)
				events = append(events, get.Rest(t)...)
				assert.Equal(t, fullRun(), counts(t, "a", eachIDOnce(t, events)))
			})
		})
	}
}

// readReply reads a response of post.
func readReply(t *testing.T, resp *http.Response) reply {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{StatusCode: resp.StatusCode, Header: resp.Header, Body: b}
}

// TestPostStreamKeepsTheKoaContract: without Accept: text/event-stream
// (a wildcard is not a request for a stream), POST /event/progress answers
// as the Koa demo does.
func TestPostStreamKeepsTheKoaContract(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Millisecond)
	resp := s.post(t, "", `{"id":"a"}`, jsonHeader())
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "no client, no stream: 404 as before")

	st := s.open(t, "a", "", nil)
	resp = s.post(t, "", `{"id":"a"}`, http.Header{"Content-Type": {"application/json"}, "Accept": {"*/*"}})
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	assert.Equal(t, "started", decode(t, readReply(t, resp))["status"])
	assert.Equal(t, fullRun(), counts(t, "a", st.Rest(t)))

	for _, accept := range []string{"text/event-stream", "text/event-stream;q=0.5, */*", "application/json, text/event-stream"} {
		resp := s.post(t, "", `{"id":"b"}`, http.Header{"Content-Type": {"application/json"}, "Accept": {accept}})
		assert.Equal(t, http.StatusOK, resp.StatusCode, accept)
		_ = resp.Body.Close()
		require.NoError(t, s.reg.Remove(t.Context(), "b"))
	}
	resp = s.post(t, "", `{"id":"c"}`, http.Header{"Content-Type": {"application/json"}, "Accept": {"text/event-stream;q=0"}})
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "q=0 refuses a stream")
}

// TestPostStreamBadInput: every bad request gets its JSON 4xx before any
// stream is opened.
func TestPostStreamBadInput(t *testing.T) {
	s := newServer(t, ssetest.Config(), time.Hour)
	for _, tc := range []struct {
		name, body string
		header     http.Header
		want       int
	}{
		{"not JSON", "id=1", streamHeader(), 400},
		{"no id", `{}`, streamHeader(), 400},
		{"bad id", `{"id":"a\nb"}`, streamHeader(), 400},
		{"bad Last-Event-ID", `{"id":"a"}`, streamHeader("Last-Event-ID", "x"), 400},
		{"too large", `{"id":"a","pad":"` + strings.Repeat("x", 64<<10) + `"}`, streamHeader(), 413},
		{"not application/json", `{"id":"a"}`, http.Header{"Accept": {"text/event-stream"}, "Content-Type": {"text/plain"}}, 415},
	} {
		resp := readReply(t, s.post(t, "", tc.body, tc.header))
		assert.Equal(t, tc.want, resp.StatusCode, tc.name)
		assert.Contains(t, resp.Header.Get("Content-Type"), "application/json", tc.name)
		assert.NotEmpty(t, decode(t, resp)["error"], tc.name)
	}
	assert.Equal(t, sse.Stats{}, s.reg.Stats(), "no bad request opened a stream or made a client")
}

// eachIDOnce returns events without those whose id came before, as a client
// reading two streams of one client takes them; an id seen twice must name
// the same event.
func eachIDOnce(t *testing.T, events []ssetest.Event) []ssetest.Event {
	t.Helper()
	seen := map[string]ssetest.Event{}
	var out []ssetest.Event
	for _, ev := range events {
		if first, ok := seen[ev.ID]; ok && ev.ID != "" {
			require.Equal(t, first, ev, "id %s names one event", ev.ID)
			continue
		}
		seen[ev.ID] = ev
		out = append(out, ev)
	}
	return out
}
