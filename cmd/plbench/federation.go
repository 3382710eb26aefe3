package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/federation"
	"github.com/privateline/privateline/serverkey"
	"github.com/privateline/privateline/storage"
)

// Federation mode (-federation): two homeservers' stores and federation
// services in this process, each with its own on-disk Pebble store (every
// commit synced, as in production) and its own QUIC listener on
// 127.0.0.1. Senders on A queue real sealed pl1 envelopes for users on B
// with storage.Deliver and Remote — exactly what the client API's send
// does after its checks — so the figure is federation's: A's outbox, the
// signed transaction over QUIC, B's verification, per-entry checks,
// synced commit and signed receipt, A settling its outbox. The client
// API in front (see the other mode) is not part of it.

type fedNode struct {
	name privateline.ServerName
	key  *serverkey.PrivateKey
	db   *storage.DB
	svc  *federation.Service
}

func openNode(dir string, name privateline.ServerName, memtable uint64) (*fedNode, error) {
	k := make(privateline.Secret, 32)
	rand.Read(k)
	db, err := storage.Open(storage.Options{Dir: filepath.Join(dir, string(name)), Key: k, MemTableBytes: memtable})
	if err != nil {
		return nil, err
	}
	key, err := serverkey.Generate()
	if err != nil {
		db.Close()
		return nil, err
	}
	return &fedNode{name: name, key: key, db: db}, nil
}

