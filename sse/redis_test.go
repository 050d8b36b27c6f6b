package sse

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/internal/redistest"
)

// The wire behaviour of RedisHub is tested through the HTTP handlers, with
// the in-memory Hub's suite (handlers/handlers_test.go) and across
// instances (handlers/cluster_test.go). These tests cover what the handlers
// cannot see.

func TestParseLive(t *testing.T) {
	tests := []struct {
		in   string
		want loggedEvent
		ok   bool
	}{
		{"7 0 update\n{\"count\":5}", loggedEvent{seq: 7, entry: entry{"update", `{"count":5}`}}, true},
		{"8 1 close\n", loggedEvent{seq: 8, entry: entry{"close", ""}, final: true}, true},
		{"9 0 two words\nline one\nline two", loggedEvent{seq: 9, entry: entry{"two words", "line one\nline two"}}, true},
		{"9007199254740991 0 update\nx", loggedEvent{seq: 1<<53 - 1, entry: entry{"update", "x"}}, true},
		{"x 0 update\nx", loggedEvent{}, false},
		{"7 0 update", loggedEvent{}, false},
		{"7", loggedEvent{}, false},
		{"", loggedEvent{}, false},
	}
	for _, tc := range tests {
		got, ok := parseLive(tc.in)
		assert.Equal(t, tc.ok, ok, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
}

// TestRedisFeedTakesEachEventOnce: events heard on the channel before the
// attach read the log are held back, then merged with the log, each taken
// once; an event that never arrived ends the stream, so the browser comes
// back and reads the log.
func TestRedisFeedTakesEachEventOnce(t *testing.T) {
	h := &RedisHub{}
	f := &redisFeed{hub: h, id: "a"}
	f.stream = newStream(testConfig(), f)
	ev := func(seq uint64, final bool) loggedEvent {
		return loggedEvent{seq: seq, entry: entry{name: "update", data: "x"}, final: final}
	}

	f.push(ev(5, false)) // heard while the attach read the log
	f.push(ev(6, false))
	f.attached(3) // this attach's own message
	f.start(3, 4, []loggedEvent{ev(4, false), ev(5, false)}, false)
	f.push(ev(6, false)) // heard twice
	f.push(ev(7, true))

	seq, events, final := f.next()
	assert.Equal(t, uint64(4), seq)
	assert.Len(t, events, 4, "4, 5, 6, 7: each once")
	assert.True(t, final)
	assertLive(t, f.stream)

	f.push(ev(9, false)) // 8 never came
	assertEnded(t, f.stream)
	assert.False(t, f.stream.lost, "without a gap event: the log has the rest")

	g := &redisFeed{hub: h, id: "a"}
	g.stream = newStream(testConfig(), g)
	g.start(2, 1, nil, false)
	g.attached(3)
	assertEnded(t, g.stream) // a newer attach ends the stream
}

func newRedisHub(t *testing.T, srv *redistest.Server, cfg Config, lease time.Duration) *RedisHub {
	t.Helper()
	h, err := NewRedisHub(t.Context(), cfg, srv.Client(), RedisOptions{Lease: lease})
	require.NoError(t, err)
	t.Cleanup(h.Close)
	return h
}

// wait returns the next events of s, waiting for them.
func wait(t *testing.T, s *Stream) (uint64, []entry, bool) {
	t.Helper()
	for {
		if seq, events, final := s.feed.next(); len(events) > 0 {
			return seq, events, final
		}
		select {
		case <-s.wake:
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
	}
}

// TestRedisGrace: the keys of a client whose stream is open are renewed
// past Grace; once the stream goes, they expire Grace later, and the
// client is unknown.
func TestRedisGrace(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	cfg := testConfig()
	cfg.Grace = 100 * time.Millisecond
	h := newRedisHub(t, srv, cfg, 150*time.Millisecond)
	ctx := context.Background()

	_, detach, err := h.Attach(ctx, "a", 0)
	require.NoError(t, err)
	time.Sleep(5 * cfg.Grace)
	assert.EqualValues(t, 1, rdb.Exists(ctx, hashKey("a")).Val(), "kept while the stream is open")

	detach()
	ttl := rdb.PTTL(ctx, hashKey("a")).Val()
	assert.Positive(t, ttl)
	assert.LessOrEqual(t, ttl, cfg.Grace)
	require.Eventually(t, func() bool { return rdb.Exists(ctx, hashKey("a")).Val() == 0 },
		time.Second, 5*time.Millisecond)
	assert.ErrorIs(t, h.Start(ctx, "a", func(context.Context, *Run) {}), ErrUnknownClient)
}

// TestRedisLargeIDs: ids near 2^53 reach Lua and come back exact.
func TestRedisLargeIDs(t *testing.T) {
	srv := redistest.Start(t)
	h := newRedisHub(t, srv, testConfig(), 0)
	ctx := context.Background()
	const last = 1<<53 - 10

	s, detach, err := h.Attach(ctx, "a", last)
	require.NoError(t, err)
	defer detach()
	require.NoError(t, h.Start(ctx, "a", func(_ context.Context, r *Run) {
		_ = r.Send("update", "one")
		_ = r.Finish("close", "two")
	}))
	var got []uint64
	for len(got) < 2 {
		seq, events, _ := wait(t, s)
		for i := range events {
			got = append(got, seq+uint64(i))
		}
	}
	assert.Equal(t, []uint64{last + 1, last + 2}, got)
}

// TestRedisHubNeedsNoRetries: a client that would retry a command, and so
// could log an event twice, is refused.
func TestRedisHubNeedsNoRetries(t *testing.T) {
	srv := redistest.Start(t)
	for _, opts := range []*redis.Options{
		{Addr: srv.Addr(), ContextTimeoutEnabled: true}, // retries 3 times
		{Addr: srv.Addr(), MaxRetries: -1},              // ignores deadlines
	} {
		rdb := redis.NewClient(opts)
		_, err := NewRedisHub(t.Context(), testConfig(), rdb, RedisOptions{})
		assert.ErrorContains(t, err, "MaxRetries: -1")
		require.NoError(t, rdb.Close())
	}
}
