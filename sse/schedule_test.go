package sse_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
)

// goRun runs fn as a registry does and returns a channel closed once the
// run is over.
func goRun(ctx context.Context, fn sse.RunFunc) <-chan struct{} {
	return goRunOf(ctx, newRun(), fn)
}

func newRun() *sse.Run { return sse.NewRun(func(string, string, bool) error { return nil }) }

func goRunOf(ctx context.Context, r *sse.Run, fn sse.RunFunc) <-chan struct{} {
	ended := make(chan struct{})
	r.Go(ctx, fn, func() { close(ended) })
	return ended
}

func waitEnded(t *testing.T, ended <-chan struct{}, why string) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the run did not end", why)
	}
}

// everies are a run's steps on both paths: a goroutine and a ticker per
// run, and a Schedule.
func everies(t *testing.T) map[string]func(time.Duration, sse.StepFunc) sse.RunFunc {
	s := sse.NewSchedule()
	t.Cleanup(s.Close)
	return map[string]func(time.Duration, sse.StepFunc) sse.RunFunc{"goroutine": sse.Every, "schedule": s.Every}
}

// TestEverySteps: steps are numbered from 0, a tick apart at least, until
// one says it is the last.
func TestEverySteps(t *testing.T) {
	for name, every := range everies(t) {
		t.Run(name, func(t *testing.T) {
			const tick = 5 * time.Millisecond
			var seen []int
			var at []time.Time
			ended := goRun(t.Context(), every(tick, func(_ *sse.Run, n int) bool {
				seen, at = append(seen, n), append(at, time.Now())
				return n < 4
			}))
			waitEnded(t, ended, "steps")
			if len(seen) != 5 {
				t.Fatalf("steps %v, want 0 to 4", seen)
			}
			for i, n := range seen {
				if n != i {
					t.Fatalf("steps %v, want 0 to 4", seen)
				}
			}
			// A ticker's ticks keep their phase: each is due a tick after
			// the last was due, whenever that one ran.
			if total := at[4].Sub(at[0]); total < 4*tick-time.Millisecond {
				t.Errorf("5 steps in %v, want at least %v", total, 4*tick)
			}
		})
	}
}

// TestEveryStops: a run waiting for its next step ends as soon as its
// context is done, and takes no step after.
func TestEveryStops(t *testing.T) {
	for name, every := range everies(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			steps := make(chan int, 10)
			ended := goRun(ctx, every(time.Hour, func(_ *sse.Run, n int) bool {
				steps <- n
				return true
			}))
			<-steps
			cancel()
			waitEnded(t, ended, "cancel")
			if len(steps) > 0 {
				t.Errorf("a step after the cancel")
			}
		})
	}
}

// TestScheduleWaitingStepHoldsNoOneUp: the step of a run whose Send waits
// on a store (Run.Waiting) runs on a goroutine of its own, and the other
// runs' steps go on meanwhile.
func TestScheduleWaitingStepHoldsNoOneUp(t *testing.T) {
	s := sse.NewSchedule()
	defer s.Close()
	unblock := make(chan struct{})
	slow := goRunOf(t.Context(), newRun().Waiting(), s.Every(time.Millisecond, func(_ *sse.Run, n int) bool {
		if n == 0 {
			return true
		}
		<-unblock // the store does not answer
		return false
	}))
	fast := goRun(t.Context(), s.Every(time.Millisecond, func(_ *sse.Run, n int) bool { return n < 20 }))
	select {
	case <-fast:
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting step held the other run's steps up")
	}
	close(unblock)
	waitEnded(t, slow, "unblocked")
}

// TestScheduleManyRuns: runs of several ticks, started together, each take
// every step, in order.
func TestScheduleManyRuns(t *testing.T) {
	s := sse.NewSchedule()
	defer s.Close()
	ticks := []time.Duration{time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond}
	const runs, steps = 300, 10
	ends := make([]<-chan struct{}, runs)
	counts := make([][]int, runs)
	for i := range runs {
		ends[i] = goRun(t.Context(), s.Every(ticks[i%len(ticks)], func(_ *sse.Run, n int) bool {
			counts[i] = append(counts[i], n)
			return n < steps-1
		}))
	}
	for i, ended := range ends {
		waitEnded(t, ended, "many")
		if len(counts[i]) != steps {
			t.Fatalf("run %d took steps %v", i, counts[i])
		}
		for j, n := range counts[i] {
			if n != j {
				t.Fatalf("run %d took steps %v", i, counts[i])
			}
		}
	}
}

