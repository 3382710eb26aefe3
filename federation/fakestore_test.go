package federation

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/storage"
)

// fakeStore is an in-memory Store that keeps FED2.md's contract: the
// pending transaction is recorded before it is returned and survives
// restarts of the service (the store outlives it), OutboxDoneTake settles only
// the pending txn, ReceiveTransaction commits entries and replay records
// together and answers a committed (origin, txn id) from its records.
type fakeStore struct {
	mu sync.Mutex

	users map[privateline.Username]*storage.User

	// Outbox.
	seq     uint64
	outbox  map[privateline.ServerName][]storage.OutboxItem
	pending map[privateline.ServerName]*storage.OutboxTxn
	lastErr map[privateline.ServerName]string
	events  []outEvent
	txnIDs  []string    // every txn id OutboxNext recorded
	expires []time.Time // cutoffs OutboxExpire was called with
	notify  func(privateline.ServerName)

	// Inbound.
	txns     map[[2]string][]storage.InboundResult
	seen     map[[2]string]bool
	mailbox  []stored // accepted entries in commit order
	received []string // txn ids ReceiveTransaction was called with
	// failAfterCommit > 0: ReceiveTransaction commits, then fails (a crash
	// between commit and receipt), that many times.
	failAfterCommit int
	// gate, if not nil, is received from inside ReceiveTransaction before
	// it commits (the test holds the receiver there).
	gate    chan struct{}
	entered chan struct{} // closed-over signal: ReceiveTransaction was entered

	pins       map[privateline.ServerName]ed25519.PublicKey
	heads      map[privateline.ServerName][]byte
	lookups    map[privateline.Address][]byte
	keyChanged []privateline.Address

	files       fakeFiles
	wit         fakeWitnessStore        // witness_fakestore_test.go
	groupStates map[string][]byte       // GroupStateFor's answers
	replicas    []*storage.GroupReplica // ApplyGroupReplica's calls
	leaves      []string                // RemoveDeletedMember's calls (leave_test.go)
}

// outEvent is an event the outbox put in a local sender's log.
type outEvent struct {
	Type   string // storage.EventDelivered / EventDeliveryFailed
	ID     string
	Server privateline.ServerName
	Error  string
	Detail string
}

// stored is an entry committed for local recipients.
type stored struct {
	Origin privateline.ServerName
	Txn    string
	Entry  storage.InboundEntry
}

func newFakeStore(users ...privateline.Username) *fakeStore {
	f := &fakeStore{
		users:   map[privateline.Username]*storage.User{},
		outbox:  map[privateline.ServerName][]storage.OutboxItem{},
		pending: map[privateline.ServerName]*storage.OutboxTxn{},
		lastErr: map[privateline.ServerName]string{},
		txns:    map[[2]string][]storage.InboundResult{},
		seen:    map[[2]string]bool{},
		pins:    map[privateline.ServerName]ed25519.PublicKey{},
	}
	for _, u := range users {
		var id storage.ID
		rand.Read(id[:])
		f.users[u] = &storage.User{ID: id, Username: u}
	}
	return f
}

// queue appends an envelope for dest to the outbox, as Deliver would, and
// calls the notifier after the "commit".
func (f *fakeStore) queue(dest privateline.ServerName, id string, payload []byte, at time.Time) {
	f.mu.Lock()
	f.seq++
	f.outbox[dest] = append(f.outbox[dest], storage.OutboxItem{Seq: f.seq, Type: "envelopes", ID: id, Payload: payload, QueuedAt: at})
	fn := f.notify
	f.mu.Unlock()
	if fn != nil {
		fn(dest)
	}
}

func (f *fakeStore) setNotifier(fn func(privateline.ServerName)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notify = fn
}

