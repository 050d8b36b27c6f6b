package sse_test

import (
	"context"
	"testing"
	"time"

	"gin-sse-progress/sse"
)

// heldRun starts a run whose RunFunc holds it and returns, with parent as
// Go's. It returns the run's stop, the hold's release, and channels closed
// by the hold's stopped and by ended.
func heldRun(t *testing.T, parent context.Context) (stop, release func(), stopped, ended chan struct{}) {
	t.Helper()
	stopped, ended = make(chan struct{}), make(chan struct{})
	held := make(chan func())
	r := sse.NewRun(func(string, string, bool) error { return nil })
	stop = r.Go(parent, func(_ context.Context, r *sse.Run) {
		held <- r.Hold(func() { close(stopped) })
	}, func() { close(ended) })
	return stop, <-held, stopped, ended
}

// closed reports whether ch is closed within d.
func closed(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func TestHoldStopped(t *testing.T) {
	t.Run("stop", func(t *testing.T) {
		stop, release, stopped, ended := heldRun(t, context.Background())
		if closed(stopped, 20*time.Millisecond) || closed(ended, 0) {
			t.Fatal("a held run that nobody stopped was stopped or ended")
		}
		stop()
		if !closed(stopped, time.Second) {
			t.Fatal("stop did not call the hold's stopped")
		}
		if closed(ended, 20*time.Millisecond) {
			t.Fatal("the run ended before its hold was released")
		}
		release()
		if !closed(ended, time.Second) {
			t.Fatal("the run did not end once released")
		}
		stop() // again, once over: nothing happens
	})
	t.Run("parent cancelled", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		_, release, stopped, ended := heldRun(t, parent)
		cancel()
		if !closed(stopped, time.Second) {
			t.Fatal("cancelling the parent did not call the hold's stopped")
		}
		release()
		if !closed(ended, time.Second) {
			t.Fatal("the run did not end once released")
		}
	})
	t.Run("released first", func(t *testing.T) {
		stop, release, stopped, ended := heldRun(t, context.Background())
		release()
		if !closed(ended, time.Second) {
			t.Fatal("the run did not end once released")
		}
		stop()
		if closed(stopped, 20*time.Millisecond) {
			t.Fatal("a stop after the run was over called stopped")
		}
	})
	t.Run("held after the stop", func(t *testing.T) {
		stopped, ended := make(chan struct{}), make(chan struct{})
		r := sse.NewRun(func(string, string, bool) error { return nil })
		var stop func()
		stopNow := make(chan struct{})
		stop = r.Go(context.Background(), func(ctx context.Context, r *sse.Run) {
			<-stopNow
			stop()
			<-ctx.Done()
			release := r.Hold(func() { close(stopped) })
			if !closed(stopped, time.Second) {
				t.Error("a hold taken after the stop did not call its stopped")
			}
			release()
		}, func() { close(ended) })
		close(stopNow)
		if !closed(ended, time.Second) {
			t.Fatal("the run did not end")
		}
	})
}
