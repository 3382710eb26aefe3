// Command plbench measures a homeserver end to end: many users send real
// pl1 envelopes (sealed before the clock starts) on their WebSockets and
// receive on them; it reports messages/s acknowledged and delivered, the
// delivery latency at a fixed rate, the server's RSS and its memory per
// idle WebSocket. See docs/benchmarks.md for the commands and figures.
//
//	go build -o bin/ ./cmd/homeserver ./cmd/plbench
//	bin/plbench -server-bin bin/homeserver
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.serverBin, "server-bin", "", "homeserver binary to start on a fresh data directory (its RSS is measured)")
	flag.StringVar(&o.url, "url", "", "an already running homeserver instead of -server-bin (no RSS figures unless -pid)")
	flag.IntVar(&o.pid, "pid", 0, "process id of the -url server, for RSS figures")
	flag.IntVar(&o.users, "users", 64, "users, each on one WebSocket; user i sends to user i+1")
	flag.IntVar(&o.messages, "messages", 40000, "messages in the throughput phase")
	flag.Float64Var(&o.rate, "rate", 5000, "messages per second in the latency phase")
	flag.DurationVar(&o.latencyFor, "latency-for", 5*time.Second, "length of the latency phase")
	flag.IntVar(&o.idle, "idle", 10000, "idle WebSockets opened to measure memory per socket (0: skip)")
	flag.StringVar(&o.keyCache, "key-cache", "", "file caching the users' RSA-4096 keys between runs (default in the user cache directory)")
	flag.Parse()
	if (o.serverBin == "") == (o.url == "") {
		fmt.Fprintln(os.Stderr, "plbench: give exactly one of -server-bin and -url")
		flag.Usage()
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "plbench:", err)
		os.Exit(1)
	}
}