func (f *fakeStore) OutboxDestinations() ([]privateline.ServerName, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []privateline.ServerName
	for d, items := range f.outbox {
		if len(items) > 0 || f.pending[d] != nil {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fakeStore) OutboxNext(dest privateline.ServerName, maxItems, maxBytes int, newID func() string) (*storage.OutboxTxn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	queued := f.outbox[dest]
	if p := f.pending[dest]; p != nil {
		var left []storage.OutboxItem
		for _, it := range p.Items {
			if slices.ContainsFunc(queued, func(q storage.OutboxItem) bool { return q.Seq == it.Seq }) {
				left = append(left, it)
			}
		}
		if len(left) > 0 {
			return &storage.OutboxTxn{TxnID: p.TxnID, Type: p.Type, Items: left}, nil
		}
		delete(f.pending, dest)
	}
	if len(queued) == 0 {
		return nil, nil
	}
	t := &storage.OutboxTxn{TxnID: newID(), Type: queued[0].Type}
	size := 0
	for _, it := range queued {
		if it.Type != t.Type || len(t.Items) == maxItems || (len(t.Items) > 0 && size+len(it.Payload) > maxBytes) {
			break
		}
		size += len(it.Payload)
		t.Items = append(t.Items, it)
	}
	f.pending[dest] = t
	f.txnIDs = append(f.txnIDs, t.TxnID)
	return &storage.OutboxTxn{TxnID: t.TxnID, Type: t.Type, Items: slices.Clone(t.Items)}, nil
}

// OutboxPeek never reads ahead: the sender then takes every transaction
// with OutboxNext (storage.DB's read-ahead is tested over real storage).
func (f *fakeStore) OutboxPeek(privateline.ServerName, uint64, int, int, func() string) (*storage.OutboxTxn, error) {
	return nil, nil
}

var errConflict = privateline.E("fakeStore", privateline.Exist, "not the pending transaction")

// OutboxPend never records (OutboxPeek reads nothing ahead).
func (f *fakeStore) OutboxPend(privateline.ServerName, string, *storage.OutboxTxn) (bool, error) {
	return false, nil
}

func (f *fakeStore) OutboxDone(dest privateline.ServerName, txnID string, results []storage.OutboxResult) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pending[dest]
	if p == nil || p.TxnID != txnID {
		return errConflict
	}
	for _, r := range results {
		i := slices.IndexFunc(f.outbox[dest], func(q storage.OutboxItem) bool { return q.ID == r.ID })
		if i < 0 {
			continue
		}
		f.outbox[dest] = slices.Delete(f.outbox[dest], i, i+1)
		if r.Delivered {
			f.events = append(f.events, outEvent{Type: "delivered", ID: r.ID, Server: dest})
		} else {
			f.events = append(f.events, outEvent{Type: "delivery_failed", ID: r.ID, Server: dest, Error: r.Error})
		}
	}
	delete(f.pending, dest)
	return nil
}

func (f *fakeStore) OutboxAttemptFailed(dest privateline.ServerName, errText string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastErr[dest] = errText
	return nil
}

func (f *fakeStore) OutboxWaiting(dest privateline.ServerName, after uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	last := after
	for _, it := range f.outbox[dest] {
		if it.Seq > after {
			last = max(last, it.Seq)
			if it.Type == storage.OutboxEnvelopes {
				f.events = append(f.events, outEvent{Type: "delivery_waiting", ID: it.ID, Server: dest})
			}
		}
	}
	return last, nil
}

func (f *fakeStore) OutboxExpire(dest privateline.ServerName, cutoff time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expires = append(f.expires, cutoff)
	n := 0
	var keep []storage.OutboxItem
	for _, it := range f.outbox[dest] {
		if it.QueuedAt.Before(cutoff) {
			n++
			f.events = append(f.events, outEvent{Type: "delivery_failed", ID: it.ID, Server: dest, Error: "timeout", Detail: f.lastErr[dest]})
			continue
		}
		keep = append(keep, it)
	}
	f.outbox[dest] = keep
	if p := f.pending[dest]; p != nil {
		p.Items = slices.DeleteFunc(p.Items, func(it storage.OutboxItem) bool { return it.QueuedAt.Before(cutoff) })
		if len(p.Items) == 0 {
			delete(f.pending, dest)
		}
	}
	return n, nil
}

func (f *fakeStore) OutboxDepth() (map[privateline.ServerName]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[privateline.ServerName]int{}
	for d, items := range f.outbox {
		if len(items) > 0 {
			m[d] = len(items)
		}
	}
	return m, nil
}

func (f *fakeStore) ReceiveTransaction(origin privateline.ServerName, txnID string, entries []storage.InboundEntry, now time.Time) ([]storage.InboundResult, bool, error) {
	f.mu.Lock()
	entered, gate := f.entered, f.gate
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.received = append(f.received, txnID)
	if prior, ok := f.txns[[2]string{string(origin), txnID}]; ok {
		same := len(prior) == len(entries)
		for i := 0; same && i < len(prior); i++ {
			same = prior[i].ID == entries[i].ID
		}
		if !same {
			return nil, false, privateline.E("fakeStore", privateline.Exist, "txn_id_reused")
		}
		return slices.Clone(prior), true, nil
	}
	results := make([]storage.InboundResult, len(entries))
	for i, e := range entries {
		k := [2]string{string(origin), e.ID}
		switch {
		case e.Refused != "":
			results[i] = storage.InboundResult{ID: e.ID, Status: "refused", Error: e.Refused}
		case f.seen[k]:
			results[i] = storage.InboundResult{ID: e.ID, Status: "duplicate"}
		case len(e.Recipients) == 0 && e.Replica == nil: // a group's state has none
			results[i] = storage.InboundResult{ID: e.ID, Status: "refused", Error: "unknown_recipient"}
		default:
			f.seen[k] = true
			f.mailbox = append(f.mailbox, stored{Origin: origin, Txn: txnID, Entry: e})
			results[i] = storage.InboundResult{ID: e.ID, Status: "accepted"}
		}
	}
	f.txns[[2]string{string(origin), txnID}] = results
	if f.failAfterCommit > 0 {
		f.failAfterCommit--
		return nil, false, errors.New("fakeStore: crashed after the commit")
	}
	return slices.Clone(results), false, nil
}

func (f *fakeStore) TransactionResults(origin privateline.ServerName, txnID string) ([]storage.InboundResult, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.txns[[2]string{string(origin), txnID}]
	return slices.Clone(r), ok, nil
}

func (f *fakeStore) SeenEnvelopes(origin privateline.ServerName, ids []string) ([]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := make([]bool, len(ids))
	for i, id := range ids {
		seen[i] = f.seen[[2]string{string(origin), id}]
	}
	return seen, nil
}

func (f *fakeStore) UserByName(name privateline.Username) (*storage.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[name]
	if u == nil {
		return nil, privateline.E("fakeStore.UserByName", privateline.NotExist, "no such user")
	}
	return u, nil
}

func (f *fakeStore) PeerPin(name privateline.ServerName) (ed25519.PublicKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pins[name], nil
}

func (f *fakeStore) SetPeerPin(name privateline.ServerName, key ed25519.PublicKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pins[name] = slices.Clone(key)
	return nil
}

func (f *fakeStore) PeerDirectoryHead(name privateline.ServerName) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.heads[name]), nil
}

