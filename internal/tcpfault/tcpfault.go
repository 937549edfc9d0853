// Package tcpfault is a TCP proxy that injects faults between a client and
// a server on this machine, for tests and benchmarks of outages: it
// forwards connections (Pass), refuses them (Refuse: the listener closed,
// open connections reset), accepts them and never answers (Hang), delays
// every chunk of data (Latency), or hangs a random fraction of new
// connections (HangFraction), like Toxiproxy's toxics of those names.
//
// It listens on 127.0.0.1 only and forwards only to the target it is given
// (a loopback Swift, say). A client reaching an HTTP server through it
// sends the proxy's address as its Host header, so a Swift whose tempauth
// builds storage URLs from the Host header (its default, "$HOST") hands
// out storage URLs that go through the proxy too.
package tcpfault

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Mode is what the proxy does with connections.
type Mode int

const (
	// Pass forwards connections (after any latency).
	Pass Mode = iota
	// Refuse closes the listener (a connect is refused) and resets every
	// open connection.
	Refuse
	// Hang accepts connections and never answers; what open connections
	// send is held, and delivered once the mode is Pass again.
	Hang
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Refuse:
		return "refuse"
	case Hang:
		return "hang"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Proxy is a fault-injecting TCP proxy. Its methods are safe for
// concurrent use.
type Proxy struct {
	target string
	addr   string // where it listens: 127.0.0.1:port, kept across Refuse

	mu       sync.Mutex
	cond     *sync.Cond // signalled when the mode changes
	mode     Mode
	latency  time.Duration
	hangFrac float64
	ln       net.Listener
	conns    map[net.Conn]struct{}
	closed   bool
	accepted int
	hung     int

	wg sync.WaitGroup
}

// New listens on 127.0.0.1 (a free port) and forwards to target
// (host:port), in mode Pass.
func New(target string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("tcpfault: target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tcpfault: listening: %w", err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept(ln)
	return p, nil
}

// Addr is the proxy's address (127.0.0.1:port); it stays the same when
// the proxy refuses connections and then passes them again.
func (p *Proxy) Addr() string { return p.addr }

// Stats returns how many connections the proxy accepted, and how many of
// them it left hanging.
func (p *Proxy) Stats() (accepted, hung int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted, p.hung
}

// SetLatency delays every chunk of data by d, each way.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// SetHangFraction makes each new connection hang (accepted, never
// answered, until the proxy closes) with probability f, in mode Pass.
func (p *Proxy) SetHangFraction(f float64) {
	p.mu.Lock()
	p.hangFrac = f
	p.mu.Unlock()
}

// SetMode switches the proxy to m. Refuse closes the listener and resets
// the open connections; leaving Refuse listens again on the same address.
func (p *Proxy) SetMode(m Mode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("tcpfault: proxy closed")
	}
	if m == p.mode {
		return nil
	}
	if m == Refuse {
		p.ln.Close()
		p.ln = nil
		for c := range p.conns {
			reset(c)
		}
	} else if p.mode == Refuse {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return fmt.Errorf("tcpfault: listening again on %s: %w", p.addr, err)
		}
		p.ln = ln
		p.wg.Add(1)
		go p.accept(ln)
	}
	p.mode = m
	p.cond.Broadcast()
	return nil
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.ln != nil {
		p.ln.Close()
	}
	for c := range p.conns {
		c.Close()
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// reset closes c with an RST rather than a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed (Refuse or Close)
		}
		p.mu.Lock()
		if p.closed || p.mode == Refuse {
			p.mu.Unlock()
			reset(c)
			continue
		}
		p.accepted++
		p.conns[c] = struct{}{}
		hang := p.hangFrac > 0 && rand.Float64() < p.hangFrac
		if hang {
			p.hung++
		}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c, hang)
	}
}

func (p *Proxy) forget(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) serve(c net.Conn, hang bool) {
	defer p.wg.Done()
	defer p.forget(c)
	if hang {
		// Read and drop what comes, answer nothing, until closed.
		_, _ = io.Copy(io.Discard, c)
		return
	}
	if !p.wait() {
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		reset(c)
		return
	}
	p.mu.Lock()
	if p.closed || p.mode == Refuse {
		p.mu.Unlock()
		reset(c)
		up.Close()
		return
	}
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	defer p.forget(up)
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done
	// One way ended: end the other too.
	c.Close()
	up.Close()
	<-done
}

// wait blocks while the proxy hangs; it reports false once the proxy
// refuses or closes.
func (p *Proxy) wait() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.mode == Hang && !p.closed {
		p.cond.Wait()
	}
	return !p.closed && p.mode != Refuse
}

// pipe copies from src to dst, chunk by chunk, each after the latency and
// only while the proxy does not hang.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			d := p.latency
			p.mu.Unlock()
			if d > 0 {
				time.Sleep(d)
			}
			if !p.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if tc, ok := dst.(*net.TCPConn); ok && err == io.EOF {
				_ = tc.CloseWrite()
				// Keep the other way open until it ends by itself.
				return
			}
			return
		}
	}
}
