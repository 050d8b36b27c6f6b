// Command soak runs the server under faults for a while and says whether
// any count was lost or repeated: a real redis-server, three instances
// sharing it, a fault-injecting proxy in front of each, and hundreds of
// clients doing runs back to back through the proxies, as browsers do.
// Meanwhile connections are cut at random, the proxies add latency and cap
// bandwidth, an instance is stopped with SIGTERM and started again, one is
// killed with SIGKILL, and Redis is paused. The first instance is never
// restarted: its memory and goroutines show whether anything grows.
//
//	make soak                 # 5 minutes
//	make soak DURATION=30s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// options are the soak's flags.
type options struct {
	bin       string
	duration  time.Duration
	clients   int
	instances int
	tick      time.Duration
	out       string
	logLevel  string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bin, "bin", "bin/gin-sse-progress", "the server `binary`")
	fs.DurationVar(&o.duration, "duration", 5*time.Minute, "how long faults go on; then the runs in flight finish")
	fs.IntVar(&o.clients, "clients", 200, "concurrent clients, each doing runs back to back")
	fs.IntVar(&o.instances, "instances", 3, "server instances")
	fs.DurationVar(&o.tick, "tick", 50*time.Millisecond, "the servers' tick")
	fs.StringVar(&o.out, "out", "", "append the JSON result to this `file`")
	fs.StringVar(&o.logLevel, "log-level", "info", "the instances' -log-level")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if o.instances < 2 {
		return errors.New("-instances: at least 2, so that runs have somewhere to move")
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "soak-")
	if err != nil {
		return err
	}
	keepLogs := false // when a target is missed, the logs stay to be read
	defer func() {
		if !keepLogs {
			_ = os.RemoveAll(dir)
		}
	}()
	redis, err := startRedis(ctx, dir)
	if err != nil {
		return err
	}
	defer redis.stop()

	var instances []*instance
	var proxies []*proxy
	var urls []string
	for i := range o.instances {
		in, err := newInstance(ctx, string(rune('a'+i)), o.bin, dir, []string{
			"-redis", redis.url(), "-tick", o.tick.String(), "-retry", "200ms", "-grace", "5m",
			"-heartbeat", "2s", "-write-timeout", "5s", "-max-streams", "100000", "-log-level", o.logLevel,
		})
		if err != nil {
			return err
		}
		if err := in.start(ctx); err != nil {
			return err
		}
		defer func() { _ = in.stop(syscall.SIGTERM) }()
		p, err := newProxy(ctx, in.addr)
		if err != nil {
			return err
		}
		defer p.close()
		instances, proxies, urls = append(instances, in), append(proxies, p), append(urls, "http://"+p.addr())
	}
	status := log.New(stderr, "soak: ", 0)
	status.Printf("%d instances on %s, %d clients, faults for %s; logs in %s",
		o.instances, redis.addr(), o.clients, o.duration, dir)

	// Clients share a transport with room for a stream and a POST each.
	transport := &http.Transport{MaxIdleConnsPerHost: 2 * o.clients, DisableCompression: true}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport}
	t := &tally{gaps: map[string]int{}, stuckWhy: map[string]int{}, trails: map[string][]string{}, countsWrong: map[string]string{}}
	faultCtx, endFaults := context.WithTimeout(ctx, o.duration)
	defer endFaults()
	drainCtx, endDrain := context.WithTimeout(ctx, o.duration+stuckAfter+15*time.Second)
	defer endDrain()

	atStart := make([]sample, len(instances)) // before any client
	for i, in := range instances {
		atStart[i] = takeSample(ctx, in)
	}
	var clients sync.WaitGroup
	for i := range o.clients {
		c := &client{id: clientID(i), urls: urls, next: i, http: hc, step: 5, retry: 200 * time.Millisecond, t: t,
			post: i%2 == 1}
		clients.Go(func() { c.live(faultCtx, drainCtx) })
	}

	kept := instances[0]
	// The kept instance's goroutines and memory, every half second while
	// the faults go on: the first and the last fifth of those, past a
	// warm-up, are compared.
	var series []sample
	var samples sync.WaitGroup
	samples.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-faultCtx.Done():
				return
			case <-t.C:
				series = append(series, takeSample(ctx, kept))
			}
		}
	})
	f := &faults{}
	f.schedule(faultCtx, o, instances[1:], proxies, redis)
	samples.Wait()
	clients.Wait()
	transport.CloseIdleConnections()
	time.Sleep(3 * time.Second) // the streams' ends reach the instances
	first, last := windows(series)

	res := result{
		Duration: o.duration.String(), Clients: o.clients, Instances: o.instances, Tick: o.tick.String(),
		RunsStarted: t.runsStarted, PostRuns: t.postRuns, RunsDone: t.runsDone, RunsStuck: t.runsStuck, RunsLost: t.runsLost,
		Updates: t.updates, UpdatesExpected: 21 * t.runsDone, Duplicates: t.duplicates, OutOfOrder: t.outOfOrder,
		Gaps: t.gaps, SilentLosses: t.silentLosses, LongestStallMS: float64(t.longestStall) / 1e6,
		Reconnects: t.reconnects, Replays: t.replays, Faults: f.counts(),
		KeptGoroutines: [2]float64{first.goroutines, last.goroutines}, KeptRSSMiB: [2]float64{first.rss / (1 << 20), last.rss / (1 << 20)},
		KeptRuns: [2]float64{first.runs, last.runs},
		StuckWhy: t.stuckWhy, Errors: map[string]map[string]int{},
	}
	for i, in := range instances {
		if e := in.logs.errors(); len(e) > 0 {
			res.Errors[in.name] = e
		}
		end := takeSample(ctx, in)
		res.Each = append(res.Each, instanceReport{Name: in.name, Started: in.started(),
			Goroutines: [2]float64{atStart[i].goroutines, end.goroutines},
			RSSMiB:     [2]float64{atStart[i].rss / (1 << 20), end.rss / (1 << 20)}})
	}
	res.KeptIdleGoroutines = res.Each[0].Goroutines
	res.Missed = res.targets()
	trail := func(id string) { // the client's last requests
		for _, line := range t.trails[id] {
			status.Print("   ", line)
		}
	}
	for who := range t.stuckWhy { // what Redis holds for a stuck client, to read
		id, _, _ := strings.Cut(who, ":")
		status.Printf("stuck %s: hash %s; claim %s (ttl %s ms); index %s", id,
			redis.do(ctx, "HGETALL", "sse:{"+id+"}"), redis.do(ctx, "GET", "sse:{"+id+"}:run"),
			redis.do(ctx, "PTTL", "sse:{"+id+"}:run"), redis.do(ctx, "ZSCAN", "sse:runs", "0", "MATCH", "* "+id, "COUNT", "100000"))
		trail(id)
	}
	for id, what := range t.countsWrong { // a silent loss or a duplicate
		status.Printf("%s: %s", id, what)
		trail(id)
	}
	line, _ := json.Marshal(res) // plain fields: cannot fail
	if _, err := io.WriteString(stdout, res.table()+string(line)+"\n"); err != nil {
		return err
	}
	if o.out != "" {
		if err := appendLine(o.out, line); err != nil {
			return err
		}
	}
	if len(res.Missed) > 0 {
		keepLogs = true
		return fmt.Errorf("targets missed: %s; the instances' logs are in %s", strings.Join(res.Missed, "; "), dir)
	}
	return nil
}

