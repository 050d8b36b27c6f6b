package handlers_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/handlers"
	"gin-sse-progress/job"
	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
)

// metricsServer serves the HTTP surface with metrics, on a registry that
// newRegistry makes with the metrics' event counter.
func metricsServer(t *testing.T, newRegistry func(t *testing.T, cfg sse.Config) sse.Registry, cfg sse.Config) (*server, sse.Registry) {
	t.Helper()
	metrics := prometheus.NewRegistry()
	m := handlers.NewMetrics(metrics)
	cfg.OnWrite = m.EventsSent
	reg := newRegistry(t, cfg)
	r := handlers.New(slog.New(slog.NewTextHandler(io.Discard, nil)), reg, handlers.Options{
		Job:            job.Progress{Tick: time.Millisecond, Step: 5}.Run,
		Retry:          cfg.Retry,
		Metrics:        m,
		MetricsHandler: promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}),
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	t.Cleanup(reg.Close)
	return &server{Server: srv, r: r}, reg
}

// scrape returns the metrics, as Prometheus reads them.
func (s *server) scrape(t *testing.T) string {
	t.Helper()
	resp := s.do(t, http.MethodGet, "/metrics", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	return string(resp.Body)
}

// TestMetrics drives a known story and reads the counters back: a whole
// run, a drop and its resume, a reconnect the registry cannot continue
// (a gap), requests refused, and the routes' counts. No label holds the
// client's id.
func TestMetrics(t *testing.T) {
	for name, newRegistry := range everyRegistry(t) {
		t.Run(name, func(t *testing.T) {
			cfg := ssetest.Config()
			cfg.MaxStreams = 2
			cfg.Heartbeat = 50 * time.Millisecond // how a dropped stream is noticed
			s, reg := metricsServer(t, newRegistry, cfg)
			_, spread := reg.(*ssetest.RoundRobin) // -max-streams is per instance
			const id = "client-4f0c9d"

			st := s.open(t, id, "", nil)
			status, _ := s.start(t, `{"id":"`+id+`"}`)
			require.Equal(t, http.StatusAccepted, status)
			events := st.Rest(t) // 22 events, ended by close
			require.Len(t, events, 22)

			// Drop the stream mid-run, and resume: every event once.
			st = s.open(t, id, "", nil)
			run := s.postStream(t, "", `{"id":"`+id+`-2"}`, streamHeader())
			run.Next(t)
			run.Drop()
			run = s.postStream(t, "", `{"id":"`+id+`-2"}`, streamHeader("Last-Event-ID", run.LastEventID()))
			run.Rest(t)

			// A reconnect for an id the registry never knew: a gap.
			gap := s.open(t, id+"-3", "", http.Header{"Last-Event-Id": {"41"}})
			assert.Equal(t, sse.GapEvent, gap.Next(t).Type)

			// Refused: the stream limit (the open streams are st and gap;
			// on one instance), bad input, and a second start while a run
			// goes.
			if !spread {
				assert.Equal(t, http.StatusServiceUnavailable, s.do(t, http.MethodGet, "/event/push?id=more", nil, nil).StatusCode)
			}
			assert.Equal(t, http.StatusBadRequest, s.do(t, http.MethodGet, "/event/push", nil, nil).StatusCode)
			status, _ = s.start(t, `{"id":"`+id+`"}`)
			require.Equal(t, http.StatusAccepted, status)
			status, _ = s.start(t, `{"id":"`+id+`"}`)
			assert.Equal(t, http.StatusConflict, status)
			st.Rest(t)
			gap.Drop()

			var text string
			require.Eventually(t, func() bool {
				// A scrape reads each metric at its own moment: wait
				// for the ends to be counted, not only the gauge.
				text = s.scrape(t)
				return strings.Contains(text, "sse_streams_open 0\n") && metricSum(text, "sse_streams_ended_total") == 5
			}, 5*time.Second, 10*time.Millisecond, "every stream has ended")
			for _, line := range []string{
				"sse_streams_opened_total 5",
				"sse_resumes_total 1",
				`sse_gaps_total{reason="unknown_client"} 1`,
				"sse_runs_started_total 3",
				`sse_streams_ended_total{reason="close"} 3`,
				`sse_rejected_total{reason="bad_input"} 1`,
				`sse_rejected_total{reason="conflict"} 1`,
				`sse_http_requests_total{code="202",route="/event/progress"} 2`,
				`sse_http_requests_total{code="409",route="/event/progress"} 1`,
				`sse_http_requests_total{code="400",route="/event/push"} 1`,
			} {
				assert.Contains(t, text, line+"\n")
			}
			if !spread {
				assert.Contains(t, text, `sse_rejected_total{reason="stream_limit"} 1`+"\n")
			}
			assert.Contains(t, text, `sse_http_request_duration_seconds_count{route="/event/progress"} 3`)
			// Three runs of 22 events, each written at least once: what
			// the dropped POST stream wrote before it noticed is written
			// again to its resume.
			// The two dropped streams: the server notices a client that
			// left, or fails to write to it, whichever comes first; the
			// POST stream's resume may replace it before either.
			left := metricOr0(text, `sse_streams_ended_total{reason="client_left"}`) +
				metricOr0(text, `sse_streams_ended_total{reason="write_failed"}`) +
				metricOr0(text, `sse_streams_ended_total{reason="replaced"}`)
			assert.Equal(t, 2.0, left, "the dropped streams")
			sent := metric(t, text, "sse_events_sent_total")
			assert.GreaterOrEqual(t, sent, 66.0)
			assert.Less(t, sent, 66.0+22, "no more than the dropped stream's events twice")
			assert.NotContains(t, text, id, "no label holds a client id")
			assert.NotContains(t, text, `route="/event/push"} 1`+"\n"+`sse_http_requests_total{code="200"`,
				"streams are not counted as requests")
		})
	}
}

// metric returns the value of the metric named line in text.
func metric(t *testing.T, text, name string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatalf("no %s in the metrics", name)
	return 0
}

// metricOr0 is metric, or 0 for a metric that is not there.
func metricOr0(text, name string) float64 {
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// metricSum adds up every series of metric name, whatever its labels.
func metricSum(text, name string) float64 {
	sum := 0.0
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name+"{"); ok {
			f, _ := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
			sum += f
		}
	}
	return sum
}

// TestCountingAnEventAllocatesNothing: the counter behind
// sse.Config.OnWrite takes no lock of its own and allocates nothing, so it
// stays off the cost of an event.
func TestCountingAnEventAllocatesNothing(t *testing.T) {
	m := handlers.NewMetrics(prometheus.NewRegistry())
	if allocs := testing.AllocsPerRun(1000, func() { m.EventsSent(1) }); allocs != 0 {
		t.Fatalf("counting an event allocates %v times", allocs)
	}
}
