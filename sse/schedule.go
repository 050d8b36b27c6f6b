package sse

import (
	"context"
	"sync"
	"time"
)

// StepFunc is one step of a run that goes a step every tick: the demo's
// kind of work. It publishes through r, as a RunFunc does, and reports
// whether the run has steps left; n counts the run's steps from 0. A step
// should not wait on anything but the registry.
type StepFunc func(r *Run, n int) (more bool)

// Every returns the RunFunc of a run whose work is step: called at once,
// then every tick, until it reports that it is done or the run is stopped.
// The run holds a goroutine and a ticker of its own; a Schedule's Every
// does the same work without either.
func Every(tick time.Duration, step StepFunc) RunFunc {
	return func(ctx context.Context, r *Run) {
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		for n := 0; r.step(step, n); n++ {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}
}

// The goroutine wakes on a grid of grain: the steps due in one slot of it
// are called together, each a little late, by the same amount every time
// for a run whose tick is a multiple of it (a run's gaps stay its tick).
// One wake-up then serves many runs.
const grain = int64(time.Millisecond)

// slot returns the end of the slot of the grid that at falls in.
func slot(at int64) int64 { return (at + grain - 1) / grain * grain }

// Schedule calls the steps of many runs with no goroutine or timer per run:
// one goroutine sleeps until the next step is due and calls it. A run
// whose Send does not wait (a registry in memory writes the stream without
// blocking) has its steps called on that goroutine; one whose Send waits
// on a store (Run.Waits: Redis's waits for its append) has each step
// called on a goroutine of its own, so that no step waits for another
// run's.
//
// Make one with NewSchedule, build runs with Every and close it once the
// registry that runs them is closed. Its goroutine runs while it has steps
// to wait for.
type Schedule struct {
	epoch time.Time // the schedule's times are ns since

	mu      sync.Mutex
	queues  []*queue // the runs of each tick, by when due
	waiting int      // runs in the queues, not stopped
	running bool     // the goroutine is
	asleep  int64    // until when the goroutine sleeps; 0 while it is awake
	closed  bool
	wake    chan struct{} // room for one: a step is due before asleep
	goes    sync.WaitGroup
}

// NewSchedule returns an empty schedule.
func NewSchedule() *Schedule {
	return &Schedule{epoch: time.Now(), wake: make(chan struct{}, 1)}
}

// scheduled is a run on the schedule. Its fields are the schedule's, under
// its mu, but for step and r.
type scheduled struct {
	step    StepFunc
	r       *Run
	tick    time.Duration
	at      int64 // when the next step is due
	n       int   // the next step's number
	queued  bool
	stopped bool // the run was stopped
	release func()
}

// Every returns the RunFunc of a run whose work is step: called at once,
// then every tick, until it reports that it is done or the run is stopped,
// as with the package's Every, but from s. A run that moved from another
// instance (Run.Last) takes its first step at once too: a step sees it in
// n == 0 and r.Last.
func (s *Schedule) Every(tick time.Duration, step StepFunc) RunFunc {
	return func(_ context.Context, r *Run) {
		e := &scheduled{step: step, r: r, tick: tick}
		e.release = r.Hold(func() { s.stop(e) })
		// The first step on the goroutine the registry started the run on.
		s.call(e, s.now())
	}
}

func (s *Schedule) now() int64 { return int64(time.Since(s.epoch)) }

// call takes e's step, due at at, and puts e back on the schedule for the
// next one, unless the run is over.
func (s *Schedule) call(e *scheduled, at int64) {
	more := e.r.step(e.step, e.n)
	end := s.now()

	s.mu.Lock()
	e.n++
	if !more || e.stopped || s.closed {
		s.mu.Unlock()
		e.release()
		return
	}
	// Due a tick after the last was due, as a ticker's; a step that came
	// a whole tick late makes its next one a tick from now.
	e.at = at + int64(e.tick)
	if e.at < end {
		e.at = end + int64(e.tick)
	}
	s.queue(e.tick).push(e)
	s.waiting++
	e.queued = true
	if !s.running {
		s.running = true
		s.goes.Go(s.run)
	}
	early := s.asleep != 0 && slot(e.at) < s.asleep
	s.mu.Unlock()
	if early {
		s.nudge()
	}
}

// nudge wakes the goroutine to look at the queues again.
func (s *Schedule) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// queue returns the queue of the runs of tick. The caller holds mu.
func (s *Schedule) queue(tick time.Duration) *queue {
	for _, q := range s.queues {
		if q.tick == tick {
			return q
		}
	}
	q := &queue{tick: tick}
	s.queues = append(s.queues, q)
	return q
}

// stop ends e's run, which was stopped (its hold's stopped). A run
// waiting for its next step ends at once, and is skipped when that step
// comes due; a step that is running ends the run once it comes back.
func (s *Schedule) stop(e *scheduled) {
	s.mu.Lock()
	e.stopped = true
	queued := e.queued
	if queued {
		s.waiting--
	}
	s.mu.Unlock()
	if queued {
		e.release()
		s.nudge() // it may be the last, and the goroutine return
	}
}

// run is the schedule's goroutine: it sleeps until the first step is due,
// calls every step that is, and returns once no run waits for a step.
func (s *Schedule) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if s.waiting == 0 {
			s.queues = nil // of stopped runs only
			s.running = false
			s.mu.Unlock()
			return
		}
		q := s.first()
		e := q.front()
		if e.stopped {
			q.pop()
			s.mu.Unlock()
			continue
		}
		if now := s.now(); e.at > now {
			until := slot(e.at)
			s.asleep = until
			s.mu.Unlock()
			timer.Reset(time.Duration(until - now))
			select {
			case <-timer.C:
			case <-s.wake:
				timer.Stop()
			}
			s.mu.Lock()
			s.asleep = 0
			s.mu.Unlock()
			continue
		}
		q.pop()
		e.queued = false
		s.waiting--
		at := e.at
		s.mu.Unlock()
		if e.r.Waits() {
			s.goes.Go(func() { s.call(e, at) })
		} else {
			s.call(e, at)
		}
	}
}

// first returns the queue whose front is due first. The caller holds mu,
// and some queue holds a run.
func (s *Schedule) first() *queue {
	var first *queue
	for _, q := range s.queues {
		if q.len() > 0 && (first == nil || q.front().at < first.front().at) {
			first = q
		}
	}
	return first
}

// Close waits for the schedule's goroutines to return. Call it once the
// registries whose runs it holds are closed: their runs have stopped. A
// run started after Close ends after its first step.
func (s *Schedule) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.goes.Wait()
}

// queue holds the runs of one tick by when their next step is due. They
// come back in about the order they were due, so a push looks for its
// place from the back.
type queue struct {
	tick time.Duration
	runs []*scheduled
	head int // runs[:head] are gone
}

func (q *queue) len() int          { return len(q.runs) - q.head }
func (q *queue) front() *scheduled { return q.runs[q.head] }

func (q *queue) pop() {
	q.runs[q.head] = nil
	q.head++
	if q.head == len(q.runs) {
		q.runs, q.head = q.runs[:0], 0
	}
}

func (q *queue) push(e *scheduled) {
	if q.head > 0 && len(q.runs) == cap(q.runs) { // full: move down first
		n := copy(q.runs, q.runs[q.head:])
		clear(q.runs[n:])
		q.runs, q.head = q.runs[:n], 0
	}
	q.runs = append(q.runs, e)
	for i := len(q.runs) - 1; i > q.head && q.runs[i-1].at > e.at; i-- {
		q.runs[i-1], q.runs[i] = e, q.runs[i-1]
	}
}
