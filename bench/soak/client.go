package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"gin-sse-progress/sse/ssetest"
)

// tally is what the clients saw, added up.
type tally struct {
	mu           sync.Mutex
	runsStarted  int
	postRuns     int // of those, read from the POST that started them
	runsDone     int
	runsStuck    int                 // runs abandoned
	stuckWhy     map[string]int      // why they were
	trails       map[string][]string // the stuck clients' last requests
	updates      int                 // received, once each
	duplicates   int
	outOfOrder   int
	gaps         map[string]int    // by reason
	silentLosses int               // counts missing with no gap before them
	countsWrong  map[string]string // the clients that lost or repeated a count: which
	longestStall time.Duration     // between two events of a run
	reconnects   int
	replays      int // events of a finished run shown again to a fresh stream
	runsLost     int // runs that ended with a final gap
}

// stuckAfter is how long a run may go without an event before the client
// gives up on it: past the lease of a crashed owner, and a Redis pause.
const stuckAfter = 45 * time.Second

// client is a browser: one id, its runs back to back, each read through a
// proxy that a round robin picks, reconnecting with Last-Event-ID as
// EventSource does, and starting each run through any instance. A post
// client reads each run from the POST that starts it, and retries that
// POST with Last-Event-ID, as fetch-event-source does.
type client struct {
	id    string
	urls  []string // the proxies
	next  int
	http  *http.Client
	step  int
	retry time.Duration
	t     *tally
	post  bool

	lastID string // the Last-Event-ID a reconnect sends
	doneID int    // the id of the last run's close: a fresh stream may replay up to it

	trail []string // the client's last requests and their answers, for a stuck run's report
}

// note adds what a request through proxy i got to the client's trail.
func (c *client) note(i int, what string, resp *http.Response, err error) {
	answer := "error: " + fmt.Sprint(err)
	if err == nil {
		answer = strconv.Itoa(resp.StatusCode)
	}
	if len(c.trail) == 12 {
		c.trail = c.trail[1:]
	}
	c.trail = append(c.trail, fmt.Sprintf("%s %s via %c: %s", time.Now().Format("15:04:05.000"), what, 'a'+i, answer))
}

func (c *client) stuck(why string) {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	c.t.runsStuck++
	c.t.stuckWhy[c.id+": "+why]++
	c.t.trails[c.id] = c.trail
}

// pick returns the next proxy's URL and its index.
func (c *client) pick() (string, int) {
	i := c.next % len(c.urls)
	c.next++
	return c.urls[i], i
}

// live does runs until ctx is done, then finishes the run it is in, for up
// to drain.
func (c *client) live(ctx, drain context.Context) {
	for ctx.Err() == nil {
		c.run(drain)
	}
}

// run is one run: a stream, the POST that starts the run, and every event
// to the close, across any number of cuts.
func (c *client) run(ctx context.Context) {
	st, ok := c.connect(ctx, false)
	if !ok || st == nil {
		return
	}
	if !c.post && !c.start(ctx) {
		st.close()
		return
	}
	c.t.mu.Lock()
	c.t.runsStarted++
	if c.post {
		c.t.postRuns++
	}
	c.t.mu.Unlock()

	want := 0                // the next count
	gapSince := false        // a gap came since the last update
	prevID := ""             // the id of the event before this one
	seen := map[int]string{} // the id of each count's event
	last := time.Now()
	for {
		ev, err := st.next(stuckAfter)
		if err != nil {
			if errors.Is(err, errStuck) || ctx.Err() != nil {
				why := "no event for " + stuckAfter.String()
				if ctx.Err() != nil {
					why = "the drain ran out"
				}
				c.stuck(why + ", after " + c.lastID)
				st.close()
				return
			}
			// The stream ended without close: reconnect, after the retry.
			st.close()
			time.Sleep(c.retry)
			c.t.mu.Lock()
			c.t.reconnects++
			c.t.mu.Unlock()
			if st, ok = c.connect(ctx, true); !ok {
				c.stuck("no instance took the reconnect before the drain ran out")
				return
			}
			if st == nil { // 204: the run is over; it ended with a final gap
				c.t.mu.Lock()
				c.t.runsLost++
				c.t.mu.Unlock()
				c.doneID, _ = strconv.Atoi(c.lastID)
				return
			}
			continue
		}
		if id, err := strconv.Atoi(ev.ID); err == nil && id <= c.doneID {
			// A fresh stream is shown the last run again when the server
			// could not record that it was delivered (best effort, and
			// faults are on): events before this run, not of it.
			c.t.mu.Lock()
			c.t.replays++
			c.t.mu.Unlock()
			continue
		}
		now := time.Now()
		stall := now.Sub(last)
		last = now
		c.t.mu.Lock()
		c.t.longestStall = max(c.t.longestStall, stall)
		switch ev.Type {
		case "gap":
			var d struct{ Reason string }
			_ = json.Unmarshal([]byte(ev.Data), &d)
			c.t.gaps[d.Reason]++
			gapSince = true
		case "update":
			var d struct{ Count int }
			_ = json.Unmarshal([]byte(ev.Data), &d)
			first, again := seen[d.Count]
			switch {
			case again:
				c.t.duplicates++
				c.countWrong(fmt.Sprintf("update %d came again as event %s, first as event %s", d.Count, ev.ID, first))
			case d.Count < want:
				c.t.outOfOrder++
			default:
				if d.Count > want && !gapSince {
					c.t.silentLosses += (d.Count - want) / c.step
					c.countWrong(fmt.Sprintf("update %d came after event %s, which %d should have followed", d.Count, prevID, want))
				}
				seen[d.Count] = ev.ID
				c.t.updates++
				want = d.Count + c.step
				gapSince = false
			}
		case "close":
			if want <= 100 && !gapSince {
				c.t.silentLosses += (100-want)/c.step + 1
				c.countWrong(fmt.Sprintf("close came after event %s, which update %d should have followed", prevID, want))
			}
			c.t.runsDone++
			c.t.mu.Unlock()
			c.doneID, _ = strconv.Atoi(ev.ID)
			st.close()
			return
		}
		c.t.mu.Unlock()
		prevID = ev.ID
	}
}

