package storage

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/privateline/privateline"
)

// Mailboxes of direct messages.
//
// Keys (see also the package doc):
//
//	'E' msgID(16)                     envelope record: the envelope as posted,
//	                                  its digest, sender, recipients, expiry,
//	                                  the sender's sequence number, read-by
//	'M' userID(16) seq(8)             mailbox entry: message id, direction, read
//	'm' userID(16) msgID(16)          seq(8) of the user's live copy of a message
//	'C' userID(16) peer(16) seq(8)    conversation index: peer is
//	                                  HMAC(nameKey, "conversation" 0x00 address)[:16]
//	                                  of the other party (a sent copy has one
//	                                  entry per recipient)
//	'c' userID(16)                    counters: next sequence number, unread
//	                                  (direct, groups)
//	'X' expiresAtMillis(8) msgID(16)  expiry index
//	'p' userID(16) msgID(16)          participation: the user sent or received
//	                                  the message (kept when a recipient removes
//	                                  their copy, so account deletion finds every
//	                                  envelope that names the user)
//
// # Locking
//
// Every read-modify-write of messaging state holds the stripes
// (DB.stripes) of the message id and of every participant, taken in
// ascending stripe order (lockStripes), until its batch is applied (the
// commit pipeline, commit.go): so a user's sequence numbers are given out
// in order and without gaps, and an envelope id is checked and written
// atomically. The hot paths (Deliver, MarkRead, DeleteMessage) release the
// stripes as soon as the batch is applied and wait for the WAL sync
// outside them, so writes to the same users share fsyncs; the others hold
// them until durable. The expiry sweep takes the stripes of the messages
// it removes and of their participants (read before locking and read
// again under the locks, as lockMessage does); account deletion, which
// touches any number of users, takes every stripe in order. DB.mu, when
// needed (account deletion, key changes), is taken before any stripe; no
// code takes DB.mu while holding a stripe. The federation outbox's
// per-destination mutexes (outbox.go) come after the stripes; the
// pipeline's applyMu and pubMu come after both. Stripes are never one global lock:
// deliveries between disjoint users proceed in parallel.

const numStripes = 256

// Recipient is a local user a message is delivered to.
type Recipient struct {
	ID      ID                  `json:"id"`
	Address privateline.Address `json:"address"`
}

// Delivery is one direct or group envelope to store.
type Delivery struct {
	MsgID      string // 32 lower-case hex digits
	Raw        []byte // the envelope as posted
	Sender     Recipient
	Recipients []Recipient // local recipients, without the sender; a group's are filled by Deliver
	ExpiresAt  time.Time   // zero: never
	Files      []string    // the file ids the signed header lists

	// Remote are the recipients on other servers (direct messages only):
	// Deliver queues one outbox item per distinct server in the same
	// batch (outbox.go), and the record keeps them, so the sender's
	// conversation with each of them holds the sent copy.
	Remote []privateline.Address

	// Group, if set, makes it a group message: the recipients are the
	// group's current members except the sender, who must be a member
	// (else NotExist); Epoch must be the current one (else ErrStaleEpoch).
	Group string
	Epoch int64

	// Groups across servers (fedgroups.go). RemoteSender: on the group's
	// server, the sender is a member on another server whose server
	// forwarded the message (Sender.ID is ignored; the record has no
	// sender copy). RelayTo (set by Deliver): the members on that server
	// it must store the message for itself. Relayed: on a member's server,
	// the group's server accepted the message and Recipients are the
	// members here it named; the group is not read.
	RemoteSender bool
	RelayTo      []privateline.Address
	Relayed      bool
	fanout       map[privateline.ServerName][]privateline.Address // remote members' servers → members
}

type envelopeRecord struct {
	Raw        []byte                `json:"raw"`
	Sum        []byte                `json:"sum"`
	Sender     Recipient             `json:"sender"`
	Recipients []Recipient           `json:"recipients"`
	ExpiresAt  int64                 `json:"expires_at,omitempty"` // ms; 0: never
	SenderSeq  uint64                `json:"sender_seq"`
	ReadBy     []privateline.Address `json:"read_by,omitempty"`
	Files      []string              `json:"files,omitempty"` // file ids (files.go)
	Group      string                `json:"group,omitempty"` // a group message's group id
	// Remote: recipients on other servers (the sender's copy is in the
	// conversation with each). OriginFiles: the file ids a message from
	// another server lists, on its origin (not files of this server, so
	// never referenced here).
	Remote      []privateline.Address `json:"remote,omitempty"`
	OriginFiles []string              `json:"origin_files,omitempty"`
	// Group messages across servers (spec/federation.md §12.2, §12.3).
	// Fanout: on the group's server, the members on other servers it
	// queued the message for (group_envelopes), who get its deletes.
	// RemoteReaders: the members on other servers whose read marks came
	// in, in that order (a read event's reader counts the recipients,
	// then Remote, then these).
	Fanout        []privateline.Address `json:"fanout,omitempty"`
	RemoteReaders []privateline.Address `json:"remote_readers,omitempty"`
}

func (r *envelopeRecord) expired(now time.Time) bool {
	return r.ExpiresAt != 0 && now.UnixMilli() >= r.ExpiresAt
}

