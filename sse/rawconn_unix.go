//go:build unix

package sse

import (
	"errors"
	"net"
	"syscall"
)

// rawOf returns the raw connection under conn, for writes that never
// block, or nil if conn has none (a wrapped or in-memory connection).
func rawOf(conn net.Conn) syscall.RawConn {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// fdOf returns the number of raw's socket, or -1.
func fdOf(raw syscall.RawConn) int32 {
	fd := int32(-1)
	if raw != nil {
		_ = raw.Control(func(f uintptr) { fd = int32(f) })
	}
	return fd
}

// rawWrite is a write that never blocks, made through a RawConn: its
// callback is built once, by newRawWrite, so that a write allocates
// nothing. Only the writer that holds the stream uses it.
type rawWrite struct {
	raw syscall.RawConn
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

func newRawWrite(raw syscall.RawConn) *rawWrite {
	w := &rawWrite{raw: raw}
	w.fn = func(fd uintptr) bool {
		for {
			w.n, w.err = syscall.Write(int(fd), w.b)
			if !errors.Is(w.err, syscall.EINTR) {
				return true // never wait for the socket: the caller decides
			}
		}
	}
	return w
}

// write writes as much of b as the socket takes at once: n is 0, with no
// error, when its buffer is full. Go's sockets are non-blocking.
func (w *rawWrite) write(b []byte) (int, error) {
	w.b = b
	werr := w.raw.Write(w.fn)
	w.b = nil
	switch {
	case errors.Is(w.err, syscall.EAGAIN):
		return 0, nil
	case werr != nil:
		return 0, werr
	}
	return max(w.n, 0), w.err
}

// peerClosed reports whether the client has closed its end: with nothing
// read from a stream, a closed peer shows only as an end of file waiting.
func peerClosed(raw syscall.RawConn) bool {
	closed := false
	var b [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		closed = n == 0 && err == nil
		return true
	})
	return closed
}
