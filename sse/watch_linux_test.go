//go:build linux

package sse

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestStaleHangUpIsLetGo: a hang-up the watcher read for a stream removed
// before the event was handled does not end the stream that has since been
// given the same socket number, as a new connection is once the old one
// is closed; the new stream's own hang-up still ends it.
func TestStaleHangUpIsLetGo(t *testing.T) {
	w := newWatcher()
	if w == nil {
		t.Fatal("newWatcher: the system refused an epoll set")
	}
	fd := connectedSocket(t)
	first, next := &Stream{}, &Stream{}
	first.fd, next.fd = fd, fd

	w.add(first)
	stale := hangUp(w, fd)
	w.remove(first)
	w.add(next) // the number again, for the next connection
	if gone, _ := w.hungUp([]syscall.EpollEvent{stale}, nil, nil); len(gone) != 0 {
		t.Error("a hang-up of the removed stream ended the stream that now has its socket's number")
	}
	gone, last := w.hungUp([]syscall.EpollEvent{hangUp(w, fd)}, nil, nil)
	if len(gone) != 1 || gone[0] != next || !last {
		t.Errorf("its own hang-up: streams %v, last %v; want the stream, and the set empty", gone, last)
	}

	// The set is empty, but the goroutine add started still waits on it.
	if err := w.file.SetReadDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	w.close()
}

// hangUp returns the event that a hang-up of the socket fd, as the watcher
// watches it now, would bring.
func hangUp(w *watcher, fd int32) syscall.EpollEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return syscall.EpollEvent{Events: syscall.EPOLLRDHUP, Fd: fd, Pad: w.streams[fd].tag}
}

// connectedSocket returns the number of the server's end of a loopback TCP
// connection that stays open, both ends, until the test ends: a socket
// with no event of its own for the watcher to see.
func connectedSocket(t *testing.T) int32 {
	t.Helper()
	ln, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() //nolint:errcheck // the connection is made
	client, err := new(net.Dialer).DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close() })
	raw, err := server.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return fdOf(raw)
}