// participants are the local users of the message: its sender unless the
// sender is on another server (zero ID), and its recipients except the
// empty places of deleted group members. A zero ID is never a user.
func (r *envelopeRecord) participants() []Recipient {
	ps := make([]Recipient, 0, 1+len(r.Recipients))
	if !r.Sender.ID.IsZero() {
		ps = append(ps, r.Sender)
	}
	for _, p := range r.Recipients {
		if !p.ID.IsZero() {
			ps = append(ps, p)
		}
	}
	return ps
}

// remoteSender reports whether the message came from another server.
func (r *envelopeRecord) remoteSender() bool { return r.Sender.ID.IsZero() }

// kindCounter is the unread counter of the message's kind: Groups for a
// group message, Direct otherwise.
func (r *envelopeRecord) kindCounter(c *Counters) *int64 {
	if r.Group != "" {
		return &c.Groups
	}
	return &c.Direct
}

// convKeys are the conversation-index keys of user u's copy: the group's,
// or for a direct message the other party's (the sender's copy has one per
// recipient).
func (d *DB) convKeys(r *envelopeRecord, u ID) [][]byte {
	switch {
	case r.Group != "":
		return [][]byte{d.groupConvKey(r.Group)}
	case u == r.Sender.ID:
		var ks [][]byte
		for _, p := range r.Recipients {
			ks = append(ks, d.peerKey(p.Address))
		}
		for _, a := range r.Remote {
			ks = append(ks, d.peerKey(a))
		}
		return ks
	default:
		return [][]byte{d.peerKey(r.Sender.Address)}
	}
}

type mailboxEntry struct {
	MsgID string `json:"id"`
	Out   bool   `json:"out,omitempty"`
	Read  bool   `json:"read,omitempty"`
}

// Counters are a user's mailbox figures, kept on every write.
type Counters struct {
	Next   uint64 `json:"next"` // last sequence number given out
	Unread int64  `json:"unread"`
	Direct int64  `json:"direct"`
	Groups int64  `json:"groups"`
	Boot   uint64 `json:"boot,omitempty"` // the unclean start whose skip Next has had (commit.go)
}

// MailItem is one entry of a mailbox.
type MailItem struct {
	Seq      uint64
	Envelope []byte
	Out      bool // the user sent it
	Read     bool // incoming: the user marked it read
	ReadBy   []privateline.Address
}

// MailQuery selects mailbox entries. Without After the newest come first;
// with After, the entries after that sequence number in ascending order.
type MailQuery struct {
	With     privateline.Address // "": every conversation
	Group    string              // a group's conversation (instead of With)
	After    uint64
	HasAfter bool
	Limit    int
	Offset   int
	Now      time.Time // entries expired at Now are skipped
}

