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
	"time"

	"github.com/privateline/privateline"
)

// Inbound federation transactions (spec/federation.md §7.3, §13): direct
// envelopes from users of other servers, stored for local recipients, and
// the replay records that make retries harmless.
//
//	'R' origin(16) txn(16)   the results answered for origin's transaction
//	                         (entry ids, statuses, codes) and when written
//	'I' origin(16) msgID(16) origin's envelope was committed here; when
//	'W' at(8) origin(16) txn(16)
//	                         replay index by write time (ms): the ids of the
//	                         'I' records written with that transaction, so
//	                         SweepReplay deletes both kinds
//
// origin is HMAC(nameKey, "server" 0x00 name)[:16] (serverHash) and txn
// HMAC(nameKey, "txn" 0x00 txn id)[:16]: no name appears in a key.
//
// A message from another server is an envelope record whose sender has
// the zero id and the remote address: it has no sender copy, no sender
// events, no contacts entries, and its OriginFiles are the origin's, never
// files of this server. Everything that walks a record's users goes
// through envelopeRecord.participants, which leaves the remote sender out.

// Inbound entry statuses (spec/federation.md §8) and the refusal codes the
// store decides (§10.2).
const (
	InboundAccepted  = "accepted"
	InboundDuplicate = "duplicate"
	InboundRefused   = "refused"

	RefusedIDInUse           = "id_in_use"
	RefusedUnknownRecipient  = "unknown_recipient"
	RefusedExpired           = "expired"
	RefusedMalformed         = "malformed"
	RefusedWrongOrigin       = "wrong_origin"
	RefusedNotForDestination = "not_for_destination"
	// Groups (spec §12.1): no replica of the group here, or the sender
	// is not one of its members.
	RefusedUnknownGroup = "unknown_group"
	RefusedNotMember    = "not_member"
)

// ErrTxnReused: a transaction id that origin used before for other
// entries (wrapped in an Exist error; its text is the wire code).
var ErrTxnReused = errors.New("txn_id_reused")

// InboundEntry is one entry of a verified inbound transaction. The
// caller has done the per-entry checks of spec §7.3 that need no lock;
// Refused != "" carries that code.
//
// Kind is the transaction's type: "envelopes" (or ""), "read_marks"
// (Reader read Message at At, spec §12.2) or "deletes" (From deleted
// Message at At, §12.3); ID is the entry's id in every kind.
type InboundEntry struct {
	Kind       string
	ID         string
	Raw        []byte              // the envelope bytes
	From       privateline.Address // the remote sender (on origin)
	Recipients []Recipient         // local recipients that exist
	ExpiresAt  time.Time           // zero: never
	Files      []string            // file ids the header lists (on origin; fetched later, not checked now)
	Refused    string              // pre-decided refusal code, or ""

	Message string              // read_marks, deletes: the envelope's id
	Reader  privateline.Address // read_marks: the reader (on origin)
	At      time.Time           // read_marks: read at; deletes: deleted at

	// Groups (fedgroups.go): "group_envelopes" entries have Group (origin
	// is its server, checked by the caller) and Recipients, the members
	// here the group's server named; "group_updates" entries have Replica,
	// the group's state with its members resolved.
	Group   string
	Replica *GroupReplica
}

// InboundResult is the outcome of one entry.
type InboundResult struct {
	ID     string `json:"id"`
	Status string `json:"status"`          // "accepted", "duplicate", "refused"
	Error  string `json:"error,omitempty"` // with "refused"
}

type replayTxn struct {
	Results []InboundResult `json:"results"`
	At      int64           `json:"at"` // ms
}

type replayEnv struct {
	At int64 `json:"at"` // ms
}

type replayIndex struct {
	Envelopes []string `json:"envelopes,omitempty"` // message ids of the 'I' records
}

func (d *DB) txnHash(txnID string) []byte {
	m := hmac.New(sha256.New, d.nameKey)
	m.Write([]byte("txn\x00"))
	m.Write([]byte(txnID))
	return m.Sum(nil)[:16]
}

// originSum identifies a message from another server in its tombstone:
// its sender's server and its bytes' digest.
func (d *DB) originSum(from privateline.Address, sum []byte) []byte {
	_, srv, _ := from.Split()
	return d.originSumOf(srv, sum)
}

