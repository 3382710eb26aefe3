package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// Groups (the /api/groups routes, spec/e2ee.md §8). The server keeps the
// member list, roles and epoch, and stores each epoch's key document; the
// group key itself is made by an admin's client (Rekey) and reaches each
// member wrapped to its own key only. After AddMember and RemoveMember the
// SDK rekeys by itself; SendGroup also rekeys when it is an admin and the
// current epoch has no key yet (a member left).

// codeStaleEpoch is the API error code for a group message or key document
// of an epoch that is not the group's current one.
const codeStaleEpoch = "stale_epoch"

// IsStaleEpoch reports whether err is the server's refusal of an epoch
// that is no longer the group's current one.
func IsStaleEpoch(err error) bool { return CodeOf(err) == codeStaleEpoch }

// GroupMember is a member of a group and its role: "owner", "admin" or
// "member".
type GroupMember struct {
	Address privateline.Address `json:"address"`
	Role    string              `json:"role"`
}

// Group is a group as the server describes it.
type Group struct {
	ID      string        `json:"id"`
	Epoch   int64         `json:"epoch"`
	Members []GroupMember `json:"members"`
	// Meta is the opaque, client-encrypted group metadata (base64).
	Meta             string    `json:"meta,omitempty"`
	RetentionSeconds int64     `json:"retention_seconds"`
	CreatedAt        time.Time `json:"created_at"`
}

// Role returns the role of a in the group, or "".
func (g *Group) Role(a privateline.Address) string {
	for _, m := range g.Members {
		if m.Address == a {
			return m.Role
		}
	}
	return ""
}

// Addresses returns the members' addresses, sorted.
func (g *Group) Addresses() []privateline.Address {
	var out []privateline.Address
	for _, m := range g.Members {
		out = append(out, m.Address)
	}
	slices.Sort(out)
	return out
}

func isAdmin(role string) bool { return role == "owner" || role == "admin" }

func groupPath(id string, rest string) string { return "/api/groups/" + url.PathEscape(id) + rest }

