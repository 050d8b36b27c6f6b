package sseredis

import (
	"context"
	"testing"
)

// TestWaitCountsAnAnswerThatCameAsTheRunStopped: an append answered by the
// time its run's context is done is known to be answered, every time (a
// plain select picks either at random), and one not answered is not.
func TestWaitCountsAnAnswerThatCameAsTheRunStopped(t *testing.T) {
	stopped, cancel := context.WithCancel(t.Context())
	cancel()
	for range 100 {
		answered := &appendReq{done: make(chan struct{})}
		close(answered.done)
		if !answered.wait(stopped) {
			t.Fatal("an answered append, its run stopped: wait says no answer")
		}
	}
	if (&appendReq{done: make(chan struct{})}).wait(stopped) {
		t.Fatal("an append with no answer, its run stopped: wait says answered")
	}
}
