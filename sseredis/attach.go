package sseredis

import (
	"context"
	"errors"
	"sync"

	"gin-sse-progress/sse"
)

// Attach opens a stream for the client id on this instance; see
// sse.Registry. A stream for the same client on any instance ends.
// MaxStreams counts the streams of this instance; a client that already has
// a stream here is let in over it.
func (r *Registry) Attach(ctx context.Context, id string, lastEventID uint64) (*sse.Stream, func(), error) {
	s, detach, _, err := r.open(ctx, id, lastEventID, func(ctx context.Context) ([]any, error) {
		return r.scripts.attach.Run(ctx, r.rdb, []string{hashKey(id), logKey(id)},
			lastEventID, r.hold().Milliseconds(), channel(id)).Slice()
	})
	if err != nil {
		return nil, nil, err
	}
	return s.stream, detach, nil
}

// AttachRun resumes the client's run after lastEventID, or claims its next
// run for this instance and starts fn as that run; see sse.Registry. One
// script decides and attaches, so that two retries on two instances cannot
// both start a run. The run it may start is indexed first, as Start's is,
// so that it is taken over if this instance dies before renewing anything.
// A retry that resumes a run whose owner went away takes the run over here,
// rather than wait for another instance's scan.
func (r *Registry) AttachRun(ctx context.Context, id string, lastEventID uint64, fn sse.RunFunc) (*sse.Stream, func(), error) {
	r.mu.Lock()
	token := r.token()
	r.mu.Unlock()
	r.indexRun(ctx, r.rdb, id, token)
	s, detach, res, err := r.open(ctx, id, lastEventID, func(ctx context.Context) ([]any, error) {
		return r.scripts.attachRun.Run(ctx, r.rdb, []string{hashKey(id), logKey(id), runKey(id)},
			lastEventID, r.hold().Milliseconds(), channel(id), token, r.lease.Milliseconds()).Slice()
	})
	// lua/attach_run.lua's started: 1 a new run of token, 2 a run to take over.
	var started int64
	if err == nil && len(res) > 5 {
		started, _ = res[5].(int64)
	}
	if started != 1 && !errors.Is(err, sse.ErrUnavailable) {
		// Resumed or refused: no run of this token. After a failure the
		// script may have claimed one: the index finds it, as Start's.
		r.unindex(id, token)
	}
	if err != nil {
		return nil, nil, err
	}
	switch started {
	case 1:
		if err := r.launch(ctx, id, token, fn, nil); err != nil {
			detach()
			return nil, nil, err
		}
	case 2:
		r.takeOver(ctx, id, "") // exclusive: if another instance was first, nothing happens
	}
	return s.stream, detach, nil
}

// open registers a stream of client id, subscribes to the client's channel
// and then runs script, which attaches the stream in Redis and answers as
// lua/attach.lua does, or {-1} for sse.ErrRunning; it hands the stream the
// logged events and its opening gap, and returns the script's answer too.
func (r *Registry) open(ctx context.Context, id string, lastEventID uint64, script func(context.Context) ([]any, error)) (*source, func(), []any, error) {
	r.mu.Lock()
	if err := r.usable(); err != nil {
		r.mu.Unlock()
		return nil, nil, nil, err
	}
	if len(r.sources[id]) == 0 && r.streams >= r.cfg.MaxStreams {
		r.mu.Unlock()
		return nil, nil, nil, sse.ErrTooManyStreams
	}
	// Registered before it subscribes, so that it buffers every live event
	// from then on.
	s := &source{reg: r, id: id}
	s.stream = r.loop.NewStream(s)
	if r.sources[id] == nil {
		r.sources[id] = make(map[*source]struct{})
	}
	r.sources[id][s] = struct{}{}
	r.streams++
	r.mu.Unlock()
	detach := sync.OnceFunc(func() { r.detach(s) })
	fail := func(err error) (*source, func(), []any, error) {
		detach()
		return nil, nil, nil, err
	}

	epoch, err := r.subscribe(ctx, channel(id), true)
	r.mu.Lock()
	s.epoch = epoch // for detach, even if the wait failed
	r.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	res, err := script(ctx)
	if err != nil {
		return fail(unavailable(err))
	}
	gen, _ := res[0].(int64)
	switch gen {
	case 0:
		return fail(sse.ErrFinished)
	case -1:
		return fail(sse.ErrRunning)
	}
	cursor, _ := res[1].(int64)
	finished, _ := res[2].(int64)
	logged, err := parseEntries(res[3])
	if err != nil {
		return fail(err)
	}
	if code, _ := res[4].(int64); gapReason(code) != "" {
		s.stream.StartWithGap(gapReason(code), lastEventID)
	}

	r.mu.Lock()
	s.start(uint64(gen), uint64(cursor), logged, finished == 1)
	r.mu.Unlock()
	return s, detach, res, nil
}

// detach ends s's registration and starts the client's grace period.
func (r *Registry) detach(s *source) {
	r.mu.Lock()
	delete(r.sources[s.id], s)
	if len(r.sources[s.id]) == 0 {
		delete(r.sources, s.id)
	}
	r.streams--
	gen, closed, epoch := s.gen, r.closed, s.epoch
	r.mu.Unlock()

	if epoch > 0 {
		r.unsubscribe(channel(s.id), epoch)
	}
	if gen == 0 || closed {
		return // never attached, or the registry is closing
	}
	r.renewMu.Lock()
	defer r.renewMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.WriteTimeout)
	defer cancel()
	// Unless it fails, the keys then expire Grace from now; a stream that
	// attaches meanwhile, on any instance, keeps them.
	_ = r.scripts.detach.Run(ctx, r.rdb, []string{hashKey(s.id), logKey(s.id)}, gen, r.cfg.Grace.Milliseconds()).Err()
}