// groupCall sends a JSON request and decodes the answer into out (if
// non-nil) when its status is one of ok.
func (s *Session) groupCall(ctx context.Context, op, method, path string, in, out any, ok ...int) (*response, error) {
	rq := &request{method: method, path: path}
	if in != nil {
		b, err := jsonBody(op, in)
		if err != nil {
			return nil, err
		}
		rq.body = b
	}
	r, err := s.do(ctx, op, rq)
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, ok...); err != nil {
		return nil, err
	}
	if out != nil && r.status != http.StatusNoContent {
		if err := decode(op, r, out); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// CreateGroup creates a group owned by this account with the given
// members (addresses on this server) and distributes its first key. The
// session must be unlocked.
func (s *Session) CreateGroup(ctx context.Context, members []privateline.Address) (*Group, error) {
	const op = "client.Session.CreateGroup"
	if _, _, err := s.unlocked(op); err != nil {
		return nil, err
	}
	if members == nil {
		members = []privateline.Address{}
	}
	var g Group
	if _, err := s.groupCall(ctx, op, http.MethodPost, "/api/groups", map[string]any{"members": members}, &g, http.StatusCreated); err != nil {
		return nil, err
	}
	if _, err := s.rekey(ctx, op, &g); err != nil {
		return &g, err
	}
	return &g, nil
}

// Groups lists this account's groups.
func (s *Session) Groups(ctx context.Context) ([]Group, error) {
	var out struct {
		Groups []Group `json:"groups"`
	}
	_, err := s.groupCall(ctx, "client.Session.Groups", http.MethodGet, "/api/groups", nil, &out, http.StatusOK)
	return out.Groups, err
}

// Group fetches one group (NotExist unless this account is a member).
func (s *Session) Group(ctx context.Context, id string) (*Group, error) {
	var g Group
	if _, err := s.groupCall(ctx, "client.Session.Group", http.MethodGet, groupPath(id, ""), nil, &g, http.StatusOK); err != nil {
		return nil, err
	}
	return &g, nil
}

// AddMember adds a member (role "" is member; "admin" only by the owner)
// and, as the admin who changed the membership, distributes the new
// epoch's key.
func (s *Session) AddMember(ctx context.Context, id string, a privateline.Address, role string) (*Group, error) {
	const op = "client.Session.AddMember"
	if _, _, err := s.unlocked(op); err != nil {
		return nil, err
	}
	body := map[string]any{"address": a}
	if role != "" {
		body["role"] = role
	}
	var g Group
	if _, err := s.groupCall(ctx, op, http.MethodPost, groupPath(id, "/members"), body, &g, http.StatusCreated); err != nil {
		return nil, err
	}
	if _, err := s.rekey(ctx, op, &g); err != nil {
		return &g, err
	}
	return &g, nil
}

// RemoveMember removes a member (an admin removing someone) and
// distributes the new epoch's key; removing this account itself is Leave.
func (s *Session) RemoveMember(ctx context.Context, id string, a privateline.Address) error {
	const op = "client.Session.RemoveMember"
	if a == s.address {
		return s.Leave(ctx, id)
	}
	if _, _, err := s.unlocked(op); err != nil {
		return err
	}
	if _, err := s.groupCall(ctx, op, http.MethodDelete, groupPath(id, "/members/"+url.PathEscape(string(a))), nil, nil, http.StatusNoContent); err != nil {
		return err
	}
	g, err := s.Group(ctx, id)
	if err != nil {
		return err
	}
	_, err = s.rekey(ctx, op, g)
	return err
}

// Leave leaves the group; an owner who leaves hands the group to the
// longest-standing admin (else member). The remaining admins' clients
// distribute the next key.
func (s *Session) Leave(ctx context.Context, id string) error {
	const op = "client.Session.Leave"
	_, err := s.groupCall(ctx, op, http.MethodDelete, groupPath(id, "/members/"+url.PathEscape(string(s.address))), nil, nil, http.StatusNoContent)
	if err == nil {
		s.forgetGroup(id)
	}
	return err
}

// forgetGroup drops the keys held for a group this account left.
func (s *Session) forgetGroup(id string) {
	s.mu.Lock()
	delete(s.groupKeys, id)
	s.mu.Unlock()
}

// SetRole sets a member's role, "admin" or "member" (the owner only).
func (s *Session) SetRole(ctx context.Context, id string, a privateline.Address, role string) (*Group, error) {
	var g Group
	_, err := s.groupCall(ctx, "client.Session.SetRole", http.MethodPatch, groupPath(id, "/members/"+url.PathEscape(string(a))),
		map[string]any{"role": role}, &g, http.StatusOK)
	return &g, err
}

// SetRetention sets how long the server keeps the group's messages sent
// from now on (0: keep); owner and admins only.
func (s *Session) SetRetention(ctx context.Context, id string, d time.Duration) (*Group, error) {
	var g Group
	_, err := s.groupCall(ctx, "client.Session.SetRetention", http.MethodPut, groupPath(id, "/retention"),
		map[string]any{"seconds": int64(d / time.Second)}, &g, http.StatusOK)
	return &g, err
}

// Rekey makes a fresh key for the group's current epoch, wraps it to every
// current member's verified, pin-checked bundle and uploads it. If another
// admin's document for the epoch is already there, that key is opened and
// used instead. Only the owner and admins rekey.
func (s *Session) Rekey(ctx context.Context, id string) (*e2ee.GroupKey, error) {
	const op = "client.Session.Rekey"
	g, err := s.Group(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.rekey(ctx, op, g)
}

// maxRekeyAttempts bounds the retries of a rekey whose members or keys
// changed while it was being made.
const maxRekeyAttempts = 3

func (s *Session) rekey(ctx context.Context, op string, g *Group) (*e2ee.GroupKey, error) {
	keys, _, err := s.unlocked(op)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if !isAdmin(g.Role(s.address)) {
			return nil, privateline.E(op, privateline.Forbidden, "only the owner and admins distribute group keys")
		}
		// Never a second key for an epoch number this client held one of
		// (lostepochs.go): report it, and make the key of the epoch after.
		var same bool
		if g, same, err = s.passLostEpochs(ctx, op, g, true); err != nil {
			return nil, err
		}
		if same { // the server's document of the epoch is the one held
			return s.groupKey(ctx, g, g.Epoch)
		}
		if h := s.c.highestEpoch(s.address, g.ID); h.Epoch >= g.Epoch {
			return nil, errHeldEpoch(op, g, h.Epoch)
		}
		var others []privateline.Address
		for _, a := range g.Addresses() {
			if a != s.address {
				others = append(others, a)
			}
		}
		bundles, err := s.checkedBundles(ctx, op, others, &SendResult{})
		if err != nil {
			return nil, err
		}
		bundles = append(bundles, s.Bundle())
		gk, doc, err := e2ee.SealGroupKey(nil, keys, g.ID, g.Epoch, time.UnixMilli(s.c.now().UnixMilli()), bundles)
		if err != nil {
			return nil, privateline.E(op, err)
		}
		r, err := s.do(ctx, op, &request{method: http.MethodPut, path: groupPath(g.ID, "/key"), body: doc})
		if err != nil {
			return nil, err
		}
		switch {
		case r.status == http.StatusCreated || r.status == http.StatusOK:
			s.keepGroupKey(gk)
			return gk, nil
		case r.status == http.StatusConflict && CodeOf(apiError(op, r)) == "conflict":
			// Another admin distributed this epoch first: use theirs.
			return s.groupKey(ctx, g, g.Epoch)
		case r.status == http.StatusConflict && attempt+1 < maxRekeyAttempts:
			// The members, their keys or the epoch moved on: look again.
			if g, err = s.Group(ctx, g.ID); err != nil {
				return nil, err
			}
			continue
		}
		return nil, apiError(op, r)
	}
}

// keepGroupKey keeps a group key opened or made and notes its epoch; a
// held epoch that rises is a change of the session's state (OnChange).
func (s *Session) keepGroupKey(gk *e2ee.GroupKey) {
	if s.storeGroupKey(gk) {
		s.changed()
	}
}

// storeGroupKey keeps gk under mu (noting its epoch under the Client's
// mu, after it) and reports whether the held epoch of the group rose;
// keepGroupKey calls changed once mu is released.
func (s *Session) storeGroupKey(gk *e2ee.GroupKey) (raised bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groupKeys == nil {
		s.groupKeys = map[string]map[int64]*e2ee.GroupKey{}
	}
	if s.groupKeys[gk.Group] == nil {
		s.groupKeys[gk.Group] = map[int64]*e2ee.GroupKey{}
	}
	if _, ok := s.groupKeys[gk.Group][gk.Epoch]; ok {
		return false // the first key of an epoch stays (spec/e2ee.md §8.1)
	}
	s.groupKeys[gk.Group][gk.Epoch] = gk
	return s.c.noteEpoch(s.address, gk.Group, heldOf(gk.From, gk.Epoch, gk.CreatedAt))
}

// heldGroupKey returns the kept key of an epoch (epoch 0: the newest).
func (s *Session) heldGroupKey(group string, epoch int64) *e2ee.GroupKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch != 0 {
		return s.groupKeys[group][epoch]
	}
	var newest *e2ee.GroupKey
	for _, k := range s.groupKeys[group] {
		if newest == nil || k.Epoch > newest.Epoch {
			newest = k
		}
	}
	return newest
}

