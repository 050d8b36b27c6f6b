//go:build !unix

package sse

import (
	"net"
	"syscall"
)

// Without the unix calls, a stream taken over from net/http is written by
// a goroutine of its own whenever it has something to write, and idle
// without one.

func rawOf(net.Conn) syscall.RawConn { return nil }

func fdOf(syscall.RawConn) int32 { return -1 }

type rawWrite struct{}

func newRawWrite(syscall.RawConn) *rawWrite { return nil }

func (*rawWrite) write([]byte) (int, error) { return 0, nil }

func peerClosed(syscall.RawConn) bool { return false }