func msgKeyID(msgID string) ([]byte, error) {
	b, err := hex.DecodeString(msgID)
	if err != nil || len(b) != 16 || hex.EncodeToString(b) != msgID {
		return nil, privateline.E("storage.msgID", privateline.Invalid, "message id must be 32 lower-case hex digits")
	}
	return b, nil
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func (d *DB) peerKey(a privateline.Address) []byte {
	m := hmac.New(sha256.New, d.nameKey)
	m.Write([]byte("conversation\x00"))
	m.Write([]byte(a))
	return m.Sum(nil)[:16]
}

func stripeOf(b []byte) int { return int(b[0]) }

// lockStripes locks the stripes of the given ids in ascending order and
// returns the unlock function; calling it again does nothing, so a
// transaction may release early (mtxn.release) under a deferred unlock.
func (d *DB) lockStripes(ids ...[]byte) func() {
	var idx []int
	for _, id := range ids {
		idx = append(idx, stripeOf(id))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	return d.lockIdx(idx)
}

func (d *DB) lockAllStripes() func() {
	idx := make([]int, numStripes)
	for i := range idx {
		idx[i] = i
	}
	return d.lockIdx(idx)
}

// lockIdx locks the stripes idx, which are ascending.
func (d *DB) lockIdx(idx []int) func() {
	for _, i := range idx {
		d.stripes[i].Lock()
	}
	locked := true
	return func() {
		if !locked {
			return
		}
		locked = false
		for _, i := range slices.Backward(idx) {
			d.stripes[i].Unlock()
		}
	}
}

// mtxn is a messaging write under the stripes: a batch and the counters it
// changes, written to the batch by flush.
type mtxn struct {
	d        *DB
	b        *pebble.Batch
	counters map[ID]*Counters
	events   []UserEvent // written to the log, for the notifier
	gone     ID          // a user being deleted: gets no events
	// release, if set, unlocks the caller's stripes as soon as the batch
	// is applied (commit.go); it must be idempotent (lockStripes).
	release func()
	now     time.Time // the time of tombstones; zero: time.Now
	fx      fileTxn   // files changed (files.go)
	// groupDests: outbox destinations this write queued group items for
	// (fedgroups.go), locked until the batch is applied; commit tells the
	// outbox notifier once it is durable.
	groupDests      []outboxDest
	groupDestUnlock []func()
	groupDeletes    []groupDelete     // inbound.go: deletes a group's server passes on
	replicas        map[string]*Group // group replicas written in this batch (nil: deleted)
	// destStates: outbox destination states queueItems changed in this
	// batch (outbox.go), by serverHash.
	destStates map[string]*destState
	// groupLast: the last-queued records of groups (fedgroupsync.go)
	// written in this batch.
	groupLast map[string]bool
	// contacts: contact records this batch made sure of (contacts.go).
	contacts map[string]bool
	// removes: the batch deletes envelope records (removeMessage); its
	// commit is bracketed by the removal counters (outboxahead.go).
	removes bool
	// probe, if set, makes the look-ups of keys most likely absent (getNew)
	// through one iterator (db.go); the caller closes it.
	probe *probe
}

// getNew is DB.getNew, through t's probe if it has one.
func (t *mtxn) getNew(key []byte) ([]byte, error) {
	if t.probe == nil {
		return t.d.getNew(key)
	}
	return t.probe.get(t.d, key)
}

// getJSONNew is getJSON for a key that is most likely absent (getNew).
func (t *mtxn) getJSONNew(key []byte, v any) error {
	pt, err := t.getNew(key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(pt, v); err != nil {
		return privateline.E("storage.getJSON", privateline.Internal, err)
	}
	return nil
}

// existsNew is DB.existsNew, through t's probe if it has one.
func (t *mtxn) existsNew(key []byte) (bool, error) {
	if t.probe == nil {
		return t.d.existsNew(key)
	}
	return t.probe.exists(t.d, key)
}

func (d *DB) newMtxn(b *pebble.Batch) *mtxn {
	if b == nil {
		b = d.db.NewBatch()
	}
	return &mtxn{d: d, b: b, counters: map[ID]*Counters{}}
}

func (t *mtxn) counter(u ID) (*Counters, error) {
	if c := t.counters[u]; c != nil {
		return c, nil
	}
	c := &Counters{}
	if err := t.d.getJSON(tCounters.key(u[:]), c); err != nil && !privateline.Is(privateline.NotExist, err) {
		return nil, err
	}
	if t.d.crashSkip > 0 && c.Boot != t.d.boot {
		if c.Next > 0 {
			// Numbers a client may have seen before the crash are not
			// given out again; the log keeps its window (events.go).
			c.Next += t.d.crashSkip
			if w := uint64(t.d.eventWindow); c.Next > w {
				if err := t.b.DeleteRange(tEvent.key(u[:]), tEvent.key(u[:], u64(c.Next-w+1)), nil); err != nil {
					return nil, privateline.E("storage.counter", privateline.Internal, err)
				}
			}
		}
		c.Boot = t.d.boot
	}
	t.counters[u] = c
	return c, nil
}

func (t *mtxn) del(k []byte) {
	if err := t.b.Delete(k, nil); err != nil {
		panic(err) // fails only on a closed batch
	}
}

func (t *mtxn) flush() error {
	if err := t.flushFiles(); err != nil {
		return err
	}
	for u, c := range t.counters {
		if err := t.d.setJSON(t.b, tCounters.key(u[:]), c); err != nil {
			return err
		}
	}
	return nil
}

func (d *DB) exists(key []byte) (bool, error) {
	_, closer, err := d.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, privateline.E("storage.exists", privateline.Unavailable, err)
	}
	closer.Close()
	return true, nil
}

// Deliver stores a direct envelope: in one synced batch the envelope, a
// mailbox entry for each recipient and the sender's sent copy (each with
// the user's next sequence number), the unread counters, the conversation
// and expiry indexes. It returns the sender's sequence number. The message
// id is the idempotency key: the same id with the same bytes from the same
// sender returns the first delivery's sequence number and replay; other
// content under a stored id is an Exist error. A recipient or sender that
// no longer exists is a NotExist error. Remote recipients (direct messages
// only) get one outbox item per server in the same batch (outbox.go); the
// outbox notifier hears of them once the batch is durable.
func (d *DB) Deliver(dl *Delivery) (seq uint64, replay bool, err error) {
	const op = "storage.Deliver"
	mid, err := msgKeyID(dl.MsgID)
	if err != nil {
		return 0, false, privateline.E(op, err)
	}
	var dests []outboxDest
	if len(dl.Remote) > 0 {
		if dl.Group != "" {
			return 0, false, privateline.E(op, privateline.Invalid, "a group message has no remote recipients")
		}
		if dests, err = d.outboxDests(dl.Remote); err != nil {
			return 0, false, privateline.E(op, err)
		}
	}
	parts := append([]Recipient{dl.Sender}, dl.Recipients...)
	ids := [][]byte{mid}
	for _, p := range parts {
		ids = append(ids, p.ID[:])
	}
	sum := sha256.Sum256(dl.Raw)
	var grp *Group
	var unlock func()
	if dl.Group != "" && !dl.Relayed {
		if dl.RemoteSender {
			dl.Sender.ID = d.remoteMemberID(dl.Sender.Address)
		}
		if grp, unlock, err = d.lockGroupDelivery(dl, mid); err != nil {
			return 0, false, privateline.E(op, err)
		}
		parts = append([]Recipient{dl.Sender}, dl.Recipients...)
		if grp.Replica {
			unlock()
			return 0, false, privateline.E(op, privateline.Invalid, "a message to a group of another server goes through that server")
		}
	} else {
		unlock = d.lockStripes(ids...)
	}
	defer unlock()

	if r, err := d.envelopeIfAny(mid); err == nil {
		sameSender := r.Sender.ID == dl.Sender.ID
		if dl.RemoteSender {
			sameSender = r.remoteSender() && r.Sender.Address == dl.Sender.Address
		}
		if sameSender && bytes.Equal(r.Sum, sum[:]) {
			// The first delivery may still be waiting for its sync.
			if err := d.syncWAL(); err != nil {
				return 0, false, privateline.E(op, err)
			}
			return r.SenderSeq, true, nil
		}
		return 0, false, privateline.E(op, privateline.Exist, "another message has this id")
	} else if !privateline.Is(privateline.NotExist, err) {
		return 0, false, privateline.E(op, err)
	}
	if err := d.checkTombstone(mid); err != nil { // tombstones.go
		return 0, false, privateline.E(op, err)
	}
	if grp != nil {
		if grp.Member(dl.Sender.ID) == nil {
			return 0, false, privateline.E(op, privateline.NotExist)
		}
		if dl.Epoch != grp.Epoch {
			return 0, false, ErrStaleEpoch
		}
	}
	if dl.Sender.ID.IsZero() {
		return 0, false, privateline.E(op, privateline.Invalid, "a local delivery needs its sender")
	}
	if dl.RemoteSender {
		if grp == nil {
			return 0, false, privateline.E(op, privateline.Invalid, "only a group message has a sender on another server")
		}
		// No copy, no events, no files of this server for the sender.
		parts = parts[1:]
		dl.Sender.ID = ID{}
	}
	for _, p := range parts {
		ok, err := d.userExists(p.ID)
		if err != nil {
			return 0, false, privateline.E(op, err)
		}
		if !ok {
			return 0, false, privateline.E(op, privateline.NotExist, "no such user: "+string(p.Address))
		}
	}
	t := d.newMtxn(nil)
	t.release = unlock
	rec := &envelopeRecord{Raw: dl.Raw, Sum: sum[:], Sender: dl.Sender, Recipients: dl.Recipients, Group: dl.Group, Remote: dl.Remote}
	// Files (files.go): each listed file must be the sender's; the
	// references are written in this batch.
	if len(dl.Files) > 0 && dl.RemoteSender {
		// The files are on the sender's server, as for a message from
		// another server (inbound.go).
		rec.OriginFiles = dl.Files
		_, srv, _ := dl.Sender.Address.Split()
		t.referenceRemoteFiles(d.serverHash(srv), mid, dl.Files)
	} else if len(dl.Files) > 0 {
		rec.Files = dl.Files
		if err := t.referenceFiles(dl.Sender.ID, mid, dl.Files); err != nil {
			t.b.Close()
			return 0, false, privateline.E(op, err)
		}
	}
	if !dl.ExpiresAt.IsZero() {
		rec.ExpiresAt = dl.ExpiresAt.UnixMilli()
	}
	for _, to := range dl.fanout { // who gets its deletes (§12.3)
		rec.Fanout = append(rec.Fanout, to...)
	}
	slices.Sort(rec.Fanout)
	if err := t.storeEnvelope(rec, dl.MsgID, mid); err != nil {
		t.b.Close()
		return 0, false, privateline.E(op, err)
	}
	if len(dl.fanout) > 0 {
		// Group fan-out to the remote members' servers (fedgroups.go).
		if err = t.queueGroupEnvelopes(dl); err != nil {
			t.b.Close()
			return 0, false, privateline.E(op, err)
		}
		t.release = func() { t.unlockGroupDests(); unlock() }
		defer t.unlockGroupDests()
	} else if len(dests) > 0 {
		// The outbox items (outbox.go): the destinations' locks are
		// taken after the stripes and released with them once the batch
		// is applied, so each destination's records are written in the
		// order its sequence numbers were given out.
		unlockDests := d.lockDests(dests)
		defer unlockDests()
		t.release = func() { unlockDests(); unlock() }
		if err := t.queueEnvelope(dests, dl.MsgID); err != nil {
			t.b.Close()
			return 0, false, privateline.E(op, err)
		}
	}
	if err := t.commit(); err != nil {
		return 0, false, privateline.E(op, err)
	}
	d.outboxQueued(dests)
	return rec.SenderSeq, false, nil
}

// storeEnvelope adds a new envelope to t's batch: the record, and for
// each local participant (rec.participants: the sender's copy first, if
// the sender is local) the next sequence number with its message event, the
// mailbox entry and indexes and the unread counters; the expiry index and
// the contacts index. rec.SenderSeq is set. The caller holds the stripes of
// the message and of every participant and has checked the id. Deliver
// (local senders) and ReceiveTransaction (senders on other servers) share
// it.
func (t *mtxn) storeEnvelope(rec *envelopeRecord, msgID string, mid []byte) error {
	d := t.d
	evType := EventMessage
	if rec.Group != "" {
		evType = EventGroupMessage
	}
	if rec.ExpiresAt != 0 {
		d.setSealed(t.b, tExpiry.key(u64(uint64(rec.ExpiresAt)), mid), nil)
	}
	for i, p := range rec.participants() {
		out := i == 0 && !rec.remoteSender()
		n, err := t.event(p.ID, Event{Type: evType, ID: msgID, Group: rec.Group, Mail: &MailItem{Envelope: rec.Raw, Out: out}})
		if err != nil {
			return err
		}
		s := u64(n)
		c, _ := t.counter(p.ID) // loaded by event
		if out {
			rec.SenderSeq = n
		} else {
			c.Unread++
			*rec.kindCounter(c)++
		}
		for _, ck := range d.convKeys(rec, p.ID) {
			d.setSealed(t.b, tConversation.key(p.ID[:], ck, s), nil)
		}
		if err := d.setJSON(t.b, tMailbox.key(p.ID[:], s), mailboxEntry{MsgID: msgID, Out: out}); err != nil {
			return err
		}
		d.setSealed(t.b, tMailboxByID.key(p.ID[:], mid), s)
		d.setSealed(t.b, tParticipant.key(p.ID[:], mid), nil)
	}
	if err := t.addContacts(rec); err != nil {
		return err
	}
	d.putEnvelope(t.b, mid, rec)
	return nil
}

// liveSeq returns the sequence number of u's copy of message mid, or
// NotExist.
func (d *DB) liveSeq(u ID, mid []byte) (uint64, error) {
	v, err := d.get(tMailboxByID.key(u[:], mid))
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, privateline.E("storage.liveSeq", privateline.Internal, "bad mailbox index entry")
	}
	return binary.BigEndian.Uint64(v), nil
}

// removeCopy deletes u's mailbox entry for rec (if any) and its indexes,
// fixing u's counters, and tells u with an event of type evType.
func (t *mtxn) removeCopy(rec *envelopeRecord, u Recipient, mid []byte, evType string) error {
	seq, err := t.d.liveSeq(u.ID, mid)
	if privateline.Is(privateline.NotExist, err) {
		return nil
	} else if err != nil {
		return err
	}
	s := u64(seq)
	mk := tMailbox.key(u.ID[:], s)
	var e mailboxEntry
	if err := t.d.getJSON(mk, &e); err != nil {
		return err
	}
	if !e.Out && !e.Read {
		c, err := t.counter(u.ID)
		if err != nil {
			return err
		}
		c.Unread--
		*rec.kindCounter(c)--
	}
	t.del(mk)
	t.del(tMailboxByID.key(u.ID[:], mid))
	t.del(tEvent.key(u.ID[:], s)) // its "message" event; the removal event follows
	for _, ck := range t.d.convKeys(rec, u.ID) {
		t.del(tConversation.key(u.ID[:], ck, s))
	}
	_, err = t.event(u.ID, Event{Type: evType, ID: hex.EncodeToString(mid)})
	return err
}

// removeMessage deletes rec and every copy of it, telling each holder of a
// copy with an event of type evType; the message's files lose a reference
// (files.go) and its id is tombstoned (tombstones.go).
func (t *mtxn) removeMessage(rec *envelopeRecord, mid []byte, evType string) error {
	if err := t.unreferenceFiles(mid, rec.Files); err != nil {
		return err
	}
	t.unreferenceRemoteFiles(rec, mid) // remotefiles.go
	if err := t.tombstone(rec, mid); err != nil {
		return err
	}
	for _, p := range rec.participants() {
		if err := t.removeCopy(rec, p, mid, evType); err != nil {
			return err
		}
		t.del(tParticipant.key(p.ID[:], mid))
	}
	if rec.ExpiresAt != 0 {
		t.del(tExpiry.key(u64(uint64(rec.ExpiresAt)), mid))
	}
	t.del(tEnvelope.key(mid))
	t.removes = true
	return nil
}

// lockMessage locks the stripes of a message and its participants. The
// record is read before locking to learn the participants and again under
// the locks; the participants of a record never change.
func (d *DB) lockMessage(mid []byte) (*envelopeRecord, func(), error) {
	rec, err := d.envelope(mid)
	if err != nil {
		return nil, nil, err
	}
	ids := [][]byte{mid}
	for _, p := range rec.participants() {
		ids = append(ids, p.ID[:])
	}
	unlock := d.lockStripes(ids...)
	if rec, err = d.envelope(mid); err != nil {
		unlock()
		return nil, nil, err
	}
	return rec, unlock, nil
}

// lockLiveMessage parses a message id and locks the message (lockMessage);
// a malformed, unknown or expired id is NotExist.
func (d *DB) lockLiveMessage(msgID string, now time.Time) (*envelopeRecord, []byte, func(), error) {
	mid, err := msgKeyID(msgID)
	if err != nil {
		return nil, nil, nil, privateline.E("storage.lockLiveMessage", privateline.NotExist)
	}
	rec, unlock, err := d.lockMessage(mid)
	if err != nil {
		return nil, nil, nil, err
	}
	if rec.expired(now) {
		unlock()
		return nil, nil, nil, privateline.E("storage.lockLiveMessage", privateline.NotExist)
	}
	return rec, mid, unlock, nil
}

// DeleteMessage deletes a message for user: the sender deletes it for
// everyone, a recipient removes only their own copy. A message the user
// has no copy of, or that has expired, is NotExist.
func (d *DB) DeleteMessage(user ID, msgID string, now time.Time) error {
	const op = "storage.DeleteMessage"
	rec, mid, unlock, err := d.lockLiveMessage(msgID, now)
	if err != nil {
		return privateline.E(op, err)
	}
	defer unlock()
	if _, err := d.liveSeq(user, mid); err != nil {
		return privateline.E(op, err)
	}
	t := d.newMtxn(nil)
	t.now = now
	t.release = unlock
	var dests []outboxDest
	if user == rec.Sender.ID {
		err = t.removeMessage(rec, mid, EventDeleted)
		// Recipients on other servers: their servers delete it too
		// (spec/federation.md §12.3), queued in this batch.
		// Servers the envelope never left for need nothing: its item goes
		// silently with the message.
		if err == nil {
			dests, err = d.deleteDests(rec)
		}
		if err == nil && len(dests) > 0 {
			unlockDests := d.lockDests(dests)
			defer unlockDests()
			t.release = func() { unlockDests(); unlock() }
			var unsent map[string]bool
			if unsent, err = d.unsentTo(dests, msgID); err == nil {
				dests = slices.DeleteFunc(dests, func(x outboxDest) bool { return unsent[string(x.h)] })
				payload, _ := json.Marshal(DeletePayload{Message: msgID, From: rec.Sender.Address, DeletedAt: now.UnixMilli()})
				err = t.queueItems(dests, OutboxDeletes, NewID().String(), payload)
			}
		}
	} else if rec.remoteSender() && len(rec.Fanout) == 0 && !d.othersHoldCopy(rec, mid, user) {
		// A message from another server that no local user keeps any
		// more goes entirely (its id is tombstoned, tombstones.go) —
		// unless this is its group's server, which still passes its
		// sender's delete on (§12.3).
		err = t.removeMessage(rec, mid, EventDeleted)
	} else {
		var me Recipient
		for _, r := range rec.Recipients {
			if r.ID == user {
				me = r
			}
		}
		err = t.removeCopy(rec, me, mid, EventDeleted)
	}
	if err != nil {
		t.b.Close()
		return privateline.E(op, err)
	}
	if err := t.commit(); err != nil {
		return privateline.E(op, err)
	}
	d.outboxQueued(dests)
	return nil
}

// deleteDests are the servers a sender's delete of rec goes to (spec
// §12.3): those of its remote recipients; for a group message, on the
// group's server those it queued the message for, elsewhere the group's
// server, which passes it on.
func (d *DB) deleteDests(rec *envelopeRecord) ([]outboxDest, error) {
	if rec.Group == "" {
		return d.outboxDests(rec.Remote)
	}
	gs := groupServer(rec.Group)
	if _, ss, _ := rec.Sender.Address.Split(); gs != ss {
		return []outboxDest{{name: gs, h: d.serverHash(gs)}}, nil
	}
	return d.outboxDests(rec.Fanout)
}

// groupServer is the server part of a group id, the group's server.
func groupServer(id string) privateline.ServerName {
	_, s, _ := strings.Cut(id, "@")
	return privateline.ServerName(s)
}

// othersHoldCopy reports whether a participant of rec other than user
// has a live copy of message mid (errors count as yes: keep the message).
func (d *DB) othersHoldCopy(rec *envelopeRecord, mid []byte, user ID) bool {
	for _, p := range rec.participants() {
		if p.ID == user {
			continue
		}
		if _, err := d.liveSeq(p.ID, mid); !privateline.Is(privateline.NotExist, err) {
			return true
		}
	}
	return false
}

// MarkRead marks a recipient's copy of a message read, once: the unread
// counters go down and the sender's copy records the reader. Marking it
// again changes nothing. A message the user did not receive (their own
// sent message included), has removed or that has expired is NotExist.
func (d *DB) MarkRead(user ID, msgID string, now time.Time) error {
	const op = "storage.MarkRead"
	rec, mid, unlock, err := d.lockLiveMessage(msgID, now)
	if err != nil {
		return privateline.E(op, err)
	}
	defer unlock()
	if user == rec.Sender.ID {
		return privateline.E(op, privateline.NotExist)
	}
	seq, err := d.liveSeq(user, mid)
	if err != nil {
		return privateline.E(op, err)
	}
	mk := tMailbox.key(user[:], u64(seq))
	var e mailboxEntry
	if err := d.getJSON(mk, &e); err != nil {
		return privateline.E(op, err)
	}
	if e.Read {
		return d.syncWAL() // the first mark may still be waiting for its sync
	}
	e.Read = true
	var me privateline.Address
	reader := 0
	for i, r := range rec.Recipients {
		if r.ID == user {
			me, reader = r.Address, i+1
		}
	}
	if !slices.Contains(rec.ReadBy, me) {
		rec.ReadBy = append(rec.ReadBy, me)
	}
	t := d.newMtxn(nil)
	t.release = unlock
	// A sender on another server hears of it through the outbox
	// (spec/federation.md §12.2), in this batch.
	var dests []outboxDest
	if rec.remoteSender() {
		if dests, err = d.outboxDests([]privateline.Address{rec.Sender.Address}); err != nil {
			t.b.Close()
			return privateline.E(op, err)
		}
		unlockDests := d.lockDests(dests)
		defer unlockDests()
		t.release = func() { unlockDests(); unlock() }
		payload, _ := json.Marshal(ReadMarkPayload{Message: msgID, Reader: me, ReadAt: now.UnixMilli()})
		if err := t.queueItems(dests, OutboxReadMarks, NewID().String(), payload); err != nil {
			t.b.Close()
			return privateline.E(op, err)
		}
	}
	c, err := t.counter(user)
	if err == nil {
		c.Unread--
		*rec.kindCounter(c)--
		err = d.setJSON(t.b, mk, e)
	}
	if err == nil {
		d.putEnvelope(t.b, mid, rec)
	}
	// The reader's other devices and the sender hear of it (a sender on
	// another server, zero id, has no log here).
	for _, u := range []ID{user, rec.Sender.ID} {
		if err == nil && !u.IsZero() {
			_, err = t.event(u, Event{Type: EventRead, ID: msgID, Reader: reader, By: me})
		}
	}
	if err != nil {
		t.b.Close()
		return privateline.E(op, err)
	}
	if err := t.commit(); err != nil {
		return privateline.E(op, err)
	}
	d.outboxQueued(dests)
	return nil
}

// UnreadCounts returns the user's counters.
func (d *DB) UnreadCounts(user ID) (Counters, error) {
	var c Counters
	if err := d.getJSON(tCounters.key(user[:]), &c); err != nil && !privateline.Is(privateline.NotExist, err) {
		return c, privateline.E("storage.UnreadCounts", err)
	}
	return c, nil
}

// Mailbox returns a page of the user's mailbox (see MailQuery). Expired
// envelopes are skipped before paging, so they are never served even before
// the sweeper deletes them.
func (d *DB) Mailbox(user ID, q MailQuery) ([]MailItem, error) {
	const op = "storage.Mailbox"
	var prefix []byte
	seqAt := 0 // offset of the sequence number in an index key
	if q.Group != "" {
		prefix = tConversation.key(user[:], d.groupConvKey(q.Group))
		seqAt = len(prefix)
	} else if q.With != "" {
		prefix = tConversation.key(user[:], d.peerKey(q.With))
		seqAt = len(prefix)
	} else {
		prefix = tMailbox.key(user[:])
		seqAt = len(prefix)
	}
	opts := &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)}
	if q.HasAfter {
		if q.After == ^uint64(0) {
			return nil, nil
		}
		opts.LowerBound = append(slices.Clone(prefix), u64(q.After+1)...)
	}
	it, err := d.db.NewIter(opts)
	if err != nil {
		return nil, privateline.E(op, privateline.Unavailable, err)
	}
	defer it.Close()
	var items []MailItem
	skip := q.Offset
	valid, step := it.Last(), it.Prev
	if q.HasAfter {
		valid, step = it.First(), it.Next
	}
	for ; valid && len(items) < q.Limit; valid = step() {
		k := it.Key()
		if len(k) != seqAt+8 {
			continue
		}
		item, err := d.mailItem(user, binary.BigEndian.Uint64(k[seqAt:]), q.Now)
		if errors.Is(err, errNoCopy) {
			continue
		} else if err != nil {
			return nil, privateline.E(op, err)
		}
		if skip > 0 {
			skip--
			continue
		}
		items = append(items, *item)
	}
	if err := it.Error(); err != nil {
		return nil, privateline.E(op, privateline.Unavailable, err)
	}
	if len(items) > 0 {
		if err := d.readDurable(); err != nil {
			return nil, privateline.E(op, err)
		}
	}
	return items, nil
}

