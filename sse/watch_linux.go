package sse

import (
	"errors"
	"sync"
	"syscall"
	"time"
)

// watcher tells the streams taken over from net/http when their client
// closes its end, at once, as net/http's background read of each
// connection did, but with one goroutine for all of them: an epoll set of
// their sockets that wakes on a peer's hang-up only. Go's own poller keeps
// its registration of each socket; a socket may be in more than one set.
type watcher struct {
	epfd int

	mu      sync.Mutex
	streams map[int32]*Stream // by socket
	running bool
	goes    sync.WaitGroup
}

// newWatcher returns a watcher, or nil if the system refuses one: streams
// then learn of a client gone at their next write.
func newWatcher() *watcher {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	return &watcher{epfd: epfd, streams: map[int32]*Stream{}}
}

// add watches the socket of s; s.fd is its number.
func (w *watcher) add(s *Stream) {
	if w == nil || s.fd < 0 {
		return
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR, Fd: s.fd}
	w.mu.Lock()
	defer w.mu.Unlock()
	if syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, int(s.fd), &ev) != nil {
		return // unwatched: a write tells
	}
	w.streams[s.fd] = s
	if !w.running {
		w.running = true
		w.goes.Go(w.wait)
	}
}

// remove stops watching the socket of s, before it is closed (its number
// may be reused).
func (w *watcher) remove(s *Stream) {
	if w == nil || s.fd < 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.streams[s.fd] == s {
		delete(w.streams, s.fd)
		_ = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, int(s.fd), nil)
	}
}

// wait is the watcher's goroutine: it ends the streams whose client hung
// up, and returns once it watches none, looking every tenth of a second.
func (w *watcher) wait() {
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(w.epfd, events, int(100*time.Millisecond/time.Millisecond))
		if err != nil {
			if !errors.Is(err, syscall.EINTR) { // not a signal: do not spin on it
				time.Sleep(100 * time.Millisecond)
			}
			n = 0
		}
		w.mu.Lock()
		gone := make([]*Stream, 0, n)
		for _, ev := range events[:n] {
			if s := w.streams[ev.Fd]; s != nil {
				delete(w.streams, ev.Fd)
				_ = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, int(ev.Fd), nil)
				gone = append(gone, s)
			}
		}
		if len(w.streams) == 0 && len(gone) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		for _, s := range gone {
			s.End(EndClientLeft)
		}
	}
}

// close releases the epoll set, once its goroutine has returned.
func (w *watcher) close() {
	if w == nil {
		return
	}
	w.goes.Wait()
	_ = syscall.Close(w.epfd)
}
