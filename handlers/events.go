package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"gin-sse-progress/sse"
)

// maxBodyBytes caps a request body. The only one expected is {"id": ...}.
const maxBodyBytes = 64 << 10

// push opens the client's event stream: GET /event/push?id=ID.
func push(reg sse.Registry, sv *streamer) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := queryID(c)
		if !ok {
			return
		}
		last, ok := lastEventID(c)
		if !ok {
			return
		}
		sv.serve(c, id, last, func(ctx context.Context) (*sse.Stream, func(), error) {
			return reg.Attach(ctx, clientKey(c, id), last)
		})
	}
}

// streamer is what the handlers that open streams share.
type streamer struct {
	logger  *slog.Logger
	limit   *subjectLimit
	metrics *Metrics // nil without metrics
	retry   time.Duration
}

// serve opens a stream of client id, after last, with attach (Attach or
// AttachRun), and hands it to the registry's writer (sse.Stream.Handoff);
// or answers the error that took its place. Over HTTP/1.1 the handler then
// returns at once: the stream holds no goroutine while it is idle, and o's
// done runs when it ends.
func (sv *streamer) serve(c *gin.Context, id string, last uint64, attach func(context.Context) (*sse.Stream, func(), error)) {
	o := sv.open(c, last, attach)
	if o == nil {
		return
	}
	sv.logger.Debug("stream opened", "id", id, "last_event_id", last, "method", c.Request.Method)
	// Past this point the status is sent: errors are logged, not answered.
	// A client that leaves is normal, so this is Debug, not Error.
	o.stream.Handoff(c.Writer, c.Request, o.until, func(err error) {
		o.close()
		sv.logger.Debug("stream ended", "id", id, "why", o.stream.Ended(), "err", err)
	})
}

// opened is a stream ready to serve: it ends by itself at until (a token's
// end, or zero), and close lets go of it.
type opened struct {
	stream *sse.Stream
	until  time.Time
	close  func()
}

// open attaches the stream, within the requester's limit, or answers why
// it cannot and returns nil. A stream authenticated by a token ends when
// the token does (plus the verifier's leeway), without close: the browser
// reconnects, and its expired token gets 401.
func (sv *streamer) open(c *gin.Context, last uint64, attach func(context.Context) (*sse.Stream, func(), error)) *opened {
	who := requesterOf(c)
	release, ok := sv.limit.acquire(who.Subject)
	if !ok {
		tooManyForSubject(c, sv.limit, sv.retry)
		return nil
	}
	ctx := c.Request.Context()
	stream, detach, err := attach(ctx)
	switch {
	case errors.Is(err, sse.ErrFinished):
		// 204 tells a conforming client to stop reconnecting.
		c.Status(http.StatusNoContent)
	case errors.Is(err, sse.ErrRunning):
		abortJSON(c, http.StatusConflict, "a run is already going for this client; "+
			"send Last-Event-ID to resume it")
	case errors.Is(err, sse.ErrTooManyStreams):
		c.Set(rejectKey, "stream_limit")
		retryAfter(c, sv.retry)
		abortJSON(c, http.StatusServiceUnavailable, "too many open streams; try again later")
	case ctx.Err() != nil:
		// The client left while the stream was being set up.
		if err == nil {
			detach()
		}
	case err != nil:
		registryError(c, sv.logger, err, sv.retry)
	default:
		var until time.Time
		if !who.Expires.IsZero() {
			until = who.Expires.Add(who.leeway)
		}
		sv.metrics.opened(stream, last)
		return &opened{stream: stream, until: until, close: func() {
			sv.metrics.ended(stream)
			detach()
			release()
		}}
	}
	release()
	return nil
}

// lastEventID returns the request's Last-Event-ID (see sse.LastEventID),
// or answers 400 and returns false.
func lastEventID(c *gin.Context) (uint64, bool) {
	last, err := sse.LastEventID(c.Request)
	if err != nil {
		abortJSON(c, http.StatusBadRequest, "Last-Event-ID must be an event id from this server")
		return 0, false
	}
	return last, true
}

