package sseredis

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"gin-sse-progress/sse"
)

// Runs that outlive their instance. A run's progress is its log: when the
// instance that owns it goes away, another takes its claim and goes on from
// the last event it logged (with Options.Resume). An instance that shuts
// down, or stops its runs because Redis failed them, lets go of their
// claims and says so on handoverChannel, so that the pause is about one
// tick once Redis answers; one that dies leaves its claims to expire,
// after the lease, and keep finds them in runsIndex.

// indexRun records, in runsIndex, that the run of client id under token is
// owned until its lease runs out from now. A failure costs only a takeover
// after a crash; keep's next renewal records it again.
func (r *Registry) indexRun(ctx context.Context, p redis.Cmdable, id, token string) {
	_ = p.ZAdd(ctx, runsIndex, redis.Z{Score: float64(time.Now().Add(r.lease).UnixMilli()), Member: runMember(id, token)}).Err()
}

// unindex takes the run of client id under token out of runsIndex; the
// client's other runs stay.
func (r *Registry) unindex(id, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.WriteTimeout)
	defer cancel()
	_ = r.rdb.ZRem(ctx, runsIndex, runMember(id, token)).Err()
}

// handOver lets go of the claim of a run that this instance stopped for its
// own sake (it shuts down, or lost Redis), and tells the instances to take
// it over now: the first to look goes on with it, this one included if it
// still serves. With no Resume to go on with it, the run ends with a final
// gap event instead, so that its streams hear of it. If Redis does not
// answer, the claim runs out with its lease, and the run is taken over then.
func (r *Registry) handOver(id, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.WriteTimeout)
	defer cancel()
	let, err := r.scripts.release.Run(ctx, r.rdb, []string{runKey(id)}, token).Int()
	if err != nil || let == 0 {
		return // finished or removed meanwhile: nothing to hand over
	}
	if r.resume == nil {
		r.loseRun(ctx, id, runMember(id, token))
		return
	}
	_, _ = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, runsIndex, redis.Z{Score: 0, Member: runMember(id, token)}) // due at once
		p.Publish(ctx, handoverChannel, id)
		return nil
	})
	r.logger.Info("run handed over: the first instance to look goes on with it", "id", id)
}

// adopt takes over the runs whose owner went away: those whose claim, as
// runsIndex records it, ran out before now, or was handed over.
func (r *Registry) adopt(ctx context.Context) {
	ids, err := r.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: runsIndex, ByScore: true, Start: "-inf", Stop: strconv.FormatInt(time.Now().UnixMilli(), 10), Count: 100,
	}).Result()
	if err != nil {
		return // the link's trouble shows in listen; keep tries again
	}
	for _, m := range ids {
		id, token := parseRunMember(m)
		r.mu.Lock()
		run, ours := r.runs[id]
		r.mu.Unlock()
		if !ours || run.token != token {
			r.takeOver(ctx, id, m)
		}
	}
}

// loseRun ends the run of client id, whose owner went away, with a final gap
// event (sse.ReasonRunLost): no instance can go on with it.
func (r *Registry) loseRun(ctx context.Context, id, member string) {
	n, err := r.scripts.takeover.Run(ctx, r.rdb, []string{hashKey(id), logKey(id), runKey(id)},
		"", r.lease.Milliseconds(), "lose", sse.GapData(sse.ReasonRunLost, 0), channel(id)).Slice()
	if err != nil {
		return
	}
	if code, _ := n[0].(int64); code == -1 {
		_ = r.rdb.ZRem(ctx, runsIndex, member).Err()
		r.logger.Warn("run lost with its instance: ended with a gap", "id", id)
	}
}

// takeOver claims the run of client id, if its owner went away, and goes
// on with it here; without a Resume, it ends the run with a final gap.
// member is the run's entry in runsIndex, under its last owner's token, or
// "" if the caller does not know it (a scan takes it out once the run has
// finished).
func (r *Registry) takeOver(ctx context.Context, id, member string) {
	if r.resume == nil {
		r.loseRun(ctx, id, member)
		return
	}
	r.mu.Lock()
	if r.usable() != nil {
		r.mu.Unlock()
		return
	}
	token := r.token()
	r.mu.Unlock()
	res, err := r.scripts.takeover.Run(ctx, r.rdb, []string{hashKey(id), logKey(id), runKey(id)},
		token, r.lease.Milliseconds(), "claim", "", channel(id)).Slice()
	if err != nil {
		return
	}
	switch n, _ := res[0].(int64); n {
	case 0:
		return // owned: alive, or taken over by another instance first
	case -1:
		_ = r.rdb.ZRem(ctx, runsIndex, member).Err() // the client is gone, or its run finished
		return
	}
	// Owned here from now, until the lease runs out: not due now.
	_, _ = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, runsIndex, member)
		r.indexRun(ctx, p, id, token)
		return nil
	})
	var last *sse.Entry
	if len(res) == 3 {
		name, _ := res[1].(string)
		data, _ := res[2].(string)
		last = &sse.Entry{Name: name, Data: data}
	}
	if err := r.launch(ctx, id, token, r.resume(id), last); err != nil {
		r.logger.Warn("run not taken over", "id", id, "err", err)
		return
	}
	r.logger.Info("run taken over: going on from its last event", "id", id)
}
