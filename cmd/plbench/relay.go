package main

import (
	"net"
	"sync/atomic"
	"time"
)

// delayRelay relays UDP datagrams between one client and a target, each
// way after a fixed delay: a link with a round trip of twice the delay
// (and no loss) on loopback, for -rtt.
type delayRelay struct {
	ln, up *net.UDPConn
	client atomic.Pointer[net.UDPAddr]
}

type datagram struct {
	due time.Time
	b   []byte
}

func newDelayRelay(target string, delay time.Duration) (*delayRelay, error) {
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	up, err := net.DialUDP("udp", nil, ta)
	if err != nil {
		ln.Close()
		return nil, err
	}
	for _, c := range []*net.UDPConn{ln, up} {
		c.SetReadBuffer(8 << 20) // as quic-go asks for its own sockets
		c.SetWriteBuffer(8 << 20)
	}
	r := &delayRelay{ln: ln, up: up}
	// Datagrams leave in the order they came, each delay after it came.
	later := func(send func([]byte)) chan<- datagram {
		q := make(chan datagram, 1<<16)
		go func() {
			for d := range q {
				time.Sleep(time.Until(d.due))
				send(d.b)
			}
		}()
		return q
	}
	toTarget := later(func(b []byte) { up.Write(b) })
	toClient := later(func(b []byte) {
		if c := r.client.Load(); c != nil {
			ln.WriteToUDP(b, c)
		}
	})
	go func() {
		defer close(toTarget)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := ln.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.client.Store(from)
			toTarget <- datagram{time.Now().Add(delay), append([]byte(nil), buf[:n]...)}
		}
	}()
	go func() {
		defer close(toClient)
		buf := make([]byte, 1<<16)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			toClient <- datagram{time.Now().Add(delay), append([]byte(nil), buf[:n]...)}
		}
	}()
	return r, nil
}

// Addr is where the client sends.
func (r *delayRelay) Addr() string { return r.ln.LocalAddr().String() }

// Close stops relaying.
func (r *delayRelay) Close() {
	r.ln.Close()
	r.up.Close()
}