// errNoCopy: the user has no live copy at that sequence number.
var errNoCopy = errors.New("storage: no live copy")

// mailItem returns the user's mailbox item with sequence number seq, or
// errNoCopy if there is none or its message has expired at now.
func (d *DB) mailItem(user ID, seq uint64, now time.Time) (*MailItem, error) {
	var e mailboxEntry
	if err := d.getJSON(tMailbox.key(user[:], u64(seq)), &e); privateline.Is(privateline.NotExist, err) {
		return nil, errNoCopy
	} else if err != nil {
		return nil, err
	}
	mid, err := msgKeyID(e.MsgID)
	if err != nil {
		return nil, privateline.E("storage.mailItem", privateline.Internal, err)
	}
	rec, err := d.envelope(mid)
	if privateline.Is(privateline.NotExist, err) {
		return nil, errNoCopy
	} else if err != nil {
		return nil, err
	}
	if rec.expired(now) {
		return nil, errNoCopy
	}
	it := &MailItem{Seq: seq, Envelope: rec.Raw, Out: e.Out, Read: e.Read}
	if e.Out {
		it.ReadBy = slices.Clone(rec.ReadBy)
	}
	return it, nil
}

// maxSweep bounds the envelopes one SweepMessages batch deletes.
const maxSweep = 1000