// progress starts a run: POST /event/progress with {"id": ID}. It answers
// 202 and the run's events go to the client's stream, as in the Koa demo;
// or, if the request accepts text/event-stream (as fetch-event-source and
// LLM clients send it), the answer is the run's stream itself.
//
// Such a POST is retried, by fetch-event-source on every dropped connection
// and whenever the tab comes back, with the Last-Event-ID of the last event
// it got: a retry resumes the run after that id, and never starts a second
// one (sse.Registry.AttachRun). One that names the run's final event gets
// 204, which stops the client; one without Last-Event-ID while the run goes
// gets 409.
//
// The handler's frame sits under a POST stream's writes, so each way lives
// in a function of its own (see serve).
func progress(reg sse.Registry, job func(id string) sse.RunFunc, sv *streamer) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := requestID(c)
		if !ok {
			return
		}
		if acceptsEventStream(c.Request) {
			streamRun(c, reg, job, sv, id)
			return
		}
		startRun(c, reg, job, sv, id)
	}
}

// requestID reads the id of a POST's body, or answers why it cannot.
func requestID(c *gin.Context) (string, bool) {
	id, status, err := bodyID(c)
	if err != nil {
		abortJSON(c, status, err.Error())
		return "", false
	}
	return id, true
}

// streamRun answers a POST read as a stream: the run itself.
func streamRun(c *gin.Context, reg sse.Registry, job func(id string) sse.RunFunc, sv *streamer, id string) {
	last, ok := lastEventID(c)
	if !ok {
		return
	}
	sv.serve(c, id, last, func(ctx context.Context) (*sse.Stream, func(), error) {
		return reg.AttachRun(ctx, clientKey(c, id), last, job(id))
	})
}

// startRun answers the Koa demo's POST: the run starts, and its events go
// to the client's stream.
func startRun(c *gin.Context, reg sse.Registry, job func(id string) sse.RunFunc, sv *streamer, id string) {
	switch err := reg.Start(c.Request.Context(), clientKey(c, id), job(id)); {
	case errors.Is(err, sse.ErrUnknownClient):
		abortJSON(c, http.StatusNotFound, fmt.Sprintf("no client %q: open /event/push?id=... first", id))
	case errors.Is(err, sse.ErrRunning):
		abortJSON(c, http.StatusConflict, "a run is already going for this client")
	case err != nil:
		registryError(c, sv.logger, err, sv.retry)
	default:
		sv.logger.Debug("run started", "id", id)
		c.JSON(http.StatusAccepted, answer{ID: id, Status: "started"})
	}
}

// acceptsEventStream reports whether the request's Accept header names
// text/event-stream, with a quality above 0. A wildcard does not count: a
// client that does not ask for a stream gets the Koa demo's JSON answer.
func acceptsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != "text/event-stream" {
				continue
			}
			if q, err := strconv.ParseFloat(params["q"], 64); params["q"] == "" || (err == nil && q > 0) {
				return true
			}
		}
	}
	return false
}

// remove forgets a client, ending its run and stream: GET /event/remove?id=ID.
// It is a GET, as in the Koa demo, so that a leaving page can send it with
// fetch keepalive or sendBeacon-like ease.
func remove(logger *slog.Logger, reg sse.Registry, retry time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := queryID(c)
		if !ok {
			return
		}
		switch err := reg.Remove(c.Request.Context(), clientKey(c, id)); {
		case errors.Is(err, sse.ErrUnknownClient):
			abortJSON(c, http.StatusNotFound, fmt.Sprintf("no client %q", id))
			return
		case err != nil:
			registryError(c, logger, err, retry)
			return
		}
		logger.Debug("client removed", "id", id)
		c.JSON(http.StatusOK, answer{ID: id, Status: "removed"})
	}
}

// drop ends the client's stream without a close event, as a dropped
// connection would: POST /event/drop?id=ID. The client keeps its run; the
// browser reconnects after the retry delay with Last-Event-ID and resumes.
// The page uses it to show a resume; the server needs nothing of it.
func drop(logger *slog.Logger, reg sse.Registry, retry time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := queryID(c)
		if !ok {
			return
		}
		switch err := reg.Drop(c.Request.Context(), clientKey(c, id)); {
		case errors.Is(err, sse.ErrUnknownClient):
			abortJSON(c, http.StatusNotFound, fmt.Sprintf("no client %q", id))
		case errors.Is(err, sse.ErrNoStream):
			abortJSON(c, http.StatusConflict, fmt.Sprintf("client %q has no open stream", id))
		case err != nil:
			registryError(c, logger, err, retry)
		default:
			logger.Debug("stream dropped", "id", id)
			c.JSON(http.StatusOK, answer{ID: id, Status: "dropped"})
		}
	}
}

