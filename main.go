// Command gin-sse-progress serves a page whose progress bar is pushed from
// the server with Server-Sent Events.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gin-sse-progress/auth"
	"gin-sse-progress/handlers"
	"gin-sse-progress/sse"
	"gin-sse-progress/sseredis"
)

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "token":
		err = runToken(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "cert":
		err = runCert(os.Args[1:], os.Stdout, os.Stderr)
	default:
		err = run(context.Background(), os.Args, os.Getenv, os.Stderr)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(exitCode(err))
}

// exitCode maps run's error to the process's exit status: 2 for a usage
// error, as the flag package does, 1 for any other failure.
func exitCode(err error) int {
	var usage *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		return 2
	default:
		return 1
	}
}

// run serves until ctx is done or a SIGINT or SIGTERM arrives, then shuts
// down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger := newLogger(cfg, stderr)
	metrics, counters := newMetrics()
	cfg.registry.OnWrite = counters.EventsSent // every stream counts its events
	// One schedule takes every run's steps: a run holds no goroutine.
	schedule := sse.NewSchedule()
	defer schedule.Close() // after the registry's Close: its runs have stopped
	cfg.progress.Schedule = schedule
	reg, err := newRegistry(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer reg.Close() // on an early return; shutdown closes it below
	watchLink(metrics, reg)
	scrape := promhttp.HandlerFor(metrics, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)})

	// Gin's mode is a package-level setting of Gin; release mode keeps its
	// debug route listing out of the logs.
	gin.SetMode(gin.ReleaseMode)
	opts := handlers.Options{
		Job:                  cfg.progress.Run,
		Retry:                cfg.registry.Retry,
		AllowOrigins:         cfg.allowOrigins,
		MaxStreamsPerSubject: cfg.maxStreamsPerSubject,
		Metrics:              counters,
	}
	if cfg.metricsAddr == "" {
		opts.MetricsHandler = scrape
	}
	if cfg.authSecret != "" {
		if opts.Auth, err = auth.NewVerifier([]byte(cfg.authSecret), auth.MaxLeeway); err != nil {
			return &usageError{fmt.Errorf("-auth-secret: %w", err)} // validate has checked it
		}
	}
	router := handlers.New(logger, reg, opts)

	srv := &http.Server{
		Handler:           router,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: it would cut every stream after that long.
		// Each write to a stream has its own deadline instead.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	// Streams never go idle, so Shutdown would wait out its whole deadline
	// for them: ending them is what lets their handlers return.
	srv.RegisterOnShutdown(reg.Close)
	if cfg.tlsCert != "" {
		// With TLS, net/http speaks HTTP/2 (ALPN h2) as well as HTTP/1.1:
		// every stream of a browser's tabs shares one connection.
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert %s, -tls-key %s: %w", cfg.tlsCert, cfg.tlsKey, err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	logger.Info("listening", "addr", ln.Addr().String(), "url", pageURL(ln.Addr(), srv.TLSConfig != nil),
		"tick", cfg.progress.Tick, "step", cfg.progress.Step, "registry", registryName(cfg), "auth", opts.Auth != nil)

	serveErr := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			serveErr <- srv.ServeTLS(ln, "", "") // the certificate is in TLSConfig
			return
		}
		serveErr <- srv.Serve(ln)
	}()

	if cfg.pprofAddr != "" {
		stopProfiles, err := serveApart(ctx, "-pprof", cfg.pprofAddr, profiles(), logger)
		if err != nil {
			return err
		}
		defer stopProfiles()
	}
	if cfg.metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", scrape)
		stopMetrics, err := serveApart(ctx, "-metrics", cfg.metricsAddr, mux, logger)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down")
	// ctx is already done; the shutdown gets a deadline of its own.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	reg.Close() // returns once every run has stopped
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// newRegistry returns the registry of clients: in memory, or shared through
// Redis with -redis.
func newRegistry(ctx context.Context, cfg config, logger *slog.Logger) (sse.Registry, error) {
	if cfg.redisURL == "" {
		return sse.NewMemoryRegistry(cfg.registry), nil
	}
	reg, err := sseredis.New(ctx, cfg.redisURL, cfg.registry, sseredis.Options{
		Logger: logger,
		// A run whose instance goes away moves to another one and goes on
		// from its last count.
		Resume: handlers.Resume(cfg.progress.Run, cfg.authSecret != ""),
	})
	if err != nil {
		return nil, fmt.Errorf("-redis %s: %w", redactURL(cfg.redisURL), err)
	}
	return reg, nil
}

// pageURL is a URL of the page that a browser on this machine can open:
// a listener on every interface is reached through the loopback address.
func pageURL(addr net.Addr, tls bool) string {
	host, port := "127.0.0.1", ""
	if tcp, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(tcp.Port)
		if !tcp.IP.IsUnspecified() {
			host = tcp.IP.String()
		}
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// registryName says where the registry is, for the log: its password, if
// any, left out.
func registryName(cfg config) string {
	if cfg.redisURL == "" {
		return "memory"
	}
	return redactURL(cfg.redisURL)
}

// redactURL returns u with its password replaced by "xxxxx".
func redactURL(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return "(a URL that does not parse)"
}

// newMetrics returns the server's own Prometheus registry, with the Go and
// process collectors and the server's counters. Not the package's global
// registry: two servers in one process (the tests) count apart.
func newMetrics() (*prometheus.Registry, *handlers.Metrics) {
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return metrics, handlers.NewMetrics(metrics)
}

// watchLink adds the gauge sse_registry_link_up for a registry that has a
// link to watch (the Redis one).
func watchLink(metrics prometheus.Registerer, reg sse.Registry) {
	l, ok := reg.(interface{ LinkUp() bool })
	if !ok {
		return
	}
	metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sse_registry_link_up", Help: "1 while the registry's link to the store it shares is up.",
	}, func() float64 {
		if l.LinkUp() {
			return 1
		}
		return 0
	}))
}

// newLogger returns the program's logger: text or JSON, at -log-level.
func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// profiles returns net/http/pprof's handlers of the runtime profiles.
func profiles() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveApart serves h at addr, on a listener of its own kept apart from
// the public address: the runtime profiles (-pprof), the metrics
// (-metrics). stop closes it and waits for its goroutine.
func serveApart(ctx context.Context, flagName, addr string, h http.Handler, logger *slog.Logger) (stop func(), err error) {
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s for %s: %w", addr, flagName, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("serving apart", "flag", flagName, "url", "http://"+ln.Addr().String()+"/")

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns ErrServerClosed once stop closes it
	}()
	return func() {
		srv.Close() //nolint:errcheck // requests in progress are cut on purpose
		<-done
	}, nil
}
