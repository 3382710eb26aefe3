package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/storage"
)

// Groups across servers (spec/federation.md §12.1). The group's server
// (the server part of its id) decides every change and fans its messages
// out: group_updates carry the group's state to the servers of its
// members, group_envelopes its messages; a member's server forwards its
// users' changes and messages as a group_request, answered at once by a
// group_answer with the client API's status and the group's new state.

// Entry refusal codes of group entries (spec §10.2).
const (
	entryGroupMismatch = "group_mismatch" // the envelope's "group" is not the entry's
	entryUnknownGroup  = storage.RefusedUnknownGroup
)

// Group-answer error codes this package decides (the others are the
// client API's, from the GroupHandler).
const (
	groupWrongOrigin = "wrong_origin" // the requester is not a user of the requesting server
	groupNotFound    = "not_found"    // not a group of this server
)

// maxRetentionSeconds is the client API's longest group retention.
const maxRetentionSeconds = 10 * 366 * 24 * 3600

// GroupRequest is a change or message of a group member, forwarded by the
// member's server (Origin) to the group's server (spec §12.1): Op is one
// of wire.GroupOps, Target the member a "remove" or "role" names, Body the
// client's request body exactly as it sent it.
type GroupRequest struct {
	Origin    privateline.ServerName
	Group     string
	Op        string
	Requester privateline.Address
	Target    privateline.Address
	Body      []byte
}

// GroupResult is the group server's answer: the client API's HTTP status
// and, for a status of 400 or more, its error code and message. A "send"
// that was accepted names the members on the requester's server the
// requester's server stores the message for (Recipients); Replayed says
// the same request was applied before (a retry).
type GroupResult struct {
	Status     int
	Code       string
	Message    string
	Recipients []privateline.Address
	Replayed   bool
}

// GroupHandler runs forwarded group requests on the group's server with
// the same checks and storage operations as the client API's routes
// (*clientapi.API).
type GroupHandler interface {
	HandleGroupRequest(ctx context.Context, req GroupRequest) GroupResult
}

// SetGroupHandler sets the handler of peers' group requests (the client
// API, made after the service); until then they are refused as
// unknown_type. Call it before Start.
func (s *Service) SetGroupHandler(h GroupHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups = h
}

// checkGroupEntry performs the checks of spec §12.1 on one entry of a
// verified group_envelopes or group_updates transaction that need no lock.
func (s *Service) checkGroupEntry(tx *wire.Transaction, e wire.Entry, dup bool, now time.Time) (storage.InboundEntry, error) {
	in := storage.InboundEntry{Kind: string(tx.Type), ID: e.ID, Group: e.Group}
	if dup {
		return in, nil // committed before: the store answers duplicate
	}
	if srv, err := wire.GroupServer(e.Group); err != nil || srv != tx.Origin {
		in.Refused = entryWrongOrigin // only the group's server speaks for the group
		return in, nil
	}
	if tx.Type == wire.TypeGroupUpdates {
		r, err := s.parseGroupState(e.State, e.Group)
		if err != nil {
			s.log.Info("federation: a group state does not parse", "origin", string(tx.Origin), "group", e.Group, "err", err)
			in.Refused = entryMalformed
			return in, nil
		}
		in.Replica = r
		return in, nil
	}
	in.Raw = e.Envelope
	if !utf8.Valid(e.Envelope) || !json.Valid(e.Envelope) {
		in.Refused = entryMalformed
		return in, nil
	}
	h, err := envelope.ParseGroup(e.Envelope)
	if err != nil {
		in.Refused = entryMalformed
		if privateline.Is(privateline.TooLarge, err) {
			in.Refused = entryTooLarge
		}
		return in, nil
	}
	in.From, in.ExpiresAt, in.Files = h.From, h.ExpiresAt, h.Files
	switch {
	case h.ID != e.ID:
		in.Refused = entryIDMismatch
		return in, nil
	case h.Group != e.Group:
		in.Refused = entryGroupMismatch
		return in, nil
	}
	for _, to := range e.To {
		if _, server, _ := to.Split(); server != s.cfg.Name {
			in.Refused = entryNotForDestination
			return in, nil
		}
	}
	if in.Recipients, err = s.localRecipients(e.To); err != nil {
		return in, err
	}
	if len(in.Recipients) == 0 {
		in.Refused = entryUnknownRecipient
		return in, nil
	}
	if !h.ExpiresAt.IsZero() && !h.ExpiresAt.After(now) {
		in.Refused = entryExpired
	}
	return in, nil
}

