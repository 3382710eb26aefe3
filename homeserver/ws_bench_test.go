package homeserver_test

import (
	"bufio"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkWSIdleSocketMemory reports what an idle WebSocket costs the
// server (heap and goroutine stacks per socket, after a GC). The clients
// are bare TCP connections that did the handshake by hand, so they add
// almost nothing of their own.
func BenchmarkWSIdleSocketMemory(b *testing.B) {
	ts := startServer(b, wsConfig(b))
	a := ts.register("wsmem")
	host := strings.TrimPrefix(ts.URL, "http://")
	open := func() net.Conn {
		c, err := net.Dial("tcp", host)
		if err != nil {
			b.Fatal(err)
		}
		req := "GET /api/ws HTTP/1.1\r\nHost: " + host + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer " + a.Access + "\r\n\r\n"
		if _, err := c.Write([]byte(req)); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			b.Fatalf("upgrade: %v %v", resp, err)
		}
		return c
	}
	measure := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	const n = 1000
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range b.N {
		before := measure()
		for range n {
			conns = append(conns, open())
		}
		time.Sleep(200 * time.Millisecond) // let the ready frames go out
		after := measure()
		b.ReportMetric(float64(after-before)/n, "bytes/socket")
	}
}
