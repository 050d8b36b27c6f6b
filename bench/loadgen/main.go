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
//
// Given several URLs, instances of one server sharing their clients through
// Redis, it spreads the streams over them in turn and sends each client's
// POST to the instance after the one holding its stream, as a load balancer
// might. Given several pids (the instances and Redis), it adds up their
// memory and CPU time.
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
	"strings"
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
	urls    list
	clients int
	rate    float64
	dialers int
	posters int
	tick    time.Duration
	step    int
	pids    []int
	label   string
	prefix  string
	timeout time.Duration
	out     string
	report  string
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	o := options{
		urls: list{"http://127.0.0.1:3000"}, clients: 1000, rate: 1000, dialers: 64, posters: 32,
		tick: time.Second, step: 5, timeout: 10 * time.Minute,
		prefix: "lg" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-",
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&o.urls, "url", "the server's base `URL`, or the comma-separated URLs of its instances")
	fs.IntVar(&o.clients, "c", o.clients, "streams to open, each with one run")
	fs.Float64Var(&o.rate, "rate", o.rate, "runs started per second")
	fs.IntVar(&o.dialers, "dialers", o.dialers, "streams being opened at once")
	fs.IntVar(&o.posters, "posters", o.posters, "POSTs in flight at once, each on a kept-alive connection")
	fs.DurationVar(&o.tick, "tick", o.tick, "the server's tick, which the gaps between updates are measured against")
	fs.IntVar(&o.step, "step", o.step, "the server's count increment")
	fs.Func("pid", "the server's process id, or comma-separated ids to add up, for memory and CPU time (default: not measured)",
		func(s string) error {
			o.pids = nil
			for p := range strings.SplitSeq(s, ",") {
				n, err := strconv.Atoi(p)
				if err != nil || n <= 0 {
					return fmt.Errorf("%q is not a process id", p)
				}
				o.pids = append(o.pids, n)
			}
			return nil
		})
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

// list is a comma-separated flag value.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }

func (l *list) Set(s string) error {
	*l = strings.Split(s, ",")
	return nil
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

	bases := make([]*url.URL, len(o.urls))
	for i, u := range o.urls {
		base, err := url.Parse(u)
		if err != nil || base.Host == "" || base.Scheme != "http" {
			return fmt.Errorf("-url %q: want http://host:port", u)
		}
		bases[i] = base
	}
	if o.label == "" {
		o.label = bases[0].Host
	}
	if err := checkFileLimits(o); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := measure(ctx, o, bases, stderr)
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
// is known, can open a connection for each client. Each instance holds its
// share of the streams; -pid may name Redis too, which holds none.
func checkFileLimits(o options) error {
	limit, err := raiseFileLimit()
	if err != nil {
		return err
	}
	// A few more for the POSTs' connections, stdio and the runtime.
	if need := uint64(o.clients + o.posters + 16); limit < need {
		return fmt.Errorf("%d clients need %d open files and this process may open %d: raise the hard limit (ulimit -Hn)", o.clients, need, limit)
	}
	share := (o.clients + len(o.urls) - 1) / len(o.urls)
	for _, pid := range o.pids {
		limit, err = fileLimit(pid)
		if err != nil {
			return err
		}
		if need := uint64(share + 16); limit < need {
			return fmt.Errorf("%d streams need %d open files and the server (pid %d) may open %d", share, need, pid, limit)
		}
	}
	return nil
}

// readAll adds up the memory of the processes.
func readAll(pids []int) (memory, error) {
	var sum memory
	for _, pid := range pids {
		m, err := readMemory(pid)
		if err != nil {
			return sum, err
		}
		sum.RSS += m.RSS
		sum.Peak += m.Peak
	}
	return sum, nil
}

// cpuAll adds up the CPU time of the processes.
func cpuAll(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		d, err := cpuTime(pid)
		if err != nil {
			return sum, err
		}
		sum += d
	}
	return sum, nil
}

// measure opens the streams, starts the runs and reads every stream to its
// end, reading the server's memory and CPU time in between.
func measure(ctx context.Context, o options, bases []*url.URL, stderr io.Writer) (result, error) {
	res := newResult(o)
	t0 := time.Now()
	since := func() time.Duration { return time.Since(t0) }
	pids := o.pids

	var before memory
	if len(pids) > 0 {
		var err error
		if before, err = readAll(pids); err != nil {
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
		c := &client{id: o.prefix + strconv.Itoa(i), instance: i % len(bases)}
		clients[i] = c
		dialing <- struct{}{}
		opened.Add(1)
		done.Go(func() {
			err := c.open(ctx, bases[c.instance])
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
	if len(pids) > 0 {
		var err error
		if open, err = readAll(pids); err != nil {
			return res, err
		}
		if cpu0, err = cpuAll(pids); err != nil {
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
	// Each client's run is started through the next instance.
	progressURLs := make([]string, len(bases))
	for i := range bases {
		progressURLs[i] = endpoint(bases[(i+1)%len(bases)], "/event/progress").String()
	}
	postErrs := make([]error, len(live))
	jobs := make(chan int)
	var posting sync.WaitGroup
	for range o.posters {
		posting.Go(func() {
			for i := range jobs {
				c := live[i]
				if postErrs[i] = c.start(ctx, hc, progressURLs[c.instance], since); postErrs[i] != nil {
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
	var cpuPosted time.Duration // the runs started: what follows is ticks alone
	if len(pids) > 0 {
		var err error
		if cpuPosted, err = cpuAll(pids); err != nil {
			return res, err
		}
	}
	status.Printf("%s: %d runs started in %.2f s", o.label, len(live), (since() - runStart).Seconds())
	done.Wait()
	res.RunPhase = (since() - runStart).Seconds()

	if len(pids) > 0 {
		cpu1, err := cpuAll(pids)
		if err != nil {
			return res, err
		}
		after, err := readAll(pids)
		if err != nil {
			return res, err
		}
		res.serverUse(before, open, after, cpu1-cpu0, cpu1-cpuPosted)
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
