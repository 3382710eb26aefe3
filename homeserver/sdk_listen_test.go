package homeserver_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/privateline/privateline/clients/go/client"
)

// TestSDKListen: the SDK's Listen delivers messages in real time, opened
// and verified, with read receipts; it survives a server restart,
// resuming after the last event delivered, so the messages sent while it
// was away arrive once each and in order.
func TestSDKListen(t *testing.T) {
	t.Parallel()
	cfg := wsConfig(t)
	// A fixed port, so that the restarted server is where the clients are.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ListenAddr = ln.Addr().String()
	ln.Close()
	ts := startServer(t, cfg)
	alice := sdkRegister(t, ts, sdkClient(t, ts, nil), "lsalice", "alice").login(t)
	bob := sdkRegister(t, ts, sdkClient(t, ts, nil), "lsbob", "bob").login(t)

	events := make(chan *client.Event, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- bob.Listen(ctx, client.ListenOptions{LiveOnly: true, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
			func(ev *client.Event) error { events <- ev; return nil })
	}()
	next := func(skipReady bool) *client.Event {
		t.Helper()
		for {
			select {
			case ev := <-events:
				if skipReady && ev.Type == client.EventReady {
					continue
				}
				return ev
			case err := <-done:
				t.Fatalf("Listen returned %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("no event")
			}
		}
	}
	if ev := next(false); ev.Type != client.EventReady {
		t.Fatalf("first event %+v", ev)
	}
	hello := mustSend(t, alice, bob.Address(), "live hello")
	ev := next(true)
	if ev.Type != client.EventMessage || ev.Item == nil || ev.Item.Err != nil || ev.Item.Body() != "live hello" ||
		ev.Item.From != alice.Address() || ev.Item.ID != hello.ID || ev.Seq != ev.Item.Seq {
		t.Fatalf("message event %+v (item %+v)", ev, ev.Item)
	}
	last := ev.Seq

	ts.restart()
	bodies := []string{"while you were away 1", "while you were away 2"}
	for _, b := range bodies {
		mustSend(t, alice, bob.Address(), b)
	}
	for _, b := range bodies {
		ev := next(true)
		if ev.Type != client.EventMessage || ev.Item == nil || ev.Item.Body() != b || ev.Seq != last+1 {
			t.Fatalf("after the restart: %+v (item %+v), want %q at %d", ev, ev.Item, b, last+1)
		}
		last = ev.Seq
	}
	if err := bob.MarkRead(ctx, hello.ID); err != nil {
		t.Fatal(err)
	}
	if ev := next(true); ev.Type != client.EventRead || ev.ID != hello.ID || ev.By != bob.Address() || ev.Seq != last+1 {
		t.Fatalf("read event %+v", ev)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Listen after cancel: %v", err)
	}
}