// groupKey returns the key of an epoch: kept, or fetched (this account's
// own view of the document) and opened with the distributor's verified,
// pin-checked bundle. For the current epoch the distributor must be an
// owner or admin in g.
func (s *Session) groupKey(ctx context.Context, g *Group, epoch int64) (*e2ee.GroupKey, error) {
	const op = "client.Session.groupKey"
	if gk := s.heldGroupKey(g.ID, epoch); gk != nil {
		return gk, nil
	}
	keys, _, err := s.unlocked(op)
	if err != nil {
		return nil, err
	}
	r, err := s.do(ctx, op, &request{method: http.MethodGet, path: groupPath(g.ID, "/key"), query: url.Values{"epoch": {strconv.FormatInt(epoch, 10)}}})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, err
	}
	var pub struct {
		From privateline.Address `json:"from"`
	}
	if err := json.Unmarshal(r.body, &pub); err != nil {
		return nil, privateline.E(op, privateline.Invalid, "the group key document is not JSON")
	}
	if epoch == g.Epoch && !isAdmin(g.Role(pub.From)) {
		return nil, privateline.E(op, privateline.Forbidden, "the group key was not distributed by an owner or admin")
	}
	var distributor *e2ee.KeyBundle
	if pub.From == s.address {
		distributor = s.Bundle()
	} else {
		bs, err := s.checkedBundles(ctx, op, []privateline.Address{pub.From}, &SendResult{})
		if err != nil {
			return nil, err
		}
		distributor = bs[0]
	}
	gk, err := e2ee.OpenGroupKey(r.body, keys, distributor, e2ee.GroupKeyOptions{})
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if gk.Group != g.ID || gk.Epoch != epoch {
		return nil, privateline.E(op, privateline.Forbidden, "the server answered another group's or epoch's key")
	}
	s.keepGroupKey(gk)
	return gk, nil
}

// currentGroupKey returns the key of the group's current epoch; an admin
// whose group has none yet (a member left) distributes one.
func (s *Session) currentGroupKey(ctx context.Context, g *Group) (*e2ee.GroupKey, error) {
	gk, err := s.groupKey(ctx, g, g.Epoch)
	if privateline.Is(privateline.NotExist, err) && isAdmin(g.Role(s.address)) {
		return s.rekey(ctx, "client.Session.currentGroupKey", g)
	}
	return gk, err
}

