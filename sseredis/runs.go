package sseredis

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"gin-sse-progress/sse"
)

// The runs owned here: starting them under a claim in Redis, renewing the
// claims while they run, and the liveness checks that go with the renewals.

// ownedRun is a run owned by this instance: it holds the client's claim,
// sse:{id}:run, under its token.
type ownedRun struct {
	token  string
	cancel context.CancelFunc
	// handover is set when the run is stopped for this instance's sake:
	// it shuts down, or lost Redis (a failed append, a broken link). The
	// run's claim is then handed over rather than let go, so that the run
	// goes on from its last logged event, here or on another instance.
	handover atomic.Bool
	// finished is set once the final event is logged, which lets go of
	// the claim.
	finished atomic.Bool
	// ending is set as the final event goes to Redis: from then on, a
	// renewal that finds the claim gone may have been answered after the
	// final event let go of it, before its answer reached finished, and
	// keep must not take that for a lost claim. (A final event refused
	// for a lost claim stops the run itself.)
	ending atomic.Bool
	// logged is set once the run has logged an event here, or was taken
	// over: its log exists, with the client's expiry.
	logged atomic.Bool
}

// handOff stops the run, to be handed over once it has ended.
func (o *ownedRun) handOff() {
	o.handover.Store(true)
	o.cancel()
}

// Start claims the client's run for this instance and starts fn as the run;
// see sse.Registry. A client whose run is claimed by any instance gets
// sse.ErrRunning.
func (r *Registry) Start(ctx context.Context, id string, fn sse.RunFunc) error {
	token, err := r.claim(ctx, id)
	if err != nil {
		return err
	}
	return r.launch(ctx, id, token, fn, nil)
}

// claim claims the run of client id for a new token, which it returns. The
// run goes into runsIndex first, so that if this instance dies before the
// run logs anything, its claim is found and taken over once it runs out:
// the client, told its run is going (409 to another POST), is never left
// waiting for a run that nobody owns.
func (r *Registry) claim(ctx context.Context, id string) (string, error) {
	r.mu.Lock()
	if err := r.usable(); err != nil {
		r.mu.Unlock()
		return "", err
	}
	token := r.token()
	r.mu.Unlock()

	r.indexRun(ctx, r.rdb, id, token)
	switch n, err := r.scripts.start.Run(ctx, r.rdb,
		[]string{hashKey(id), logKey(id), runKey(id)}, token, r.lease.Milliseconds()).Int(); {
	case err != nil:
		return "", unavailable(err) // indexed: taken over, or found finished, once due
	case n == 0:
		r.unindex(id, token) // no such client: nothing to take over
		return "", sse.ErrUnknownClient
	case n < 0:
		r.unindex(id, token) // the run that holds the claim is indexed by its owner
		return "", sse.ErrRunning
	}
	return token, nil
}

// launch starts fn as the run of client id whose claim token holds, and
// which runsIndex records, going on after last if it moved from another
// instance. The claim is renewed
// while fn runs, and let go when it returns (or handed over, if the
// instance is shutting down); if fn cannot start, it is let go at once.
func (r *Registry) launch(ctx context.Context, id, token string, fn sse.RunFunc, last *sse.Entry) error {
	// Subscribed, so that a remove on any instance stops the run at once.
	// A run that misses it stops at its next event: its claim is gone.
	epoch, err := r.subscribe(ctx, ownerChannel(id), false)
	if err != nil {
		r.release(id, token)
		return err
	}
	rctx, cancel := context.WithCancel(r.ctx)
	run := &ownedRun{token: token, cancel: cancel}
	run.logged.Store(last != nil)
	publish := func(name, data string, final bool) error {
		return r.publish(rctx, id, run, name, data, final)
	}
	handle := sse.NewRun(publish)
	if last != nil {
		handle = sse.ContinueRun(publish, *last)
	}
	handle.Waiting() // Send waits for its append to Redis

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		r.unsubscribe(ownerChannel(id), epoch)
		r.release(id, token)
		return sse.ErrClosed
	}
	defer r.mu.Unlock() // Close must not start waiting before wg.Add
	r.runs[id] = run
	r.wg.Add(1)
	handle.Go(rctx, fn, func() {
		defer r.wg.Done()
		defer cancel()
		r.mu.Lock()
		if r.runs[id] == run {
			delete(r.runs, id)
		}
		r.mu.Unlock()
		r.unsubscribe(ownerChannel(id), epoch)
		switch {
		case run.finished.Load():
			r.unindex(id, token) // the final event let go of the claim
			return
		case run.handover.Load():
			r.handOver(id, token)
			return
		}
		// A run that finished has let go already; one that was stopped
		// lets go here, so the client can start another at once.
		r.release(id, token)
	})
	return nil
}

