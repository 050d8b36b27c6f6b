package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"gin-sse-progress/handlers"
	"gin-sse-progress/sse"
)

// config is the program's configuration, from flags and the environment.
type config struct {
	addr         string
	progress     handlers.Progress
	hub          sse.Config
	logLevel     slog.Level
	allowOrigins origins
	pprofAddr    string
	// redisURL, if set, shares the registry between instances through
	// Redis: redis://[user:password@]host:port/db.
	redisURL string
}

// usageError is a bad flag or environment value: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// parseConfig reads the flags in args[1:]. A flag not given on the command
// line is taken from its environment variable, if set; a flag wins over the
// environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{
		addr:     ":3000",
		progress: handlers.Progress{Tick: time.Second, Step: 5},
		hub: sse.Config{
			Retry:        3 * time.Second,
			Heartbeat:    15 * time.Second,
			Grace:        30 * time.Second,
			MaxStreams:   10000,
			WriteTimeout: 10 * time.Second,
		},
		logLevel: slog.LevelInfo,
	}

	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := map[string]string{} // flag name -> environment variable
	fs.StringVar(&cfg.addr, "addr", cfg.addr, "listen `address` [$ADDR, or :$PORT]")
	env["addr"] = "ADDR"
	for _, d := range cfg.durations() {
		fs.DurationVar(d.p, d.name, *d.p, fmt.Sprintf("%s [$%s]", d.usage, d.env))
		env[d.name] = d.env
	}
	fs.IntVar(&cfg.progress.Step, "step", cfg.progress.Step, "count increment per update; divides 100 [$STEP]")
	env["step"] = "STEP"
	fs.IntVar(&cfg.hub.MaxStreams, "max-clients", cfg.hub.MaxStreams, "most streams open at once [$MAX_CLIENTS]")
	env["max-clients"] = "MAX_CLIENTS"
	fs.TextVar(&cfg.logLevel, "log-level", cfg.logLevel, "debug, info, warn or error [$LOG_LEVEL]")
	env["log-level"] = "LOG_LEVEL"
	fs.Var(&cfg.allowOrigins, "allow-origin",
		"comma-separated `origins` whose pages may use the API, with credentials (default: same origin only) [$ALLOW_ORIGIN]")
	env["allow-origin"] = "ALLOW_ORIGIN"
	fs.StringVar(&cfg.pprofAddr, "pprof", cfg.pprofAddr,
		"serve the runtime profiles of net/http/pprof at `address`, such as 127.0.0.1:6060 (default: off) [$PPROF]")
	env["pprof"] = "PPROF"
	fs.StringVar(&cfg.redisURL, "redis", cfg.redisURL,
		"share clients, runs and events with other instances through Redis at `url`, such as redis://127.0.0.1:6379/0 (default: in memory, this instance only) [$REDIS_URL]")
	env["redis"] = "REDIS_URL"

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
	if port := getenv("PORT"); port != "" && getenv("ADDR") == "" && !set["addr"] {
		cfg.addr = ":" + port
	}
	for name, key := range env {
		v := getenv(key)
		if v == "" || set[name] {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return cfg, &usageError{fmt.Errorf("invalid value %q for -%s from $%s: %w", v, name, key, err)}
		}
	}

	if err := cfg.validate(); err != nil {
		return cfg, &usageError{err}
	}
	return cfg, nil
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
		{"retry", "RETRY", "reconnection delay sent to clients in the retry field", &c.hub.Retry},
		{"heartbeat", "HEARTBEAT", "interval of comment lines on an idle stream", &c.hub.Heartbeat},
		{"grace", "GRACE", "how long a client whose stream is gone is kept, so it can reconnect", &c.hub.Grace},
		{"write-timeout", "WRITE_TIMEOUT", "deadline of each write to a stream; a client that stops reading is cut", &c.hub.WriteTimeout},
	}
}

func (c *config) validate() error {
	for _, d := range c.durations() {
		if *d.p <= 0 {
			return fmt.Errorf("-%s must be positive, got %s", d.name, *d.p)
		}
	}
	if c.hub.Retry < time.Millisecond {
		return fmt.Errorf("-retry must be at least 1ms, got %s", c.hub.Retry)
	}
	if c.progress.Step <= 0 || c.progress.Step > 100 || 100%c.progress.Step != 0 {
		return fmt.Errorf("-step must be a positive divisor of 100, got %d", c.progress.Step)
	}
	if c.hub.MaxStreams <= 0 {
		return fmt.Errorf("-max-clients must be positive, got %d", c.hub.MaxStreams)
	}
	if c.redisURL != "" {
		if _, err := redis.ParseURL(c.redisURL); err != nil {
			return fmt.Errorf("-redis: %w", err)
		}
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
