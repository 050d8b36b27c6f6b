package sseredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"gin-sse-progress/sse"
)

// Options holds the settings of a Registry besides its sse.Config.
type Options struct {
	// Lease is how long a run's claim outlives the last word from the
	// instance that owns the run. The owner renews it every Lease/3; if
	// the owner dies, the client can start a new run, on any instance,
	// once Lease has passed. A pub/sub connection on which Redis has said
	// nothing for Lease is taken as lost. Zero means 10s.
	Lease time.Duration
	// Logger reports the link to Redis going down and coming back, and
	// runs stopped because their claim was lost. Nil discards.
	Logger *slog.Logger
	// Resume returns the job that goes on with a run of client whose
	// instance went away, from the last event it logged (sse.Run.Last):
	// handed over at once when that instance shuts down, taken over after
	// the lease when it dies. Nil: such a run ends with a final gap event
	// (sse.ReasonRunLost), and a new run may start.
	Resume func(client string) sse.RunFunc
}

// Registry is an sse.Registry shared by server instances through Redis, so
// that any instance can serve any request of a client: the POST that starts
// a run, the stream that shows it, the reconnect that resumes it and the
// remove that ends it. See the package documentation for how.
type Registry struct {
	cfg     sse.Config
	loop    *sse.Loop // writes the streams that Handoff takes over
	lease   time.Duration
	rdb     *redis.Client
	scripts scripts
	logger  *slog.Logger
	resume  func(client string) sse.RunFunc
	// self names this instance in the tokens of its runs.
	self string

	// ctx is the parent of every run's context and of the registry's own
	// goroutines; cancel stops them all. wg counts them, so that Close
	// can wait.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	appends   chan *appendReq // the runs' events, to appendLoop
	nudge     chan struct{}   // wakes keep to take handed-over runs; room for one
	heard     atomic.Int64    // when the pub/sub connection last had news, in Unix ns
	// renewMu orders keep's renewals and detach's expiry: a renewal that
	// read the streams held here before a detach must not land after it,
	// or the keys would outlive the stream by the hold time, not Grace.
	renewMu sync.Mutex
	// keysRenewed is when keep last renewed the keys of the clients held
	// here. Guarded by renewMu.
	keysRenewed time.Time

	mu      sync.Mutex
	sources map[string]map[*source]struct{} // streams held here, by client id
	streams int
	runs    map[string]*ownedRun // runs owned here, by client id
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

var (
	_ sse.Registry      = (*Registry)(nil)
	_ sse.HealthChecker = (*Registry)(nil)
	_ sse.StatsReporter = (*Registry)(nil)
)

// CheckURL reports whether u names a Redis New can use:
// redis://[user:password@]host:port/db, or rediss:// for TLS, with go-redis's
// query options except max_retries.
func CheckURL(u string) error {
	_, err := clientOptions(u)
	return err
}

// clientOptions returns the options of the Redis client at u, as the
// registry needs them. go-redis retries a command whose connection broke
// before the answer came, and a retried append that Redis had done logs its
// event twice: the registry handles every failure itself, so it makes no
// retries. And its own deadlines, such as the one on a health check, only
// hold if go-redis heeds them.
func clientOptions(u string) (*redis.Options, error) {
	opts, err := redis.ParseURL(u)
	if err != nil {
		return nil, err
	}
	if p, err := url.Parse(u); err == nil && p.Query().Has("max_retries") {
		return nil, errors.New("max_retries cannot be set: a retried command could log an event twice")
	}
	opts.MaxRetries = -1
	opts.ContextTimeoutEnabled = true
	return opts, nil
}

// New connects to the Redis at u (see CheckURL) and returns a registry kept
// there. It fails if Redis does not answer or cannot run its scripts. Close
// closes the connection.
func New(ctx context.Context, u string, cfg sse.Config, opts Options) (*Registry, error) {
	copts, err := clientOptions(u)
	if err != nil {
		return nil, err
	}
	if opts.Lease <= 0 {
		opts.Lease = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	rdb := redis.NewClient(copts)
	ps, err := openLink(ctx, rdb)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	scripts := newScripts()
	if err := scripts.load(ctx, rdb); err != nil {
		_ = ps.Close()
		_ = rdb.Close()
		return nil, err
	}
	var self [8]byte
	_, _ = rand.Read(self[:]) // never fails
	rctx, cancel := context.WithCancel(context.Background())
	r := &Registry{
		cfg:     cfg,
		loop:    sse.NewLoop(cfg),
		lease:   opts.Lease,
		rdb:     rdb,
		scripts: scripts,
		logger:  opts.Logger,
		resume:  opts.Resume,
		nudge:   make(chan struct{}, 1),
		self:    hex.EncodeToString(self[:]),
		ctx:     rctx,
		cancel:  cancel,
		sources: make(map[string]map[*source]struct{}),
		runs:    make(map[string]*ownedRun),
		appends: make(chan *appendReq),
		ps:      ps,
		subs:    make(map[string]*subscription),
		pings:   make(map[string]*subscription),
		epoch:   1,
	}
	r.heard.Store(time.Now().UnixNano())
	r.wg.Go(func() { r.listen(ps) })
	r.wg.Go(r.keep)
	r.wg.Go(r.appendLoop)
	return r, nil
}

// unavailable wraps a Redis error in sse.ErrUnavailable.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", sse.ErrUnavailable, err)
}

// usable reports why the registry cannot take a request, if it cannot. The
// caller holds r.mu.
func (r *Registry) usable() error {
	switch {
	case r.closed:
		return sse.ErrClosed
	case r.linkErr != nil:
		return unavailable(r.linkErr)
	}
	return nil
}

// check is usable, with the lock.
func (r *Registry) check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.usable()
}