// registryError answers a registry error that no handler answers in its own
// way: 503 while the registry cannot serve (the server is shutting down, or
// the store it shares is out of reach), 500 for anything else.
func registryError(c *gin.Context, logger *slog.Logger, err error, retry time.Duration) {
	switch {
	case errors.Is(err, sse.ErrClosed):
		abortJSON(c, http.StatusServiceUnavailable, "server is shutting down")
	case errors.Is(err, sse.ErrUnavailable):
		logger.Warn("registry unavailable", "path", c.Request.URL.Path, "err", err)
		retryAfter(c, retry)
		abortJSON(c, http.StatusServiceUnavailable, "the registry is unavailable; try again later")
	default:
		_ = c.Error(err)
		abortJSON(c, http.StatusInternalServerError, "internal server error")
	}
}

// retryAfter asks the client to come back after the reconnection delay.
// Retry-After is in whole seconds; it asks for no less than the delay the
// stream would have sent.
func retryAfter(c *gin.Context, retry time.Duration) {
	c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(retry.Seconds())))))
}

// queryID returns the id query parameter, or answers 400 and returns false.
//
// It parses the query itself rather than with c.Query, which keeps the
// parsed query in the context for the life of the request: the length of a
// stream, multiplied by every open stream.
func queryID(c *gin.Context) (string, bool) {
	id := c.Request.URL.Query().Get("id")
	if err := validateID(id); err != nil {
		abortJSON(c, http.StatusBadRequest, err.Error())
		return "", false
	}
	return id, true
}

// bodyID reads {"id": ID} from the request body. On failure it returns the
// status to answer with.
//
// The body must be sent as application/json. Besides saying what the body
// is, that makes a browser ask before it sends the POST from another
// origin (a preflight, which cors answers), where a text/plain body would
// go straight through.
func bodyID(c *gin.Context) (string, int, error) {
	if ct := c.GetHeader("Content-Type"); ct != "application/json" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return "", http.StatusUnsupportedMediaType, errors.New("send the body as Content-Type: application/json")
		}
	}
	data, status, err := readBody(c)
	if err != nil {
		return "", status, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return "", http.StatusBadRequest, errors.New(`body is empty; send {"id": ...}`)
	}
	// A map, not a struct: a struct's field would also take "ID" or "Id",
	// where the Koa demo (JavaScript) reads body.id alone.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return "", http.StatusBadRequest, fmt.Errorf(`body must be one JSON object like {"id": ...}: %w`, err)
	}
	id, err := idFromJSON(fields["id"])
	if err != nil {
		return "", http.StatusBadRequest, err
	}
	return id, 0, nil
}

// readBody returns the request body, of at most maxBodyBytes, or the status
// to answer with. A body of known length is read into one slice of its
// size (a POST here is about 15 bytes); only a chunked one needs a reader
// that caps it.
func readBody(c *gin.Context) ([]byte, int, error) {
	tooLarge := func() ([]byte, int, error) {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body is larger than %d bytes", maxBodyBytes)
	}
	n := c.Request.ContentLength
	if n > maxBodyBytes {
		return tooLarge()
	}
	if n >= 0 {
		data := make([]byte, n)
		if _, err := io.ReadFull(c.Request.Body, data); err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("body ends before its Content-Length: %w", err)
		}
		return data, 0, nil
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes))
	if maxErr := (*http.MaxBytesError)(nil); errors.As(err, &maxErr) {
		return tooLarge()
	}
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("reading the body: %w", err)
	}
	return data, 0, nil
}

// answer is the JSON of a request that did what it was asked: a struct,
// which encodes faster than a map (gin.H).
type answer struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// abortJSON ends the request with status and {"error": msg}.
func abortJSON(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
}
