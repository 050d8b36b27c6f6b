// Package job holds the demo's work: the one file to replace with your own.
// A job is a function from a client id to the sse.RunFunc of one run; the
// handlers start it on POST /event/progress and the registry runs it.
package job

import (
	"context"
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
}

// Run returns the run for client id. The first update goes out at once.
// A run that moved from another instance (r.Last) goes on a tick later
// with the count after the last one it logged: its state is nothing but
// that count.
func (p Progress) Run(id string) sse.RunFunc {
	return func(ctx context.Context, r *sse.Run) {
		quoted, _ := json.Marshal(id) // marshalling a string cannot fail
		prefix := `{"id":` + string(quoted) + `,"count":`

		ticker := time.NewTicker(p.Tick)
		defer ticker.Stop()
		start := 0
		if last, ok := r.Last(); ok {
			var logged struct{ Count *int }
			if json.Unmarshal([]byte(last.Data), &logged) == nil && logged.Count != nil {
				start = *logged.Count + p.Step
				select {
				case <-ctx.Done():
					return
				case <-ticker.C:
				}
			}
		}
		// A run that moved after its last update has only its close left.
		for count := start; count <= 100; count += p.Step {
			// Send fails only for a name with a line break; these are fixed.
			_ = r.Send("update", prefix+strconv.Itoa(count)+"}")
			if count >= 100 {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
		// The browser drops an event without data, so close carries some.
		_ = r.Finish("close", `{"id":`+string(quoted)+`,"done":true}`)
	}
}
