package sseredis

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
)

func TestParseEvent(t *testing.T) {
	tests := []struct {
		in   string
		want loggedEvent
		ok   bool
	}{
		{"7 0 update\n{\"count\":5}", loggedEvent{seq: 7, entry: sse.Entry{Name: "update", Data: `{"count":5}`}}, true},
		{"8 1 close\n", loggedEvent{seq: 8, entry: sse.Entry{Name: "close"}, final: true}, true},
		{"9 0 two words\nline one\nline two", loggedEvent{seq: 9, entry: sse.Entry{Name: "two words", Data: "line one\nline two"}}, true},
		{"9007199254740991 0 update\nx", loggedEvent{seq: 1<<53 - 1, entry: sse.Entry{Name: "update", Data: "x"}}, true},
		{"x 0 update\nx", loggedEvent{}, false},
		{"7 0 update", loggedEvent{}, false},
		{"7", loggedEvent{}, false},
		{"", loggedEvent{}, false},
	}
	for _, tc := range tests {
		got, ok := parseEvent(tc.in)
		assert.Equal(t, tc.ok, ok, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
}

// ended reports whether s has been told to end: Serve returns at once for
// a stream that has, and waits out ctx for one that has not. s must have
// nothing left to write.
func ended(s *sse.Stream) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = s.Serve(ctx, httptest.NewRecorder())
	return ctx.Err() == nil
}

func newSource(reg *Registry) *source {
	s := &source{reg: reg, id: "a"}
	s.stream = sse.NewStream(reg.cfg, s)
	return s
}

// TestSourceTakesEachEventOnce: events heard on the channel before the
// attach read the log are held back, then merged with the log, each taken
// once; an event that never arrived ends the stream, so the browser comes
// back and reads the log.
func TestSourceTakesEachEventOnce(t *testing.T) {
	reg := &Registry{cfg: ssetest.Config()}
	s := newSource(reg)
	ev := func(seq uint64, final bool) loggedEvent {
		return loggedEvent{seq: seq, entry: sse.Entry{Name: "update", Data: "x"}, final: final}
	}

	assert.False(t, s.push(ev(5, false)), "heard while the attach read the log: held back")
	s.push(ev(6, false))
	s.attached(3) // this attach's own message
	s.start(3, 4, []loggedEvent{ev(4, false), ev(5, false)}, false)
	assert.False(t, s.push(ev(6, false)), "heard twice")
	assert.True(t, s.push(ev(7, true)), "the next")

	seq, events, final := s.Next()
	assert.Equal(t, uint64(4), seq)
	assert.Len(t, events, 4, "4, 5, 6, 7: each once")
	assert.True(t, final)
	assert.False(t, ended(s.stream))

	assert.False(t, s.push(ev(9, false)), "8 never came")
	assert.True(t, ended(s.stream), "the stream ends, without a gap event: the log has the rest")

	newer := newSource(reg)
	newer.start(2, 1, nil, false)
	newer.attached(3)
	assert.True(t, ended(newer.stream), "a newer attach ends the stream")
}