// SweepMessages deletes envelopes whose expiry is at or before now, with
// every copy and index entry, fixing the counters. It returns how many
// envelopes went; it deletes at most maxSweep per batch and loops until
// none is left.
func (d *DB) SweepMessages(now time.Time) (int, error) {
	total := 0
	for {
		n, scanned, err := d.sweepMessagesOnce(now)
		total += n
		if err != nil || scanned < maxSweep {
			return total, err
		}
	}
}

func (d *DB) sweepMessagesOnce(now time.Time) (deleted, scanned int, err error) {
	const op = "storage.SweepMessages"
	upper := tExpiry.key(u64(uint64(now.UnixMilli()) + 1))
	var mids [][]byte
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tExpiry.prefix}, UpperBound: upper})
	if err != nil {
		return 0, 0, privateline.E(op, privateline.Unavailable, err)
	}
	for valid := it.First(); valid && len(mids) < maxSweep; valid = it.Next() {
		if k := it.Key(); len(k) == 1+8+16 {
			mids = append(mids, slices.Clone(k[9:]))
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, 0, privateline.E(op, privateline.Unavailable, err)
	}
	if len(mids) == 0 {
		return 0, 0, nil
	}
	// Lock only the swept messages and their participants: read each
	// record to learn them (a record's participants never change), lock,
	// and read again under the locks (as lockMessage does).
	var ids [][]byte
	locked := map[string]bool{}
	for _, mid := range mids {
		rec, err := d.envelope(mid)
		if privateline.Is(privateline.NotExist, err) {
			continue
		} else if err != nil {
			return 0, 0, privateline.E(op, err)
		}
		locked[string(mid)] = true
		ids = append(ids, mid)
		for _, p := range rec.participants() {
			ids = append(ids, p.ID[:])
		}
	}
	unlock := d.lockStripes(ids...)
	defer unlock()
	t := d.newMtxn(nil)
	t.now = now
	n := 0
	for _, mid := range mids {
		if !locked[string(mid)] {
			continue // gone before the first read
		}
		rec, err := d.envelope(mid)
		if privateline.Is(privateline.NotExist, err) {
			continue // already gone with its index entry
		}
		if err == nil && rec.expired(now) {
			n++
			err = t.removeMessage(rec, mid, EventExpired)
		}
		if err != nil {
			t.b.Close()
			return 0, 0, privateline.E(op, err)
		}
	}
	if err := t.commit(); err != nil {
		return 0, 0, privateline.E(op, err)
	}
	return n, len(mids), nil
}

