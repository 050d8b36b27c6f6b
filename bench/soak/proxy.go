package main

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxy is a TCP proxy in front of one instance that injects faults into
// the connections it carries: latency before each chunk, a bandwidth cap,
// and resets of a connection at random. It stands between the soak's
// clients and an instance, as a flaky network would.
type proxy struct {
	ln       net.Listener
	upstream string
	latency  atomic.Int64 // added before each chunk forwarded, in ns
	rate     atomic.Int64 // bytes per second each way, 0 for no cap

	mu    sync.Mutex
	conns map[net.Conn]net.Conn // client side to upstream side
	wg    sync.WaitGroup
}

// newProxy listens on a free loopback port and forwards to upstream.
func newProxy(ctx context.Context, upstream string) (*proxy, error) {
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, upstream: upstream, conns: map[net.Conn]net.Conn{}}
	p.wg.Go(p.accept)
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// setLatency and setRate switch the toxics on (or off, with 0).
func (p *proxy) setLatency(d time.Duration) { p.latency.Store(int64(d)) }
func (p *proxy) setRate(bytesPerSecond int) { p.rate.Store(int64(bytesPerSecond)) }

// reset cuts one connection at random with a TCP reset, as a network
// failure does, and reports whether there was one.
func (p *proxy) reset() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	if n == 0 {
		return false
	}
	i := rand.IntN(n)
	for down, up := range p.conns {
		if i--; i < 0 {
			if tcp, ok := down.(*net.TCPConn); ok {
				_ = tcp.SetLinger(0) // close with RST
			}
			_ = down.Close()
			_ = up.Close()
			delete(p.conns, down)
			return true
		}
	}
	return false
}

// close stops the proxy and cuts every connection it carries.
func (p *proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for down, up := range p.conns {
		_ = down.Close()
		_ = up.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *proxy) accept() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Go(func() { p.carry(down) })
	}
}

// carry forwards one connection both ways until either side ends. An
// instance that is down refuses the upstream dial, and the client's
// connection is closed at once, as the instance's own would be.
func (p *proxy) carry(down net.Conn) {
	up, err := new(net.Dialer).DialContext(context.Background(), "tcp", p.upstream)
	if err != nil {
		_ = down.Close()
		return
	}
	p.mu.Lock()
	p.conns[down] = up
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(up, down) })
	wg.Go(func() { p.pipe(down, up) })
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, down)
	p.mu.Unlock()
}

// pipe copies src to dst with the toxics on, and closes both at the end.
func (p *proxy) pipe(dst, src net.Conn) {
	defer func() {
		_ = dst.Close()
		_ = src.Close()
	}()
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.latency.Load()); d > 0 {
				time.Sleep(d)
			}
			if rate := p.rate.Load(); rate > 0 {
				time.Sleep(time.Duration(int64(n) * int64(time.Second) / rate))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF, or a cut
		}
	}
}