func (f *fakeStore) SetPeerDirectoryHead(name privateline.ServerName, head []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.heads == nil {
		f.heads = map[privateline.ServerName][]byte{}
	}
	f.heads[name] = slices.Clone(head)
	return nil
}

func (f *fakeStore) RemoteLookup(a privateline.Address) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lookups[a]), nil
}

func (f *fakeStore) SetRemoteLookup(a privateline.Address, l []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lookups == nil {
		f.lookups = map[privateline.Address][]byte{}
	}
	f.lookups[a] = slices.Clone(l)
	return nil
}

func (f *fakeStore) DeleteRemoteLookup(a privateline.Address) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.lookups, a)
	return nil
}

func (f *fakeStore) RemoteKeyChanged(a privateline.Address) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keyChanged = append(f.keyChanged, a)
	return 1, nil
}

// Snapshots for assertions.

func (f *fakeStore) depth(dest privateline.ServerName) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.outbox[dest])
}

func (f *fakeStore) eventList() []outEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

func (f *fakeStore) mail() []stored {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.mailbox)
}

func (f *fakeStore) lastError(dest privateline.ServerName) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr[dest]
}

func (f *fakeStore) receivedTxns() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.received)
}

func (f *fakeStore) madeTxns() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.txnIDs)
}

// Files across servers (files.go). peerFile, if set, answers FileForPeer
// (nil: every file is unknown); remoteFiles keeps what StoreRemoteFile
// accepted.
type fakeFiles struct {
	peerFile    func(origin privateline.ServerName, requester privateline.Address, message, file string) (*storage.FileInfo, *os.File, error)
	peerCalls   int
	remoteFiles map[string][]byte
}