func (d *DB) originSumOf(origin privateline.ServerName, sum []byte) []byte {
	m := hmac.New(sha256.New, d.nameKey)
	m.Write([]byte("tombstone-origin\x00"))
	m.Write([]byte(origin))
	m.Write([]byte{0})
	m.Write(sum)
	return m.Sum(nil)[:16]
}

// ReceiveTransaction commits origin's transaction txnID in one synced
// batch: every acceptable entry (mailbox entries, events, counters,
// conversation and expiry indexes as Deliver writes them for local
// recipients; with a remote sender: no sender copy, no sender events) and
// the replay records — (origin, txnID) → results and (origin, entry id) for
// every accepted entry — with their write time now (SweepReplay).
//
// Per entry, in order: Refused is kept; (origin, id) seen → duplicate; a
// local envelope or tombstone with that id → duplicate if it came from
// origin with the same bytes, else refused id_in_use; an envelope expired
// at now → refused expired; recipients that no longer exist are dropped,
// none left → refused unknown_recipient. A recipient's sequence numbers
// follow the entries' order.
//
// If (origin, txnID) was committed before, it commits nothing and returns
// the stored results with replayed=true, or ErrTxnReused (kind Exist) when
// their ids differ from the entries'. It returns once durable.
func (d *DB) ReceiveTransaction(origin privateline.ServerName, txnID string, entries []InboundEntry, now time.Time) (results []InboundResult, replayed bool, err error) {
	const op = "storage.ReceiveTransaction"
	if origin == "" || txnID == "" || len(entries) == 0 {
		return nil, false, privateline.E(op, privateline.Invalid, "a transaction needs an origin, a txn id and entries")
	}
	oh, th := d.serverHash(origin), d.txnHash(txnID)
	rk := tReplayTxn.key(oh, th)
	mids := make([][]byte, len(entries))
	var unlock func()
lock:
	ids := [][]byte{th}
	var replicas []*GroupReplica
	var held []ID
	for i, e := range entries {
		if r := e.Replica; r != nil && e.Refused == "" {
			// A group's state changes the replica and tells its members,
			// old and new (fedgroups.go).
			if gk, err := groupKeyID(r.Group.ID); err == nil {
				ids = append(ids, gk)
				replicas = append(replicas, r)
				if cur, _, err := d.group(r.Group.ID); err == nil {
					held = append(held, cur.memberIDs()...)
				}
				held = append(held, r.localIDs()...)
			}
		}
		if mid, err := msgKeyID(e.ID); err == nil {
			mids[i] = mid
			ids = append(ids, mid)
		}
		for _, r := range e.Recipients {
			ids = append(ids, r.ID[:])
		}
		// A read mark or delete changes a stored message and its
		// participants' logs: their stripes too (the participants of a
		// record never grow, so reading it before locking is enough).
		if e.Kind == OutboxReadMarks || e.Kind == OutboxDeletes {
			if mid, err := msgKeyID(e.Message); err == nil {
				ids = append(ids, mid)
				if rec, err := d.envelope(mid); err == nil {
					for _, p := range rec.participants() {
						ids = append(ids, p.ID[:])
					}
				}
			}
		}
	}
	for _, u := range held {
		ids = append(ids, slices.Clone(u[:]))
	}
	unlock = d.lockStripes(ids...)
	for _, r := range replicas {
		if !d.stripesHeld(r.Group.ID, held) {
			unlock()
			goto lock
		}
	}
	defer unlock()

	var prior replayTxn
	if err := d.getJSON(rk, &prior); err == nil {
		same := len(prior.Results) == len(entries)
		for i := 0; same && i < len(entries); i++ {
			same = prior.Results[i].ID == entries[i].ID
		}
		if !same {
			return nil, false, privateline.E(op, privateline.Exist, ErrTxnReused)
		}
		// The first commit may still be waiting for its sync.
		if err := d.syncWAL(); err != nil {
			return nil, false, privateline.E(op, err)
		}
		return prior.Results, true, nil
	} else if !privateline.Is(privateline.NotExist, err) {
		return nil, false, privateline.E(op, err)
	}

	t := d.newMtxn(nil)
	t.release = unlock
	t.now = now
	defer t.unlockGroupDests() // after a failure; commit releases them
	// The entries' look-ups of new ids through one iterator: the stripes
	// held keep their keys from changing.
	var pr probe
	defer pr.close()
	t.probe = &pr
	at := now.UnixMilli()
	var idx replayIndex
	accepted := map[string]bool{}
	recs := map[string]*envelopeRecord{} // messages changed by this transaction (nil: removed)
	results = make([]InboundResult, len(entries))
	for i := range entries {
		e := &entries[i]
		var status, code string
		switch e.Kind {
		case "", OutboxEnvelopes:
			status, code, err = t.receiveEntry(origin, oh, e, mids[i], accepted, now)
		case OutboxReadMarks, OutboxDeletes:
			status, code, err = t.receiveChange(origin, oh, e, mids[i], accepted, recs, now)
		case OutboxGroupEnvelopes:
			status, code, err = t.receiveEntry(origin, oh, e, mids[i], accepted, now)
		case OutboxGroupUpdates:
			status, code, err = t.receiveGroupUpdate(oh, e, mids[i], accepted)
		default:
			status, code = InboundRefused, RefusedMalformed
		}
		if err != nil {
			t.b.Close()
			return nil, false, privateline.E(op, err)
		}
		results[i] = InboundResult{ID: e.ID, Status: status, Error: code}
		if status == InboundAccepted {
			accepted[e.ID] = true
			idx.Envelopes = append(idx.Envelopes, e.ID)
			if err := d.setJSON(t.b, tReplayEnv.key(oh, mids[i]), replayEnv{At: at}); err != nil {
				t.b.Close()
				return nil, false, privateline.E(op, err)
			}
		}
	}
	err = t.queueGroupDeletes() // a group's server passes deletes on (§12.3)
	if err == nil {
		err = d.setJSON(t.b, rk, replayTxn{Results: results, At: at})
	}
	if err == nil {
		err = d.setJSON(t.b, tReplayByTime.key(u64(uint64(at)), oh, th), idx)
	}
	if err != nil {
		t.b.Close()
		return nil, false, privateline.E(op, err)
	}
	if err := t.commit(); err != nil {
		return nil, false, privateline.E(op, err)
	}
	return results, false, nil
}

