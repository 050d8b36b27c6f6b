// Package handlers is the HTTP surface of the server, on Gin.
package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-contrib/gzip"
	"github.com/gin-contrib/static"
	"github.com/gin-gonic/gin"

	"gin-sse-progress/auth"
	"gin-sse-progress/sse"
	"gin-sse-progress/web"
)

// Options holds what the handlers need besides the logger and the registry.
type Options struct {
	// Job returns the run that POST /event/progress starts for a client:
	// job.Progress.Run in this project.
	Job func(id string) sse.RunFunc
	// Retry is the streams' reconnection delay (sse.Config.Retry); a 503
	// (over the limit, or the registry unavailable) asks the client to come
	// back after it.
	Retry time.Duration
	// AllowOrigins lists the origins ("https://app.example.com") whose
	// pages may use the API from the browser, credentials included. Empty:
	// same-origin only.
	AllowOrigins []string
	// Auth, if set, requires a valid token on every /event/ route: a
	// client is then named by its token's subject and its id.
	Auth *auth.Verifier
	// MaxStreamsPerSubject bounds the open streams of one subject on this
	// instance, with Auth.
	MaxStreamsPerSubject int
	// Metrics, if set, counts requests, streams, events and runs; its
	// EventsSent must be the registry's sse.Config.OnWrite.
	Metrics *Metrics
	// MetricsHandler, if set, serves the metrics at GET /metrics. Leave
	// it nil to serve them on a listener of their own (-metrics).
	MetricsHandler http.Handler
}

// New returns the server's router. This file lists the whole HTTP surface:
//
//	GET  /event/push?id=ID     the client's event stream
//	POST /event/progress       {"id": ID} starts a run
//	GET  /event/remove?id=ID   forgets the client
//	POST /event/drop?id=ID     drops the client's stream; it reconnects and resumes
//	GET  /auth/session         whether a token is needed, and whom the request's names
//	POST /auth/session         with -auth-secret: a Bearer token becomes the session cookie
//	DELETE /auth/session       clears it
//	GET  /healthz              200 while the server serves, 503 when it cannot
//	GET  /metrics              the Prometheus metrics, unless -metrics serves them apart
//	OPTIONS any of these       CORS preflight, for the -allow-origin origins
//	GET  /                     the demo page and its files
func New(logger *slog.Logger, reg sse.Registry, opts Options) *gin.Engine {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(recovery(logger), accessLog(logger, opts.Metrics), cors(opts.AllowOrigins))

	sv := &streamer{logger: logger, limit: newSubjectLimit(opts.MaxStreamsPerSubject), metrics: opts.Metrics, retry: opts.Retry}
	job := opts.Metrics.countRuns(opts.Job)
	changes := sameOriginForCookies(opts.AllowOrigins) // for the routes that change state
	events := r.Group("/event")
	r.GET("/auth/session", session(opts.Auth))
	if opts.Auth != nil {
		events.Use(authenticate(opts.Auth))
		r.POST("/auth/session", createSession(opts.Auth))
		r.DELETE("/auth/session", deleteSession)
	}
	events.GET("/push", push(reg, sv))
	events.POST("/progress", changes, progress(reg, job, sv))
	events.GET("/remove", changes, remove(logger, reg, opts.Retry))
	events.POST("/drop", changes, drop(logger, reg, opts.Retry))
	r.GET("/healthz", health(reg))
	if opts.MetricsHandler != nil {
		r.GET("/metrics", gin.WrapH(opts.MetricsHandler))
	}

	// The page is served for whatever path no route claims, so a route
	// always wins over a file of the same name. Only the page is gzipped:
	// a compressing writer holds events back until its buffer fills, so
	// the streams must never pass through one, and this chain is the only
	// place the gzip middleware is.
	files := static.EmbedFolder(web.FS, web.Root)
	r.NoRoute(gzip.Gzip(gzip.DefaultCompression), staticFiles(files), notFound(files))
	r.NoMethod(func(c *gin.Context) {
		abortJSON(c, http.StatusMethodNotAllowed,
			c.Request.Method+" is not allowed here; allowed: "+c.Writer.Header().Get("Allow"))
	})
	return r
}

// health answers 200 while the registry serves and 503 when it cannot (the
// server is shutting down, or the store the registry shares is out of
// reach), with what this instance holds if the registry counts it. A
// registry that cannot check its health serves while it is open.
func health(reg sse.Registry) gin.HandlerFunc {
	return func(c *gin.Context) {
		body := gin.H{"status": "ok"}
		if sr, ok := reg.(sse.StatsReporter); ok {
			body["registry"] = sr.Stats()
		}
		status := http.StatusOK
		if hc, ok := reg.(sse.HealthChecker); ok {
			ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
			defer cancel()
			if err := hc.Health(ctx); err != nil {
				status = http.StatusServiceUnavailable
				body["status"], body["error"] = "unavailable", err.Error()
			}
		}
		c.JSON(status, body)
	}
}

// staticFiles serves the embedded page to GET and HEAD requests.
func staticFiles(files static.ServeFileSystem) gin.HandlerFunc {
	serve := static.Serve("/", files)
	return func(c *gin.Context) {
		if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
			serve(c)
		}
	}
}

// notFound answers what staticFiles did not: 405 for another method on a
// file of the page, 404 for anything else.
func notFound(files static.ServeFileSystem) gin.HandlerFunc {
	return func(c *gin.Context) {
		path := c.Request.URL.Path
		if files.Exists("/", path) {
			c.Header("Allow", "GET, HEAD")
			abortJSON(c, http.StatusMethodNotAllowed, c.Request.Method+" is not allowed here; allowed: GET, HEAD")
			return
		}
		abortJSON(c, http.StatusNotFound, "no such path: "+strings.ToValidUTF8(path, "?"))
	}
}