// dropGroupRecipient removes a deleted user's copy of a group message they
// received; the message stays for the others (its header names only its
// sender). The user's place among the recipients becomes an empty entry,
// so read events of the other recipients keep their index, and the user's
// address leaves the record.
func (t *mtxn) dropGroupRecipient(rec *envelopeRecord, mid []byte, user ID) error {
	for i, r := range rec.Recipients {
		if r.ID != user {
			continue
		}
		if err := t.removeCopy(rec, r, mid, EventDeleted); err != nil {
			return err
		}
		rec.ReadBy = slices.DeleteFunc(rec.ReadBy, func(a privateline.Address) bool { return a == r.Address })
		rec.Recipients[i] = Recipient{}
	}
	t.del(tParticipant.key(user[:], mid))
	t.d.putEnvelope(t.b, mid, rec)
	return nil
}

// queueAccountDelete queues, in t's batch, the deletes of message rec
// (id mid) that its sender's account deletion sends to other servers
// (spec/federation.md §12.3, account deletion): to the same servers, and under the
// same rules, as the sender's own delete for everyone (DeleteMessage,
// deleteDests), so the copies there go too. A server the message has not
// left for yet needs none (its item goes silently with the message); an
// expired message needs none (every server enforces expiry itself).
// unsent caches, per destination, the message ids whose items have not
// left (unsentIDs): the deletion reads each outbox once. Every stripe is
// held; the destinations are locked after them, until the batch is
// applied (lockGroupDest).
func (t *mtxn) queueAccountDelete(rec *envelopeRecord, mid []byte, unsent map[string]map[string]bool) error {
	now := t.d.now()
	if rec.expired(now) {
		return nil
	}
	dests, err := t.d.deleteDests(rec)
	if err != nil || len(dests) == 0 {
		return err
	}
	msgID := hex.EncodeToString(mid)
	var to []outboxDest
	for _, x := range dests {
		t.lockGroupDest(x)
		ids, ok := unsent[string(x.h)]
		if !ok {
			if ids, err = t.d.unsentIDs(x); err != nil {
				return err
			}
			unsent[string(x.h)] = ids
		}
		if !ids[msgID] {
			to = append(to, x)
		}
	}
	payload, err := json.Marshal(DeletePayload{Message: msgID, From: rec.Sender.Address, DeletedAt: now.UnixMilli()})
	if err != nil {
		return err
	}
	return t.queueItems(to, OutboxDeletes, NewID().String(), payload)
}

