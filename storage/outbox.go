package storage

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/privateline/privateline"
)

// Federation outbox (spec/federation.md §14): what this server must still
// deliver to each other server, in order.
//
//	'O' dest(16) seq(8)   outbox item: type, entry id (for "envelopes" the
//	                      message id) and time queued
//	'D' dest(16) 'q'      the destination: its name, the last sequence
//	                      number given out, the number of items queued
//	                      (depth) and the newest queue time
//	'D' dest(16) 'p'      the pending transaction: txn id, type, its
//	                      items' sequence numbers, ids and senders, and
//	                      the transaction recorded to follow it; in a
//	                      binary form (pendingrec.go)
//	'D' dest(16) 'e'      the last error of a delivery attempt
//
// dest is HMAC(nameKey, "server" 0x00 name)[:16]: no server name appears
// in a key.
//
// An "envelopes" item does not copy the envelope: its payload is the
// envelope record's bytes (messages.go), read when a transaction is built.
// So the envelope's bytes are stored once whatever the number of
// destinations, and an item whose message has gone (deleted by its sender,
// expired, gone with the sender's account) is dropped silently when it
// reaches the head — the outbox never outlives the message it carries.
//
// # Locking
//
// Each destination has a mutex (destLock), taken after the stripes and
// before the commit pipeline's applyMu; only Deliver holds more than one,
// in ascending order of dest. Writers of a destination's records hold its
// mutex until their batch is applied (not until durable: they wait for the
// sync outside it), so every write reads the state the previous one left
// and sequence numbers are written in the order they were given out.
// Operations that put events in senders' logs (OutboxDone, OutboxExpire)
// take the senders' stripes first, then the destination's mutex.

// OutboxItem is one entry of a destination's outbox.
type OutboxItem struct {
	Seq      uint64
	Type     string // "envelopes" (the wire type)
	ID       string // entry id: the envelope id for "envelopes"
	Payload  []byte // "envelopes", "group_envelopes": the envelope exactly as posted
	QueuedAt time.Time
	// Meta: "group_envelopes": the GroupEnvelopePayload (fedgroups.go).
	Meta []byte
}

// OutboxTxn is a destination's pending transaction.
type OutboxTxn struct {
	TxnID string
	Type  string
	Items []OutboxItem // outbox order
	// ahead: read ahead of its turn by OutboxPeek (outboxahead.go).
	ahead *aheadState
}

// OutboxResult is a receipt's result for one item.
type OutboxResult struct {
	ID        string
	Delivered bool   // accepted or duplicate
	Error     string // refusal code when !Delivered
}

// Outbox item types: the wire types of spec/federation.md.
const (
	OutboxEnvelopes = "envelopes"  // direct envelopes; the payload is the envelope
	OutboxReadMarks = "read_marks" // a local user read a message from the destination's user: ReadMarkPayload
	OutboxDeletes   = "deletes"    // a local sender deleted a message for everyone: DeletePayload
)

// ReadMarkPayload is an OutboxReadMarks item's payload (JSON): reader, a
// user of this server, read message, sent by a user of the destination.
type ReadMarkPayload struct {
	Message string              `json:"message"`
	Reader  privateline.Address `json:"reader"`
	ReadAt  int64               `json:"read_at"` // ms
}

// DeletePayload is an OutboxDeletes item's payload (JSON): From, a user of
// this server, deleted their message for everyone.
type DeletePayload struct {
	Message   string              `json:"message"`
	From      privateline.Address `json:"from"`
	DeletedAt int64               `json:"deleted_at"` // ms
}

// maxDetail bounds the last error kept and put in timeout events.
const maxDetail = 512

type outboxDest struct {
	name privateline.ServerName
	h    []byte // serverHash(name)
}

type outboxRecord struct {
	Type     string `json:"type"`
	ID       string `json:"id"`
	QueuedAt int64  `json:"queued_at"` // ms
	// Payload of an item of another type than "envelopes" (later:
	// read marks, deletes), which has no envelope record to read.
	Payload []byte `json:"payload,omitempty"`
}

type destState struct {
	Name  privateline.ServerName `json:"name"`
	Next  uint64                 `json:"next"`  // last sequence number given out
	Depth int                    `json:"depth"` // items queued
	Last  int64                  `json:"last"`  // ms: newest QueuedAt, so queue times never go back
}

type pendingTxn struct {
	TxnID string   `json:"txn_id"`
	Type  string   `json:"type"`
	Seqs  []uint64 `json:"seqs"`
	// IDs and Senders, parallel to Seqs: each item's entry id and its
	// message's sender (zero: none), so that OutboxDone settles a receipt
	// without reading the envelopes again. Records written before they
	// existed have neither; OutboxDone then reads the items.
	// Senders holds 16 bytes per item.
	IDs     []string `json:"ids,omitempty"`
	Senders []byte   `json:"senders,omitempty"`
	// Changed: items left it since it was handed out (OutboxExpire); the
	// next OutboxNext gives what is left a new txn id, so one txn id never
	// names two sets of entries.
	Changed bool `json:"changed,omitempty"`
	// Next: the transaction that follows, recorded while this one was in
	// flight (OutboxPend, outboxahead.go) and perhaps sent already; it has
	// no Next of its own.
	Next *pendingTxn `json:"next,omitempty"`
}

