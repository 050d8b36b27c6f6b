package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gin-sse-progress/auth"
	"gin-sse-progress/job"
	"gin-sse-progress/sse"
	"gin-sse-progress/sseredis"
)

// name is the program's name in its usage message.
const name = "gin-sse-progress"

// config is the program's configuration, from flags and the environment.
type config struct {
	addr         string
	progress     job.Progress
	registry     sse.Config
	logLevel     slog.Level
	logFormat    string
	allowOrigins origins
	pprofAddr    string
	metricsAddr  string
	// redisURL, if set, shares the registry between instances through
	// Redis: redis://[user:password@]host:port/db.
	redisURL string
	// authSecret, if set, requires a token signed with it (HS256) on every
	// /event/ route.
	authSecret           string
	maxStreamsPerSubject int
	// tlsCert and tlsKey, both or neither, serve HTTPS, with HTTP/2.
	tlsCert, tlsKey string

	// from names where each setting came from, for error messages:
	// "-tick", or "$TICK" for a value from the environment.
	from map[string]string
}

// usageError is a bad flag or environment value: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// parseConfig reads the flags in args[1:]. A flag not given on the command
// line is taken from its environment variable, if set; a flag wins over the
// environment. $PORT, as platforms that run containers set it, stands for
// -addr :$PORT when neither -addr nor $ADDR is given.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{
		addr:     ":3000",
		progress: job.Progress{Tick: time.Second, Step: 5},
		registry: sse.Config{
			Retry:        3 * time.Second,
			Heartbeat:    15 * time.Second,
			Grace:        30 * time.Second,
			MaxStreams:   10000,
			WriteTimeout: 10 * time.Second,
		},
		logLevel:             slog.LevelInfo,
		logFormat:            "text",
		maxStreamsPerSubject: 16,
		from:                 map[string]string{},
	}

	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := map[string]string{} // flag name -> environment variable
	fs.StringVar(&cfg.addr, "addr", cfg.addr, "listen `address`, host:port [$ADDR, or :$PORT]")
	env["addr"] = "ADDR"
	for _, d := range cfg.durations() {
		fs.Var((*duration)(d.p), d.name, fmt.Sprintf("%s, such as 1s or 250ms [$%s]", d.usage, d.env))
		env[d.name] = d.env
	}
	fs.IntVar(&cfg.progress.Step, "step", cfg.progress.Step, "count increment per update; divides 100 [$STEP]")
	env["step"] = "STEP"
	fs.IntVar(&cfg.registry.MaxStreams, "max-streams", cfg.registry.MaxStreams, "most streams open at once on this instance [$MAX_STREAMS]")
	env["max-streams"] = "MAX_STREAMS"
	fs.TextVar(&cfg.logLevel, "log-level", cfg.logLevel, "debug, info, warn or error [$LOG_LEVEL]")
	env["log-level"] = "LOG_LEVEL"
	fs.StringVar(&cfg.logFormat, "log-format", cfg.logFormat, "text or json, for a log collector [$LOG_FORMAT]")
	env["log-format"] = "LOG_FORMAT"
	fs.Var(&cfg.allowOrigins, "allow-origin",
		"comma-separated `origins` whose pages may use the API, with credentials (default: same origin only) [$ALLOW_ORIGIN]")
	env["allow-origin"] = "ALLOW_ORIGIN"
	fs.StringVar(&cfg.pprofAddr, "pprof", cfg.pprofAddr,
		"serve the runtime profiles of net/http/pprof at `address`, such as 127.0.0.1:6060 (default: off) [$PPROF]")
	env["pprof"] = "PPROF"
	fs.StringVar(&cfg.metricsAddr, "metrics", cfg.metricsAddr,
		"serve the Prometheus metrics at `address`, such as 127.0.0.1:9090, on a listener of their own (default: GET /metrics on -addr) [$METRICS]")
	env["metrics"] = "METRICS"
	fs.StringVar(&cfg.redisURL, "redis", cfg.redisURL,
		"share clients, runs and events with other instances through Redis at `url`, such as redis://127.0.0.1:6379/0 (default: in memory, this instance only) [$REDIS_URL]")
	env["redis"] = "REDIS_URL"
	fs.StringVar(&cfg.authSecret, "auth-secret", cfg.authSecret,
		"require a token (a JWT signed with HS256 by this `secret`, at least 32 bytes) on every /event/ route (default: none; ids are the only secret) [$AUTH_SECRET]")
	env["auth-secret"] = "AUTH_SECRET"
	fs.IntVar(&cfg.maxStreamsPerSubject, "max-streams-per-subject", cfg.maxStreamsPerSubject,
		"with -auth-secret, most streams open at once for one token subject on this instance [$MAX_STREAMS_PER_SUBJECT]")
	env["max-streams-per-subject"] = "MAX_STREAMS_PER_SUBJECT"
	fs.StringVar(&cfg.tlsCert, "tls-cert", cfg.tlsCert,
		"serve HTTPS and HTTP/2 with the certificate in this PEM `file` (with -tls-key) [$TLS_CERT]")
	env["tls-cert"] = "TLS_CERT"
	fs.StringVar(&cfg.tlsKey, "tls-key", cfg.tlsKey, "the private key of -tls-cert, a PEM `file` [$TLS_KEY]")
	env["tls-key"] = "TLS_KEY"

	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, &usageError{err}
	}
	if fs.NArg() > 0 {
		return cfg, &usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name := range env {
		cfg.from[name] = "-" + name
	}
	if port := getenv("PORT"); port != "" && getenv("ADDR") == "" && !set["addr"] {
		cfg.addr = ":" + port
		cfg.from["addr"] = "$PORT"
	}
	for name, key := range env {
		v := getenv(key)
		if v == "" || set[name] {
			continue
		}
		cfg.from[name] = "$" + key
		if err := fs.Set(name, v); err != nil {
			return cfg, &usageError{fmt.Errorf("invalid value %q for $%s (-%s): %w", v, key, name, err)}
		}
	}

	if err := cfg.validate(); err != nil {
		return cfg, &usageError{err}
	}
	return cfg, nil
}