// receiveEntry decides one entry and, if it is accepted, adds it to t.
func (t *mtxn) receiveEntry(origin privateline.ServerName, oh []byte, e *InboundEntry, mid []byte, accepted map[string]bool, now time.Time) (status, code string, err error) {
	d := t.d
	refuse := func(c string) (string, string, error) { return InboundRefused, c, nil }
	if status, code, err := t.triage(oh, e, mid, accepted); status != "" || err != nil {
		return status, code, err
	}
	if _, srv, err := e.From.Split(); err != nil || srv != origin && e.Group == "" {
		// A group's server relays its members' messages (the caller
		// checked that origin is the group's server).
		return refuse(RefusedWrongOrigin)
	}
	sum := sha256.Sum256(e.Raw)
	if rec, err := d.envelopeFrom(t.getNew(tEnvelope.key(mid))); err == nil {
		if _, srv, _ := rec.Sender.Address.Split(); rec.remoteSender() && (srv == origin || e.Group != "" && rec.Group == e.Group) && bytes.Equal(rec.Sum, sum[:]) {
			return InboundDuplicate, "", nil
		}
		return refuse(RefusedIDInUse)
	} else if !privateline.Is(privateline.NotExist, err) {
		return "", "", err
	}
	var ts tombstone
	if err := t.getJSONNew(tTombstone.key(mid), &ts); err == nil {
		if ts.Origin != nil && bytes.Equal(ts.Origin, d.originSumOf(origin, sum[:])) {
			return InboundDuplicate, "", nil
		}
		return refuse(RefusedIDInUse)
	} else if !privateline.Is(privateline.NotExist, err) {
		return "", "", err
	}
	if !e.ExpiresAt.IsZero() && !e.ExpiresAt.After(now) {
		return refuse(RefusedExpired)
	}
	var grp *Group
	if e.Group != "" {
		// Only the replica's members, and never the sender (its server
		// stored its own members' copies).
		g, _, err := d.group(e.Group)
		if privateline.Is(privateline.NotExist, err) || err == nil && !g.Replica {
			return refuse(RefusedUnknownGroup)
		} else if err != nil {
			return "", "", err
		}
		if g.MemberAt(e.From) == nil {
			return refuse(RefusedNotMember)
		}
		grp = g
	}
	var rcpts []Recipient
	for _, r := range e.Recipients {
		if grp != nil {
			if m := grp.MemberAt(r.Address); m == nil || m.Remote || m.User != r.ID || r.Address == e.From {
				continue
			}
		}
		if r.ID.IsZero() || slices.ContainsFunc(rcpts, func(x Recipient) bool { return x.ID == r.ID }) {
			continue
		}
		ok, err := d.userExists(r.ID)
		if err != nil {
			return "", "", err
		}
		if ok {
			rcpts = append(rcpts, r)
		}
	}
	if len(rcpts) == 0 {
		return refuse(RefusedUnknownRecipient)
	}
	rec := &envelopeRecord{Raw: e.Raw, Sum: sum[:], Sender: Recipient{Address: e.From}, Recipients: rcpts, OriginFiles: e.Files, Group: e.Group}
	if !e.ExpiresAt.IsZero() {
		rec.ExpiresAt = e.ExpiresAt.UnixMilli()
	}
	if grp != nil && grp.Retention > 0 {
		// The group's retention, as for a message posted here.
		if limit := now.Add(time.Duration(grp.Retention) * time.Second).UnixMilli(); rec.ExpiresAt == 0 || limit < rec.ExpiresAt {
			rec.ExpiresAt = limit
		}
	}
	if err := t.storeEnvelope(rec, e.ID, mid); err != nil {
		return "", "", err
	}
	fh := oh
	if e.Group != "" { // a group's server relays: the files are on the sender's
		_, srv, _ := e.From.Split()
		fh = d.serverHash(srv)
	}
	t.referenceRemoteFiles(fh, mid, e.Files) // remotefiles.go: fetched on demand
	return InboundAccepted, "", nil
}

