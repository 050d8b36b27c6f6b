package sse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

var _ Registry = (*RedisHub)(nil)

// RedisOptions holds the settings of a RedisHub besides its Config.
type RedisOptions struct {
	// Lease is how long a run's claim outlives the last word from the
	// instance that owns the run. The owner renews it every Lease/3; if
	// the owner dies, the client can start a new run, on any instance,
	// once Lease has passed. A pub/sub connection on which Redis has said
	// nothing for Lease is taken as lost. Zero means 10s.
	Lease time.Duration
	// Logger reports the link to Redis going down and coming back, and
	// runs stopped because their claim was lost. Nil discards.
	Logger *slog.Logger
}

// RedisHub is a registry of clients shared by server instances through
// Redis, so that any instance can serve any request of a client: the POST
// that starts a run, the stream that shows it, the reconnect that resumes it
// and the remove that ends it.
//
// For client id it keeps, all under the hash tag {id} so that they share a
// slot of a Redis Cluster:
//
//	sse:{id}      a hash: next (the number of the next event), first (that
//	              of the current run's first), finished, finalSent, gen
//	              (counts attaches, so that a newer stream replaces older
//	              ones on any instance)
//	sse:{id}:log  a Redis stream: the current run's events; entry 0-N is
//	              the event whose SSE id is N
//	sse:{id}:run  the token of the run that owns the client's ticker, with
//	              an expiry (the lease) that its owner renews
//
// and publishes on the channel sse:{id} each event as it is logged, and the
// messages that end streams held by other instances; on sse:{id}:owner, the
// remove that stops a run on the instance that owns it. Both keys of the
// client expire Grace after its last stream went away. While a stream is
// open, the instance holding it renews them every Lease/3 for the longer of
// Grace and Lease, so a client is not forgotten while its stream is open,
// nor kept for long after the instance holding its stream died.
//
// Each instance subscribes to the channel of every client it holds a stream
// for, on one pub/sub connection, before it reads the log: so a stream gets
// the events logged before it attached from the log and the later ones from
// the channel, and drops those it got twice. The Lua scripts below make each
// step atomic in Redis. The events of the runs owned here go to Redis in
// pipelines, all those waiting at once (see appendLoop).
//
// If the pub/sub connection breaks, or Redis says nothing on it for Lease,
// the instance cannot tell which events it missed: it ends every stream it holds with a gap event (see GapEvent)
// and stops the runs it owns, answers ErrUnavailable until Redis is back,
// and then serves again. Browsers reconnect with their Last-Event-ID and
// resume from the log, if Redis still has it.
type RedisHub struct {
	cfg    Config
	lease  time.Duration
	rdb    *redis.Client
	logger *slog.Logger
	// self names this instance in the tokens of its runs.
	self string

	// ctx is the parent of every run's context and of the hub's own
	// goroutines; cancel stops them all. wg counts them, so that Close
	// can wait.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	appends   chan *appendReq // the runs' events, to appendLoop
	heard     atomic.Int64    // when the pub/sub connection last had news, in Unix ns

	mu      sync.Mutex
	feeds   map[string]map[*redisFeed]struct{} // streams held here, by client id
	streams int
	runs    map[string]*redisRun // runs owned here, by client id
	tokens  uint64               // counts tokens handed out
	linkErr error                // why the link to Redis is down, or nil
	closed  bool

	// subMu guards the pub/sub connection and the subscriptions, and
	// orders what is written to the connection: a PING answered means
	// every command sent before it has been done. No code holds mu and
	// subMu at once.
	subMu  sync.Mutex
	ps     *redis.PubSub            // nil while the link is down
	subs   map[string]*subscription // by channel
	pings  map[string]*subscription // by PING payload, until answered
	pinged uint64                   // counts PINGs
	epoch  uint64                   // counts pub/sub connections
}

// subscription is one channel subscribed to for the streams held here and
// the runs owned here.
type subscription struct {
	users int
	ready chan struct{} // closed once Redis has done the SUBSCRIBE
}

// redisRun is a run owned by this instance.
type redisRun struct {
	token  string
	cancel context.CancelFunc
	// finished is set once the final event is logged, which lets go of
	// the claim: keep must not take that for a lost one.
	finished atomic.Bool
}