// deleteUserMessagesLocked adds to b the deletion of every message the
// user sent or received, from every mailbox (an envelope names its sender
// and recipients in its header, so none of them may outlive the account),
// and of the user's mailbox, indexes, event log and counters. It takes
// every stripe and returns the transaction, whose committed method must be
// called once b is committed, and the unlock function, to be called after
// that. d.mu must be held.
func (d *DB) deleteUserMessagesLocked(b *pebble.Batch, user ID) (*mtxn, func(), error) {
	unlock := d.lockAllStripes()
	t := d.newMtxn(b)
	t.gone = user
	unsent := map[string]map[string]bool{} // queueAccountDelete's cache
	var mids [][]byte
	err := d.scanKeys(tParticipant.key(user[:]), func(k, _ []byte) error {
		mids = append(mids, slices.Clone(k[17:]))
		return nil
	})
	for _, mid := range mids {
		if err != nil {
			break
		}
		var rec *envelopeRecord
		if rec, err = d.envelope(mid); privateline.Is(privateline.NotExist, err) {
			err = nil
			continue
		} else if err == nil && rec.Group != "" && rec.Sender.ID != user {
			err = t.dropGroupRecipient(rec, mid, user)
		} else if err == nil {
			err = t.removeMessage(rec, mid, EventDeleted)
			if err == nil && rec.Sender.ID == user {
				err = t.queueAccountDelete(rec, mid, unsent)
			}
		}
	}
	if err == nil {
		err = t.dropUserFiles(user) // files.go
	}
	if err == nil {
		err = t.leaveAllGroupsLocked(user)
	}
	if err == nil {
		err = t.forgetSender(user) // outbox.go: pending transactions name senders
	}
	if err == nil {
		delete(t.counters, user)
		err = t.flush()
	}
	if err != nil {
		unlock()
		return nil, nil, err
	}
	for _, tb := range []table{tMailbox, tMailboxByID, tConversation, tParticipant, tEvent, tUserFile, tRetention, tPushToken} {
		p := tb.key(user[:])
		if err := b.DeleteRange(p, prefixEnd(p), nil); err != nil {
			unlock()
			return nil, nil, err
		}
	}
	t.del(tCounters.key(user[:]))
	return t, unlock, nil
}
