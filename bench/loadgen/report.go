package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// result is what one run of the generator measured. Times are in
// milliseconds unless the name says seconds; memory is in KiB.
type result struct {
	Label   string  `json:"label"`
	Machine string  `json:"machine"`
	Clients int     `json:"clients"`
	Rate    float64 `json:"rate"`
	TickMs  float64 `json:"tick_ms"`

	Connected    int     `json:"connected"`
	ConnectAll   float64 `json:"connect_all_s"`
	ConnectP50   float64 `json:"connect_p50_ms"`
	ConnectP99   float64 `json:"connect_p99_ms"`
	RSSIdle      int64   `json:"rss_idle_kb"`
	RSSOpen      int64   `json:"rss_open_kb"`
	RSSPeak      int64   `json:"rss_peak_kb"`
	RSSPerStream float64 `json:"rss_per_stream_kb"`
	RSSPeakPer   float64 `json:"rss_peak_per_stream_kb"`

	RunPhase float64 `json:"run_phase_s"`
	CPU      float64 `json:"cpu_s"`
	// CPUAfterPosts is the part of CPU after the last POST was answered:
	// the runs ticking and ending, no run starting.
	CPUAfterPosts float64  `json:"cpu_after_posts_s"`
	CPUPer1000    float64  `json:"cpu_per_1000_events_ms"`
	Runs          int      `json:"runs"`
	Expected      int      `json:"updates_expected"`
	Updates       int      `json:"updates"`
	OutOfOrder    int      `json:"out_of_order"`
	Duplicates    int      `json:"duplicates"`
	Foreign       int      `json:"foreign"`
	Closes        int      `json:"closes"`
	Heartbeats    int      `json:"heartbeats"`
	PostP50       float64  `json:"post_p50_ms"`
	PostP99       float64  `json:"post_p99_ms"`
	FirstP50      float64  `json:"first_update_p50_ms"`
	FirstP99      float64  `json:"first_update_p99_ms"`
	GapDevP50     float64  `json:"gap_dev_p50_ms"`
	GapDevP99     float64  `json:"gap_dev_p99_ms"`
	GapDevMax     float64  `json:"gap_dev_max_ms"`
	Errors        int      `json:"errors"`
	FirstErrors   []string `json:"first_errors,omitempty"`
	Complete      bool     `json:"complete"`

	// GapAfterPostsP99 is the p99 of the gaps that began after the last
	// POST was answered, as CPUAfterPosts is of the CPU time.
	GapAfterPostsP99 float64 `json:"gap_dev_after_posts_p99_ms"`
}

func newResult(o options) result {
	return result{
		Label:   o.label,
		Machine: machine(),
		Clients: o.clients,
		Rate:    o.rate,
		TickMs:  ms(o.tick),
	}
}

// noteError counts err and keeps the first few.
func (r *result) noteError(err error) {
	r.Errors++
	if len(r.FirstErrors) < 5 {
		r.FirstErrors = append(r.FirstErrors, err.Error())
	}
}

// serverUse records the server's memory before the streams were opened,
// with them open, and at the end, and its CPU time during the runs, and
// in the part of it after the last run had started.
func (r *result) serverUse(before, open, after memory, cpu, afterPosts time.Duration) {
	r.RSSIdle, r.RSSOpen, r.RSSPeak = before.RSS, open.RSS, after.Peak
	if r.Connected > 0 {
		r.RSSPerStream = float64(open.RSS-before.RSS) / float64(r.Connected)
		r.RSSPeakPer = float64(after.Peak-before.RSS) / float64(r.Connected)
	}
	r.CPU = cpu.Seconds()
	r.CPUAfterPosts = afterPosts.Seconds()
}

// summarize adds up what the clients saw.
func (r *result) summarize(clients []*client, o options) {
	perRun := 100/o.step + 1
	r.Expected = o.clients * perRun
	var connects, posts, firsts, devs, devsAfter []time.Duration
	var lastPost time.Duration // when the last run's POST was answered
	for _, c := range clients {
		if c.status == http.StatusAccepted {
			lastPost = max(lastPost, c.answered)
		}
	}
	for _, c := range clients {
		connects = append(connects, c.connect)
		if c.status == http.StatusAccepted {
			r.Runs++
			posts = append(posts, c.answered-c.posted)
			if c.arrived[0] != 0 {
				firsts = append(firsts, c.arrived[0]-c.posted)
			}
		}
		r.OutOfOrder += c.outOfOrder
		r.Duplicates += c.duplicates
		r.Foreign += c.foreign
		r.Heartbeats += c.heartbeats
		if c.closed {
			r.Closes++
		}
		for i, t := range c.arrived {
			if t == 0 {
				continue
			}
			r.Updates++
			if i > 0 && c.arrived[i-1] != 0 && t > c.arrived[i-1] {
				dev := (t - c.arrived[i-1] - o.tick).Abs()
				devs = append(devs, dev)
				if c.arrived[i-1] > lastPost {
					devsAfter = append(devsAfter, dev)
				}
			}
		}
	}
	r.ConnectP50, r.ConnectP99 = percentiles(connects)
	r.PostP50, r.PostP99 = percentiles(posts)
	r.FirstP50, r.FirstP99 = percentiles(firsts)
	r.GapDevP50, r.GapDevP99 = percentiles(devs)
	if len(devs) > 0 {
		r.GapDevMax = ms(slices.Max(devs))
	}
	_, r.GapAfterPostsP99 = percentiles(devsAfter)
	if events := r.Updates + r.Closes; events > 0 {
		r.CPUPer1000 = r.CPU * 1000 / (float64(events) / 1000) // ms per 1,000 events
	}
	r.Complete = r.Errors == 0 && r.Connected == r.Clients && r.Runs == r.Clients &&
		r.Updates == r.Expected && r.OutOfOrder == 0 && r.Duplicates == 0 &&
		r.Foreign == 0 && r.Closes == r.Clients
}