// parseGroupState reads a group's state (spec §12.1) for group and
// resolves its members: users of this server by their ids, the others
// remote.
func (s *Service) parseGroupState(raw []byte, group string) (*storage.GroupReplica, error) {
	v, err := cjson.Parse(raw)
	if err != nil {
		return nil, err
	}
	o := cjson.NewObject(v)
	if id := o.String("group", true); o.Err() == nil && id != group {
		o.Fail("group", "the entry's group")
	}
	g := &storage.Group{ID: group, Replica: true}
	g.Version = uint64(o.Int("version", true, 1, cjson.MaxSafeInt))
	g.Era = uint64(o.Int("era", false, 0, cjson.MaxSafeInt)) // groupsync.go
	if g.Era > uint64(s.now().Add(wire.MaxSkew).UnixMilli()) {
		// An era is the time the group's server opened its store: one
		// ahead of the freshness window would outrank its later states.
		o.Fail("era", "not later than now (5 min of clock skew allowed)")
	}
	g.Epoch = o.Int("epoch", true, 0, cjson.MaxSafeInt)
	g.Meta = o.String("meta", false)
	if len(g.Meta) > storage.MaxGroupMeta {
		o.Fail("meta", "at most 4 KiB")
	}
	g.Retention = o.Int("retention", true, 0, maxRetentionSeconds)
	g.CreatedAt = time.UnixMilli(o.Int("created_at", true, 0, cjson.MaxSafeInt)).UTC()
	ms := o.Array("members", true)
	if len(ms) > storage.MaxGroupMembers {
		o.Fail("members", "at most 512 members")
	}
	owners := 0
	for _, mv := range ms {
		mo := cjson.NewObject(mv)
		m := storage.GroupMember{Address: privateline.Address(mo.String("address", true)), Role: mo.String("role", true)}
		m.Joined = uint64(mo.Int("joined", true, 0, cjson.MaxSafeInt))
		if err := mo.Done(false); err != nil {
			o.Fail("members", fmt.Sprintf("members of address, joined and role (%v)", err))
			break
		}
		name, server, err := m.Address.Split()
		if err != nil || !slices.Contains([]string{storage.RoleOwner, storage.RoleAdmin, storage.RoleMember}, m.Role) || g.MemberAt(m.Address) != nil {
			o.Fail("members", "unique addresses with a role of owner, admin or member")
			break
		}
		if m.Role == storage.RoleOwner {
			owners++
		}
		m.Remote = true
		if server == s.cfg.Name {
			u, err := s.store.UserByName(name)
			if err == nil {
				m.User, m.Remote = u.ID, false
			} else if !privateline.Is(privateline.NotExist, err) {
				return nil, err
			}
		}
		g.Members = append(g.Members, m)
	}
	if o.Err() == nil && len(g.Members) > 0 && (owners != 1 || g.Epoch < 1) {
		o.Fail("members", "exactly one owner, with an epoch of 1 or more")
	}
	r := &storage.GroupReplica{Group: g}
	if ko := o.Object("key", false); ko != nil && o.Err() == nil {
		k := cjson.NewObject(ko)
		key := &storage.GroupReplicaKey{Epoch: k.Int("epoch", true, 1, cjson.MaxSafeInt), Wraps: map[storage.ID][2]string{}}
		key.Signed = k.Bytes("document", true, 1, envelope.MaxGroupKeySize)
		key.Sum = k.Bytes("sum", true, 32, 32)
		ws := k.Object("wraps", true)
		for a, wv := range ws {
			wo := cjson.NewObject(wv)
			kid, wrap := wo.String("key_id", true), wo.String("wrap", true)
			if err := wo.Done(false); err != nil {
				k.Fail("wraps", fmt.Sprintf("key_id and wrap per member (%v)", err))
				break
			}
			m := g.MemberAt(privateline.Address(a))
			if _, server, _ := privateline.Address(a).Split(); m == nil || server != s.cfg.Name {
				k.Fail("wraps", "wraps of members of this server")
				break
			}
			if m.Remote {
				continue // no such user here (any more)
			}
			if _, err := envelope.View(key.Signed, kid, wrap); err != nil {
				k.Fail("wraps", fmt.Sprintf("a view of the document (%v)", err))
				break
			}
			key.Wraps[m.User] = [2]string{kid, wrap}
		}
		if err := k.Done(false); err != nil {
			o.Fail("key", err.Error())
		}
		r.Key = key
	}
	if err := o.Done(false); err != nil {
		return nil, err
	}
	return r, nil
}