// triage is how every inbound entry starts: replay first (spec §13: a
// committed entry is a duplicate whatever the checks would say now, and
// the caller skips them for it), then the caller's refusal, then the id's
// shape. An empty status: go on.
func (t *mtxn) triage(oh []byte, e *InboundEntry, mid []byte, accepted map[string]bool) (status, code string, err error) {
	if mid != nil {
		if accepted[e.ID] {
			return InboundDuplicate, "", nil
		}
		if seen, err := t.existsNew(tReplayEnv.key(oh, mid)); err != nil || seen {
			return InboundDuplicate, "", err
		}
	}
	if e.Refused != "" {
		return InboundRefused, e.Refused, nil
	}
	if mid == nil {
		return InboundRefused, RefusedMalformed, nil
	}
	return "", "", nil
}

// receiveChange decides one read mark or delete and, if it is accepted,
// applies it in t. recs holds the messages this transaction changed.
// A mark or delete of a message that is no longer here is accepted and
// changes nothing: the message went (its sender deleted it, it expired).
func (t *mtxn) receiveChange(origin privateline.ServerName, oh []byte, e *InboundEntry, mid []byte, accepted map[string]bool, recs map[string]*envelopeRecord, now time.Time) (status, code string, err error) {
	d := t.d
	refuse := func(c string) (string, string, error) { return InboundRefused, c, nil }
	if status, code, err := t.triage(oh, e, mid, accepted); status != "" || err != nil {
		return status, code, err
	}
	who := e.Reader
	if e.Kind == OutboxDeletes {
		who = e.From
	}
	_, whoSrv, err := who.Split()
	if err != nil || whoSrv != origin && e.Kind != OutboxDeletes {
		return refuse(RefusedWrongOrigin)
	}
	mmid, err := msgKeyID(e.Message)
	if err != nil {
		return refuse(RefusedMalformed)
	}
	rec, ok := recs[e.Message]
	if !ok {
		if rec, err = d.envelope(mmid); privateline.Is(privateline.NotExist, err) {
			rec = nil
		} else if err != nil {
			return "", "", err
		}
		recs[e.Message] = rec
	}
	// A reader speaks through its own server; a sender too, except that
	// a group's server passes on its members' deletes of the group's
	// messages (§12.3).
	// (A delete of a message no longer here, relayed or not, changes
	// nothing.)
	if rec == nil || rec.expired(now) {
		return InboundAccepted, "", nil
	}
	relayed := whoSrv != origin
	if relayed && (rec.Group == "" || groupServer(rec.Group) != origin) {
		return refuse(RefusedWrongOrigin)
	}
	if e.Kind == OutboxDeletes {
		// Only the sender deletes for everyone.
		if !rec.remoteSender() || rec.Sender.Address != e.From {
			return refuse(RefusedWrongOrigin)
		}
		if err := t.removeMessage(rec, mmid, EventDeleted); err != nil {
			return "", "", err
		}
		recs[e.Message] = nil
		if rec.Group != "" && !relayed && len(rec.Fanout) > 0 {
			// The group's server passes it on (§12.3), in this batch.
			if err := t.relayGroupDelete(rec, e); err != nil {
				return "", "", err
			}
		}
		return InboundAccepted, "", nil
	}
	// A read mark: of a message a user of this server sent to the reader.
	if rec.remoteSender() {
		return refuse(RefusedNotForDestination)
	}
	if rec.Group != "" {
		return t.receiveGroupRead(rec, mmid, e)
	}
	j := slices.Index(rec.Remote, e.Reader)
	if j < 0 {
		return refuse(RefusedNotForDestination)
	}
	if slices.Contains(rec.ReadBy, e.Reader) {
		return InboundAccepted, "", nil
	}
	rec.ReadBy = append(rec.ReadBy, e.Reader)
	d.putEnvelope(t.b, mmid, rec)
	if _, err := t.event(rec.Sender.ID, Event{Type: EventRead, ID: e.Message, Reader: len(rec.Recipients) + 1 + j, By: e.Reader}); err != nil {
		return "", "", err
	}
	return InboundAccepted, "", nil
}

