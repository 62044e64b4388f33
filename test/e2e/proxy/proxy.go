package proxy

import (
	"net"
	"sync"
)

// Proxy is a TCP proxy that can cut the traffic through it, in two ways.
// Blackhole is a network partition: nothing passes either way on any
// connection, old or new, and nothing is refused or closed, so clients see
// requests that hang rather than fail. Drop closes every connection and
// each new one at once, so requests fail fast, as when a load balancer in
// front of the API server resets them. When the cut ends (Restore), the
// connections that lived through it are closed, as their peers would long
// since have given up on them, and new ones pass again.
type Proxy struct {
	lis    net.Listener
	target string

	mu    sync.Mutex
	drop  bool
	cut   bool
	heal  chan struct{} // closed when the cut ends
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// New listens on a free port of 127.0.0.1 and forwards every
// connection to target (host:port).
func New(target string) (*Proxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{lis: lis, target: target, conns: map[net.Conn]bool{}, heal: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

// Blackhole cuts the traffic.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.cut {
		p.cut, p.heal = true, make(chan struct{})
		for c := range p.conns {
			p.conns[c] = true
		}
	}
}

// Drop closes every connection, and each new one as soon as it is
// accepted, until Restore.
func (p *Proxy) Drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop = true
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// Restore ends the cut: the connections that lived through it are closed,
// and traffic flows again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop = false
	if !p.cut {
		return
	}
	for c, cut := range p.conns {
		if cut {
			_ = c.Close()
			delete(p.conns, c)
		}
	}
	p.cut = false
	close(p.heal)
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	_ = p.lis.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]bool{}
	if p.cut {
		p.cut = false
		close(p.heal)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.forward(in)
	}
}

// forward connects in to the target once traffic flows, then copies both
// ways.
func (p *Proxy) forward(in net.Conn) {
	defer p.wg.Done()
	if !p.track(in) {
		_ = in.Close()
		return
	}
	if !p.pass() {
		_ = in.Close()
		return
	}
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = in.Close()
		return
	}
	if !p.track(out) {
		_ = in.Close()
		_ = out.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.copy(out, in); done <- struct{}{} }()
	go func() { p.copy(in, out); done <- struct{}{} }()
	<-done
	_ = in.Close()
	_ = out.Close()
	<-done
	p.untrack(in, out)
}

// copy moves bytes from src to dst, holding each chunk while the traffic
// is cut; a connection cut meanwhile is closed by Restore.
func (p *Proxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.pass() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pass waits while the traffic is cut. It returns false when the
// connections of the cut are to be dropped (Restore or Close came).
func (p *Proxy) pass() bool {
	p.mu.Lock()
	cut, heal := p.cut, p.heal
	p.mu.Unlock()
	if !cut {
		return true
	}
	<-heal
	return false
}

// track records a connection, unless connections are being dropped.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drop {
		return false
	}
	p.conns[c] = p.cut
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}
