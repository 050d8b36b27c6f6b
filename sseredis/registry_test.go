package sseredis

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
	"gin-sse-progress/sseredis/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// instance is one server instance on a shared Redis, as a replica behind a
// load balancer would be: a registry and a listener of its own.
type instance struct {
	*Registry
	srv *ssetest.Server
	log *logBuffer
}

func newInstance(t *testing.T, redis *redistest.Server, cfg sse.Config, lease time.Duration) *instance {
	t.Helper()
	return newInstanceWith(t, redis, cfg, Options{Lease: lease})
}

// newInstanceWith is newInstance with opts, whose Logger it sets.
func newInstanceWith(t *testing.T, redis *redistest.Server, cfg sse.Config, opts Options) *instance {
	t.Helper()
	return newInstanceAt(t, redis.URL(), cfg, opts)
}

// newInstanceAt is newInstanceWith on the Redis at url, with its options.
func newInstanceAt(t *testing.T, url string, cfg sse.Config, opts Options) *instance {
	t.Helper()
	log := &logBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(log, nil))
	reg, err := New(t.Context(), url, cfg, opts)
	require.NoError(t, err)
	t.Cleanup(reg.Close)
	return &instance{Registry: reg, srv: ssetest.NewServer(t, reg), log: log}
}

// cluster starts n instances on an emptied Redis.
func cluster(t *testing.T, redis *redistest.Server, n int, cfg sse.Config, lease time.Duration) []*instance {
	t.Helper()
	redis.Flush()
	out := make([]*instance, n)
	for i := range out {
		out[i] = newInstance(t, redis, cfg, lease)
	}
	return out
}

// logBuffer is a log that tests read while the registry writes it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestRegistry checks the registry against the rules every registry
// follows: on one instance, and on three that take calls in turn, so that
// each call of a test lands on another instance than the last.
func TestRegistry(t *testing.T) {
	redis := redistest.Start(t)
	t.Run("one instance", func(t *testing.T) {
		ssetest.TestRegistry(t, func(t *testing.T, cfg sse.Config) sse.Registry {
			return cluster(t, redis, 1, cfg, 0)[0].Registry
		})
	})
	t.Run("three instances", func(t *testing.T) {
		ssetest.TestRegistry(t, func(t *testing.T, cfg sse.Config) sse.Registry {
			c := cluster(t, redis, 3, cfg, 0)
			return ssetest.NewRoundRobin(c[0], c[1], c[2])
		})
	})
}

func TestStartConflictsOnEveryInstance(t *testing.T) {
	c := cluster(t, redistest.Start(t), 3, ssetest.Config(), 0)
	c[0].srv.Open(t, "a", "")
	require.NoError(t, c[1].Start(t.Context(), "a", ssetest.Ticks(time.Hour)))
	for _, in := range c {
		assert.ErrorIs(t, in.Start(t.Context(), "a", ssetest.Updates(1)), sse.ErrRunning)
	}
}

// TestMaxStreamsPerInstance: the limit counts the streams of one instance.
func TestMaxStreamsPerInstance(t *testing.T) {
	cfg := ssetest.Config()
	cfg.MaxStreams = 1
	c := cluster(t, redistest.Start(t), 2, cfg, 0)
	c[0].srv.Open(t, "a", "")
	_, _, err := c[0].Attach(t.Context(), "b", 0)
	assert.ErrorIs(t, err, sse.ErrTooManyStreams)
	c[1].srv.Open(t, "b", "")
}