// answerGroup answers a verified group_request (one entry): the
// requester must be a user of origin and the group one of this server's;
// then the handler runs it as the client API would for a local member,
// and the answer carries the group's new state for origin.
func (s *Service) answerGroup(tx *wire.Transaction) []byte {
	s.mu.Lock()
	h := s.groups
	s.mu.Unlock()
	if h == nil && tx.Entries[0].Op != wire.GroupOpState {
		return s.refuse(tx.Origin, string(wire.UnknownType), "this server does not answer group requests", 0)
	}
	s.met.transactions.WithLabelValues("group_request").Inc()
	e := tx.Entries[0]
	res := wire.Result{ID: e.ID}
	srv, _ := wire.GroupServer(e.Group)
	_, rsrv, _ := e.Requester.Split()
	switch {
	case e.Op == wire.GroupOpState:
		res = s.answerGroupState(tx) // groupsync.go
	case rsrv != tx.Origin:
		res.HTTPStatus, res.Error, res.Message = http.StatusForbidden, groupWrongOrigin, "a server acts only for its own users"
	case srv != s.cfg.Name:
		res.HTTPStatus, res.Error, res.Message = http.StatusNotFound, groupNotFound, "no such group on this server"
	default:
		ctx, cancel := context.WithTimeout(s.ctx, replyTimeout)
		out := h.HandleGroupRequest(ctx, GroupRequest{Origin: tx.Origin, Group: e.Group, Op: e.Op, Requester: e.Requester, Target: e.Target, Body: e.Body})
		cancel()
		res.HTTPStatus, res.Error, res.Message, res.Replayed = out.Status, out.Code, truncate(out.Message, wire.MaxGroupMessage), out.Replayed
		if res.HTTPStatus < 200 || res.HTTPStatus > 599 {
			res.HTTPStatus, res.Error = http.StatusInternalServerError, codeInternal
		}
		if res.HTTPStatus >= 400 && !wire.IsCode(res.Error) {
			res.Error = codeInternal
		}
		if res.HTTPStatus < 400 {
			res.Error, res.Message = "", ""
			if e.Op == "send" {
				res.Recipients = out.Recipients
				if res.Recipients == nil {
					res.Recipients = []privateline.Address{}
				}
			}
			st, err := s.store.GroupStateFor(e.Group, tx.Origin)
			switch {
			case err == nil:
				res.State = st
			case privateline.Is(privateline.NotExist, err): // its last member left: gone
			default:
				s.log.Error("federation: reading a group's state for an answer", "group", e.Group, "err", err)
			}
		}
	}
	ans := &wire.Receipt{
		Header:  wire.Header{Origin: s.cfg.Name, Destination: tx.Origin, TxnID: tx.TxnID, CreatedAt: s.now().UnixMilli()},
		Type:    wire.TypeGroupAnswer,
		Results: []wire.Result{res},
	}
	out, err := wire.Sign(ans, s.cfg.Key)
	if err != nil {
		s.log.Error("federation: signing a group answer", "origin", string(tx.Origin), "txn", tx.TxnID, "err", err)
		return s.refuse(tx.Origin, codeInternal, "the receiver could not sign its answer", 0)
	}
	return out
}

// GroupRequest forwards req (a request of a user of this server) to the
// group's server and returns its answer, after applying the group's
// state it carries to the replica here. A server that cannot be reached,
// or whose answer does not verify, is Unavailable: nothing was done that
// the answer would have confirmed, and the client may retry.
func (s *Service) GroupRequest(ctx context.Context, req GroupRequest) (*GroupResult, error) {
	const op = "federation.GroupRequest"
	server, err := wire.GroupServer(req.Group)
	if err != nil {
		return nil, privateline.E(op, privateline.Invalid, err)
	}
	if server == s.cfg.Name {
		return nil, privateline.E(op, privateline.Invalid, "a group of this server")
	}
	r, _, err := s.groupExchange(ctx, server, wire.Entry{ID: wire.NewTxnID(), Group: req.Group, Op: req.Op, Requester: req.Requester, Target: req.Target, Body: req.Body})
	if err != nil {
		return nil, privateline.E(op, err)
	}
	unreachable := func(why string, err error) error {
		return privateline.E(op, privateline.Unavailable, fmt.Sprintf("the group's server %s %s; nothing was changed, try again later", server, why), err)
	}
	out := &GroupResult{Status: r.HTTPStatus, Code: r.Error, Message: r.Message, Recipients: r.Recipients, Replayed: r.Replayed}
	if r.State != nil {
		rep, err := s.parseGroupState(r.State, req.Group)
		if err == nil {
			_, err = s.store.ApplyGroupReplica(rep)
		}
		if err != nil {
			// The change was made there; the replica follows with the
			// group_updates the group's server queued.
			s.log.Warn("federation: applying the group's state from an answer", "group", req.Group, "err", err)
		}
	}
	for _, a := range out.Recipients {
		if _, srv, _ := a.Split(); srv != s.cfg.Name {
			return nil, unreachable("named members of other servers for this server", nil)
		}
	}
	return out, nil
}