// duration is a flag.Value for a time.Duration that, unlike the flag
// package's own, says what is wrong with a value: "1" has no unit.
type duration time.Duration

func (d *duration) String() string { return (*time.Duration)(d).String() }

func (d *duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		if _, numErr := strconv.ParseFloat(s, 64); numErr == nil {
			return fmt.Errorf("%q has no unit: write %ss, or %sms", s, s, s)
		}
		return errors.New(strings.TrimPrefix(err.Error(), "time: "))
	}
	*d = duration(v)
	return nil
}

// durationFlag is a duration setting: its flag, environment variable and
// field. Every one must be positive.
type durationFlag struct {
	name, env, usage string
	p                *time.Duration
}

func (c *config) durations() []durationFlag {
	return []durationFlag{
		{"tick", "TICK", "time between two updates of a run", &c.progress.Tick},
		{"retry", "RETRY", "mean reconnection delay sent in the retry field; each stream draws one from [retry/2, 3*retry/2)", &c.registry.Retry},
		{"heartbeat", "HEARTBEAT", "interval of comment lines on an idle stream", &c.registry.Heartbeat},
		{"grace", "GRACE", "how long a client whose stream is gone is kept, so it can reconnect and resume", &c.registry.Grace},
		{"write-timeout", "WRITE_TIMEOUT", "deadline of each write to a stream; a client that stops reading is dropped", &c.registry.WriteTimeout},
	}
}

func (c *config) validate() error {
	if _, port, err := net.SplitHostPort(c.addr); err != nil || port == "" {
		return fmt.Errorf("%s must be host:port, such as :3000 or 127.0.0.1:3000, got %q", c.from["addr"], c.addr)
	}
	for _, d := range c.durations() {
		if *d.p <= 0 {
			return fmt.Errorf("%s must be positive, got %s", c.from[d.name], *d.p)
		}
	}
	if c.registry.Retry < time.Millisecond {
		return fmt.Errorf("%s must be at least 1ms, got %s", c.from["retry"], c.registry.Retry)
	}
	if c.progress.Step <= 0 || c.progress.Step > 100 || 100%c.progress.Step != 0 {
		return fmt.Errorf("%s must be a positive divisor of 100, got %d", c.from["step"], c.progress.Step)
	}
	if c.registry.MaxStreams <= 0 {
		return fmt.Errorf("%s must be positive, got %d", c.from["max-streams"], c.registry.MaxStreams)
	}
	if c.redisURL != "" {
		if err := sseredis.CheckURL(c.redisURL); err != nil {
			return fmt.Errorf("%s: %w", c.from["redis"], err)
		}
	}
	if c.authSecret != "" && len(c.authSecret) < auth.MinSecret {
		return fmt.Errorf("%s is %d bytes; it must be at least %d (openssl rand -hex 32 makes one)",
			c.from["auth-secret"], len(c.authSecret), auth.MinSecret)
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return fmt.Errorf("%s must be text or json, got %q", c.from["log-format"], c.logFormat)
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return fmt.Errorf("%s and %s go together: give both, or neither", c.from["tls-cert"], c.from["tls-key"])
	}
	if c.maxStreamsPerSubject <= 0 {
		return fmt.Errorf("%s must be positive, got %d", c.from["max-streams-per-subject"], c.maxStreamsPerSubject)
	}
	return nil
}

// origins is the value of -allow-origin: a comma-separated list of origins
// such as https://app.example.com, kept in the form browsers send them.
type origins []string

func (o *origins) String() string {
	if o == nil {
		return ""
	}
	return strings.Join(*o, ",")
}

func (o *origins) Set(list string) error {
	*o = nil
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if item == "*" {
			return errors.New(`"*" cannot be used: with credentials, CORS needs each origin named`)
		}
		u, err := url.Parse(item)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%q is not an origin like https://app.example.com (scheme and host, no path)", item)
		}
		*o = append(*o, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	return nil
}
