// Command plbench measures a homeserver end to end: many users send real
// pl1 envelopes (sealed before the clock starts) on their WebSockets and
// receive on them; it reports messages/s acknowledged and delivered, the
// delivery latency at a fixed rate, the server's RSS and its memory per
// idle WebSocket. With -federation it measures federation between two
// homeservers instead (federation.go). See docs/benchmarks.md for the
// commands and figures.
//
//	go build -o bin/ ./cmd/homeserver ./cmd/plbench
//	bin/plbench -server-bin bin/homeserver
//	bin/plbench -federation -drain -users 16 -messages 20000 -latency-for 0s
//	bin/plbench -federation -drain -users 16 -messages 20000 -latency-for 0s -rtt 20ms
//	bin/plbench -federation -users 16 -messages 10000 -rate 300 -latency-for 10s
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
	flag.BoolVar(&o.federation, "federation", false, "measure federation instead: two homeservers' stores and federation services in this process over QUIC on 127.0.0.1 (see federation.go); -users is the number of sender/recipient pairs")
	flag.BoolVar(&o.drain, "drain", false, "with -federation: queue every envelope on A first, then measure only federation draining A's outbox to B")
	flag.Uint64Var(&o.memtableMiB, "memtable-mib", 0, "with -federation: Pebble memtable size of both stores in MiB (0: the homeserver's default)")
	flag.StringVar(&o.dataDir, "data-dir", "", "with -federation: where the two on-disk stores go (default the system's temporary directory)")
	flag.DurationVar(&o.rtt, "rtt", 0, "with -federation: relay A's QUIC packets to B through a UDP relay that delays each by half this, each way (a link with this round trip)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "with -federation: write a CPU profile of the throughput and latency phases to this file")
	flag.Parse()
	if o.federation {
		if err := runFederation(o); err != nil {
			fmt.Fprintln(os.Stderr, "plbench:", err)
			os.Exit(1)
		}
		return
	}
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