// sample is an instance's goroutines, the runs it owns and its resident
// memory. Neither an idle stream nor a run waiting for its next step holds
// a goroutine, so goroutines that grow show a leak under load.
type sample struct{ goroutines, runs, rss float64 }

// windows returns the medians of the first and the last fifth of series,
// the first past a warm-up of a tenth.
func windows(series []sample) (first, last sample) {
	n := len(series)
	if n < 10 {
		return sample{}, sample{}
	}
	w := n / 5
	return median(series[n/10 : n/10+w]), median(series[n-w:])
}

func median(s []sample) sample {
	of := func(f func(sample) float64) float64 {
		v := make([]float64, len(s))
		for i, x := range s {
			v[i] = f(x)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return sample{
		goroutines: of(func(x sample) float64 { return x.goroutines }),
		runs:       of(func(x sample) float64 { return x.runs }),
		rss:        of(func(x sample) float64 { return x.rss }),
	}
}

func takeSample(ctx context.Context, in *instance) sample {
	g, rss, _ := in.sample(ctx)
	runs, _ := in.runs(ctx)
	return sample{goroutines: g, runs: runs, rss: rss}
}

// faults switches faults on and off on a schedule until ctx is done.
type faults struct {
	mu                                             sync.Mutex
	cuts, terms, kills, pauses, latency, bandwidth int
	longPauses                                     int
}

// Redis is paused for pauseShort and pauseLong in turn: within the Redis
// client's read timeout (5 s), the appends waiting wait it out; past it,
// they fail, and their runs stop and are handed over.
const pauseShort, pauseLong = 3 * time.Second, 6 * time.Second

func (f *faults) add(n *int) {
	f.mu.Lock()
	*n++
	f.mu.Unlock()
}

func (f *faults) counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return map[string]int{"connections cut": f.cuts, "SIGTERM and restart": f.terms, "SIGKILL and restart": f.kills,
		fmt.Sprintf("Redis paused %g s", pauseShort.Seconds()): f.pauses,
		fmt.Sprintf("Redis paused %g s", pauseLong.Seconds()):  f.longPauses,
		"latency 50 ms, 5 s": f.latency, "bandwidth 16 KB/s, 5 s": f.bandwidth}
}

// schedule runs the faults: a cut a second per hundred clients, a SIGTERM
// every 30 s, a SIGKILL every 60 s, a pause of Redis every 60 s (3 s and
// 6 s in turn), and a toxic on a proxy every 20 s (each shorter in a
// shorter soak, so that each happens). The instances it stops are
// restart, which are never the kept one. It returns once every fault has
// been undone.
func (f *faults) schedule(ctx context.Context, o options, restart []*instance, proxies []*proxy, redis *redisServer) {
	every := func(d time.Duration) time.Duration { return min(d, o.duration/3) }
	termEvery, killEvery, pauseEvery, toxicEvery := every(30*time.Second), every(60*time.Second), every(60*time.Second), every(20*time.Second)
	var wg sync.WaitGroup
	busy := make([]sync.Mutex, len(restart)) // one lifecycle at a time per instance
	// cycle stops an instance with sig and starts it again after down: the
	// i-th, or if it is in the middle of another cycle, the next free one
	// (a SIGKILL due with a SIGTERM goes to another instance). The counts
	// are taken here, on the scheduler's goroutine; the cycle runs on its
	// own.
	cycle := func(i int, sig syscall.Signal, down time.Duration, n *int) {
		for tries := 0; !busy[i%len(restart)].TryLock(); i++ {
			if tries++; tries == len(restart) {
				return // all busy
			}
		}
		i %= len(restart)
		f.add(n)
		wg.Go(func() {
			defer busy[i].Unlock()
			_ = restart[i].stop(sig)
			time.Sleep(down)
			_ = restart[i].start(context.Background())
		})
	}
	start := time.Now()
	next := map[string]time.Duration{"term": termEvery / 3, "kill": killEvery * 2 / 3, "pause": pauseEvery / 2, "toxic": toxicEvery / 4}
	cutEvery := time.Second / time.Duration(max(1, o.clients/100))
	tick := time.NewTicker(cutEvery)
	defer tick.Stop()
	k := 0
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			for _, p := range proxies {
				p.setLatency(0)
				p.setRate(0)
			}
			return
		case <-tick.C:
		}
		if proxies[k%len(proxies)].reset() {
			f.add(&f.cuts)
		}
		k++
		now := time.Since(start)
		if now >= next["term"] {
			next["term"] += termEvery
			cycle(f.terms%len(restart), syscall.SIGTERM, 0, &f.terms)
		}
		if now >= next["kill"] {
			next["kill"] += killEvery
			cycle((f.kills+1)%len(restart), syscall.SIGKILL, time.Second, &f.kills)
		}
		if now >= next["pause"] {
			next["pause"] += pauseEvery
			n, pause := &f.pauses, pauseShort
			if f.pauses > f.longPauses {
				n, pause = &f.longPauses, pauseLong
			}
			f.add(n)
			wg.Go(func() {
				redis.pause()
				time.Sleep(pause)
				redis.resume()
			})
		}
		if now >= next["toxic"] {
			next["toxic"] += toxicEvery
			p := proxies[(f.latency+f.bandwidth)%len(proxies)]
			bw := (f.latency+f.bandwidth)%2 == 1
			if bw {
				f.add(&f.bandwidth)
			} else {
				f.add(&f.latency)
			}
			wg.Go(func() {
				if bw {
					p.setRate(16 << 10)
				} else {
					p.setLatency(50 * time.Millisecond)
				}
				time.Sleep(5 * time.Second)
				p.setRate(0)
				p.setLatency(0)
			})
		}
	}
}

