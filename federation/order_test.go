package federation

import (
	"slices"
	"testing"
	"time"

	"github.com/privateline/privateline/federation/wire"
)

// TestTransactionsCommitInOrder: a transaction that names the one it
// follows ("after", spec §14) is committed only after it, whichever
// arrives first; it is refused with out_of_order, storing nothing, when
// that one was refused or does not arrive in time; one committed before (found in
// the replay records) lets it through at once.
func TestTransactionsCommitInOrder(t *testing.T) {
	b := newNode(t, nameB, "bob")
	b.orderWait = 500 * time.Millisecond
	ka := newKey(t)
	b.st.gate, b.st.entered = make(chan struct{}), make(chan struct{}, 4)
	b.start(t, []Peer{{Name: nameA, Key: ka.Public()}}, nil)
	c := dialRaw(t, nameA, ka, b)
	now := time.Now()

	// The second arrives first and waits; the first's commit is held
	// until the second has been verified and is waiting for it.
	t1 := txn(nameA, nameB, now, goodEntry(t, now))
	t2 := txn(nameA, nameB, now, goodEntry(t, now))
	t2.After = t1.TxnID
	second := make(chan []byte, 1)
	go func() { second <- ask(t, c, sign(t, t2, ka)) }()
	waitFor(t, "the second waiting for the first", func() bool {
		b.svc.order.mu.Lock()
		defer b.svc.order.mu.Unlock()
		return b.svc.order.runs[orderKey{nameA, t2.TxnID}] != nil
	})
	first := make(chan []byte, 1)
	go func() { first <- ask(t, c, sign(t, t1, ka)) }()
	<-b.st.entered // the first is committing; the second must not be
	select {
	case <-b.st.entered:
		t.Fatal("the second transaction was committed before the one it follows")
	case <-time.After(100 * time.Millisecond):
	}
	close(b.st.gate)
	wantReceipt(t, <-first, b, t1)
	wantReceipt(t, <-second, b, t2)
	if got := b.st.receivedTxns(); !slices.Equal(got, []string{t1.TxnID, t2.TxnID}) {
		t.Fatalf("committed %v, want %v (the order they follow)", got, []string{t1.TxnID, t2.TxnID})
	}

	// The one it follows was refused (misaddressed): out_of_order.
	bad := txn(nameA, nameC, now, goodEntry(t, now)) // misaddressed
	wantRefusal(t, ask(t, c, sign(t, bad, ka)), "misaddressed")
	t3 := txn(nameA, nameB, now, goodEntry(t, now))
	t3.After = bad.TxnID
	wantRefusal(t, ask(t, c, sign(t, t3, ka)), codeOutOfOrder)

	// It never arrives: out_of_order after the wait. Nothing is stored.
	t4 := txn(nameA, nameB, now, goodEntry(t, now))
	t4.After = newID()
	wantRefusal(t, ask(t, c, sign(t, t4, ka)), codeOutOfOrder)
	if got := b.st.receivedTxns(); len(got) != 2 {
		t.Fatalf("committed %v after out_of_order refusals", got)
	}

	// Committed before this process knew of it (replay records): through.
	b.svc.order.mu.Lock()
	clear(b.svc.order.runs)
	b.svc.order.mu.Unlock()
	t5 := txn(nameA, nameB, now, goodEntry(t, now))
	t5.After = t2.TxnID
	wantReceipt(t, ask(t, c, sign(t, t5, ka)), b, t5)

	// A type that is not queued cannot name one.
	kr := &wire.Transaction{Header: wire.Header{Origin: nameA, Destination: nameB, TxnID: newID(), CreatedAt: now.UnixMilli()},
		Type: wire.TypeKeyRequest, Entries: []wire.Entry{{ID: newID(), Address: addr("bob", nameB)}}, After: t5.TxnID}
	if _, err := wire.Sign(kr, ka); err == nil {
		t.Fatal("signed a key request with after")
	}
}