// TestDeadOwnersRunCanStartAgainAfterLease: an instance that owns a run and
// loses Redis for good, as if it had died, can neither renew its claim nor
// let go of it. The claim holds until its lease ends; then any instance
// starts the client's next run, which reaches the stream.
func TestDeadOwnersRunCanStartAgainAfterLease(t *testing.T) {
	redis := redistest.Start(t)
	redis.Flush()
	const lease = 300 * time.Millisecond
	a := newInstance(t, redis, ssetest.Config(), lease)
	b := newInstance(t, redis, ssetest.Config(), lease)
	st := a.srv.Open(t, "a", "")
	require.NoError(t, b.Start(t.Context(), "a", ssetest.Ticks(time.Hour)))
	assert.Equal(t, "update", st.Next(t).Type)

	require.NoError(t, b.rdb.Close())
	began := time.Now()
	assert.ErrorIs(t, a.Start(t.Context(), "a", ssetest.Updates(1)), sse.ErrRunning, "the claim holds until its lease ends")
	require.Eventually(t, func() bool {
		return a.Start(t.Context(), "a", ssetest.Updates(1)) == nil
	}, 5*time.Second, 20*time.Millisecond)
	assert.Less(t, time.Since(began), lease+time.Second)
	ev := st.Next(t)
	assert.Equal(t, ssetest.Event{Type: "update", ID: "2", Data: "0"}, ev, "the new run reaches the stream")
}

// TestKeysLiveWhileStreamsDo: the keys of a client whose stream is open
// are renewed past Grace; once the stream goes, they expire Grace later,
// and the client is unknown.
func TestKeysLiveWhileStreamsDo(t *testing.T) {
	redis := redistest.Start(t)
	redis.Flush()
	cfg := ssetest.Config()
	cfg.Grace = 100 * time.Millisecond
	in := newInstance(t, redis, cfg, 150*time.Millisecond)
	ctx := t.Context()

	_, detach, err := in.Attach(ctx, "a", 0)
	require.NoError(t, err)
	time.Sleep(5 * cfg.Grace)
	assert.EqualValues(t, 1, in.rdb.Exists(ctx, hashKey("a")).Val(), "kept while the stream is open")

	detach()
	ttl := in.rdb.PTTL(ctx, hashKey("a")).Val()
	assert.Positive(t, ttl)
	assert.LessOrEqual(t, ttl, cfg.Grace)
	require.Eventually(t, func() bool { return in.rdb.Exists(ctx, hashKey("a")).Val() == 0 },
		time.Second, 5*time.Millisecond)
	assert.ErrorIs(t, in.Start(ctx, "a", ssetest.Updates(1)), sse.ErrUnknownClient)
}

// TestKeysRenewedEveryThirdOfTheirLife: keys that live for Grace, three
// leases here, are renewed every third of Grace, not every keep round (a
// third of the lease): a third of the commands, and still kept while the
// stream is open.
func TestKeysRenewedEveryThirdOfTheirLife(t *testing.T) {
	redis := redistest.Start(t)
	redis.Flush()
	const lease = 150 * time.Millisecond
	cfg := ssetest.Config()
	cfg.Grace = 3 * lease
	in := newInstance(t, redis, cfg, lease)
	ctx := t.Context()

	_, detach, err := in.Attach(ctx, "a", 0)
	require.NoError(t, err)
	defer detach()
	before := pexpires(t, in)
	time.Sleep(10 * cfg.Grace / 3)             // 30 keep rounds
	renewals := (pexpires(t, in) - before) / 2 // the hash and the log
	assert.EqualValues(t, 1, in.rdb.Exists(ctx, hashKey("a")).Val(), "kept while the stream is open")
	assert.GreaterOrEqual(t, renewals, 5, "about one every third of Grace: 10")
	assert.LessOrEqual(t, renewals, 15, "not one a round: 30")
}

// pexpires counts the PEXPIRE commands Redis has run.
func pexpires(t *testing.T, in *instance) int {
	t.Helper()
	info, err := in.rdb.Info(t.Context(), "commandstats").Result()
	require.NoError(t, err)
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_pexpire:calls="); ok {
			n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			require.NoError(t, err)
			return n
		}
	}
	return 0
}