// result is what a soak found: the JSON line of its report.
type result struct {
	Duration        string         `json:"duration"`
	Clients         int            `json:"clients"`
	Instances       int            `json:"instances"`
	Tick            string         `json:"tick"`
	RunsStarted     int            `json:"runs_started"`
	PostRuns        int            `json:"runs_read_from_their_post"`
	RunsDone        int            `json:"runs_completed"`
	RunsStuck       int            `json:"runs_stuck"`
	RunsLost        int            `json:"runs_lost"`
	Updates         int            `json:"updates_received"`
	UpdatesExpected int            `json:"updates_expected"`
	Duplicates      int            `json:"duplicates"`
	OutOfOrder      int            `json:"out_of_order"`
	Gaps            map[string]int `json:"gaps"`
	SilentLosses    int            `json:"silent_losses"`
	LongestStallMS  float64        `json:"longest_stall_ms"`
	Reconnects      int            `json:"reconnects"`
	Replays         int            `json:"replays"`
	Faults          map[string]int `json:"faults"`
	KeptGoroutines  [2]float64     `json:"kept_goroutines"`
	KeptRSSMiB      [2]float64     `json:"kept_rss_mib"`
	// KeptRuns are the runs the kept instance owns, in the same windows:
	// they move with the restarts of the others.
	KeptRuns [2]float64 `json:"kept_runs"`
	// KeptIdleGoroutines are the kept instance's goroutines before the
	// clients came and after they left: a leak shows there.
	KeptIdleGoroutines [2]float64 `json:"kept_idle_goroutines"`
	// Each is every instance at the start and at the end, idle both times;
	// a restarted one is its last process at the end.
	Each     []instanceReport          `json:"instances_idle"`
	StuckWhy map[string]int            `json:"stuck_why,omitempty"`
	Errors   map[string]map[string]int `json:"errors_logged"`
	Missed   []string                  `json:"targets_missed"`
}

