package ssetest

import (
	"context"
	"sync/atomic"

	"gin-sse-progress/sse"
)

// RoundRobin is a Registry that sends each call to the next of several
// registries, as a load balancer spreads requests over instances that share
// one store: every call of a test lands on another instance than the last.
type RoundRobin struct {
	regs []sse.Registry
	next atomic.Uint64
}

var (
	_ sse.HealthChecker = (*RoundRobin)(nil)
	_ sse.StatsReporter = (*RoundRobin)(nil)
)

// NewRoundRobin spreads calls over regs, the first call going to regs[0].
func NewRoundRobin(regs ...sse.Registry) *RoundRobin {
	return &RoundRobin{regs: regs}
}

func (c *RoundRobin) pick() sse.Registry {
	return c.regs[(c.next.Add(1)-1)%uint64(len(c.regs))]
}

func (c *RoundRobin) Attach(ctx context.Context, id string, last uint64) (*sse.Stream, func(), error) {
	return c.pick().Attach(ctx, id, last)
}

func (c *RoundRobin) Start(ctx context.Context, id string, fn sse.RunFunc) error {
	return c.pick().Start(ctx, id, fn)
}

func (c *RoundRobin) AttachRun(ctx context.Context, id string, last uint64, fn sse.RunFunc) (*sse.Stream, func(), error) {
	return c.pick().AttachRun(ctx, id, last, fn)
}

func (c *RoundRobin) Remove(ctx context.Context, id string) error {
	return c.pick().Remove(ctx, id)
}

func (c *RoundRobin) Drop(ctx context.Context, id string) error {
	return c.pick().Drop(ctx, id)
}

// Stats adds up the stats of the registries that report them.
func (c *RoundRobin) Stats() sse.Stats {
	var sum sse.Stats
	for _, reg := range c.regs {
		if sr, ok := reg.(sse.StatsReporter); ok {
			st := sr.Stats()
			sum.Clients += st.Clients
			sum.Streams += st.Streams
			sum.Runs += st.Runs
		}
	}
	return sum
}

// Health fails if any of the registries does.
func (c *RoundRobin) Health(ctx context.Context) error {
	for _, reg := range c.regs {
		if hc, ok := reg.(sse.HealthChecker); ok {
			if err := hc.Health(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close closes every registry.
func (c *RoundRobin) Close() {
	for _, reg := range c.regs {
		reg.Close()
	}
}
