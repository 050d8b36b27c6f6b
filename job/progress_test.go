package job

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"gin-sse-progress/sse"
)

// record runs fn with r and returns the events it published.
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
	fn(context.Background(), r)
	return got
}

func TestProgress(t *testing.T) {
	p := Progress{Tick: time.Millisecond, Step: 25}
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
	p := Progress{Tick: time.Millisecond, Step: 25}
	assert.Equal(t, []sse.Entry{
		{Name: "update", Data: `{"id":"a","count":75}`},
		{Name: "update", Data: `{"id":"a","count":100}`},
		{Name: "close", Data: `{"id":"a","done":true}`},
	}, record(t, p.Run("a"), &sse.Entry{Name: "update", Data: `{"id":"a","count":50}`}))
	assert.Equal(t, []sse.Entry{{Name: "close", Data: `{"id":"a","done":true}`}},
		record(t, p.Run("a"), &sse.Entry{Name: "update", Data: `{"id":"a","count":100}`}))
	assert.Len(t, record(t, p.Run("a"), &sse.Entry{Name: "update", Data: "not JSON"}), 6, "an unknown last event: from 0")
}
