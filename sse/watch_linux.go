package sse

import (
	"os"
	"sync"
	"syscall"
	"time"
)

// watcher tells the streams taken over from net/http when their client
// closes its end, at once, as net/http's background read of each
// connection did, but with one goroutine for all of them: an epoll set of
// their sockets that wakes on a peer's hang-up only. The set is itself in
// Go's poller (an epoll set is readable when it has events), so waiting on
// it blocks no thread: a blocking epoll_wait would hold the process's only
// P, when GOMAXPROCS is 1, until the runtime took it back. Go's poller
// keeps its own registration of each socket; a socket may be in more than
// one set.
type watcher struct {
	epfd int
	file *os.File // epfd, in Go's poller
	raw  syscall.RawConn

	mu      sync.Mutex
	streams map[int32]watched // by socket
	tags    int32             // the last tag given; wraps around
	running bool
	goes    sync.WaitGroup
}

// watched is a socket in the set: its stream, and the tag that its
// events carry beside its number. A closed socket's number is soon given
// to the next connection, so an event read just before its stream was
// removed would otherwise be taken for a hang-up of the stream that now
// has that number.
type watched struct {
	s   *Stream
	tag int32
}

// newWatcher returns a watcher, or nil if the system refuses one: streams
// then learn of a client gone at their next write.
func newWatcher() *watcher {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		_ = syscall.Close(epfd)
		return nil
	}
	file := os.NewFile(uintptr(epfd), "epoll") // non-blocking: pollable
	raw, err := file.SyscallConn()
	if err != nil {
		_ = file.Close()
		return nil
	}
	return &watcher{epfd: epfd, file: file, raw: raw, streams: map[int32]watched{}}
}

// add watches the socket of s; s.fd is its number.
func (w *watcher) add(s *Stream) {
	if w == nil || s.fd < 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tags++
	tag := w.tags
	// Fd and Pad are the two halves of the event's data, which the kernel
	// hands back as it was given.
	ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR, Fd: s.fd, Pad: tag}
	if syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, int(s.fd), &ev) != nil {
		return // unwatched: a write tells
	}
	w.streams[s.fd] = watched{s: s, tag: tag}
	if !w.running {
		w.running = true
		_ = w.file.SetReadDeadline(time.Time{})
		w.goes.Go(w.wait)
	}
}

// remove stops watching the socket of s, before it is closed (its number
// may be reused). The last one gone, the goroutine is woken to return.
func (w *watcher) remove(s *Stream) {
	if w == nil || s.fd < 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.streams[s.fd].s == s {
		delete(w.streams, s.fd)
		_ = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, int(s.fd), nil)
		if len(w.streams) == 0 {
			_ = w.file.SetReadDeadline(time.Now())
		}
	}
}

// wait is the watcher's goroutine: it ends the streams whose client hung
// up, and returns once it watches none.
func (w *watcher) wait() {
	events := make([]syscall.EpollEvent, 128)
	var gone []*Stream
	for {
		n := 0
		err := w.raw.Read(func(fd uintptr) bool {
			var err error
			n, err = syscall.EpollWait(int(fd), events, 0)
			return err == nil && n > 0 // else wait until the set is readable
		})
		var last bool
		gone, last = w.hungUp(events[:n], err, gone)
		for i, s := range gone {
			s.End(EndClientLeft)
			gone[i] = nil
		}
		if last {
			return
		}
		gone = gone[:0]
	}
}

// hungUp takes the streams of events out of the set and appends them to
// gone; err is the wait's. It reports whether the set is empty, and the
// goroutine done. An event whose tag is not its socket's stream's came
// for a stream removed since, and is let go.
func (w *watcher) hungUp(events []syscall.EpollEvent, err error, gone []*Stream) ([]*Stream, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range events {
		if e, ok := w.streams[ev.Fd]; ok && e.tag == ev.Pad {
			delete(w.streams, ev.Fd)
			_ = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, int(ev.Fd), nil)
			gone = append(gone, e.s)
		}
	}
	last := len(w.streams) == 0 // woken by remove, or its own doing
	if last {
		w.running = false
	} else if err != nil {
		_ = w.file.SetReadDeadline(time.Time{}) // a stream came meanwhile
	}
	return gone, last
}

// close releases the epoll set, once its goroutine has returned.
func (w *watcher) close() {
	if w == nil {
		return
	}
	w.goes.Wait()
	_ = w.file.Close()
}