// TestURL: New builds its Redis client from a URL, and refuses one that
// would make the client retry a command, which could log an event twice.
func TestURL(t *testing.T) {
	redis := redistest.Start(t)
	for _, u := range []string{
		"http://127.0.0.1:6379",
		"redis://127.0.0.1:6379/x",
		"127.0.0.1:6379",
		redis.URL() + "?max_retries=3",
		redis.URL() + "?max_retries=-1",
	} {
		assert.Error(t, CheckURL(u), u)
		_, err := New(t.Context(), u, ssetest.Config(), Options{})
		assert.Error(t, err, u)
	}
	assert.NoError(t, CheckURL("redis://user:secret@10.0.0.5:6380/2"))
	assert.NoError(t, CheckURL("rediss://10.0.0.5:6380/2?dial_timeout=3s"))

	reg, err := New(t.Context(), redis.URL(), ssetest.Config(), Options{})
	require.NoError(t, err)
	defer reg.Close()
	o := reg.rdb.Options()
	assert.LessOrEqual(t, o.MaxRetries, 0, "no retries") // NewClient keeps -1 as 0
	assert.True(t, o.ContextTimeoutEnabled, "deadlines are heeded")
}

// TestLargeIDs: ids near 2^53 go through Lua and come back exact, from the
// log as well as live.
func TestLargeIDs(t *testing.T) {
	in := cluster(t, redistest.Start(t), 1, ssetest.Config(), 0)[0]
	const last = 1<<53 - 10
	run := ssetest.NewScript()
	_, detach, err := in.Attach(t.Context(), "a", last)
	require.NoError(t, err)
	require.NoError(t, in.Start(t.Context(), "a", run.Run))
	run.Send(t, "update", "logged before the stream")
	detach()

	st := in.srv.Open(t, "a", "")
	run.Send(t, "update", "live")
	run.Finish(t, "close", "done")
	events := st.Rest(t)
	require.Len(t, events, 3)
	for i, ev := range events {
		assert.Equal(t, strconv.FormatUint(last+1+uint64(i), 10), ev.ID)
	}
}

// TestRenewalAfterTheFinalEvent: a keep round that finds a run's claim gone
// stops the run, unless its final event is on its way: that event lets go
// of the claim, and the renewal may be answered before the run hears that
// its final event is logged.
func TestRenewalAfterTheFinalEvent(t *testing.T) {
	redis := redistest.Start(t)
	redis.Flush()
	in := newInstance(t, redis, ssetest.Config(), time.Hour) // no keep round of its own meanwhile
	var endingStopped, lostStopped atomic.Bool
	ending := &ownedRun{token: "x-1", cancel: func() { endingStopped.Store(true) }}
	ending.ending.Store(true)
	lost := &ownedRun{token: "x-2", cancel: func() { lostStopped.Store(true) }}
	in.mu.Lock()
	in.runs["ending"], in.runs["lost"] = ending, lost // neither claim is in Redis
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		delete(in.runs, "ending")
		delete(in.runs, "lost")
		in.mu.Unlock()
	}()

	in.renew(time.Second)
	assert.False(t, endingStopped.Load(), "the final event let go of the claim: not a lost one")
	assert.True(t, lostStopped.Load(), "a claim gone while the run goes on is lost")
	assert.Equal(t, 1, strings.Count(in.log.String(), "claim was lost"))
}

// TestNewLoadsTheScripts: New puts every script in Redis's cache, so that
// the first calls' EVALSHA are not refused with NOSCRIPT.
func TestNewLoadsTheScripts(t *testing.T) {
	redis := redistest.Start(t)
	in := newInstance(t, redis, ssetest.Config(), 0)
	ctx := t.Context()
	require.NoError(t, in.rdb.ScriptFlush(ctx).Err())
	other := newInstance(t, redis, ssetest.Config(), 0)

	var hashes []string
	for _, s := range other.scripts.all {
		hashes = append(hashes, s.Hash())
	}
	require.Len(t, hashes, 11)
	loaded, err := other.rdb.ScriptExists(ctx, hashes...).Result()
	require.NoError(t, err)
	for i, ok := range loaded {
		assert.True(t, ok, "script %d is in Redis's cache", i)
	}
}
