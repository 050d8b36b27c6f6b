//go:build !linux

package sse

// Without epoll, a stream taken over from net/http learns that its client
// left at its next write, or at its heartbeat's look at the socket.

type watcher struct{}

func newWatcher() *watcher      { return nil }
func (*watcher) add(*Stream)    {}
func (*watcher) remove(*Stream) {}
func (*watcher) close()         {}
