// Command loadgen measures a running server under many SSE clients.
//
// It opens -c streams with GET /event/push?id=ID, then starts a run for each
// with POST /event/progress at -rate runs per second, reads every stream to
// its close and reports:
//
//   - connect time: for all the streams, and per stream (p50/p99);
//   - the server's memory per open stream and at its peak (/proc/PID/status,
//     given -pid);
//   - the server's CPU time while the runs go, and per 1,000 events
//     (/proc/PID/stat);
//   - completeness: updates received of those expected, out of order,
//     duplicated, and streams that ended with their close event;
//   - timeliness: the first update after the POST is sent, the POST's own
//     answer, and how far each gap between updates is from the tick.
//
// The results are a table and one JSON line; with -out the JSON line is also
// appended to a file, and -report prints the runs of such a file side by
// side. See "make bench".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"
)

func main() {
	err := run(context.Background(), os.Args, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// options are the command line's settings.
type options struct {
	url     string
	clients int
	rate    float64
	dialers int
	posters int
	tick    time.Duration
	step    int
	pid     int
	label   string
	prefix  string
	timeout time.Duration
	out     string
	report  string
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	o := options{
		url: "http://127.0.0.1:3000", clients: 1000, rate: 1000, dialers: 64, posters: 32,
		tick: time.Second, step: 5, timeout: 10 * time.Minute,
		prefix: "lg" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-",
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", o.url, "the server's base `URL`")
	fs.IntVar(&o.clients, "c", o.clients, "streams to open, each with one run")
	fs.Float64Var(&o.rate, "rate", o.rate, "runs started per second")
	fs.IntVar(&o.dialers, "dialers", o.dialers, "streams being opened at once")
	fs.IntVar(&o.posters, "posters", o.posters, "POSTs in flight at once, each on a kept-alive connection")
	fs.DurationVar(&o.tick, "tick", o.tick, "the server's tick, which the gaps between updates are measured against")
	fs.IntVar(&o.step, "step", o.step, "the server's count increment")
	fs.IntVar(&o.pid, "pid", o.pid, "the server's process id, for its memory and CPU time (0: not measured)")
	fs.StringVar(&o.label, "label", o.label, "the run's name in the results (default: the URL's host)")
	fs.StringVar(&o.prefix, "prefix", o.prefix, "client ids are this prefix and a number")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "give up on streams still open after this long")
	fs.StringVar(&o.out, "out", o.out, "also append the JSON line to this `file`")
	fs.StringVar(&o.report, "report", o.report, "print the runs in this JSON lines `file` side by side, and exit")
	if err := fs.Parse(args[1:]); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.clients < 1, o.rate <= 0, o.dialers < 1, o.posters < 1, o.tick <= 0, o.timeout <= 0:
		return o, errors.New("-c, -rate, -dialers, -posters, -tick and -timeout must be positive")
	case o.step < 1 || 100%o.step != 0:
		return o, errors.New("-step must divide 100")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	if o.report != "" {
		results, err := readResults(o.report)
		if err != nil {
			return err
		}
		return printTable(stdout, results)
	}

	base, err := url.Parse(o.url)
	if err != nil || base.Host == "" || base.Scheme != "http" {
		return fmt.Errorf("-url %q: want http://host:port", o.url)
	}
	if o.label == "" {
		o.label = base.Host
	}
	if err := checkFileLimits(o); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := measure(ctx, o, base, stderr)
	if err != nil {
		return err
	}
	if err := printTable(stdout, []result{res}); err != nil {
		return err
	}
	line, err := res.jsonLine()
	if err != nil {
		return err
	}
	if _, err := stdout.Write(line); err != nil {
		return err
	}
	if o.out != "" {
		return appendFile(o.out, line)
	}
	return nil
}

// checkFileLimits makes sure that the generator, and the server if its pid
// is known, can open a connection for each client.
func checkFileLimits(o options) error {
	limit, err := raiseFileLimit()
	if err != nil {
		return err
	}
	// A few more for the POSTs' connections, stdio and the runtime.
	if need := uint64(o.clients + o.posters + 16); limit < need {
		return fmt.Errorf("%d clients need %d open files and this process may open %d: raise the hard limit (ulimit -Hn)", o.clients, need, limit)
	}
	if o.pid == 0 {
		return nil
	}
	limit, err = fileLimit(o.pid)
	if err != nil {
		return err
	}
	if need := uint64(o.clients + 16); limit < need {
		return fmt.Errorf("%d streams need %d open files and the server (pid %d) may open %d", o.clients, need, o.pid, limit)
	}
	return nil
}

// measure opens the streams, starts the runs and reads every stream to its
// end, reading the server's memory and CPU time in between.
func measure(ctx context.Context, o options, base *url.URL, stderr io.Writer) (result, error) {
	res := newResult(o)
	t0 := time.Now()
	since := func() time.Duration { return time.Since(t0) }

	var before memory
	if o.pid != 0 {
		var err error
		if before, err = readMemory(o.pid); err != nil {
			return res, err
		}
	}

	// Open every stream, -dialers at a time. Each client's goroutine goes
	// on to read its stream until it ends.
	clients := make([]*client, o.clients)
	openErrs := make([]error, o.clients)
	var opened, done sync.WaitGroup
	dialing := make(chan struct{}, o.dialers)
	for i := range clients {
		c := &client{id: o.prefix + strconv.Itoa(i)}
		clients[i] = c
		dialing <- struct{}{}
		opened.Add(1)
		done.Go(func() {
			err := c.open(ctx, base)
			<-dialing
			openErrs[i] = err
			opened.Done()
			if err == nil {
				c.read(since, o.step)
			}
		})
	}
	opened.Wait()
	res.ConnectAll = since().Seconds()
	var live []*client
	for i, c := range clients {
		if openErrs[i] != nil {
			res.noteError(fmt.Errorf("open %s: %w", c.id, openErrs[i]))
			continue
		}
		live = append(live, c)
	}
	res.Connected = len(live)
	status := log.New(stderr, "", 0)
	status.Printf("%s: %d of %d streams open in %.2f s", o.label, len(live), o.clients, res.ConnectAll)

	var open memory
	var cpu0 time.Duration
	if o.pid != 0 {
		var err error
		if open, err = readMemory(o.pid); err != nil {
			return res, err
		}
		if cpu0, err = cpuTime(o.pid); err != nil {
			return res, err
		}
	}

	// Start the runs at the rate asked for, on kept-alive connections.
	runStart := since()
	hc := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: o.posters,
			MaxConnsPerHost:     o.posters,
		},
	}
	defer hc.CloseIdleConnections()
	progressURL := endpoint(base, "/event/progress").String()
	postErrs := make([]error, len(live))
	jobs := make(chan int)
	var posting sync.WaitGroup
	for range o.posters {
		posting.Go(func() {
			for i := range jobs {
				c := live[i]
				if postErrs[i] = c.start(ctx, hc, progressURL, since); postErrs[i] != nil {
					_ = c.conn.Close() // no run is coming: end the stream
				}
			}
		})
	}
	interval := time.Duration(float64(time.Second) / o.rate)
	for i := range live {
		time.Sleep(time.Until(t0.Add(runStart + time.Duration(i)*interval)))
		jobs <- i
	}
	close(jobs)
	posting.Wait()
	status.Printf("%s: %d runs started in %.2f s", o.label, len(live), (since() - runStart).Seconds())
	done.Wait()
	res.RunPhase = (since() - runStart).Seconds()

	if o.pid != 0 {
		cpu1, err := cpuTime(o.pid)
		if err != nil {
			return res, err
		}
		after, err := readMemory(o.pid)
		if err != nil {
			return res, err
		}
		res.serverUse(before, open, after, cpu1-cpu0)
	}
	for i, c := range live {
		if postErrs[i] != nil {
			res.noteError(postErrs[i])
		}
		if c.err != nil {
			res.noteError(fmt.Errorf("client %s: %w", c.id, c.err))
		}
	}
	res.summarize(live, o)
	return res, nil
}

// appendFile appends b to the file name, creating it if need be.
func appendFile(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	return errors.Join(err, f.Close())
}