// SendGroup seals msg with the group's current key and posts it (POST
// /api/groups/{id}/messages). The server's key look-up waits for a key
// that an admin's client has not distributed yet (for a plain member).
// If the group moved to a new epoch meanwhile (409 stale_epoch, of the
// look-up or the post) it fetches the group and the new key and sends
// once more. The session must be unlocked.
func (s *Session) SendGroup(ctx context.Context, id string, msg *e2ee.Message, opts SendOptions) (*SendResult, error) {
	const op = "client.Session.SendGroup"
	keys, _, err := s.unlocked(op)
	if err != nil {
		return nil, err
	}
	if msg == nil {
		return nil, privateline.E(op, privateline.Invalid, "no message")
	}
	for attempt := 0; ; attempt++ {
		g, err := s.Group(ctx, id)
		if err != nil {
			return nil, err
		}
		// A group behind an epoch this client held (its server was
		// restored): move it on before sending (lostepochs.go). A report
		// that fails changes nothing: the send goes on as it would.
		if moved, _, err := s.passLostEpochs(ctx, op, g, false); err == nil {
			g = moved
		}
		gk, err := s.currentGroupKey(ctx, g)
		if IsStaleEpoch(err) && attempt == 0 {
			// The group moved on while its key was awaited: look again.
			continue
		}
		if err != nil {
			return nil, err
		}
		d := e2ee.Draft{ID: opts.ID, SentAt: time.UnixMilli(s.c.now().UnixMilli()).UTC(), ExpiresAt: opts.ExpiresAt, Message: msg}
		if d.ID == "" {
			if d.ID, err = e2ee.NewMessageID(nil); err != nil {
				return nil, privateline.E(op, err)
			}
		}
		env, err := e2ee.SealGroup(nil, keys, gk, d)
		if err != nil {
			return nil, privateline.E(op, err)
		}
		body, err := env.MarshalJSON()
		if err != nil {
			return nil, privateline.E(op, privateline.Internal, err)
		}
		seq, replayed, err := s.postEnvelope(ctx, op, groupPath(id, "/messages"), env.Header.ID, body)
		if IsStaleEpoch(err) && attempt == 0 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &SendResult{ID: env.Header.ID, Seq: seq, SentAt: env.Header.SentAt, Replayed: replayed}, nil
	}
}

// GroupMessages fetches a page of the group's conversation and opens each
// envelope with the key of its epoch (kept in memory once opened): the
// sender's pin-checked bundle, the signature, membership of the epoch, a
// message in an old epoch sent after a newer one began (stale_epoch),
// expiry. An entry failing any check has Err set. The session must be
// unlocked.
func (s *Session) GroupMessages(ctx context.Context, id string, q MessagesQuery) ([]Item, error) {
	const op = "client.Session.GroupMessages"
	keys, _, err := s.unlocked(op)
	if err != nil {
		return nil, err
	}
	g, err := s.Group(ctx, id)
	if err != nil {
		return nil, err
	}
	if moved, _, err := s.passLostEpochs(ctx, op, g, false); err == nil {
		g = moved // as in SendGroup
	}
	v := url.Values{}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Offset != 0 {
		v.Set("offset", strconv.Itoa(q.Offset))
	}
	if q.HasAfter {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	var page struct {
		Messages []mailItem `json:"messages"`
	}
	rq := &request{method: http.MethodGet, path: groupPath(id, "/messages"), query: v}
	r, err := s.do(ctx, op, rq)
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, err
	}
	if err := decode(op, r, &page); err != nil {
		return nil, err
	}
	o := s.newOpener(op, keys)
	o.groups[g.ID] = g
	o.onlyGroup = g.ID
	return o.openPage(ctx, page.Messages)
}

func (s *Session) openGroup(ctx context.Context, o *opener, g *Group, e *e2ee.Envelope) (*e2ee.Message, bool, error) {
	h := &e.Header
	gk, err := s.groupKey(ctx, g, h.Epoch)
	if err != nil {
		return nil, false, privateline.E(o.op, "cannot get the key of epoch "+strconv.FormatInt(h.Epoch, 10), err)
	}
	sender, err := o.bundle(ctx, h.From)
	if err != nil {
		return nil, false, privateline.E(o.op, "cannot look up the sender "+string(h.From), err)
	}
	if h.From != s.address {
		pin, ok := o.pins[h.From]
		if !ok {
			return nil, false, privateline.E(o.op, privateline.Unavailable, "the sender "+string(h.From)+" could not be pinned")
		}
		if err := e2ee.CheckPinned(pin.IdentityKey, sender); err != nil {
			return nil, true, privateline.E(o.op, privateline.Forbidden, "the identity key of "+string(h.From)+" changed; verify it to read their messages", err)
		}
	}
	m, err := e2ee.OpenGroup(e, gk, sender, e2ee.GroupOpenOptions{Now: s.c.now(), Latest: s.heldGroupKey(g.ID, 0)})
	if err != nil {
		return nil, false, privateline.E(o.op, err)
	}
	return m, false, nil
}
