package handlers

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"gin-sse-progress/sse"
)

// Metrics counts what the server and its streams do, for Prometheus. No
// label ever holds a client id, a subject or a path with an id in it: a
// label per client is how metrics exhaust a server's memory. Every label
// is one of a few fixed words, or a route pattern.
type Metrics struct {
	streamsOpen   prometheus.Gauge
	streamsOpened prometheus.Counter
	streamsEnded  *prometheus.CounterVec // reason
	eventsSent    prometheus.Counter
	resumes       prometheus.Counter
	gaps          *prometheus.CounterVec // reason
	runsStarted   prometheus.Counter
	rejected      *prometheus.CounterVec   // reason
	requests      *prometheus.CounterVec   // route, code
	durations     *prometheus.HistogramVec // route
}

// NewMetrics makes the server's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		streamsOpen:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "sse_streams_open", Help: "Event streams open on this instance."}),
		streamsOpened: prometheus.NewCounter(prometheus.CounterOpts{Name: "sse_streams_opened_total", Help: "Event streams opened."}),
		streamsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sse_streams_ended_total",
			Help: "Event streams ended, by why: close, client_left, replaced, dropped, removed, shutdown, resync, lost, write_timeout, write_failed, token_expired."},
			[]string{"reason"}),
		eventsSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "sse_events_sent_total", Help: "Events written to streams."}),
		resumes: prometheus.NewCounter(prometheus.CounterOpts{Name: "sse_resumes_total",
			Help: "Streams opened with a Last-Event-ID that was served in full."}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sse_gaps_total",
			Help: "Gap events sent, by why: unknown_client, not_kept, ahead, lost."}, []string{"reason"}),
		runsStarted: prometheus.NewCounter(prometheus.CounterOpts{Name: "sse_runs_started_total", Help: "Runs started on this instance."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sse_rejected_total",
			Help: "Requests answered with an error, by why: bad_input, unauthorized, forbidden, not_found, method_not_allowed, conflict, stream_limit, subject_limit, unavailable."},
			[]string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sse_http_requests_total",
			Help: "Requests other than streams, by route pattern and status code."}, []string{"route", "code"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sse_http_request_duration_seconds",
			Help: "How long requests other than streams take, by route pattern.", Buckets: prometheus.DefBuckets}, []string{"route"}),
	}
	reg.MustRegister(m.streamsOpen, m.streamsOpened, m.streamsEnded, m.eventsSent, m.resumes, m.gaps,
		m.runsStarted, m.rejected, m.requests, m.durations)
	return m
}

// EventsSent counts n events written: it is sse.Config.OnWrite. It takes
// no lock and allocates nothing (an atomic add), so counting stays off the
// cost of an event.
func (m *Metrics) EventsSent(n int) {
	m.eventsSent.Add(float64(n))
}

// countRuns wraps job so that each run it starts is counted.
func (m *Metrics) countRuns(job func(id string) sse.RunFunc) func(id string) sse.RunFunc {
	if m == nil {
		return job
	}
	return func(id string) sse.RunFunc {
		fn := job(id)
		return func(ctx context.Context, r *sse.Run) {
			m.runsStarted.Inc()
			fn(ctx, r)
		}
	}
}

// opened counts a stream that opened after last, with or without a gap.
func (m *Metrics) opened(stream *sse.Stream, last uint64) {
	if m == nil {
		return
	}
	m.streamsOpen.Inc()
	m.streamsOpened.Inc()
	if reason, ok := stream.OpensWithGap(); ok {
		m.gaps.WithLabelValues(gapLabel(reason)).Inc()
	} else if last > 0 {
		m.resumes.Inc()
	}
}

// ended counts a stream that ended: why the stream says, token_expired
// for one whose token ran out.
func (m *Metrics) ended(stream *sse.Stream) {
	if m == nil {
		return
	}
	m.streamsOpen.Dec()
	why := string(stream.Ended())
	if why == string(sse.EndExpired) {
		why = "token_expired"
	}
	m.streamsEnded.WithLabelValues(why).Inc()
	if why == string(sse.EndLost) {
		m.gaps.WithLabelValues("lost").Inc()
	}
}

// gapLabel is the label of a gap's reason.
func gapLabel(reason string) string {
	switch reason {
	case sse.ReasonUnknownClient:
		return "unknown_client"
	case sse.ReasonNotKept:
		return "not_kept"
	case sse.ReasonAhead:
		return "ahead"
	}
	return "lost"
}

// rejectKey is where a handler says why it refused a request, when the
// status alone does not (a 503 for the stream limit, say).
const rejectKey = "reject"

// record counts a request that began at start and has ended: an error
// answer by why, and any request but a stream by its route pattern (never
// its path, which holds ids), status and duration. accessLog calls it.
func (m *Metrics) record(c *gin.Context, start time.Time) {
	status := c.Writer.Status()
	if status >= http.StatusBadRequest {
		reason := c.GetString(rejectKey)
		if reason == "" {
			reason = rejectReason(status)
		}
		m.rejected.WithLabelValues(reason).Inc()
	}
	if strings.HasPrefix(c.Writer.Header().Get("Content-Type"), "text/event-stream") {
		return // a stream: its counts are the sse_streams ones
	}
	route := c.FullPath()
	if route == "" {
		route = "other" // the page's files, and paths no route has
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.durations.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// rejectReason says why a request was answered status, as far as the
// status tells.
func rejectReason(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return "bad_input"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusConflict:
		return "conflict"
	case http.StatusTooManyRequests:
		return "subject_limit"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "error"
}
