package ssetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"gin-sse-progress/sse"
)

// testNoLeaks runs hundreds of client lives at once: streams dropped at
// once, runs abandoned mid-way, runs read to their end, clients removed
// while their streams are open, and grace periods that expire. Afterwards
// the registry holds nothing (if it reports Stats) and the goroutine count
// is back where it started.
func testNoLeaks(t *testing.T, newRegistry maker) {
	const clients, workers = 400, 20
	cfg := Config()
	cfg.Grace = 20 * time.Millisecond
	// A stream taken over from net/http reads nothing: it learns that its
	// client left at its next write, a heartbeat at the latest.
	cfg.Heartbeat = 50 * time.Millisecond
	// The server may notice a dropped stream after the worker has opened
	// its next one: the limit is not what this test is about.
	cfg.MaxStreams = clients
	reg, srv := serve(t, newRegistry, cfg)
	client := srv.Client()
	before := runtime.NumGoroutine()

	ids := make(chan int)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range ids {
				if err := life(reg, srv, i); err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
				}
			}
		})
	}
	for i := range clients {
		ids <- i
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	if sr, ok := reg.(sse.StatsReporter); ok {
		eventually(t, "every client is removed or expires", func() bool { return sr.Stats() == sse.Stats{} })
	}
	// Polled here, not with a helper whose own goroutines would count.
	client.CloseIdleConnections()
	after := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); after > before && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		after = runtime.NumGoroutine()
	}
	if after > before {
		t.Errorf("goroutines: %d before, %d after", before, after)
	}
}

// life is one client's life, one of four kinds by i: a stream dropped at
// once; a run abandoned mid-way; a run read to its end; a client removed
// while its stream is open. Grace expiry ends the first three.
func life(reg sse.Registry, srv *Server, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	id := "life-" + strconv.Itoa(i)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/?id="+url.QueryEscape(id), nil)
	if err != nil {
		return err
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("stream: %s", resp.Status)
	}
	r := NewReader(resp.Body)
	read := func(n int) error {
		for range n {
			if _, err := r.Next(); err != nil {
				return err
			}
		}
		return nil
	}

	switch i % 4 {
	case 0: // dropped at once
		return nil
	case 1: // a run abandoned mid-way
		if err := reg.Start(ctx, id, Ticks(time.Millisecond)); err != nil {
			return err
		}
		return read(2)
	case 2: // a run read to its end
		if err := reg.Start(ctx, id, Updates(20)); err != nil {
			return err
		}
		return read(21)
	default: // removed while its stream is open
		if err := reg.Remove(ctx, id); err != nil {
			return err
		}
		switch _, err := r.Next(); {
		case err == nil:
			return errors.New("the stream goes on after remove")
		case !errors.Is(err, io.EOF):
			return fmt.Errorf("after remove: %w", err)
		}
		return nil
	}
}