// receiveGroupRead records a read mark of a group message a user of this
// server sent (§12.2): the reader must have been sent it by this server
// (the group's server's fan-out) or be a member of the group as this
// server knows it (its record or replica).
func (t *mtxn) receiveGroupRead(rec *envelopeRecord, mmid []byte, e *InboundEntry) (status, code string, err error) {
	d := t.d
	if !slices.Contains(rec.Fanout, e.Reader) {
		ok, err := d.groupHas(rec.Group, e.Reader)
		if err != nil {
			return "", "", err
		}
		if !ok {
			return InboundRefused, RefusedNotMember, nil
		}
	}
	if slices.Contains(rec.ReadBy, e.Reader) {
		return InboundAccepted, "", nil
	}
	rec.ReadBy = append(rec.ReadBy, e.Reader)
	rec.RemoteReaders = append(rec.RemoteReaders, e.Reader)
	d.putEnvelope(t.b, mmid, rec)
	reader := len(rec.Recipients) + len(rec.Remote) + len(rec.RemoteReaders)
	if _, err := t.event(rec.Sender.ID, Event{Type: EventRead, ID: e.Message, Reader: reader, By: e.Reader}); err != nil {
		return "", "", err
	}
	return InboundAccepted, "", nil
}

// relayGroupDelete notes, on a group's server, a member's delete of their
// group message for the servers it sent the message to (§12.3); they are
// queued by queueGroupDeletes, in t's batch.
func (t *mtxn) relayGroupDelete(rec *envelopeRecord, e *InboundEntry) error {
	payload, err := json.Marshal(DeletePayload{Message: e.Message, From: e.From, DeletedAt: e.At.UnixMilli()})
	if err != nil {
		return err
	}
	t.groupDeletes = append(t.groupDeletes, groupDelete{to: slices.Clone(rec.Fanout), msgID: e.Message, payload: payload})
	return nil
}

// groupDelete is a delete a group's server passes on.
type groupDelete struct {
	to      []privateline.Address
	msgID   string
	payload []byte
}

// queueGroupDeletes queues the deletes relayGroupDelete noted, taking
// every destination's lock first, in lock order. A server the message
// has not left for yet needs nothing (its item goes silently with the
// message).
func (t *mtxn) queueGroupDeletes() error {
	var all []privateline.Address
	for _, g := range t.groupDeletes {
		all = append(all, g.to...)
	}
	ds, err := t.d.outboxDests(all)
	if err != nil {
		return err
	}
	for _, x := range ds {
		t.lockGroupDest(x)
	}
	for _, g := range t.groupDeletes {
		ds, err := t.d.outboxDests(g.to)
		if err != nil {
			return err
		}
		unsent, err := t.d.unsentTo(ds, g.msgID)
		if err != nil {
			return err
		}
		ds = slices.DeleteFunc(ds, func(x outboxDest) bool { return unsent[string(x.h)] })
		if err := t.queueItems(ds, OutboxDeletes, NewID().String(), g.payload); err != nil {
			return err
		}
	}
	return nil
}