// NewRedisHub returns a hub that keeps its registry in Redis through rdb,
// which the caller closes after the hub. It fails if Redis does not answer.
//
// rdb must be made with MaxRetries: -1 and ContextTimeoutEnabled: true.
// go-redis retries a command whose connection broke before the answer came,
// and a retried append that Redis had done logs its event twice; the hub
// handles every failure itself. And its own deadlines, such as the one on a
// health check, only hold if go-redis heeds them.
func NewRedisHub(ctx context.Context, cfg Config, rdb *redis.Client, opts RedisOptions) (*RedisHub, error) {
	if o := rdb.Options(); o.MaxRetries > 0 || !o.ContextTimeoutEnabled { // NewClient makes -1 into 0
		return nil, errors.New("sse: the Redis client needs MaxRetries: -1 and ContextTimeoutEnabled: true; see NewRedisHub")
	}
	if opts.Lease <= 0 {
		opts.Lease = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ps, err := subscribeLink(ctx, rdb)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	var self [8]byte
	_, _ = rand.Read(self[:]) // never fails
	hctx, cancel := context.WithCancel(context.Background())
	h := &RedisHub{
		cfg:     cfg,
		lease:   opts.Lease,
		rdb:     rdb,
		logger:  opts.Logger,
		self:    hex.EncodeToString(self[:]),
		ctx:     hctx,
		cancel:  cancel,
		feeds:   make(map[string]map[*redisFeed]struct{}),
		runs:    make(map[string]*redisRun),
		appends: make(chan *appendReq),
		ps:      ps,
		subs:    make(map[string]*subscription),
		pings:   make(map[string]*subscription),
		epoch:   1,
	}
	h.heard.Store(time.Now().UnixNano())
	h.wg.Go(func() { h.listen(ps) })
	h.wg.Go(h.keep)
	h.wg.Go(h.appendLoop)
	return h, nil
}

// subscribeLink opens a pub/sub connection and checks that Redis answers.
func subscribeLink(ctx context.Context, rdb *redis.Client) (*redis.PubSub, error) {
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, err
	}
	ps := rdb.Subscribe(ctx)
	if err := ps.Ping(ctx); err != nil {
		_ = ps.Close()
		return nil, err
	}
	return ps, nil
}

func hashKey(id string) string { return "sse:{" + id + "}" }
func logKey(id string) string  { return "sse:{" + id + "}:log" }
func runKey(id string) string  { return "sse:{" + id + "}:run" }
func channel(id string) string { return "sse:{" + id + "}" }

// ownerChannel is where a remove reaches the instance that owns the run. It
// is not channel(id), so that the number of instances listening there tells
// whether any holds a stream.
func ownerChannel(id string) string { return "sse:{" + id + "}:owner" }

// clientOf returns the client id of a channel.
func clientOf(ch string) string {
	ch = strings.TrimSuffix(ch, ":owner")
	return strings.TrimSuffix(strings.TrimPrefix(ch, "sse:{"), "}")
}

// token returns a name for a run, unique across instances. The caller holds
// h.mu.
func (h *RedisHub) token() string {
	h.tokens++
	return h.self + "-" + strconv.FormatUint(h.tokens, 10)
}

// unavailable wraps a Redis error in ErrUnavailable.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// The scripts. Lua numbers are doubles, exact for ids below 2^53, but
// printed in exponent form from 1e14 on: num prints them in full.
const luaNum = `local function num(n) return string.format('%.0f', n) end
`

// attachScript registers a stream for a client, creating the client if it
// is new, keeps its keys for the hold time, and returns {gen, cursor, finished, events}: the attach's number,
// the number of the first event to send, whether the run has finished, and
// the logged events from cursor on. It returns {0} if the client has seen
// the final event of a finished run.
//
// KEYS: hash, log. ARGV: lastEventID, hold time in ms, channel.
var attachScript = redis.NewScript(luaNum + `
local last = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
	-- Numbering goes on from the client's last id, as after a restart.
	redis.call('HSET', KEYS[1], 'next', num(last + 1), 'first', num(last + 1),
		'finished', '0', 'finalSent', '0', 'gen', '0')
end
local c = redis.call('HMGET', KEYS[1], 'next', 'first', 'finished', 'finalSent')
local nxt, first = tonumber(c[1]), tonumber(c[2])
local finished, finalSent = c[3] == '1', c[4] == '1'
if finished and last > 0 and last >= nxt - 1 then
	return {0}
end
local cursor = first
if last > 0 then
	cursor = last + 1
elseif finished and finalSent then
	cursor = nxt
end
if cursor < first then
	cursor = first
end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], 'a' .. num(gen))
local events = {}
if cursor < nxt then
	events = redis.call('XRANGE', KEYS[2], '0-' .. num(cursor), '+')
end
return {gen, cursor, finished and 1 or 0, events}
`)