func (f *fakeStore) FileForPeer(origin privateline.ServerName, requester privateline.Address, message, file string, now time.Time) (*storage.FileInfo, *os.File, error) {
	f.mu.Lock()
	f.files.peerCalls++
	fn := f.files.peerFile
	f.mu.Unlock()
	if fn == nil {
		return nil, nil, privateline.E("fake.FileForPeer", privateline.NotExist)
	}
	return fn(origin, requester, message, file)
}

func (f *fakeStore) StoreRemoteFile(origin privateline.ServerName, file string, body io.Reader, size int64, sum []byte, now time.Time) (*storage.FileInfo, error) {
	b, err := io.ReadAll(io.LimitReader(body, size+1))
	if err != nil {
		return nil, privateline.E("fake.StoreRemoteFile", privateline.Unavailable, err)
	}
	got := sha256.Sum256(b)
	if int64(len(b)) != size || !bytes.Equal(got[:], sum) {
		return nil, privateline.E("fake.StoreRemoteFile", privateline.Invalid, storage.ErrRemoteFileMismatch)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.files.remoteFiles == nil {
		f.files.remoteFiles = map[string][]byte{}
	}
	f.files.remoteFiles[string(origin)+"/"+file] = b
	return &storage.FileInfo{ID: file, Size: size, SHA256: got[:]}, nil
}

// Groups (groups.go): the fake keeps the states it was given.
func (f *fakeStore) GroupStateFor(id string, dest privateline.ServerName) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.groupStates[id]; ok {
		return st, nil
	}
	return nil, privateline.E(privateline.NotExist)
}

func (f *fakeStore) ApplyGroupReplica(r *storage.GroupReplica) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replicas = append(f.replicas, r)
	return true, nil
}

// Replica resync (groupsync.go): the replicas are the last applied
// state of each group that has members.
func (f *fakeStore) GroupReplicas() ([]storage.ReplicaVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	last := map[string]uint64{}
	var order []string
	for _, r := range f.replicas {
		if _, ok := last[r.Group.ID]; !ok {
			order = append(order, r.Group.ID)
		}
		last[r.Group.ID] = r.Group.Version
	}
	var out []storage.ReplicaVersion
	for _, id := range order {
		out = append(out, storage.ReplicaVersion{Group: id, Version: last[id]})
	}
	return out, nil
}

func (f *fakeStore) GroupReplicaOf(id string) (*storage.Group, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range slices.Backward(f.replicas) {
		if r.Group.ID == id && len(r.Group.Members) > 0 {
			return r.Group, nil
		}
		if r.Group.ID == id {
			break
		}
	}
	return nil, privateline.E(privateline.NotExist)
}

func (f *fakeStore) GroupSyncState(id string, dest privateline.ServerName) ([]byte, error) {
	return f.GroupStateFor(id, dest)
}

func (f *fakeStore) DropGroupReplica(id string, era, version uint64) (bool, error) {
	return f.ApplyGroupReplica(&storage.GroupReplica{Group: &storage.Group{ID: id, Era: era, Version: version + 1, Replica: true}})
}

func (f *fakeStore) SweepGroupLastQueued() (int, error) { return 0, nil }

func (f *fakeStore) RaiseGroupEpoch(string, privateline.ServerName, int64, uint64) (bool, error) {
	return false, nil
}