// instanceReport is an instance, idle, at the soak's start and its end.
type instanceReport struct {
	Name       string     `json:"name"`
	Started    int        `json:"started"` // times: 1 for the kept one
	Goroutines [2]float64 `json:"goroutines"`
	RSSMiB     [2]float64 `json:"rss_mib"`
}

// targets lists the targets the result misses.
func (r result) targets() []string {
	var missed []string
	check := func(ok bool, what string) {
		if !ok {
			missed = append(missed, what)
		}
	}
	for _, fault := range slices.Sorted(maps.Keys(r.Faults)) {
		check(r.Faults[fault] > 0, "no "+fault)
	}
	check(r.Duplicates == 0, "duplicates")
	check(r.OutOfOrder == 0, "out of order")
	check(r.SilentLosses == 0, "silent losses")
	check(r.RunsStarted > 0 && r.RunsDone == r.RunsStarted, "every run completes")
	check(r.Updates >= r.UpdatesExpected, "every update of a completed run")
	// Flat: the kept instance, under the same load at both samples, grows
	// by no more than noise.
	check(r.KeptRSSMiB[1] <= r.KeptRSSMiB[0]*1.25+2, "RSS flat")
	check(r.KeptGoroutines[1] <= r.KeptGoroutines[0]*1.25+20, "goroutines flat")
	check(r.KeptIdleGoroutines[1] <= r.KeptIdleGoroutines[0]+5, "no goroutine left behind")
	return missed
}

// table is the result as a table, a row a line.
func (r result) table() string {
	var w strings.Builder
	row := func(name, format string, a ...any) {
		fmt.Fprintf(&w, "%-32s "+format+"\n", append([]any{name}, a...)...)
	}
	row("soak", "%s, %d clients, %d instances, tick %s", r.Duration, r.Clients, r.Instances, r.Tick)
	row("runs started / completed", "%d / %d (%d read from their POST)", r.RunsStarted, r.RunsDone, r.PostRuns)
	row("runs stuck / lost", "%d / %d", r.RunsStuck, r.RunsLost)
	row("updates received / of completed", "%d / %d", r.Updates, r.UpdatesExpected)
	row("duplicates / out of order", "%d / %d", r.Duplicates, r.OutOfOrder)
	row("silent losses", "%d", r.SilentLosses)
	row("gaps, by reason", "%s", sorted(r.Gaps))
	row("longest stall", "%.0f ms", r.LongestStallMS)
	row("reconnects / replays", "%d / %d", r.Reconnects, r.Replays)
	row("faults", "%s", sorted(r.Faults))
	row("kept instance: goroutines", "%.0f → %.0f (first and last fifth, medians); idle %.0f → %.0f",
		r.KeptGoroutines[0], r.KeptGoroutines[1], r.KeptIdleGoroutines[0], r.KeptIdleGoroutines[1])
	row("kept instance: runs owned", "%.0f → %.0f", r.KeptRuns[0], r.KeptRuns[1])
	row("kept instance: RSS", "%.1f → %.1f MiB (first and last fifth, medians)", r.KeptRSSMiB[0], r.KeptRSSMiB[1])
	for _, in := range r.Each {
		row("instance "+in.Name+", idle: start → end", "%.0f → %.0f goroutines, %.1f → %.1f MiB RSS, started %d×",
			in.Goroutines[0], in.Goroutines[1], in.RSSMiB[0], in.RSSMiB[1], in.Started)
	}
	if len(r.StuckWhy) > 0 {
		row("stuck runs", "%s", sorted(r.StuckWhy))
	}
	for name, errs := range r.Errors {
		row("errors logged by "+name, "%s", sorted(errs))
	}
	if len(r.Missed) == 0 {
		row("targets", "met")
	} else {
		row("targets", "MISSED: %s", strings.Join(r.Missed, "; "))
	}
	return w.String()
}

func sorted(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func appendLine(path string, line []byte) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