// token returns a name for a run, unique across instances. The caller holds
// r.mu.
func (r *Registry) token() string {
	r.tokens++
	return r.self + "-" + strconv.FormatUint(r.tokens, 10)
}

// release lets go of a run's claim, if it still holds it, and takes it
// out of runsIndex.
func (r *Registry) release(id, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.WriteTimeout)
	defer cancel()
	if n, err := r.scripts.release.Run(ctx, r.rdb, []string{runKey(id)}, token).Int(); err == nil && n == 1 {
		_ = r.rdb.ZRem(ctx, runsIndex, runMember(id, token)).Err()
	} // else the lease ends it anyway, and a run that finished left the index on its own
}

// hold is how long the keys of a client with an open stream are kept from
// one renewal to the next.
func (r *Registry) hold() time.Duration {
	return max(r.cfg.Grace, r.lease)
}

// keep renews, every third of the lease, the keys of the clients whose
// streams are held here and the claims of the runs owned here. A run whose
// claim is gone stops.
//
// It also checks the link: it PINGs the pub/sub connection, and if Redis has
// said nothing on it for three rounds, as when Redis hangs or the network
// drops packets without closing the connection, the link is lost.
func (r *Registry) keep() {
	every := r.lease / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		case <-r.nudge: // a run was handed over: take it now
		}
		r.subMu.Lock()
		ps := r.ps
		r.subMu.Unlock()
		if ps != nil {
			if silent := time.Since(time.Unix(0, r.heard.Load())); silent > 3*every {
				// Closing ps ends listen's Receive, which reconnects.
				r.lose(ps, fmt.Errorf("no answer from Redis for %s", silent.Round(time.Millisecond)))
				continue
			}
			_ = ps.Ping(r.ctx, "keep") // a failure shows in listen
		}
		r.renew(every)
		ctx, cancel := context.WithTimeout(r.ctx, every)
		r.adopt(ctx)
		cancel()
	}
}

// renew is one round of keep's renewals, bounded by every so that it does
// not hold up the next round's check of the link. Claims are renewed each
// round; the keys of the clients held here, which live for hold, every
// third of hold: with the defaults (a 30 s grace, a 10 s lease), every
// third round, a third of the commands.
func (r *Registry) renew(every time.Duration) {
	r.renewMu.Lock()
	defer r.renewMu.Unlock()
	began := time.Now()
	keys := began.Sub(r.keysRenewed) >= r.hold()/3-every/2 // a round early rather than late
	r.mu.Lock()
	var ids []string // clients whose keys this round renews
	if keys {
		ids = make([]string, 0, len(r.sources))
		for id := range r.sources {
			ids = append(ids, id)
		}
	}
	type owned struct {
		id  string
		run *ownedRun
	}
	runs := make([]owned, 0, len(r.runs))
	for id, run := range r.runs {
		runs = append(runs, owned{id, run})
	}
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(r.ctx, every)
	defer cancel()
	claims := evalEach(ctx, r.rdb, r.scripts.renew, len(runs), func(i int) ([]string, []any) {
		return []string{runKey(runs[i].id)}, []any{runs[i].run.token, r.lease.Milliseconds()}
	})
	for i, cmd := range claims {
		// One that failed (no answer, a broken link) is retried next round.
		if n, err := cmd.Int(); err == nil && n == 0 && !runs[i].run.ending.Load() {
			runs[i].run.cancel()
			r.logger.Info("run stopped: its claim was lost", "id", runs[i].id)
		}
	}
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.PExpire(ctx, hashKey(id), r.hold())
			p.PExpire(ctx, logKey(id), r.hold())
		}
		for _, o := range runs {
			if !o.run.finished.Load() {
				r.indexRun(ctx, p, o.id, o.run.token)
			}
		}
		return nil
	})
	if err != nil {
		return // listen sees a broken link; the keys are renewed next round
	}
	if keys {
		r.keysRenewed = began
	}
}