// holds reports whether the item seq was handed to the destination: it
// is in p or in p's Next.
func (p *pendingTxn) holds(seq uint64) bool {
	return p != nil && (slices.Contains(p.Seqs, seq) || p.Next.holds(seq))
}

// drop removes item seq from p (not from its Next) and reports whether it
// was there.
func (p *pendingTxn) drop(seq uint64) bool {
	i := slices.Index(p.Seqs, seq)
	if i < 0 {
		return false
	}
	p.Seqs = slices.Delete(p.Seqs, i, i+1)
	if len(p.IDs) > i && len(p.Senders) >= (i+1)*len(ID{}) {
		p.IDs = slices.Delete(p.IDs, i, i+1)
		p.Senders = slices.Delete(p.Senders, i*len(ID{}), (i+1)*len(ID{}))
	}
	p.Changed = true
	return true
}

// forget zeroes id wherever it is the sender of one of p's items (not of
// its Next's) and reports whether it was there.
func (p *pendingTxn) forget(id ID) bool {
	found := false
	for i := 0; i+len(id) <= len(p.Senders); i += len(id) {
		if ID(p.Senders[i:i+len(id)]) == id {
			clear(p.Senders[i : i+len(id)])
			found = true
		}
	}
	return found
}

// forgetSender zeroes user, whose account is being deleted, wherever it
// is the sender of an item of a pending transaction or of the one
// recorded to follow it, in t's batch, so that no record keeps the
// account's id. OutboxDone gives no event to a zero sender, as to one
// whose account has gone, so nothing else changes. Each destination with
// a pending record is locked (lockGroupDest) until the batch is applied;
// every stripe is held. Records are read from the store: t's batch must
// not have written one.
func (t *mtxn) forgetSender(user ID) error {
	d := t.d
	var hs [][]byte
	err := d.scanKeys([]byte{tOutboxDest.prefix}, func(k, _ []byte) error {
		if len(k) == 1+16+1 && k[17] == 'p' {
			hs = append(hs, slices.Clone(k[1:17]))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, h := range hs {
		var st destState
		if err := d.getJSON(stateKey(h), &st); err != nil {
			return err // a destination with a pending transaction has a state
		}
		t.lockGroupDest(outboxDest{name: st.Name, h: h})
		p, err := d.pendingTxn(h) // again, under the lock
		if err != nil {
			return err
		}
		if p == nil {
			continue
		}
		changed := p.forget(user)
		if p.Next != nil && p.Next.forget(user) {
			changed = true
		}
		if changed {
			if err := d.putPending(t.b, h, p); err != nil {
				return err
			}
		}
	}
	return nil
}

type destError struct {
	Text string `json:"text"`
}

func (d *DB) serverHash(name privateline.ServerName) []byte {
	m := hmac.New(sha256.New, d.nameKey)
	m.Write([]byte("server\x00"))
	m.Write([]byte(name))
	return m.Sum(nil)[:16]
}

func stateKey(h []byte) []byte   { return tOutboxDest.key(h, []byte{'q'}) }
func pendingKey(h []byte) []byte { return tOutboxDest.key(h, []byte{'p'}) }
func errorKey(h []byte) []byte   { return tOutboxDest.key(h, []byte{'e'}) }

// outboxDests returns the distinct servers of the addresses, in lock
// order (ascending dest).
func (d *DB) outboxDests(remote []privateline.Address) ([]outboxDest, error) {
	var ds []outboxDest
	for _, a := range remote {
		_, srv, err := a.Split()
		if err != nil {
			return nil, privateline.E("storage.outboxDests", privateline.Invalid, err)
		}
		if !slices.ContainsFunc(ds, func(x outboxDest) bool { return x.name == srv }) {
			ds = append(ds, outboxDest{name: srv, h: d.serverHash(srv)})
		}
	}
	slices.SortFunc(ds, func(a, b outboxDest) int { return bytes.Compare(a.h, b.h) })
	return ds, nil
}

func (d *DB) destLock(h []byte) *sync.Mutex {
	d.destMu.Lock()
	defer d.destMu.Unlock()
	if d.destLocks == nil {
		d.destLocks = map[string]*sync.Mutex{}
	}
	m := d.destLocks[string(h)]
	if m == nil {
		m = &sync.Mutex{}
		d.destLocks[string(h)] = m
	}
	return m
}

// lockDests locks the destinations (in the given, ascending order) and
// returns an idempotent unlock function.
func (d *DB) lockDests(ds []outboxDest) func() {
	var ms []*sync.Mutex
	for _, x := range ds {
		m := d.destLock(x.h)
		m.Lock()
		ms = append(ms, m)
	}
	locked := true
	return func() {
		if !locked {
			return
		}
		locked = false
		for _, m := range slices.Backward(ms) {
			m.Unlock()
		}
	}
}

func (d *DB) destState(x outboxDest) (*destState, error) {
	st := &destState{}
	if err := d.getJSON(stateKey(x.h), st); privateline.Is(privateline.NotExist, err) {
		st.Name = x.name
	} else if err != nil {
		return nil, err
	}
	return st, nil
}

// queueEnvelope adds an "envelopes" item for message msgID to each
// destination's outbox in t's batch. The caller holds the destinations'
// locks until the batch is applied.
func (t *mtxn) queueEnvelope(ds []outboxDest, msgID string) error {
	return t.queueItems(ds, OutboxEnvelopes, msgID, nil)
}

// queueItems adds an item of type typ (id, payload) to each destination's
// outbox in t's batch, under the destinations' locks held by the caller
// until the batch is applied.
func (t *mtxn) queueItems(ds []outboxDest, typ, id string, payload []byte) error {
	now := t.d.now().UnixMilli()
	for _, x := range ds {
		// A batch may queue several items for one destination (an
		// account deletion's deletes, several groups' updates): each
		// after the last, so the state is read once and kept in t.
		st := t.destStates[string(x.h)]
		if st == nil {
			var err error
			if st, err = t.d.destState(x); err != nil {
				return err
			}
			if t.destStates == nil {
				t.destStates = map[string]*destState{}
			}
			t.destStates[string(x.h)] = st
		}
		st.Next++
		st.Depth++
		st.Last = max(st.Last, now)
		if err := t.d.setJSON(t.b, tOutbox.key(x.h, u64(st.Next)), outboxRecord{Type: typ, ID: id, QueuedAt: st.Last, Payload: payload}); err != nil {
			return err
		}
		if err := t.d.setJSON(t.b, stateKey(x.h), st); err != nil {
			return err
		}
	}
	return nil
}

// unsentTo returns the destinations of ds whose outbox still holds message
// msgID's envelope item outside a pending transaction: it was never
// handed to them, and goes silently with the message. The caller holds
// the destinations' locks.
func (d *DB) unsentTo(ds []outboxDest, msgID string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, x := range ds {
		err := d.eachUnsent(x, func(id string) error {
			if id == msgID {
				out[string(x.h)] = true
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return nil, err
		}
	}
	return out, nil
}

// unsentIDs returns the ids of the messages whose envelope items
// destination x's outbox holds outside a pending transaction (unsentTo,
// for every message at once). The caller holds x's lock.
func (d *DB) unsentIDs(x outboxDest) (map[string]bool, error) {
	out := map[string]bool{}
	err := d.eachUnsent(x, func(id string) error {
		out[id] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachUnsent calls fn with the message id of each envelope item (direct or
// group) of x's outbox that is not in its pending transaction, in queue
// order, until fn returns an error. The caller holds x's lock.
func (d *DB) eachUnsent(x outboxDest, fn func(id string) error) error {
	p, err := d.pendingTxn(x.h)
	if err != nil {
		return err
	}
	prefix := tOutbox.key(x.h)
	return d.scanKeys(prefix, func(k, v []byte) error {
		if len(k) != len(prefix)+8 {
			return nil
		}
		var r outboxRecord
		if err := d.getJSON(k, &r); err != nil {
			return err
		}
		if r.Type != OutboxEnvelopes && r.Type != OutboxGroupEnvelopes {
			return nil
		}
		if p.holds(binary.BigEndian.Uint64(k[len(prefix):])) {
			return nil
		}
		return fn(r.ID)
	})
}

// outboxQueued tells the outbox notifier of destinations whose items are
// durable.
func (d *DB) outboxQueued(ds []outboxDest) {
	if d.outboxNotify == nil {
		return
	}
	for _, x := range ds {
		d.outboxNotify(x.name)
	}
}

// SetOutboxNotifier sets the function called with a destination once a
// batch that queued items for it is durable; it is called without any of
// the store's locks held and must not block. Call it before serving.
func (d *DB) SetOutboxNotifier(fn func(privateline.ServerName)) { d.outboxNotify = fn }

// item is an outbox item read with its payload; gone: its message has
// gone or expired (the item is to be dropped silently).
type item struct {
	OutboxItem
	sender  ID
	gone    bool
	expires int64 // ms: when its message expires (0: never)
}

// loadItem reads the item at key k (nil, nil if there is none).
func (d *DB) loadItem(k []byte, now time.Time) (*item, error) {
	pt, err := d.get(k)
	if privateline.Is(privateline.NotExist, err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return d.itemOf(k, pt, now)
}

// itemOf decodes the item at key k from its opened record pt.
func (d *DB) itemOf(k, pt []byte, now time.Time) (*item, error) {
	var r outboxRecord
	if err := json.Unmarshal(pt, &r); err != nil {
		return nil, privateline.E("storage.loadItem", privateline.Internal, err)
	}
	it := &item{OutboxItem: OutboxItem{Seq: binary.BigEndian.Uint64(k[len(k)-8:]), Type: r.Type, ID: r.ID, QueuedAt: time.UnixMilli(r.QueuedAt)}}
	switch r.Type {
	case OutboxEnvelopes, OutboxGroupEnvelopes:
		it.Meta = r.Payload
		mid, err := msgKeyID(r.ID)
		if err != nil {
			return nil, privateline.E("storage.loadItem", privateline.Internal, err)
		}
		rec, err := d.envelope(mid)
		if privateline.Is(privateline.NotExist, err) {
			it.gone = true
		} else if err != nil {
			return nil, err
		} else {
			it.gone = rec.expired(now)
			it.Payload, it.sender, it.expires = rec.Raw, rec.Sender.ID, rec.ExpiresAt
		}
	default:
		it.Payload = r.Payload
	}
	return it, nil
}

// outboxLower is where a walk of destination h's items starts: its
// outbox floor, the first item a walk from the start last met. Items that
// were settled, dropped or expired leave deletion marks at the head of the
// queue that every walk from the start would step over again until
// compactions drop them. Nothing is ever queued below the floor: sequence
// numbers only grow (destState.Next, given out under the destination's
// lock until the batch is applied), and the floor is a key an iterator
// saw, so every item queued before it was already applied. It lives in
// memory only (a reopened store walks from the start once).
func (d *DB) outboxLower(h []byte) []byte {
	if f, ok := d.outboxFloor.Load(string(h)); ok {
		return tOutbox.key(h, u64(f.(*atomic.Uint64).Load()))
	}
	return tOutbox.key(h)
}

// raiseOutboxFloor records seq (8 bytes, big-endian), the first item a
// walk of destination h's outbox met, as its floor if higher.
func (d *DB) raiseOutboxFloor(h, seq []byte) {
	n := binary.BigEndian.Uint64(seq)
	f, ok := d.outboxFloor.Load(string(h))
	if !ok {
		f, _ = d.outboxFloor.LoadOrStore(string(h), new(atomic.Uint64))
	}
	a := f.(*atomic.Uint64)
	for {
		old := a.Load()
		if old >= n || a.CompareAndSwap(old, n) {
			return
		}
	}
}

// scanItems calls fn with each item of dest in outbox order until fn
// returns false.
func (d *DB) scanItems(h []byte, now time.Time, fn func(*item) bool) error {
	return d.scanItemsAfter(h, 0, now, fn)
}

// scanItemsAfter is scanItems from the first item with a sequence number
// above after: keys are ordered by sequence number, so the items at or
// below after are not read at all. A walk that starts above the floor
// does not raise it (what lies between may still be queued).
func (d *DB) scanItemsAfter(h []byte, after uint64, now time.Time, fn func(*item) bool) error {
	p := tOutbox.key(h)
	lower := d.outboxLower(h)
	first := true
	if after > 0 {
		if after == ^uint64(0) {
			return nil
		}
		if k := tOutbox.key(h, u64(after+1)); bytes.Compare(k, lower) > 0 {
			lower, first = k, false
		}
	}
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(p)})
	if err != nil {
		return privateline.E("storage.scanItems", privateline.Unavailable, err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) != len(p)+8 {
			continue
		}
		if first {
			d.raiseOutboxFloor(h, k[len(p):])
			first = false
		}
		// The record is the iterator's value: no second read of it.
		pt, err := d.seal.open(k, it.Value())
		if err != nil {
			return privateline.E("storage.scanItems", privateline.Internal, err)
		}
		x, err := d.itemOf(k, pt, now)
		if err != nil {
			return err
		}
		if x != nil && !fn(x) {
			break
		}
	}
	return it.Error()
}

// OutboxDestinations lists servers that have queued items (a pending
// transaction's items are queued items too).
func (d *DB) OutboxDestinations() ([]privateline.ServerName, error) {
	depth, err := d.OutboxDepth()
	if err != nil {
		return nil, privateline.E("storage.OutboxDestinations", err)
	}
	var names []privateline.ServerName
	for n, c := range depth {
		if c > 0 {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// OutboxDepth returns the number of queued items of every destination
// this server has queued items for (0 once delivered). It reads one
// record per destination.
func (d *DB) OutboxDepth() (map[privateline.ServerName]int, error) {
	m := map[privateline.ServerName]int{}
	err := d.scanKeys([]byte{tOutboxDest.prefix}, func(k, v []byte) error {
		if len(k) != 1+16+1 || k[17] != 'q' {
			return nil
		}
		pt, err := d.seal.open(k, v)
		if err != nil {
			return privateline.E(privateline.Internal, err)
		}
		var st destState
		if err := json.Unmarshal(pt, &st); err != nil {
			return privateline.E(privateline.Internal, err)
		}
		m[st.Name] = st.Depth
		return nil
	})
	if err != nil {
		return nil, privateline.E("storage.OutboxDepth", err)
	}
	return m, nil
}

// OutboxNext returns dest's pending transaction if one is recorded (the
// same txn id and items; if items have left it since — their message
// gone, or expired by OutboxExpire — what is left gets a new txn id, so
// that a txn id never names two sets of entries; one none of whose items
// is left gives way to the one recorded to follow it, OutboxPend, which
// stays recorded to follow otherwise); else it takes items from
// the head: consecutive items of the first item's Type, at most maxItems
// and with the sum of len(Payload) ≤ maxBytes (always at least one),
// records them durably as the pending transaction under txnID = newID()
// and returns it. Items whose message has gone or expired are removed
// silently first (their sender saw it go). nil, nil when dest has nothing
// queued.
func (d *DB) OutboxNext(dest privateline.ServerName, maxItems, maxBytes int, newID func() string) (*OutboxTxn, error) {
	const op = "storage.OutboxNext"
	x := outboxDest{name: dest, h: d.serverHash(dest)}
	unlock := d.lockDests([]outboxDest{x})
	defer unlock()
	now := d.now()
	st, err := d.destState(x)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	p, err := d.pendingTxn(x.h)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	t := d.newMtxn(nil)
	t.release = unlock
	depth := st.Depth
	dropped := map[uint64]bool{}
	drop := func(seq uint64) {
		if !dropped[seq] { // the scan below reads the store, not the batch
			dropped[seq] = true
			t.del(tOutbox.key(x.h, u64(seq)))
			st.Depth--
		}
	}
	var txn *OutboxTxn
	senders := map[uint64]ID{} // of the items in txn
	var next *pendingTxn       // recorded to follow txn
	recorded := p != nil
	for promoted := false; p != nil; p, promoted = p.Next, true {
		txn = &OutboxTxn{TxnID: p.TxnID, Type: p.Type}
		changed := p.Changed
		for _, seq := range p.Seqs {
			it, err := d.loadItem(tOutbox.key(x.h, u64(seq)), now)
			switch {
			case err != nil:
				t.b.Close()
				return nil, privateline.E(op, err)
			case it == nil:
				changed = true
			case it.gone:
				drop(seq)
				changed = true
			default:
				txn.Items = append(txn.Items, it.OutboxItem)
				senders[it.Seq] = it.sender
			}
		}
		if len(txn.Items) == 0 {
			// Every item has gone: the one recorded to follow, if any, is
			// the pending transaction.
			txn = nil
			continue
		}
		if !changed && !promoted {
			t.b.Close()
			unlock()
			// Recorded by an earlier call, which may still wait for its sync.
			if err := d.syncWAL(); err != nil {
				return nil, privateline.E(op, err)
			}
			return txn, nil
		}
		if changed {
			txn.TxnID = newID()
		}
		next = p.Next
		break
	}
	if txn == nil {
		var items []*item
		txn, items, err = d.collect(x.h, 0, now, maxItems, maxBytes, func(it *item) bool {
			drop(it.Seq)
			return true
		})
		if err != nil {
			t.b.Close()
			return nil, privateline.E(op, err)
		}
		for _, it := range items {
			senders[it.Seq] = it.sender
		}
		if txn != nil {
			txn.TxnID = newID()
		}
	}
	switch {
	case txn != nil:
		if err := d.setPending(t.b, x.h, txn, senders, next); err != nil {
			t.b.Close()
			return nil, privateline.E(op, err)
		}
	case recorded:
		t.del(pendingKey(x.h))
	}
	if st.Depth != depth {
		if err := d.setJSON(t.b, stateKey(x.h), st); err != nil {
			t.b.Close()
			return nil, privateline.E(op, err)
		}
	}
	if t.b.Empty() {
		t.b.Close()
		return nil, nil
	}
	if err := t.commit(); err != nil {
		return nil, privateline.E(op, err)
	}
	return txn, nil
}

// collect reads the items of the next transaction from the first item
// with a sequence number above after (0: the head) on: consecutive items of the first
// item's type, at most maxItems and with the sum of len(Payload) ≤
// maxBytes (always at least one). gone is called for each item whose
// message has gone or expired, which is not taken; the scan stops when it
// returns false. txn is nil when no item was taken; it has no TxnID.
func (d *DB) collect(h []byte, after uint64, now time.Time, maxItems, maxBytes int, gone func(*item) bool) (txn *OutboxTxn, items []*item, err error) {
	var bytes int
	err = d.scanItemsAfter(h, after, now, func(it *item) bool {
		if it.gone {
			return gone(it)
		}
		if txn == nil {
			txn = &OutboxTxn{Type: it.Type}
		} else if it.Type != txn.Type || len(txn.Items) >= maxItems || bytes+len(it.Payload) > maxBytes {
			return false
		}
		bytes += len(it.Payload)
		txn.Items = append(txn.Items, it.OutboxItem)
		items = append(items, it)
		return true
	})
	return txn, items, err
}

// setPending records txn, followed by next (nil: none), as destination
// h's pending transaction in b; senders gives each item's sender by
// sequence number.
func (d *DB) setPending(b *pebble.Batch, h []byte, txn *OutboxTxn, senders map[uint64]ID, next *pendingTxn) error {
	np := pendingOf(txn, senders)
	np.Next = next
	return d.putPending(b, h, &np)
}

// pendingOf is the pending record of txn; senders gives each item's
// sender by sequence number.
func pendingOf(txn *OutboxTxn, senders map[uint64]ID) pendingTxn {
	np := pendingTxn{TxnID: txn.TxnID, Type: txn.Type}
	for _, it := range txn.Items {
		np.Seqs = append(np.Seqs, it.Seq)
		np.IDs = append(np.IDs, it.ID)
		sid := senders[it.Seq]
		np.Senders = append(np.Senders, sid[:]...)
	}
	return np
}

// queuedSeqs returns which of seqs (a transaction's items) are still
// items of destination h's outbox, with one walk over the keys from the
// lowest to the highest.
func (d *DB) queuedSeqs(h []byte, seqs []uint64) (map[uint64]bool, error) {
	want := make(map[uint64]bool, len(seqs))
	for _, seq := range seqs {
		want[seq] = true
	}
	out := make(map[uint64]bool, len(seqs))
	if len(seqs) == 0 {
		return out, nil
	}
	p := tOutbox.key(h)
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: tOutbox.key(h, u64(slices.Min(seqs))), UpperBound: prefixEnd(tOutbox.key(h, u64(slices.Max(seqs))))})
	if err != nil {
		return nil, privateline.E(privateline.Unavailable, err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if k := it.Key(); len(k) == len(p)+8 {
			if seq := binary.BigEndian.Uint64(k[len(p):]); want[seq] {
				out[seq] = true
			}
		}
	}
	return out, it.Error()
}

// ErrNotPending: OutboxDone was given a txn id that is not the
// destination's pending transaction (kind Exist).
var ErrNotPending = errors.New("storage: not the pending transaction")

// lockSenders locks the stripes of the senders of the items chosen by
// pick (read under the destination's lock), then the destination: the
// lock order is stripes first. fn runs under both locks with the
// destination's state, pending transaction and the chosen items; it is
// retried if the senders changed in between.
func (d *DB) lockSenders(x outboxDest, pick func(st *destState, p *pendingTxn) ([]*item, error),
	fn func(st *destState, p *pendingTxn, items []*item, unlock func()) error) error {
	for {
		dl := d.lockDests([]outboxDest{x})
		st, err := d.destState(x)
		var p *pendingTxn
		if err == nil {
			p, err = d.pendingTxn(x.h)
		}
		var items []*item
		if err == nil {
			items, err = pick(st, p)
		}
		dl()
		if err != nil {
			return err
		}
		held := map[ID]bool{}
		var ids [][]byte
		for _, it := range items {
			if !it.sender.IsZero() && !held[it.sender] {
				held[it.sender] = true
				ids = append(ids, slices.Clone(it.sender[:]))
			}
		}
		unlockStripes := d.lockStripes(ids...)
		dl = d.lockDests([]outboxDest{x})
		unlock := func() { dl(); unlockStripes() }
		st, err = d.destState(x)
		if err == nil {
			p, err = d.pendingTxn(x.h)
		}
		if err == nil {
			items, err = pick(st, p)
		}
		if err != nil {
			unlock()
			return err
		}
		if slices.ContainsFunc(items, func(it *item) bool { return !it.sender.IsZero() && !held[it.sender] }) {
			unlock()
			continue
		}
		err = fn(st, p, items, unlock)
		unlock()
		return err
	}
}

// senderEvent puts ev in the log of the sender of it, if the sender is
// still a user (the caller holds the sender's stripe).
func (t *mtxn) senderEvent(it *item, ev Event) error {
	if it.gone || it.sender.IsZero() {
		return nil
	}
	ok, err := t.d.userExists(it.sender)
	if err != nil || !ok {
		return err
	}
	ev.ID = it.ID
	_, err = t.event(it.sender, ev)
	return err
}

// OutboxDone settles dest's pending transaction txnID with the receipt's
// results (ids in the txn's order) in one synced batch: it deletes the
// items named, clears the pending record and puts in each item's sender's
// event log `delivered` or `delivery_failed` (Error: the result's code).
// The transaction recorded to follow it (OutboxPend) becomes the pending
// one, under its txn id. An item of the transaction without a result
// stays queued, and then the one recorded to follow is forgotten (its
// items are taken again behind that item by OutboxNext, under a new txn
// id: the destination answers those it has as duplicates). A txnID that
// is not the pending one changes nothing and returns an Exist error
// (ErrNotPending).
func (d *DB) OutboxDone(dest privateline.ServerName, txnID string, results []OutboxResult) error {
	const op = "storage.OutboxDone"
	x := outboxDest{name: dest, h: d.serverHash(dest)}
	now := d.now()
	pick := func(_ *destState, p *pendingTxn) ([]*item, error) {
		if p == nil || p.TxnID != txnID {
			return nil, privateline.E(op, privateline.Exist, ErrNotPending)
		}
		var items []*item
		if len(p.IDs) == len(p.Seqs) && len(p.Senders) == len(ID{})*len(p.Seqs) {
			// The pending record names each item's id and sender: only
			// whether the item is still queued is read, not its envelope.
			// (An item whose message went after it was sent is settled
			// like the others: the destination has committed it.)
			queued, err := d.queuedSeqs(x.h, p.Seqs)
			if err != nil {
				return nil, err
			}
			for i, seq := range p.Seqs {
				if queued[seq] {
					it := &item{OutboxItem: OutboxItem{Seq: seq, Type: p.Type, ID: p.IDs[i]}}
					copy(it.sender[:], p.Senders[i*len(ID{}):])
					items = append(items, it)
				}
			}
			return items, nil
		}
		for _, seq := range p.Seqs {
			it, err := d.loadItem(tOutbox.key(x.h, u64(seq)), now)
			if err != nil {
				return nil, err
			}
			if it != nil {
				items = append(items, it)
			}
		}
		return items, nil
	}
	byID := map[string]OutboxResult{}
	for _, r := range results {
		byID[r.ID] = r
	}
	err := d.lockSenders(x, pick, func(st *destState, p *pendingTxn, items []*item, unlock func()) error {
		t := d.newMtxn(nil)
		t.release = unlock
		t.now = now
		all := true // every item still queued has a result
		for _, it := range items {
			r, ok := byID[it.ID]
			if !ok {
				all = false
				continue
			}
			if it.Type == OutboxGroupUpdates {
				if err := t.groupStateGone(x, it.Seq, it.Payload); err != nil { // fedgroupsync.go
					t.b.Close()
					return err
				}
			}
			t.del(tOutbox.key(x.h, u64(it.Seq)))
			st.Depth--
			ev := Event{Type: EventDelivered, Server: dest}
			if !r.Delivered {
				ev = Event{Type: EventDeliveryFailed, Server: dest, Error: r.Error}
			}
			if err := t.senderEvent(it, ev); err != nil {
				t.b.Close()
				return err
			}
		}
		if p.Next != nil && all {
			if err := d.putPending(t.b, x.h, p.Next); err != nil {
				t.b.Close()
				return err
			}
		} else {
			t.del(pendingKey(x.h))
		}
		if err := d.setJSON(t.b, stateKey(x.h), st); err != nil {
			t.b.Close()
			return err
		}
		return t.commit()
	})
	if err != nil {
		return privateline.E(op, err)
	}
	return nil
}

// OutboxAttemptFailed records the last error of a delivery attempt to dest
// (put in timeout events); not synced.
func (d *DB) OutboxAttemptFailed(dest privateline.ServerName, errText string) error {
	const op = "storage.OutboxAttemptFailed"
	x := outboxDest{name: dest, h: d.serverHash(dest)}
	unlock := d.lockDests([]outboxDest{x})
	defer unlock()
	b := d.db.NewBatch()
	defer b.Close()
	if err := d.setJSON(b, errorKey(x.h), destError{Text: truncateUTF8(errText, maxDetail)}); err != nil {
		return privateline.E(op, err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return privateline.E(op, privateline.Unavailable, err)
	}
	return nil
}

// OutboxWaiting puts a `delivery_waiting` event (Server dest) in the log
// of the sender of each envelope item (direct or group) of dest's outbox
// with a sequence number above after, in one synced batch per sweep, and
// returns the highest sequence number it looked at (after if none): the
// caller passes it back next time so that each item is announced once per
// run of failures. Items whose message has gone are skipped silently.
func (d *DB) OutboxWaiting(dest privateline.ServerName, after uint64) (uint64, error) {
	const op = "storage.OutboxWaiting"
	x := outboxDest{name: dest, h: d.serverHash(dest)}
	now := d.now()
	last := after
	for {
		n := 0
		from := last
		pick := func(*destState, *pendingTxn) ([]*item, error) {
			var items []*item
			err := d.scanItemsAfter(x.h, from, now, func(it *item) bool {
				items = append(items, it)
				return len(items) < maxSweep
			})
			return items, err
		}
		err := d.lockSenders(x, pick, func(_ *destState, _ *pendingTxn, items []*item, unlock func()) error {
			if len(items) == 0 {
				return nil
			}
			t := d.newMtxn(nil)
			t.release = unlock
			t.now = now
			for _, it := range items {
				last = max(last, it.Seq)
				if it.Type != OutboxEnvelopes && it.Type != OutboxGroupEnvelopes {
					continue
				}
				if err := t.senderEvent(it, Event{Type: EventDeliveryWaiting, Server: dest}); err != nil {
					t.b.Close()
					return err
				}
			}
			n = len(items)
			return t.commit()
		})
		if err != nil {
			return last, privateline.E(op, err)
		}
		if n < maxSweep {
			return last, nil
		}
	}
}

// OutboxExpire removes every item of dest queued before cutoff (also from
// the pending transaction and the one recorded to follow it, each cleared
// if left empty), each with a
// `delivery_failed` event for its sender, Error "timeout" and Detail the
// destination's last error, in one synced batch; items whose message has
// gone go silently. It returns how many items went. Group states with
// members on dest stay (spec/federation.md §14): a group's state is not a
// message someone waits on but what the destination's replica needs when
// it is back. One without (dest's last member left, or the group went)
// expires silently: dest, when back, asks for the state of the replica it
// still has and drops it (fedgroupsync.go).
func (d *DB) OutboxExpire(dest privateline.ServerName, cutoff time.Time) (int, error) {
	const op = "storage.OutboxExpire"
	x := outboxDest{name: dest, h: d.serverHash(dest)}
	now := d.now()
	cut := cutoff.UnixMilli()
	pick := func(*destState, *pendingTxn) ([]*item, error) {
		var items []*item
		// Queue times grow with sequence numbers (destState.Last).
		err := d.scanItems(x.h, now, func(it *item) bool {
			if it.QueuedAt.UnixMilli() >= cut {
				return false
			}
			if it.Type == OutboxGroupUpdates && stateHasMemberOn(it.Payload, dest) {
				return true // kept: a group's state never expires (fedgroupsync.go)
			}
			items = append(items, it)
			return len(items) < maxSweep
		})
		return items, err
	}
	// Queue times grow with sequence numbers: if the head is young
	// enough, nothing has expired (read without the envelope, once a
	// delivery step).
	if young, err := d.headQueuedSince(x.h, dest, cut); err != nil {
		return 0, privateline.E(op, err)
	} else if young {
		return 0, nil
	}
	total := 0
	for {
		n := 0
		err := d.lockSenders(x, pick, func(st *destState, p *pendingTxn, items []*item, unlock func()) error {
			if len(items) == 0 {
				return nil
			}
			var de destError
			if err := d.getJSON(errorKey(x.h), &de); err != nil && !privateline.Is(privateline.NotExist, err) {
				return err
			}
			t := d.newMtxn(nil)
			t.release = unlock
			t.now = now
			for _, it := range items {
				if it.Type == OutboxGroupUpdates {
					if err := t.groupStateGone(x, it.Seq, it.Payload); err != nil { // fedgroupsync.go
						t.b.Close()
						return err
					}
				}
				t.del(tOutbox.key(x.h, u64(it.Seq)))
				st.Depth--
				if p != nil && !p.drop(it.Seq) && p.Next != nil {
					p.Next.drop(it.Seq)
				}
				if err := t.senderEvent(it, Event{Type: EventDeliveryFailed, Server: dest, Error: "timeout", Detail: de.Text}); err != nil {
					t.b.Close()
					return err
				}
			}
			had := p != nil
			if p != nil && p.Next != nil && len(p.Next.Seqs) == 0 {
				p.Next = nil
			}
			if p != nil && len(p.Seqs) == 0 {
				p = p.Next // what is left of the one recorded to follow
			}
			var err error
			switch {
			case p != nil:
				err = d.putPending(t.b, x.h, p)
			case had:
				t.del(pendingKey(x.h))
			}
			if err == nil {
				err = d.setJSON(t.b, stateKey(x.h), st)
			}
			if err != nil {
				t.b.Close()
				return err
			}
			n = len(items)
			return t.commit()
		})
		total += n
		if err != nil {
			return total, privateline.E(op, err)
		}
		if n < maxSweep {
			return total, nil
		}
	}
}

// headQueuedSince reports whether dest h's outbox is empty or its first
// item that may expire (not a group update queued before cut) was queued
// at or after cut (ms); it reads only the items' records.
func (d *DB) headQueuedSince(h []byte, dest privateline.ServerName, cut int64) (bool, error) {
	p := tOutbox.key(h)
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: d.outboxLower(h), UpperBound: prefixEnd(p)})
	if err != nil {
		return false, privateline.E(privateline.Unavailable, err)
	}
	defer it.Close()
	first := true
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) != len(p)+8 {
			continue
		}
		if first {
			d.raiseOutboxFloor(h, k[len(p):])
			first = false
		}
		var r outboxRecord
		if err := d.getJSON(slices.Clone(k), &r); err != nil {
			return false, err
		}
		if r.Type == OutboxGroupUpdates && r.QueuedAt < cut && stateHasMemberOn(r.Payload, dest) {
			continue // kept (OutboxExpire): look further
		}
		return r.QueuedAt >= cut, nil
	}
	return true, it.Error()
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
