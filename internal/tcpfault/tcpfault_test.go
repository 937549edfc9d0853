package tcpfault_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/rackfork/rack/internal/tcpfault"
)

// echo serves lines back on 127.0.0.1 until the test ends.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line through addr and reads it back within d.
func roundTrip(addr string, d time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	_, err = bufio.NewReader(c).ReadString('\n')
	return err
}

func TestModes(t *testing.T) {
	p, err := tcpfault.New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := roundTrip(p.Addr(), 2*time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}
	if err := p.SetMode(tcpfault.Refuse); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("refuse: a connection was accepted")
	}
	if err := p.SetMode(tcpfault.Hang); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(p.Addr(), 300*time.Millisecond); err == nil {
		t.Fatal("hang: answered")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("hang: %v, want a timeout", err)
	}
	if err := p.SetMode(tcpfault.Pass); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(p.Addr(), 2*time.Second); err != nil {
		t.Fatalf("pass again, same address: %v", err)
	}
	p.SetLatency(100 * time.Millisecond)
	start := time.Now()
	if err := roundTrip(p.Addr(), 2*time.Second); err != nil {
		t.Fatalf("latency: %v", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("latency 100 ms each way: round trip took %v", took)
	}
	p.SetLatency(0)
	p.SetHangFraction(1)
	if err := roundTrip(p.Addr(), 300*time.Millisecond); err == nil {
		t.Fatal("hang fraction 1: answered")
	}
	if acc, hung := p.Stats(); hung != 1 || acc < 4 {
		t.Fatalf("stats: %d accepted, %d hung", acc, hung)
	}
}
