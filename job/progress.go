// Package job holds the demo's work: the one file to replace with your own.
// A job is a function from a client id to the sse.RunFunc of one run; the
// handlers start it on POST /event/progress and the registry runs it.
package job

import (
	"encoding/json"
	"strconv"
	"time"

	"gin-sse-progress/sse"
)

// Progress is the Koa demo's run: an "update" event every Tick, its count
// going from 0 up to 100 by Step, then a "close" event.
type Progress struct {
	Tick time.Duration
	Step int // divides 100
	// Schedule, if set, takes every run's steps, so that a run holds no
	// goroutine or timer of its own; without one, each run has both.
	Schedule *sse.Schedule
}

// Run returns the run for client id. The first update goes out at once.
// A run that moved from another instance (r.Last) goes on a tick later
// with the count after the last one it logged: its state is nothing but
// that count.
func (p Progress) Run(id string) sse.RunFunc {
	quoted, _ := json.Marshal(id) // marshalling a string cannot fail
	prefix := `{"id":` + string(quoted) + `,"count":`
	next := 0 // the count of the next update
	step := func(r *sse.Run, n int) bool {
		if n == 0 {
			if count, ok := lastCount(r); ok {
				next = count + p.Step
				return true
			}
		}
		// A run that moved after its last update has only its close left.
		if next <= 100 {
			// Send fails only for a name with a line break; these are fixed.
			_ = r.Send("update", prefix+strconv.Itoa(next)+"}")
			next += p.Step
		}
		if next <= 100 {
			return true
		}
		// The browser drops an event without data, so close carries some.
		_ = r.Finish("close", `{"id":`+string(quoted)+`,"done":true}`)
		return false
	}
	if p.Schedule != nil {
		return p.Schedule.Every(p.Tick, step)
	}
	return sse.Every(p.Tick, step)
}

// lastCount returns the count of the last update a run that moved logged.
func lastCount(r *sse.Run) (int, bool) {
	last, ok := r.Last()
	if !ok {
		return 0, false
	}
	var logged struct{ Count *int }
	if json.Unmarshal([]byte(last.Data), &logged) != nil || logged.Count == nil {
		return 0, false
	}
	return *logged.Count, true
}