// groupExchange sends one group_request entry e to the group's server
// and returns the verified answer's one result. A server that cannot be
// reached, refuses the frame or answers with something that does not
// verify is an Unavailable error saying so (nothing was changed there
// that an answer would confirm); retryAfter is a rate_limited refusal's.
func (s *Service) groupExchange(ctx context.Context, server privateline.ServerName, e wire.Entry) (res wire.Result, retryAfter time.Duration, err error) {
	s.mu.Lock()
	if !s.started || s.closed {
		s.mu.Unlock()
		return res, 0, privateline.E(privateline.Unavailable, "federation is not running")
	}
	sd := s.senderLocked(server)
	s.mu.Unlock()
	tx := &wire.Transaction{Type: wire.TypeGroupRequest,
		Header:  wire.Header{Origin: s.cfg.Name, Destination: server, TxnID: wire.NewTxnID(), CreatedAt: s.now().UnixMilli()},
		Entries: []wire.Entry{e}}
	raw, err := wire.Sign(tx, s.cfg.Key)
	if err != nil {
		return res, 0, privateline.E(privateline.Internal, err)
	}
	unreachable := func(why string, err error) error {
		return privateline.E(privateline.Unavailable, fmt.Sprintf("the group's server %s %s; nothing was changed, try again later", server, why), err)
	}
	if sd.down() {
		return res, 0, unreachable("could not be reached moments ago", nil)
	}
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	conn, err := sd.link(ctx)
	if err != nil {
		return res, 0, unreachable("cannot be reached", err)
	}
	resp, err := exchange(ctx, conn, raw)
	if err != nil {
		sd.dropLink()
		return res, 0, unreachable("did not answer", err)
	}
	if ef, ok := parseErrorFrame(resp); ok {
		var after time.Duration
		if ef.code == codeRateLimited { // only a rate_limited refusal says when to ask again (groupsync.go)
			after = ef.retryAfter
			if after <= 0 {
				after = time.Second
			}
		}
		return res, after, unreachable(fmt.Sprintf("refused the request (%s)", ef.code), nil)
	}
	peer := wire.Peer{Name: server, Key: conn.PeerKey()}
	ans, err := wire.VerifyReceipt(resp, peer, s.cfg.Name, s.now(), wire.DefaultLimits(), tx)
	if err != nil {
		s.log.Warn("federation: a group answer does not verify", "peer", string(server), "err", err)
		return res, 0, unreachable("answered with something that does not verify", err)
	}
	return ans.Results[0], 0, nil
}

// groupOutboxEntry is the wire entry of a group outbox item.
func groupOutboxEntry(typ string, it storage.OutboxItem) (wire.Entry, error) {
	switch typ {
	case storage.OutboxGroupEnvelopes:
		var p storage.GroupEnvelopePayload
		if err := json.Unmarshal(it.Meta, &p); err != nil {
			return wire.Entry{}, fmt.Errorf("outbox group envelope %s: %w", it.ID, err)
		}
		return wire.Entry{ID: it.ID, Envelope: it.Payload, Group: p.Group, To: p.To}, nil
	case storage.OutboxGroupUpdates:
		var p struct {
			Group string `json:"group"`
		}
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			return wire.Entry{}, fmt.Errorf("outbox group update %s: %w", it.ID, err)
		}
		return wire.Entry{ID: it.ID, Group: p.Group, State: it.Payload}, nil
	}
	return wire.Entry{}, fmt.Errorf("not a group item type %q", typ)
}