func (n *fedNode) start(peer *fedNode, peerAddr string) error {
	svc, err := federation.New(federation.Config{
		Name: n.name, Key: n.key, ListenAddr: "127.0.0.1:0",
		Peers: []federation.Peer{{Name: peer.name, Addr: peerAddr, Key: peer.key.Public()}},
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, n.db)
	if err != nil {
		return err
	}
	n.db.SetOutboxNotifier(svc.Wake)
	if err := svc.Start(); err != nil {
		return err
	}
	n.svc = svc
	return nil
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func selfRSS() uint64 { return (&server{pid: os.Getpid()}).rss() }

// plaintext1KiB is a text message whose canonical JSON plaintext is
// exactly 1,024 bytes (as in clients/go/e2ee's benchmarks).
func plaintext1KiB(i int) *e2ee.Message {
	overhead := len(`{"attachments":[],"body":"","type":"text"}`)
	tag := fmt.Sprintf("message %08d ", i)
	return &e2ee.Message{Type: "text", Body: tag + strings.Repeat("x", 1024-overhead-len(tag))}
}

func runFederation(o options) error {
	fmt.Printf("machine: %s, %d CPUs, %s/%s, %s, %s\n", cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), cgoSetting())
	dir, err := os.MkdirTemp(o.dataDir, "plbench-fed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	a, err := openNode(dir, "a.bench.test", o.memtableMiB<<20)
	if err != nil {
		return err
	}
	defer a.db.Close()
	b, err := openNode(dir, "b.bench.test", o.memtableMiB<<20)
	if err != nil {
		return err
	}
	defer b.db.Close()

	// Users: senders on A, recipients on B; sender i writes to recipient i.
	if o.keyCache == "" {
		cd, err := os.UserCacheDir()
		if err != nil {
			cd = os.TempDir()
		}
		o.keyCache = filepath.Join(cd, "privateline", "plbench-rsa-keys.json")
	}
	der, err := rsaKeys(o.keyCache, 2*o.users)
	if err != nil {
		return err
	}
	type party struct {
		keys   *e2ee.PrivateKeys
		bundle *e2ee.KeyBundle
		rec    storage.Recipient
	}
	mk := func(n *fedNode, name string, der []byte) (*party, error) {
		u := &storage.User{ID: storage.NewID(), Username: privateline.Username(name), KDF: storage.KDF{Name: "pbkdf2-sha256", Iterations: 600000}}
		if err := n.db.CreateUser(u); err != nil {
			return nil, err
		}
		address := privateline.MakeAddress(u.Username, n.name)
		seed := make([]byte, ed25519.SeedSize)
		rand.Read(seed)
		keys, err := e2ee.NewPrivateKeys(address, seed, der)
		if err != nil {
			return nil, err
		}
		bundle, err := e2ee.NewKeyBundle(keys, time.Now())
		if err != nil {
			return nil, err
		}
		return &party{keys, bundle, storage.Recipient{ID: u.ID, Address: address}}, nil
	}
	senders, recips := make([]*party, o.users), make([]*party, o.users)
	for i := range o.users {
		if senders[i], err = mk(a, fmt.Sprintf("sender%d", i), der[2*i]); err != nil {
			return err
		}
		if recips[i], err = mk(b, fmt.Sprintf("recipient%d", i), der[2*i+1]); err != nil {
			return err
		}
	}

	nLat := int(o.rate * o.latencyFor.Seconds())
	total := o.messages + nLat
	fmt.Fprintf(os.Stderr, "sealing %d envelopes…\n", total)
	raws, ids := make([][]byte, total), make([]string, total)
	var sealErr atomic.Value
	var wg sync.WaitGroup
	for w := range runtime.NumCPU() {
		wg.Go(func() {
			for i := w; i < total; i += runtime.NumCPU() {
				from, to := senders[i%o.users], recips[i%o.users]
				env, err := e2ee.SealDirect(nil, from.keys, []*e2ee.KeyBundle{to.bundle}, e2ee.Draft{
					Conversation: "bench", SentAt: time.Now(), Message: plaintext1KiB(i),
				})
				var raw []byte
				if err == nil {
					raw, err = env.MarshalJSON()
				}
				if err != nil {
					sealErr.CompareAndSwap(nil, err)
					return
				}
				raws[i], ids[i] = raw, env.Header.ID
			}
		})
	}
	wg.Wait()
	if err, _ := sealErr.Load().(error); err != nil {
		return err
	}
	minSize, maxSize := len(raws[0]), len(raws[0])
	for _, r := range raws {
		minSize, maxSize = min(minSize, len(r)), max(maxSize, len(r))
	}

	// B's recipients "see" a message when B publishes its committed
	// message event (what the realtime hub pushes on the WebSocket); A's
	// senders see "delivered" when A settled the receipt.
	tr := newTracker(ids)
	var receipts atomic.Int64
	var lastReceipt atomic.Int64
	b.db.SetNotifier(func(evs []storage.UserEvent) {
		now := time.Now().UnixNano()
		for _, e := range evs {
			if e.Type == storage.EventMessage {
				if n, ok := tr.index[e.ID]; ok && tr.got[n].CompareAndSwap(0, now) {
					tr.delivered.Add(1)
				}
			}
		}
	})
	a.db.SetNotifier(func(evs []storage.UserEvent) {
		for _, e := range evs {
			if e.Type == storage.EventDelivered {
				receipts.Add(1)
			}
		}
		lastReceipt.Store(time.Now().UnixNano())
	})
	deliver := func(i int) error {
		from := senders[i%o.users]
		_, _, err := a.db.Deliver(&storage.Delivery{MsgID: ids[i], Raw: raws[i], Sender: from.rec,
			Remote: []privateline.Address{recips[i%o.users].rec.Address}})
		return err
	}
	if err := b.start(a, ""); err != nil {
		return err
	}
	defer b.svc.Close()
	if o.drain {
		// Federation alone: every envelope is in A's outbox before A's
		// federation service starts; the clock runs from its start to
		// the last receipt.
		fmt.Fprintf(os.Stderr, "queueing %d envelopes on A…\n", o.messages)
		for i := range o.messages {
			if err := deliver(i); err != nil {
				return err
			}
		}
	}
	if o.drain {
		waitStoreQuiet(a.db)
	}
	runtime.GC()
	rssBase := selfRSS()
	cpu0, start := cpuTime(), time.Now()
	bAddr := b.svc.Addr()
	if o.rtt > 0 {
		relay, err := newDelayRelay(bAddr, o.rtt/2)
		if err != nil {
			return err
		}
		defer relay.Close()
		bAddr = relay.Addr()
	}
	if err := a.start(b, bAddr); err != nil {
		return err
	}
	defer a.svc.Close()
	b.svc.SetPeerAddr(a.name, a.svc.Addr())
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	// Throughput: each sender queues its envelopes one after another (one
	// in flight per sender, as a client keeps its order).
	var sendErr atomic.Value
	if o.drain {
		waitQuiet(tr, int64(o.messages), 30*time.Second)
		for receipts.Load() < int64(o.messages) && time.Since(time.Unix(0, lastReceipt.Load())) < 30*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		d := time.Duration(lastReceipt.Load() - start.UnixNano())
		cpuUsed := cpuTime() - cpu0
		fmt.Printf("federation alone (-drain): %d envelopes queued on A (pl1 direct, 1 KiB plaintext, %d–%d bytes of JSON), then A's federation service started\n", o.messages, minSize, maxSize)
		fmt.Printf("  drained A → B with receipts settled: %8.0f env/s (%d of %d committed on B, %d receipts) in %.1f s\n",
			float64(receipts.Load())/d.Seconds(), tr.delivered.Load(), o.messages, receipts.Load(), d.Seconds())
		fmt.Printf("  CPU: %.2f cores, %.0f µs per envelope (both servers); RSS %s before, %s after\n",
			cpuUsed.Seconds()/d.Seconds(), float64(cpuUsed.Microseconds())/float64(o.messages), mib(rssBase), mib(selfRSS()))
		return nil
	}
	cpu0, start = cpuTime(), time.Now()
	for s := range o.users {
		wg.Go(func() {
			for i := s; i < o.messages; i += o.users {
				err := deliver(i)
				tr.sent[i].Store(time.Now().UnixNano()) // A's acknowledgement: the synced Deliver returned
				if err != nil {
					sendErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	queueDur := time.Since(start)
	if err, _ := sendErr.Load().(error); err != nil {
		return err
	}
	waitDelivered(tr, int64(o.messages))
	for receipts.Load() < int64(o.messages) && time.Since(time.Unix(0, lastReceipt.Load())) < 2*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	var lastGot int64
	for i := range o.messages {
		lastGot = max(lastGot, tr.got[i].Load())
	}
	delDur := time.Duration(lastGot - start.UnixNano())
	rcptDur := time.Duration(lastReceipt.Load() - start.UnixNano())
	cpuUsed := cpuTime() - cpu0
	rssLoad := selfRSS()
	fmt.Printf("federation a.bench.test → b.bench.test over QUIC on 127.0.0.1, one process, on-disk Pebble stores in %s (synced commits)\n", o.dataDirOrTmp())
	fmt.Printf("envelopes: pl1 direct, 1 recipient, 1 KiB plaintext → %d–%d bytes of envelope JSON\n", minSize, maxSize)
	fmt.Printf("throughput: %d envelopes, %d senders on A each queueing with storage.Deliver (one at a time)\n", o.messages, o.users)
	fmt.Printf("  queued on A (durable):      %8.0f env/s\n", float64(o.messages)/queueDur.Seconds())
	fmt.Printf("  committed on B (recipient): %8.0f env/s (%d of %d)\n", float64(tr.delivered.Load())/delDur.Seconds(), tr.delivered.Load(), o.messages)
	fmt.Printf("  receipts settled on A:      %8.0f env/s (%d of %d)\n", float64(receipts.Load())/rcptDur.Seconds(), receipts.Load(), o.messages)
	fmt.Printf("  latency A ack → B event:    %s\n", latencies(tr, 0, o.messages))
	fmt.Printf("  CPU: %.2f cores over %.1f s (%.0f µs per envelope, both servers); RSS %s before, %s after\n",
		cpuUsed.Seconds()/rcptDur.Seconds(), rcptDur.Seconds(), float64(cpuUsed.Microseconds())/float64(o.messages), mib(rssBase), mib(rssLoad))

	if nLat == 0 {
		return nil
	}
	// Latency at a fixed rate, from the moment each envelope was due.
	base := o.messages
	before := tr.delivered.Load()
	cpu0, start = cpuTime(), time.Now()
	if err := sendPaced(tr, start, base, nLat, o.users, o.rate, func(_, i int) error { return deliver(i) }); err != nil {
		return err
	}
	waitDelivered(tr, before+int64(nLat))
	fmt.Printf("latency at %.0f env/s for %s (from when each was due to B's event): %s; CPU %.2f cores\n",
		o.rate, o.latencyFor, latencies(tr, base, base+nLat), (cpuTime()-cpu0).Seconds()/time.Since(start).Seconds())
	return nil
}

func (o options) dataDirOrTmp() string {
	if o.dataDir == "" {
		return os.TempDir()
	}
	return o.dataDir
}

// waitStoreQuiet waits until db's background work (flushes and
// compactions) has ended: in -drain, the clock measures federation, not
// what queueing the envelopes left for Pebble to do.
func waitStoreQuiet(db *storage.DB) {
	last, quiet := db.Stats(), 0
	for quiet < 10 {
		time.Sleep(100 * time.Millisecond)
		st := db.Stats()
		if st.Compactions == last.Compactions && st.Flushes == last.Flushes && st.CompactionsInProgress == 0 {
			quiet++
		} else {
			quiet = 0
		}
		last = st
	}
}