// startScript claims a client's run for token, for lease ms, and drops the
// previous run's events. It returns 1, or 0 for an unknown client, or -1 if
// another run holds the claim.
//
// KEYS: hash, log, run. ARGV: token, lease in ms.
var startScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return 0
end
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then
	return -1
end
local nxt = redis.call('HGET', KEYS[1], 'next')
redis.call('HSET', KEYS[1], 'first', nxt, 'finished', '0', 'finalSent', '0')
redis.call('XTRIM', KEYS[2], 'MINID', '0-' .. nxt)
return 1
`)

// appendScript logs an event of the run that token owns, renews the claim
// (or lets it go with the final event) and publishes the event. It returns
// the event's number, or -1 if the run no longer holds the claim or the
// client is gone.
//
// KEYS: hash, log, run. ARGV: token, name, data, final (0 or 1), lease in
// ms, channel.
var appendScript = redis.NewScript(luaNum + `
if redis.call('GET', KEYS[3]) ~= ARGV[1] then
	return -1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
	redis.call('DEL', KEYS[2], KEYS[3])
	return -1
end
local seq = num(redis.call('HINCRBY', KEYS[1], 'next', 1) - 1)
redis.call('XADD', KEYS[2], '0-' .. seq, 'n', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl)
if ARGV[4] == '1' then
	redis.call('HSET', KEYS[1], 'finished', '1')
	redis.call('DEL', KEYS[3])
else
	redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
redis.call('PUBLISH', ARGV[6], 'e' .. seq .. ' ' .. ARGV[4] .. ' ' .. ARGV[2] .. '\n' .. ARGV[3])
return tonumber(seq)
`)

// renewScript extends the claim of the run that token owns. It returns 1,
// or 0 if the run no longer holds it.
//
// KEYS: run. ARGV: token, lease in ms.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
`)

// releaseScript lets go of the claim of the run that token owns.
//
// KEYS: run. ARGV: token.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// deliveredScript records that a stream has written event seq, the final
// event of the client's run.
//
// KEYS: hash. ARGV: seq.
var deliveredScript = redis.NewScript(`
local c = redis.call('HMGET', KEYS[1], 'next', 'finished')
if c[2] == '1' and tonumber(c[1]) - 1 == tonumber(ARGV[1]) then
	redis.call('HSET', KEYS[1], 'finalSent', '1')
end
return 0
`)

// removeScript forgets a client and tells the instances holding its stream
// or owning its run. It returns 1, or 0 for an unknown client.
//
// KEYS: hash, log, run. ARGV: channel, owner channel.
var removeScript = redis.NewScript(`
local known = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if known == 1 then
	redis.call('PUBLISH', ARGV[1], 'r')
	redis.call('PUBLISH', ARGV[2], 'r')
end
return known
`)