// Remove forgets the client on every instance: its keys go, the streams
// held for it end, and its run stops.
func (r *Registry) Remove(ctx context.Context, id string) error {
	if err := r.check(); err != nil {
		return err
	}
	switch known, err := r.scripts.remove.Run(ctx, r.rdb,
		[]string{hashKey(id), logKey(id), runKey(id)}, channel(id), ownerChannel(id)).Int(); {
	case err != nil:
		return unavailable(err)
	case known == 0:
		return sse.ErrUnknownClient
	}
	return nil
}

// Drop ends the client's stream, on whichever instance holds it, as a
// dropped connection would.
func (r *Registry) Drop(ctx context.Context, id string) error {
	if err := r.check(); err != nil {
		return err
	}
	switch heard, err := r.scripts.drop.Run(ctx, r.rdb, []string{hashKey(id)}, channel(id)).Int(); {
	case err != nil:
		return unavailable(err)
	case heard < 0:
		return sse.ErrUnknownClient
	case heard == 0:
		return sse.ErrNoStream
	}
	return nil
}

// Stats counts the clients with a stream on this instance, those streams,
// and the runs this instance owns.
func (r *Registry) Stats() sse.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return sse.Stats{Clients: len(r.sources), Streams: r.streams, Runs: len(r.runs)}
}

// Health reports whether the registry serves: sse.ErrClosed once it is
// closing, or sse.ErrUnavailable while its link to Redis is down or Redis
// does not answer a PING.
func (r *Registry) Health(ctx context.Context) error {
	if err := r.check(); err != nil {
		return err
	}
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// LinkUp reports whether the link to Redis is up: false while it is down,
// and once the registry is closed. A metric's gauge reads it.
func (r *Registry) LinkUp() bool {
	return r.check() == nil
}

// Close ends the streams held here and stops the runs owned here, handing
// them over to the other instances (see Options.Resume), waits for the
// registry's goroutines, and closes the connection to Redis. Streams end
// without a final event, so browsers reconnect, to another instance if
// there is one.
func (r *Registry) Close() {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.stopLocal(func(s *sse.Stream) { s.End(sse.EndShutdown) })
		r.mu.Unlock()
		r.loop.Close() // the streams' ends, and their detaches, with Redis still there

		r.cancel()
		r.subMu.Lock()
		if r.ps != nil {
			_ = r.ps.Close() // ends listen's Receive
		}
		r.subMu.Unlock()
		r.wg.Wait()
		_ = r.rdb.Close()
	})
}