// TransactionResults returns the results committed for origin's
// transaction txnID, and false if there are none.
func (d *DB) TransactionResults(origin privateline.ServerName, txnID string) ([]InboundResult, bool, error) {
	var r replayTxn
	err := d.getJSON(tReplayTxn.key(d.serverHash(origin), d.txnHash(txnID)), &r)
	if privateline.Is(privateline.NotExist, err) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, privateline.E("storage.TransactionResults", err)
	}
	return r.Results, true, nil
}

// SeenEnvelopes reports, for each of ids, whether origin's envelope with
// that id was committed (and its replay record is still kept), looking
// them up through one iterator.
func (d *DB) SeenEnvelopes(origin privateline.ServerName, ids []string) ([]bool, error) {
	oh := d.serverHash(origin)
	var p probe
	defer p.close()
	seen := make([]bool, len(ids))
	for i, id := range ids {
		mid, err := msgKeyID(id)
		if err != nil {
			continue
		}
		if seen[i], err = p.exists(d, tReplayEnv.key(oh, mid)); err != nil {
			return nil, privateline.E("storage.SeenEnvelopes", err)
		}
	}
	return seen, nil
}

// SweepReplay deletes the replay records written before cutoff and
// returns how many transactions' records went.
func (d *DB) SweepReplay(cutoff time.Time) (int, error) {
	const op = "storage.SweepReplay"
	upper := tReplayByTime.key(u64(uint64(cutoff.UnixMilli())))
	total := 0
	for {
		type entry struct {
			k   []byte
			idx replayIndex
		}
		var batch []entry
		err := d.scanKeys([]byte{tReplayByTime.prefix}, func(k, v []byte) error {
			if bytes.Compare(k, upper) >= 0 || len(batch) >= maxSweep {
				return errStop
			}
			if len(k) != 1+8+16+16 {
				return nil
			}
			e := entry{k: slices.Clone(k)}
			if err := d.getJSON(e.k, &e.idx); err != nil {
				return err
			}
			batch = append(batch, e)
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return total, privateline.E(op, err)
		}
		if len(batch) == 0 {
			return total, nil
		}
		b := d.db.NewBatch()
		for _, e := range batch {
			at := int64(binary.BigEndian.Uint64(e.k[1:9]))
			oh, th := e.k[9:25], e.k[25:41]
			var keys [][]byte
			var rt replayTxn
			if err := d.getJSON(tReplayTxn.key(oh, th), &rt); err == nil && rt.At == at {
				keys = append(keys, tReplayTxn.key(oh, th))
			}
			for _, id := range e.idx.Envelopes {
				mid, err := hex.DecodeString(id)
				if err != nil || len(mid) != 16 {
					continue
				}
				var re replayEnv
				if err := d.getJSON(tReplayEnv.key(oh, mid), &re); err == nil && re.At == at {
					keys = append(keys, tReplayEnv.key(oh, mid))
				}
			}
			keys = append(keys, e.k)
			for _, k := range keys {
				if err := b.Delete(k, nil); err != nil {
					b.Close()
					return total, privateline.E(op, privateline.Internal, err)
				}
			}
		}
		if err := d.commit(b); err != nil {
			return total, privateline.E(op, err)
		}
		total += len(batch)
		if len(batch) < maxSweep {
			return total, nil
		}
	}
}

// receiveGroupUpdate applies a group's state from its server (origin,
// checked by the caller) to the replica: accepted whether or not it was
// newer (an older state changes nothing but missing keys).
func (t *mtxn) receiveGroupUpdate(oh []byte, e *InboundEntry, mid []byte, accepted map[string]bool) (status, code string, err error) {
	if status, code, err := t.triage(oh, e, mid, accepted); status != "" || err != nil {
		return status, code, err
	}
	if e.Replica == nil {
		return InboundRefused, RefusedMalformed, nil
	}
	gk, err := groupKeyID(e.Replica.Group.ID)
	if err != nil {
		return InboundRefused, RefusedMalformed, nil
	}
	if _, err := t.applyReplica(gk, e.Replica); errors.Is(err, ErrNotReplica) {
		return InboundRefused, RefusedWrongOrigin, nil
	} else if err != nil {
		return "", "", err
	}
	return InboundAccepted, "", nil
}