// disconnectScript tells the instances holding a client's stream to end it.
// It returns how many instances heard, or -1 for an unknown client.
//
// KEYS: hash. ARGV: channel.
var disconnectScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return -1
end
return redis.call('PUBLISH', ARGV[1], 'd')
`)

// Attach opens a stream for the client id on this instance, creating the
// client if it is new; see Hub.Attach for lastEventID. A stream for the same
// client on any instance ends. MaxStreams counts the streams of this
// instance; a client that already has a stream here is let in over it.
func (h *RedisHub) Attach(ctx context.Context, id string, lastEventID uint64) (*Stream, func(), error) {
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		return nil, nil, ErrClosed
	case h.linkErr != nil:
		err := h.linkErr
		h.mu.Unlock()
		return nil, nil, unavailable(err)
	case len(h.feeds[id]) == 0 && h.streams >= h.cfg.MaxStreams:
		h.mu.Unlock()
		return nil, nil, ErrTooManyStreams
	}
	// Registered before it subscribes, so that it buffers every live event
	// from then on.
	f := &redisFeed{hub: h, id: id}
	f.stream = newStream(h.cfg, f)
	if h.feeds[id] == nil {
		h.feeds[id] = make(map[*redisFeed]struct{})
	}
	h.feeds[id][f] = struct{}{}
	h.streams++
	h.mu.Unlock()
	detach := sync.OnceFunc(func() { h.detach(f) })

	epoch, err := h.subscribe(ctx, channel(id), true)
	h.mu.Lock()
	f.epoch = epoch // for detach, even if the wait failed
	h.mu.Unlock()
	if err != nil {
		detach()
		return nil, nil, err
	}
	res, err := attachScript.Run(ctx, h.rdb,
		[]string{hashKey(id), logKey(id)},
		lastEventID, h.hold().Milliseconds(), channel(id)).Slice()
	if err != nil {
		detach()
		return nil, nil, unavailable(err)
	}
	gen, _ := res[0].(int64)
	if gen == 0 {
		detach()
		return nil, nil, ErrFinished
	}
	cursor, _ := res[1].(int64)
	finished, _ := res[2].(int64)
	logged, err := parseEntries(res[3])
	if err != nil {
		detach()
		return nil, nil, err
	}

	h.mu.Lock()
	f.start(uint64(gen), uint64(cursor), logged, finished == 1)
	h.mu.Unlock()
	return f.stream, detach, nil
}

// loggedEvent is an event read from a client's log or channel.
type loggedEvent struct {
	seq   uint64
	entry entry
	final bool
}

// parseEntries reads XRANGE's answer: [[id, [field, value, ...]], ...].
func parseEntries(v any) ([]loggedEvent, error) {
	list, _ := v.([]any)
	events := make([]loggedEvent, 0, len(list))
	for _, item := range list {
		pair, _ := item.([]any)
		if len(pair) != 2 {
			return nil, fmt.Errorf("sse: unexpected log entry %v", item)
		}
		id, _ := pair[0].(string)
		seq, err := strconv.ParseUint(strings.TrimPrefix(id, "0-"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("sse: unexpected log entry id %q", id)
		}
		var e entry
		fields, _ := pair[1].([]any)
		for i := 0; i+1 < len(fields); i += 2 {
			k, _ := fields[i].(string)
			v, _ := fields[i+1].(string)
			switch k {
			case "n":
				e.name = v
			case "d":
				e.data = v
			}
		}
		events = append(events, loggedEvent{seq: seq, entry: e})
	}
	return events, nil
}

// subscribe makes sure this instance is subscribed to channel ch, for a
// stream or a run, and returns the number of the pub/sub connection
// it is subscribed on, for unsubscribe, or 0 if it is not. If wait is set,
// it returns once Redis has done the SUBSCRIBE.
func (h *RedisHub) subscribe(ctx context.Context, ch string, wait bool) (epoch uint64, err error) {
	h.subMu.Lock()
	if h.ps == nil {
		h.subMu.Unlock()
		return 0, unavailable(errors.New("no link to Redis"))
	}
	sub := h.subs[ch]
	if sub == nil {
		sub = &subscription{ready: make(chan struct{})}
		// Redis answers a PING on a pub/sub connection in turn, after
		// the SUBSCRIBE sent before it.
		h.pinged++
		ping := strconv.FormatUint(h.pinged, 10)
		err := h.ps.Subscribe(ctx, ch)
		if err == nil {
			err = h.ps.Ping(ctx, ping)
		}
		if err != nil {
			h.subMu.Unlock()
			return 0, unavailable(err)
		}
		h.subs[ch] = sub
		h.pings[ping] = sub
	}
	sub.users++
	epoch = h.epoch
	h.subMu.Unlock()

	if !wait {
		return epoch, nil
	}
	select {
	case <-sub.ready:
		return epoch, nil
	case <-ctx.Done():
		return epoch, ctx.Err()
	}
}

// unsubscribe undoes a subscribe that returned epoch.
func (h *RedisHub) unsubscribe(ch string, epoch uint64) {
	h.subMu.Lock()
	defer h.subMu.Unlock()

	sub := h.subs[ch]
	if epoch != h.epoch || sub == nil || h.ps == nil {
		return // subscribed on a connection since lost
	}
	sub.users--
	if sub.users == 0 {
		delete(h.subs, ch)
		// A failed UNSUBSCRIBE costs only messages to ignore; a broken
		// connection is noticed by listen.
		_ = h.ps.Unsubscribe(h.ctx, ch)
	}
}

// detach ends f's registration and starts the client's grace period.
func (h *RedisHub) detach(f *redisFeed) {
	h.mu.Lock()
	delete(h.feeds[f.id], f)
	if len(h.feeds[f.id]) == 0 {
		delete(h.feeds, f.id)
	}
	h.streams--
	started, closed, epoch := f.gen > 0, h.closed, f.epoch
	h.mu.Unlock()

	if epoch > 0 {
		h.unsubscribe(channel(f.id), epoch)
	}
	if !started || closed {
		return
	}
	// The keys expire Grace from now, unless a stream renews them; one on
	// another instance may have.
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteTimeout)
	defer cancel()
	_, _ = h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.PExpire(ctx, hashKey(f.id), h.cfg.Grace)
		p.PExpire(ctx, logKey(f.id), h.cfg.Grace)
		return nil
	})
}

// Start claims the client's run for this instance and starts fn as the run.
// The claim is renewed while fn runs, and let go when it returns. A client
// whose run is claimed by any instance gets ErrRunning.
func (h *RedisHub) Start(ctx context.Context, id string, fn RunFunc) error {
	h.mu.Lock()
	if err := h.usable(); err != nil {
		h.mu.Unlock()
		return err
	}
	token := h.token()
	h.mu.Unlock()

	switch n, err := startScript.Run(ctx, h.rdb,
		[]string{hashKey(id), logKey(id), runKey(id)}, token, h.lease.Milliseconds()).Int(); {
	case err != nil:
		return unavailable(err)
	case n == 0:
		return ErrUnknownClient
	case n < 0:
		return ErrRunning
	}

	// Subscribed, so that a remove on any instance stops the run at once.
	// A run that misses it stops at its next event: its claim is gone.
	epoch, err := h.subscribe(ctx, ownerChannel(id), false)
	if err != nil {
		h.release(id, token)
		return err
	}
	rctx, cancel := context.WithCancel(h.ctx)
	rr := &redisRun{token: token, cancel: cancel}
	r := &Run{cancel: cancel}
	r.publish = func(name, data string, final bool) error {
		return h.publish(rctx, id, rr, name, data, final)
	}

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		cancel()
		h.unsubscribe(ownerChannel(id), epoch)
		h.release(id, token)
		return ErrClosed
	}
	defer h.mu.Unlock() // Close must not start waiting before wg.Go
	h.runs[id] = rr
	h.wg.Go(func() {
		defer cancel()
		fn(rctx, r)
		h.mu.Lock()
		if h.runs[id] == rr {
			delete(h.runs, id)
		}
		h.mu.Unlock()
		h.unsubscribe(ownerChannel(id), epoch)
		// A run that finished has let go already; one that was stopped
		// lets go here, so the client can start another at once.
		h.release(id, token)
	})
	return nil
}

// release lets go of a run's claim, if it still holds it.
func (h *RedisHub) release(id, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteTimeout)
	defer cancel()
	_ = releaseScript.Run(ctx, h.rdb, []string{runKey(id)}, token).Err() // the lease ends it anyway
}

// usable reports why the hub cannot take a request, if it cannot. The
// caller holds h.mu.
func (h *RedisHub) usable() error {
	switch {
	case h.closed:
		return ErrClosed
	case h.linkErr != nil:
		return unavailable(h.linkErr)
	}
	return nil
}

// publish logs an event of run rr of client id. A run that has lost its
// claim, or whose client is gone, is stopped.
func (h *RedisHub) publish(ctx context.Context, id string, rr *redisRun, name, data string, final bool) error {
	req := &appendReq{id: id, token: rr.token, name: name, data: data, final: final, done: make(chan struct{})}
	select {
	case h.appends <- req:
	case <-ctx.Done():
		return nil // stopped
	}
	select {
	case <-req.done:
	case <-ctx.Done():
		return nil
	}
	switch {
	case req.err != nil && ctx.Err() != nil:
		return nil // stopped while it published
	case req.err != nil:
		rr.cancel()
		h.logger.Warn("run stopped: Redis failed", "id", id, "err", req.err)
		return unavailable(req.err)
	case req.seq < 0:
		rr.cancel()
		h.logger.Info("run stopped: its client is gone or its claim was lost", "id", id)
	case final:
		rr.finished.Store(true)
	}
	return nil
}

// appendReq is an event of a run owned here, on its way to Redis.
type appendReq struct {
	id, token, name, data string
	final                 bool

	// Set before done is closed.
	seq  int64 // the event's number, or -1: see appendScript
	err  error
	done chan struct{}
}

// maxBatch is the most events sent to Redis in one pipeline.
const maxBatch = 512

// appendLoop sends the events of the runs owned here to Redis: all those
// waiting, in one pipeline, while the previous pipeline was out. A lone
// event goes at once; under load, one round trip and a few system calls
// carry hundreds of events, where one each would cost Redis and this
// instance most of their CPU time. A run waits for its event to be logged
// before it sends the next, so a client's events stay in order.
func (h *RedisHub) appendLoop() {
	batch := make([]*appendReq, 0, maxBatch)
	for {
		select {
		case <-h.ctx.Done():
			return
		case req := <-h.appends:
			batch = append(batch[:0], req)
		}
	more:
		for len(batch) < maxBatch {
			select {
			case req := <-h.appends:
				batch = append(batch, req)
			default:
				break more
			}
		}
		h.appendAll(batch)
	}
}

// appendAll runs appendScript for each of batch in one pipeline, and
// answers each.
func (h *RedisHub) appendAll(batch []*appendReq) {
	cmds := make([]*redis.Cmd, len(batch))
	send := func(which []int) {
		_, _ = h.rdb.Pipelined(h.ctx, func(p redis.Pipeliner) error {
			for _, i := range which {
				r := batch[i]
				flag := "0"
				if r.final {
					flag = "1"
				}
				cmds[i] = appendScript.EvalSha(h.ctx, p,
					[]string{hashKey(r.id), logKey(r.id), runKey(r.id)},
					r.token, r.name, r.data, flag, h.lease.Milliseconds(), channel(r.id))
			}
			return nil
		}) // each command has its own error
	}
	all := make([]int, len(batch))
	for i := range all {
		all[i] = i
	}
	send(all)
	// A Redis that restarted has forgotten the script: load it, and send
	// again what it refused.
	var again []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 && appendScript.Load(h.ctx, h.rdb).Err() == nil {
		send(again)
	}
	for i, r := range batch {
		r.seq, r.err = cmds[i].Int64()
		close(r.done)
	}
}

// Remove forgets the client on every instance: its keys go, the streams
// held for it end, and its run stops.
func (h *RedisHub) Remove(ctx context.Context, id string) error {
	if err := h.check(); err != nil {
		return err
	}
	switch known, err := removeScript.Run(ctx, h.rdb,
		[]string{hashKey(id), logKey(id), runKey(id)}, channel(id), ownerChannel(id)).Int(); {
	case err != nil:
		return unavailable(err)
	case known == 0:
		return ErrUnknownClient
	}
	return nil
}

// Disconnect ends the client's stream, on whichever instance holds it, as a
// dropped connection would.
func (h *RedisHub) Disconnect(ctx context.Context, id string) error {
	if err := h.check(); err != nil {
		return err
	}
	switch heard, err := disconnectScript.Run(ctx, h.rdb, []string{hashKey(id)}, channel(id)).Int(); {
	case err != nil:
		return unavailable(err)
	case heard < 0:
		return ErrUnknownClient
	case heard == 0:
		return ErrNoStream
	}
	return nil
}

// check is usable, with the lock.
func (h *RedisHub) check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.usable()
}

// Stats counts the clients with a stream on this instance, those streams,
// and the runs this instance owns.
func (h *RedisHub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Stats{Clients: len(h.feeds), Streams: h.streams, Runs: len(h.runs)}
}

// Health reports whether the hub serves: ErrClosed once it is closing, or
// ErrUnavailable while its link to Redis is down or Redis does not answer a
// PING.
func (h *RedisHub) Health(ctx context.Context) error {
	if err := h.check(); err != nil {
		return err
	}
	if err := h.rdb.Ping(ctx).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Close ends the streams held here and the runs owned here, letting go of
// their claims, and waits for the hub's goroutines. Streams end without a
// final event, so browsers reconnect, to another instance if there is one.
// Runs do not move: a client whose run stopped here starts a new one.
func (h *RedisHub) Close() {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.stopLocal((*Stream).end)
		h.mu.Unlock()

		h.cancel()
		h.subMu.Lock()
		if h.ps != nil {
			_ = h.ps.Close() // ends listen's Receive
		}
		h.subMu.Unlock()
		h.wg.Wait()
	})
}

// listen reads the pub/sub connection until the hub closes, and brings the
// link back after it breaks.
func (h *RedisHub) listen(ps *redis.PubSub) {
	for {
		msg, err := ps.Receive(h.ctx)
		if err != nil {
			if h.ctx.Err() != nil {
				return
			}
			h.lose(ps, err) // unless keep has already
			if ps = h.reconnect(); ps == nil {
				return
			}
			continue
		}
		h.heard.Store(time.Now().UnixNano())
		switch m := msg.(type) {
		case *redis.Message:
			h.deliver(clientOf(m.Channel), m.Payload)
		case *redis.Pong:
			h.subMu.Lock()
			if sub := h.pings[m.Payload]; sub != nil {
				delete(h.pings, m.Payload)
				close(sub.ready)
			}
			h.subMu.Unlock()
		}
	}
}

// lose handles a broken link: every stream held here ends with a gap event,
// every run owned here stops, and requests get ErrUnavailable until
// reconnect succeeds.
func (h *RedisHub) lose(ps *redis.PubSub, err error) {
	h.subMu.Lock()
	if h.ps != ps {
		h.subMu.Unlock()
		return // lost already
	}
	h.logger.Error("redis link lost: ending streams with a gap event, stopping runs", "err", err)
	_ = ps.Close()
	h.ps = nil
	h.epoch++ // never 0: that means "not subscribed"
	clear(h.subs)
	for _, sub := range h.pings {
		close(sub.ready) // the attach goes on to fail, or finds its stream lost
	}
	clear(h.pings)
	h.subMu.Unlock()

	h.mu.Lock()
	defer h.mu.Unlock()
	h.linkErr = err
	h.stopLocal((*Stream).lose)
}

// stopLocal ends every stream held here with end, and stops every run owned
// here. The caller holds h.mu.
func (h *RedisHub) stopLocal(end func(*Stream)) {
	for _, feeds := range h.feeds {
		for f := range feeds {
			end(f.stream)
		}
	}
	for _, rr := range h.runs {
		rr.cancel()
	}
}

// reconnect opens a new pub/sub connection once Redis answers, trying with a
// growing delay. It returns nil if the hub closes first.
func (h *RedisHub) reconnect() *redis.PubSub {
	down := time.Now()
	delay := 50 * time.Millisecond
	for {
		t := time.NewTimer(delay)
		select {
		case <-h.ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, 2*time.Second)

		ps, err := subscribeLink(h.ctx, h.rdb)
		if err != nil {
			continue
		}
		h.subMu.Lock()
		if h.ctx.Err() != nil {
			h.subMu.Unlock()
			_ = ps.Close()
			return nil
		}
		h.ps = ps
		h.subMu.Unlock()

		h.heard.Store(time.Now().UnixNano())
		h.mu.Lock()
		h.linkErr = nil
		h.mu.Unlock()
		h.logger.Info("redis link restored", "down", time.Since(down).Round(time.Millisecond))
		return ps
	}
}

// deliver hands a message of client id's channel to the streams held here.
func (h *RedisHub) deliver(id, payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()

	feeds := h.feeds[id]
	if payload == "" {
		return
	}
	switch payload[0] {
	case 'e': // "e<seq> <final> <name>\n<data>"
		ev, ok := parseLive(payload[1:])
		if !ok {
			h.logger.Warn("unexpected message", "id", id, "payload", payload)
			return
		}
		for f := range feeds {
			f.push(ev)
		}
	case 'a': // "a<gen>": a stream attached; older ones end
		gen, err := strconv.ParseUint(payload[1:], 10, 64)
		if err != nil {
			return
		}
		for f := range feeds {
			f.attached(gen)
		}
	case 'r': // removed
		for f := range feeds {
			f.stream.end()
		}
		// The run stops too, if it is here.
		if rr := h.runs[id]; rr != nil {
			rr.cancel()
		}
	case 'd': // disconnected
		for f := range feeds {
			f.stream.end()
		}
	}
}

// parseLive reads "<seq> <final> <name>\n<data>".
func parseLive(s string) (loggedEvent, bool) {
	num, rest, ok1 := strings.Cut(s, " ")
	flag, rest, ok2 := strings.Cut(rest, " ")
	name, data, ok3 := strings.Cut(rest, "\n")
	seq, err := strconv.ParseUint(num, 10, 64)
	if !ok1 || !ok2 || !ok3 || err != nil {
		return loggedEvent{}, false
	}
	return loggedEvent{seq: seq, entry: entry{name: name, data: data}, final: flag == "1"}, true
}

// hold is how long the keys of a client with an open stream are kept from
// one renewal to the next.
func (h *RedisHub) hold() time.Duration {
	return max(h.cfg.Grace, h.lease)
}

// keep renews, every third of the lease, the keys of the clients whose
// streams are held here and the claims of the runs owned here. A run whose
// claim is gone stops.
//
// It also checks the link: it PINGs the pub/sub connection, and if Redis has
// said nothing on it for three rounds, as when Redis hangs or the network
// drops packets without closing the connection, the link is lost.
func (h *RedisHub) keep() {
	every := h.lease / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		h.subMu.Lock()
		ps := h.ps
		h.subMu.Unlock()
		if ps != nil {
			if silent := time.Since(time.Unix(0, h.heard.Load())); silent > 3*every {
				// Closing ps ends listen's Receive, which reconnects.
				h.lose(ps, fmt.Errorf("no answer from Redis for %s", silent.Round(time.Millisecond)))
				continue
			}
			_ = ps.Ping(h.ctx, "keep") // a failure shows in listen
		}
		h.mu.Lock()
		ids := make([]string, 0, len(h.feeds))
		for id := range h.feeds {
			ids = append(ids, id)
		}
		runs := make(map[string]*redisRun, len(h.runs))
		for id, rr := range h.runs {
			runs[id] = rr
		}
		h.mu.Unlock()

		// A round must not hold up the next one's check of the link.
		ctx, cancel := context.WithTimeout(h.ctx, every)
		renewed := make(map[string]*redis.Cmd, len(runs))
		_, err := h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, id := range ids {
				p.PExpire(ctx, hashKey(id), h.hold())
				p.PExpire(ctx, logKey(id), h.hold())
			}
			for id, rr := range runs {
				// Eval, not EvalSha: a pipeline cannot fall back on
				// NOSCRIPT after a Redis restart.
				renewed[id] = renewScript.Eval(ctx, p, []string{runKey(id)}, rr.token, h.lease.Milliseconds())
			}
			return nil
		})
		cancel()
		if err != nil {
			continue // listen sees a broken link; a failed renewal is retried
		}
		for id, cmd := range renewed {
			if n, _ := cmd.Int(); n == 0 && !runs[id].finished.Load() {
				runs[id].cancel()
				h.logger.Info("run stopped: its claim was lost", "id", id)
			}
		}
	}
}

// redisFeed is a stream's view of its client's events: those read from the
// log when it attached, then those that arrive on the channel.
type redisFeed struct {
	hub    *RedisHub
	id     string
	stream *Stream

	// Guarded by hub.mu.
	epoch  uint64        // of the pub/sub connection it subscribed on, or 0
	gen    uint64        // the attach's number; 0 until Attach has it
	newest uint64        // the newest attach heard of before then
	early  []loggedEvent // live events heard before then
	expect uint64        // number of the next event to take
	seq    uint64        // number of buf[0]
	buf    []entry       // taken, not yet written
	final  bool          // the last of buf is the run's final event
}

// start gives f its attach number, cursor and the logged events from the
// cursor on, then the live events heard meanwhile. The caller holds hub.mu.
func (f *redisFeed) start(gen, cursor uint64, logged []loggedEvent, finished bool) {
	f.gen, f.expect = gen, cursor
	if f.newest > gen {
		f.stream.end() // a newer stream attached meanwhile
	}
	for i, ev := range logged {
		ev.final = finished && i == len(logged)-1
		f.push(ev)
	}
	for _, ev := range f.early {
		f.push(ev)
	}
	f.early = nil
}

// push takes an event, unless f has it already. The caller holds hub.mu.
func (f *redisFeed) push(ev loggedEvent) {
	switch {
	case f.gen == 0:
		f.early = append(f.early, ev)
		return
	case ev.seq < f.expect:
		return // read from the log, and heard again
	case ev.seq > f.expect:
		// An event never arrived. End the stream: the browser
		// reconnects with its Last-Event-ID and reads the rest from
		// the log.
		f.stream.end()
		return
	}
	if len(f.buf) == 0 {
		f.seq = ev.seq
	}
	f.buf = append(f.buf, ev.entry)
	f.expect++
	f.final = ev.final
	f.stream.notify()
}

// attached hears of attach number gen for f's client. The caller holds
// hub.mu.
func (f *redisFeed) attached(gen uint64) {
	switch {
	case f.gen == 0:
		f.newest = max(f.newest, gen)
	case gen > f.gen:
		f.stream.end()
	}
}

func (f *redisFeed) next() (seq uint64, events []entry, final bool) {
	h := f.hub
	h.mu.Lock()
	defer h.mu.Unlock()

	seq, events, final = f.seq, f.buf, f.final
	f.buf, f.final = nil, false
	return seq, events, final
}

func (f *redisFeed) delivered(seq uint64) {
	h := f.hub
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteTimeout)
	defer cancel()
	// If this fails, a fresh EventSource replays the finished run.
	_ = deliveredScript.Run(ctx, h.rdb, []string{hashKey(f.id)}, seq).Err()
}