// countWrong records what a silent loss or a duplicate was, and the client's
// trail, for the report; c.t.mu is held.
func (c *client) countWrong(what string) {
	c.t.countsWrong[c.id] = what
	c.t.trails[c.id] = c.trail
}

// open opens the client's stream through the next proxy, resuming after
// lastID if resume is set, and tries the next while an instance refuses.
// It returns nil and true for a 204: nothing left to send.
func (c *client) open(ctx context.Context, resume bool) (*stream, bool) {
	return c.dial(ctx, "GET after "+c.lastID, func(u string) *http.Request {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/event/push?id="+c.id, nil)
		if resume && c.lastID != "" {
			req.Header.Set("Last-Event-ID", c.lastID)
		}
		return req
	})
}

// dial sends the request that build makes for the next proxy's URL, and
// tries the next while an instance refuses, until one answers with a
// stream, or with 204: nil and true, nothing left to send.
func (c *client) dial(ctx context.Context, what string, build func(u string) *http.Request) (*stream, bool) {
	for ctx.Err() == nil {
		u, i := c.pick()
		resp, err := c.http.Do(build(u))
		c.note(i, what, resp, err)
		if err == nil {
			switch resp.StatusCode {
			case http.StatusOK:
				return &stream{c: c, resp: resp, r: ssetest.NewReader(resp.Body)}, true
			case http.StatusNoContent:
				_ = resp.Body.Close()
				return nil, true
			}
			_ = resp.Body.Close()
		}
		time.Sleep(c.retry) // refused, or down: the browser waits, then tries again
	}
	return nil, false
}

// start POSTs the run through the next proxy, until an instance takes it.
// A 409 is a POST whose answer was lost on its way: the run goes.
func (c *client) start(ctx context.Context) bool {
	for ctx.Err() == nil {
		u, i := c.pick()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u+"/event/progress",
			strings.NewReader(`{"id":"`+c.id+`"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.http.Do(req)
		c.note(i, "POST", resp, err)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusConflict {
				return true
			}
		}
		time.Sleep(c.retry)
	}
	return false
}

// connect opens the client's stream as it reads its runs: a GET, or for a
// post client the POST that starts (or, with resume, resumes) the run.
func (c *client) connect(ctx context.Context, resume bool) (*stream, bool) {
	if c.post {
		return c.postStream(ctx, resume)
	}
	return c.open(ctx, resume)
}

// postStream POSTs the client's run through the next proxy with Accept:
// text/event-stream, resuming after lastID if resume is set, and tries the
// next while an instance refuses. A 409 without Last-Event-ID is a run
// started by a POST whose answer was lost: it is let finish, unread, and
// the next POST starts the next one. It returns nil and true for a 204.
func (c *client) postStream(ctx context.Context, resume bool) (*stream, bool) {
	resume = resume && c.lastID != ""
	what := "POST stream"
	if resume {
		what += " after " + c.lastID
	}
	return c.dial(ctx, what, func(u string) *http.Request {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u+"/event/progress",
			strings.NewReader(`{"id":"`+c.id+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		if resume {
			req.Header.Set("Last-Event-ID", c.lastID)
		}
		return req
	})
}

var errStuck = errors.New("no event for too long")

// stream is an open stream of a client.
type stream struct {
	c    *client
	resp *http.Response
	r    *ssetest.Reader
}

// next returns the next event, or errStuck if none comes within wait.
func (s *stream) next(wait time.Duration) (ssetest.Event, error) {
	type result struct {
		ev  ssetest.Event
		err error
	}
	got := make(chan result, 1)
	go func() {
		ev, err := s.r.Next()
		got <- result{ev, err}
	}()
	select {
	case res := <-got:
		if res.err == nil && res.ev.ID != "" {
			s.c.lastID = res.ev.ID
		}
		return res.ev, res.err
	case <-time.After(wait):
		_ = s.resp.Body.Close() // ends the read above
		<-got
		return ssetest.Event{}, fmt.Errorf("%w: %s", errStuck, wait)
	}
}

func (s *stream) close() { _ = s.resp.Body.Close() }

func clientID(i int) string { return "soak-" + strconv.Itoa(i) }
