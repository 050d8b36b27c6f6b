package job

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"gin-sse-progress/sse"
)

// record runs fn with r, as a registry does, and returns the events it
// published once the run is over.
func record(t *testing.T, fn sse.RunFunc, last *sse.Entry) []sse.Entry {
	t.Helper()
	var got []sse.Entry
	publish := func(name, data string, _ bool) error {
		got = append(got, sse.Entry{Name: name, Data: data})
		return nil
	}
	r := sse.NewRun(publish)
	if last != nil {
		r = sse.ContinueRun(publish, *last)
	}
	ended := make(chan struct{})
	r.Go(context.Background(), fn, func() { close(ended) })
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the run did not end")
	}
	return got
}

// progresses are the job on both paths: a goroutine per run, and a
// Schedule's.
func progresses(t *testing.T) map[string]Progress {
	s := sse.NewSchedule()
	t.Cleanup(s.Close)
	return map[string]Progress{
		"goroutine": {Tick: time.Millisecond, Step: 25},
		"schedule":  {Tick: time.Millisecond, Step: 25, Schedule: s},
	}
}

func TestProgress(t *testing.T) {
	for name, p := range progresses(t) {
		t.Run(name, func(t *testing.T) { testProgress(t, p) })
	}
}

func testProgress(t *testing.T, p Progress) {
	assert.Equal(t, []sse.Entry{
		{Name: "update", Data: `{"id":"a","count":0}`},
		{Name: "update", Data: `{"id":"a","count":25}`},
		{Name: "update", Data: `{"id":"a","count":50}`},
		{Name: "update", Data: `{"id":"a","count":75}`},
		{Name: "update", Data: `{"id":"a","count":100}`},
		{Name: "close", Data: `{"id":"a","done":true}`},
	}, record(t, p.Run("a"), nil))
}

// TestProgressGoesOn: a run that moved goes on after the last count it
// logged, and one that logged its last update has only its close left.
func TestProgressGoesOn(t *testing.T) {
	for name, p := range progresses(t) {
		t.Run(name, func(t *testing.T) { testProgressGoesOn(t, p) })
	}
}

func testProgressGoesOn(t *testing.T, p Progress) {
	assert.Equal(t, []sse.Entry{
		{Name: "update", Data: `{"id":"a","count":75}`},
		{Name: "update", Data: `{"id":"a","count":100}`},
		{Name: "close", Data: `{"id":"a","done":true}`},
	}, record(t, p.Run("a"), &sse.Entry{Name: "update", Data: `{"id":"a","count":50}`}))
	assert.Equal(t, []sse.Entry{{Name: "close", Data: `{"id":"a","done":true}`}},
		record(t, p.Run("a"), &sse.Entry{Name: "update", Data: `{"id":"a","count":100}`}))
	assert.Len(t, record(t, p.Run("a"), &sse.Entry{Name: "update", Data: "not JSON"}), 6, "an unknown last event: from 0")
}
