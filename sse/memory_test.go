package sse_test

import (
	"testing"
	"time"

	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
)

func newMemory(t *testing.T, cfg sse.Config) sse.Registry {
	reg := sse.NewMemoryRegistry(cfg)
	t.Cleanup(reg.Close)
	return reg
}

// TestMemoryRegistry checks the in-memory registry against the rules every
// registry follows.
func TestMemoryRegistry(t *testing.T) {
	ssetest.TestRegistry(t, newMemory)
}

// TestMemoryRegistryStats follows the counts of a client's life.
func TestMemoryRegistryStats(t *testing.T) {
	cfg := ssetest.Config()
	cfg.Grace = 20 * time.Millisecond
	reg := sse.NewMemoryRegistry(cfg)
	defer reg.Close()
	want := func(st sse.Stats, why string) {
		t.Helper()
		if got := reg.Stats(); got != st {
			t.Fatalf("%s: stats %+v, want %+v", why, got, st)
		}
	}

	_, detach, err := reg.Attach(t.Context(), "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	want(sse.Stats{Clients: 1, Streams: 1}, "attached")
	run := ssetest.NewScript()
	if err := reg.Start(t.Context(), "a", run.Run); err != nil {
		t.Fatal(err)
	}
	want(sse.Stats{Clients: 1, Streams: 1, Runs: 1}, "started")
	_, detach2, err := reg.Attach(t.Context(), "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	want(sse.Stats{Clients: 1, Streams: 2, Runs: 1}, "replaced, the old stream not yet detached")
	detach()
	detach() // a second call does nothing
	want(sse.Stats{Clients: 1, Streams: 1, Runs: 1}, "replaced")
	detach2()
	want(sse.Stats{Clients: 1, Runs: 1}, "detached: kept for Grace")
	select {
	case <-run.Stopped():
	case <-time.After(5 * time.Second):
		t.Fatal("grace expiry did not stop the run")
	}
	want(sse.Stats{}, "forgotten after Grace")
}