// TestScheduledStepsAllocateNothing: once a schedule's runs are going,
// calling their steps allocates nothing (what a step does is its own).
func TestScheduledStepsAllocateNothing(t *testing.T) {
	s := sse.NewSchedule()
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	const runs = 100
	var steps [runs]atomic.Int64
	ends := make([]<-chan struct{}, runs)
	for i := range runs {
		ends[i] = goRun(ctx, s.Every(time.Millisecond, func(_ *sse.Run, _ int) bool {
			steps[i].Add(1)
			return true
		}))
	}
	total := func() (n int64) {
		for i := range steps {
			n += steps[i].Load()
		}
		return n
	}
	time.Sleep(50 * time.Millisecond) // the queues grow to their size
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	from := total()
	time.Sleep(200 * time.Millisecond)
	to := total()
	runtime.ReadMemStats(&after)
	cancel()
	for _, ended := range ends {
		waitEnded(t, ended, "cancel")
	}
	called := to - from
	if called < runs*50 {
		t.Fatalf("%d steps in 200 ms for %d runs of a 1 ms tick", called, runs)
	}
	// Whatever else the process allocated meanwhile (the test framework,
	// the timer) is far below one allocation per step.
	if mallocs := after.Mallocs - before.Mallocs; float64(mallocs) > float64(called)/20 {
		t.Errorf("%d allocations for %d steps", mallocs, called)
	}
}

// TestStepSendsInOneWrite: the events one step sends leave together, in one
// write (one chunk of the body), on both of Handoff's paths and both kinds
// of run: the demo's last update and its close arrive as one.
func TestStepSendsInOneWrite(t *testing.T) {
	bothPaths(t, func(t *testing.T, serveMemory serving) {
		for name, every := range everies(t) {
			t.Run(name, func(t *testing.T) {
				reg, srv := serveMemory(t, ssetest.Config())
				var d net.Dialer
				conn, err := d.DialContext(t.Context(), "tcp", srv.Listener.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = conn.Close() })
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(conn, "GET /?id=a HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(conn)
				for line := ""; line != "\r\n"; {
					line = readLine(t, br) // the response's head
				}
				readChunk(t, br) // the retry block

				run := every(10*time.Millisecond, func(r *sse.Run, n int) bool {
					if n == 0 {
						_ = r.Send("update", "0")
						_ = r.Send("update", "1")
						return true
					}
					_ = r.Send("update", "2")
					_ = r.Finish("close", "done")
					return false
				})
				if err := reg.Start(t.Context(), "a", run); err != nil {
					t.Fatal(err)
				}
				for i, want := range [][]ssetest.Event{
					{{Type: "update", ID: "1", Data: "0"}, {Type: "update", ID: "2", Data: "1"}},
					{{Type: "update", ID: "3", Data: "2"}, {Type: "close", ID: "4", Data: "done"}},
				} {
					got, _, err := ssetest.Parse(readChunk(t, br))
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("step %d's write: %+v, want %+v", i, got, want)
					}
				}
				if end := readChunk(t, br); len(end) != 0 {
					t.Errorf("after the final event: %q, want the body's end", end)
				}
			})
		}
	})
}

// readChunk reads one chunk of a chunked body and returns its data; the
// last chunk has none.
func readChunk(t *testing.T, br *bufio.Reader) []byte {
	t.Helper()
	size, err := strconv.ParseInt(strings.TrimSpace(readLine(t, br)), 16, 64)
	if err != nil {
		t.Fatalf("a chunk's size: %v", err)
	}
	b := make([]byte, size+2) // and its CRLF
	if _, err := io.ReadFull(br, b); err != nil {
		t.Fatalf("a chunk of %d bytes: %v", size, err)
	}
	return b[:size]
}
