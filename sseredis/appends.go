package sseredis

import "context"

// maxBatch is the most events sent to Redis in one pipeline.
const maxBatch = 512

// appendReq is an event of a run owned here, on its way to Redis.
type appendReq struct {
	id, token, name, data string
	final                 bool
	fresh                 bool // the run's first event here: see lua/append.lua

	// Set before done is closed.
	seq  int64 // the event's number, or -1: see lua/append.lua
	err  error
	done chan struct{}
}

// publish logs an event of run of client id, and waits until it is logged.
// A run that has lost its claim, or whose client is gone, is stopped; one
// whose append failed is stopped to be handed over. A stopped run logs
// nothing more, though its steps go on until they hear of it and it may
// still hold its claim (until it ends): its next owner goes on after its
// last logged event, so an event logged after one dropped (a step's update,
// then its close) would leave that one missing, with no gap to say so.
func (r *Registry) publish(ctx context.Context, id string, run *ownedRun, name, data string, final bool) error {
	if ctx.Err() != nil {
		return nil // stopped (the select below would pick either case)
	}
	req := &appendReq{
		id: id, token: run.token, name: name, data: data, final: final,
		fresh: !run.logged.Load(), done: make(chan struct{}),
	}
	if final {
		run.ending.Store(true)
	}
	select {
	case r.appends <- req:
	case <-ctx.Done():
		return nil // stopped
	}
	if !req.wait(ctx) {
		return nil // stopped before its answer
	}
	switch {
	case ctx.Err() != nil && (req.err != nil || req.seq < 0):
		return nil // stopped while it published: nothing to tell
	case req.err != nil:
		// Redis may have logged the event or not: the run goes on
		// from what its log holds once Redis answers.
		run.handOff()
		r.logger.Warn("run stopped: Redis failed", "id", id, "err", req.err)
		return unavailable(req.err)
	case req.seq < 0:
		run.cancel()
		r.logger.Info("run stopped: its client is gone or its claim was lost", "id", id)
	case final:
		run.finished.Store(true)
	}
	run.logged.Store(true)
	return nil
}

// wait waits for req's answer, and reports whether it came: false if ctx
// was done first. An answer that came as ctx was done still counts, so that
// a final event logged as its run was stopped is known to be (the run then
// leaves the index; its claim went with the event).
func (req *appendReq) wait(ctx context.Context) bool {
	select {
	case <-req.done:
		return true
	case <-ctx.Done():
		select {
		case <-req.done:
			return true
		default:
			return false
		}
	}
}

// appendLoop sends the events of the runs owned here to Redis: all those
// waiting, in one pipeline, while the previous pipeline was out. A lone
// event goes at once; under load, one round trip and a few system calls
// carry hundreds of events, where one each would cost Redis and this
// instance most of their CPU time. A run waits for its event to be logged
// before it sends the next, so a client's events stay in order.
func (r *Registry) appendLoop() {
	batch := make([]*appendReq, 0, maxBatch)
	for {
		select {
		case <-r.ctx.Done():
			return
		case req := <-r.appends:
			batch = append(batch[:0], req)
		}
	more:
		for len(batch) < maxBatch {
			select {
			case req := <-r.appends:
				batch = append(batch, req)
			default:
				break more
			}
		}
		r.appendAll(batch)
	}
}

// appendAll runs the append script for each of batch in one pipeline, and
// answers each.
func (r *Registry) appendAll(batch []*appendReq) {
	cmds := evalEach(r.ctx, r.rdb, r.scripts.append, len(batch), func(i int) ([]string, []any) {
		req := batch[i]
		return []string{hashKey(req.id), logKey(req.id), runKey(req.id)},
			[]any{req.token, req.name, req.data, flag(req.final), flag(req.fresh), channel(req.id)}
	})
	for i, req := range batch {
		req.seq, req.err = cmds[i].Int64()
		close(req.done)
	}
}

// flag is a boolean as the scripts take it.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