// percentiles returns the median and the 99th percentile of ds, in ms.
func percentiles(ds []time.Duration) (p50, p99 float64) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		return ms(ds[max(i, 0)])
	}
	return at(0.50), at(0.99)
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r result) jsonLine() ([]byte, error) {
	b, err := json.Marshal(r)
	return append(b, '\n'), err
}

// readResults reads a file of JSON lines written with -out.
func readResults(name string) ([]result, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var results []result
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		results = append(results, r)
	}
	return results, sc.Err()
}

// rows are the lines of the table: a name, and the cell of a result.
var rows = []struct {
	name string
	cell func(r result) string
}{
	{"clients (streams, runs)", func(r result) string { return fmt.Sprintf("%d", r.Clients) }},
	{"runs started per second", func(r result) string { return fmt.Sprintf("%g", r.Rate) }},
	{"tick", func(r result) string { return fmt.Sprintf("%g ms", r.TickMs) }},
	{"connect, all streams", func(r result) string { return fmt.Sprintf("%.2f s", r.ConnectAll) }},
	{"connect p50 / p99", func(r result) string { return fmt.Sprintf("%.2f / %.2f ms", r.ConnectP50, r.ConnectP99) }},
	{"server RSS idle / open / peak", func(r result) string {
		return fmt.Sprintf("%s / %s / %s", mib(r.RSSIdle), mib(r.RSSOpen), mib(r.RSSPeak))
	}},
	{"RSS per stream, open / peak", func(r result) string {
		return fmt.Sprintf("%.1f / %.1f KiB", r.RSSPerStream, r.RSSPeakPer)
	}},
	{"run phase", func(r result) string { return fmt.Sprintf("%.1f s", r.RunPhase) }},
	{"server CPU, run phase", func(r result) string { return fmt.Sprintf("%.2f s", r.CPU) }},
	{"server CPU, after the POSTs", func(r result) string { return fmt.Sprintf("%.2f s", r.CPUAfterPosts) }},
	{"server CPU per 1,000 events", func(r result) string { return fmt.Sprintf("%.1f ms", r.CPUPer1000) }},
	{"updates received / expected", func(r result) string { return fmt.Sprintf("%d / %d", r.Updates, r.Expected) }},
	{"out of order / duplicates", func(r result) string { return fmt.Sprintf("%d / %d", r.OutOfOrder, r.Duplicates) }},
	{"runs ended by close", func(r result) string { return fmt.Sprintf("%d / %d", r.Closes, r.Runs) }},
	{"POST answered p50 / p99", func(r result) string { return fmt.Sprintf("%.2f / %.2f ms", r.PostP50, r.PostP99) }},
	{"first update p50 / p99", func(r result) string { return fmt.Sprintf("%.2f / %.2f ms", r.FirstP50, r.FirstP99) }},
	{"gap - tick p50 / p99 / max", func(r result) string {
		return fmt.Sprintf("%.3f / %.3f / %.3f ms", r.GapDevP50, r.GapDevP99, r.GapDevMax)
	}},
	{"gap - tick p99, after the POSTs", func(r result) string { return fmt.Sprintf("%.3f ms", r.GapAfterPostsP99) }},
	{"errors", func(r result) string { return fmt.Sprintf("%d", r.Errors) }},
	{"complete", func(r result) string {
		if r.Complete {
			return "yes"
		}
		return "NO"
	}},
}

// printTable writes the results side by side, one column each, then the
// errors they noted and the machine they ran on.
func printTable(w io.Writer, results []result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var err error
	line := func(cells []string) {
		if err == nil {
			_, err = fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
	}
	header := []string{""}
	for _, r := range results {
		header = append(header, r.Label)
	}
	line(header)
	for _, row := range rows {
		cells := []string{row.name}
		for _, r := range results {
			cells = append(cells, row.cell(r))
		}
		line(cells)
	}
	if err != nil {
		return err
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	var notes []string
	machines := map[string]bool{}
	for _, r := range results {
		for _, e := range r.FirstErrors {
			notes = append(notes, r.Label+": "+e)
		}
		if !machines[r.Machine] {
			machines[r.Machine] = true
			notes = append(notes, "machine: "+r.Machine)
		}
	}
	_, err = io.WriteString(w, strings.Join(notes, "\n")+"\n")
	return err
}

// mib formats KiB as MiB.
func mib(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

// machine describes this machine: its processor, cores and kernel. The
// cores are counted in /proc/cpuinfo, since runtime.NumCPU counts only those
// the process may run on, one under taskset.
func machine() string {
	model, cores := "unknown processor", 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			name, value, _ := strings.Cut(line, ":")
			switch strings.TrimSpace(name) {
			case "processor":
				cores++
			case "model name":
				model = strings.TrimSpace(value)
			}
		}
	}
	kernel := runtime.GOOS
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel += " " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores, %s, %s", model, cores, kernel, runtime.Version())
}
