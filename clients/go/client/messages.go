package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// Direct messages (POST/GET /api/messages, spec/e2ee.md §7): the SDK seals
// and opens envelopes, the server only routes them. Contacts' identity
// keys are pinned on first use in the pinned-keys blob (§6.2, §18); a
// verified contact whose key changed gets nothing until verified again.

// IsKeyChanged reports whether err is a refusal because a contact's
// identity key is not the pinned one: Send to a verified contact whose
// key changed (kind Forbidden), or an Item whose sender's key changed.
// e2ee.ReasonOf(err) is then e2ee.ErrKeyChanged ("key_changed").
func IsKeyChanged(err error) bool { return e2ee.ReasonOf(err) == e2ee.ErrKeyChanged }

// maxSendAttempts bounds the POSTs of one Send; a retry sends the same
// bytes under the same id, which the server answers idempotently.
const maxSendAttempts = 4

// sendBackoff is the wait before the n-th retry (n ≥ 1).
var sendBackoff = func(n int) time.Duration { return time.Duration(n) * 250 * time.Millisecond }

// SendOptions tune Send. The zero value is a text message with a fresh
// id, the conversation of its participants, and no expiry.
type SendOptions struct {
	// ID is the message id (32 lower-case hex digits); empty: a fresh one.
	// Sending again with the same id and content is idempotent.
	ID string
	// Conversation is the header's conversation id; empty: the one
	// ConversationID gives for the participants.
	Conversation string
	// ExpiresAt, if set, is when recipients stop showing the message and
	// the server deletes it.
	ExpiresAt time.Time
}

// SendResult is what Send did.
type SendResult struct {
	ID       string
	Seq      uint64 // the sender's mailbox sequence number
	SentAt   time.Time
	Replayed bool // the server had the message already (a retry)
	// KeyChanged lists the unverified recipients whose identity key is not
	// the pinned one: the message went to their current key, and the user
	// should be warned (and verify them).
	KeyChanged []privateline.Address
	// Pinned lists the recipients pinned now, on first use.
	Pinned []privateline.Address
}

// ConversationID is the default conversation id of a direct conversation
// among the addresses (sender and recipients, in any order): the same for
// every participant.
func ConversationID(participants ...privateline.Address) string {
	p := slices.Clone(participants)
	slices.Sort(p)
	p = slices.Compact(p)
	parts := make([]string, len(p))
	for i, a := range p {
		parts[i] = string(a)
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return "dm-" + hex.EncodeToString(sum[:16])
}

// errKeyChanged is the refusal to send to a verified contact whose key
// changed.
func errKeyChanged(op string, a privateline.Address, cause error) error {
	return privateline.E(op, privateline.Forbidden,
		"the identity key of "+string(a)+", a verified contact, changed; verify it again before sending", cause)
}

// Send seals msg to the recipients and posts it (POST /api/messages). Each
// recipient's bundle comes from the verified key directory and is checked
// against the pinned keys: a contact seen for the first time is pinned; a
// verified contact whose identity key changed refuses the whole send
// (Forbidden, IsKeyChanged); an unverified one is sent to and listed in
// SendResult.KeyChanged. The sender's own key gets a copy (its other
// devices and history). Network failures and 502–504 are retried with the
// same bytes, which the server deduplicates by id. The session must be
// unlocked.
func (s *Session) Send(ctx context.Context, to []privateline.Address, msg *e2ee.Message, opts SendOptions) (*SendResult, error) {
	const op = "client.Session.Send"
	keys, _, err := s.unlocked(op)
	if err != nil {
		return nil, err
	}
	if msg == nil {
		return nil, privateline.E(op, privateline.Invalid, "no message")
	}
	if len(to) == 0 {
		return nil, privateline.E(op, privateline.Invalid, "no recipients")
	}
	rcpt := slices.Clone(to)
	slices.Sort(rcpt)
	rcpt = slices.Compact(rcpt)
	if slices.Contains(rcpt, s.address) {
		return nil, privateline.E(op, privateline.Invalid, "a message cannot be sent to its sender")
	}
	res := &SendResult{}
	bundles, err := s.checkedBundles(ctx, op, rcpt, res)
	if err != nil {
		return nil, err
	}

	d := e2ee.Draft{ID: opts.ID, Conversation: opts.Conversation, SentAt: time.UnixMilli(s.c.now().UnixMilli()).UTC(), ExpiresAt: opts.ExpiresAt, Message: msg}
	if d.ID == "" {
		if d.ID, err = e2ee.NewMessageID(nil); err != nil {
			return nil, privateline.E(op, err)
		}
	}
	if d.Conversation == "" {
		d.Conversation = ConversationID(append(slices.Clone(rcpt), s.address)...)
	}
	env, err := e2ee.SealDirect(nil, keys, bundles, d)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	body, err := env.MarshalJSON()
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	res.ID, res.SentAt = env.Header.ID, env.Header.SentAt
	if res.Seq, res.Replayed, err = s.postEnvelope(ctx, op, "/api/messages", res.ID, body); err != nil {
		return nil, err
	}
	return res, nil
}

// checkedBundles looks the addresses up in the verified directory and
// checks them against the pinned keys: a contact seen for the first time is
// pinned (listed in res.Pinned); a verified contact whose identity key
// changed is refused (Forbidden, IsKeyChanged); an unverified one is listed
// in res.KeyChanged.
func (s *Session) checkedBundles(ctx context.Context, op string, addrs []privateline.Address, res *SendResult) ([]*e2ee.KeyBundle, error) {
	bundles := make([]*e2ee.KeyBundle, 0, len(addrs))
	for _, a := range addrs {
		b, err := s.PublicKey(ctx, a)
		if err != nil {
			return nil, err
		}
		bundles = append(bundles, b)
	}
	pins, err := s.GetPins(ctx)
	if err != nil {
		return nil, err
	}
	var fresh []*e2ee.KeyBundle
	for _, b := range bundles {
		pin, ok := pins.Pins[b.Address]
		if !ok {
			fresh = append(fresh, b)
			continue
		}
		if err := e2ee.CheckPinned(pin.IdentityKey, b); err != nil {
			if pin.Verified {
				return nil, errKeyChanged(op, b.Address, err)
			}
			res.KeyChanged = append(res.KeyChanged, b.Address)
		}
	}
	if len(fresh) > 0 {
		if _, err := s.pinFirstUse(ctx, fresh); err != nil {
			return nil, err
		}
		for _, b := range fresh {
			res.Pinned = append(res.Pinned, b.Address)
		}
	}
	return bundles, nil
}

// pinFirstUse pins the bundles of contacts without a pin (trust on first
// use). A pin that another device wrote meanwhile is kept as it is.
func (s *Session) pinFirstUse(ctx context.Context, bundles []*e2ee.KeyBundle) (*PinnedKeys, error) {
	now := s.c.now()
	return s.UpdatePins(ctx, func(p e2ee.Pins) error {
		for _, b := range bundles {
			_, _ = p.Observe(b, now) // key_changed: another device's pin wins
		}
		return nil
	})
}

// postEnvelope POSTs the envelope id, body, retrying transport failures
// and 502–504, and returns the sender's sequence number from the server's
// acknowledgement and whether it was a replay.
func (s *Session) postEnvelope(ctx context.Context, op, path, id string, body []byte) (uint64, bool, error) {
	r, err := s.postEnvelopeRetrying(ctx, op, path, body)
	if err != nil {
		return 0, false, err
	}
	var pr struct {
		ID  string `json:"id"`
		Seq uint64 `json:"seq"`
	}
	if err := decode(op, r, &pr); err != nil {
		return 0, false, err
	}
	if pr.ID != id {
		return 0, false, privateline.E(op, privateline.Invalid, "the server acknowledged another message id")
	}
	return pr.Seq, r.status == http.StatusOK, nil
}

func (s *Session) postEnvelopeRetrying(ctx context.Context, op, path string, body []byte) (*response, error) {
	var last error
	for attempt := range maxSendAttempts {
		if attempt > 0 {
			t := time.NewTimer(sendBackoff(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, privateline.E(op, privateline.Unavailable, "gave up sending; sending it again is safe", errors.Join(ctx.Err(), last))
			case <-t.C:
			}
		}
		r, err := s.do(ctx, op, &request{method: http.MethodPost, path: path, body: body})
		if err != nil {
			if !retryable(err) || ctx.Err() != nil {
				return nil, err
			}
			last = err
			continue
		}
		switch r.status {
		case http.StatusCreated, http.StatusOK:
			return r, nil
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			last = apiError(op, r)
			continue
		case http.StatusConflict:
			if e := apiError(op, r); CodeOf(e) == codeStaleEpoch {
				return nil, e
			}
			return nil, privateline.E(op, privateline.Exist, "another message with this id exists", apiError(op, r))
		}
		return nil, apiError(op, r)
	}
	return nil, privateline.E(op, privateline.Unavailable, "the message could not be delivered; sending it again is safe", last)
}

// retryable reports a transport failure (no answer from the server).
func retryable(err error) bool {
	if _, ok := AsAPIError(err); ok {
		return false
	}
	return privateline.Is(privateline.Unavailable, err)
}

// MessagesQuery selects a page of the mailbox (GET /api/messages).
type MessagesQuery struct {
	Limit  int                 // 1–100; 0: the server's default (50)
	Offset int                 // entries to skip
	With   privateline.Address // only the conversation with this address
	// After, if HasAfter, asks for the entries after this sequence number
	// in ascending order; without it the newest come first.
	After    uint64
	HasAfter bool
}

// Item is one mailbox entry, opened. An entry that fails any check has
// Err set and no Message: its header fields (ID, From, To, SentAt) are
// then as the server gave them, unauthenticated.
type Item struct {
	Seq      uint64
	ID       string
	From     privateline.Address
	To       []privateline.Address
	SentAt   time.Time
	Group    string                // group messages: the group id
	Epoch    int64                 // group messages: the key's epoch
	Outgoing bool                  // sent by this account (from any of its devices)
	Read     bool                  // incoming: read by this account
	ReadBy   []privateline.Address // outgoing: the recipients who read it
	Message  *e2ee.Message         // nil when Err is set
	// KeyChanged: the sender's current identity key is not the pinned one;
	// the message is not opened (Err has reason key_changed) until the user
	// verifies the sender again.
	KeyChanged bool
	Err        error
}

// Body returns the message's text, or "" when it was not opened.
func (it *Item) Body() string {
	if it.Message == nil {
		return ""
	}
	return it.Message.Body
}

type mailItem struct {
	Seq       uint64                `json:"seq"`
	Envelope  json.RawMessage       `json:"envelope"`
	Direction string                `json:"direction"`
	Read      *bool                 `json:"read"`
	ReadBy    []privateline.Address `json:"read_by"`
}

// Messages fetches a page of the mailbox and opens each envelope (spec/
// e2ee.md §7.6): the sender's bundle from the verified directory, checked
// against the pinned keys (first use: pinned; changed: the item is
// KeyChanged and not opened), the signature verified before anything is
// decrypted, the wrapped keys of a received message checked against the
// verified bundles of every recipient, expiry against the client's clock. An entry failing
// any check comes back with Err and without plaintext; a second entry with
// the same sender and id is dropped. The mailbox holds group messages
// too: they are opened as GroupMessages does (Item.Group is set; a group
// this account left opens only with keys still held). The session must
// be unlocked.
func (s *Session) Messages(ctx context.Context, q MessagesQuery) ([]Item, error) {
	const op = "client.Session.Messages"
	keys, _, err := s.unlocked(op)
	if err != nil {
		return nil, err
	}
	v := url.Values{}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Offset != 0 {
		v.Set("offset", strconv.Itoa(q.Offset))
	}
	if q.With != "" {
		v.Set("with", string(q.With))
	}
	if q.HasAfter {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	r, err := s.do(ctx, op, &request{method: http.MethodGet, path: "/api/messages", query: v})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, err
	}
	var page struct {
		Messages []mailItem `json:"messages"`
	}
	if err := decode(op, r, &page); err != nil {
		return nil, err
	}

	return s.openItems(ctx, op, keys, page.Messages)
}

// openItems opens mailbox entries as Messages describes; group messages
// (the mailbox holds them too) are opened as GroupMessages does.
func (s *Session) openItems(ctx context.Context, op string, keys *e2ee.PrivateKeys, page []mailItem) ([]Item, error) {
	return s.newOpener(op, keys).openPage(ctx, page)
}

func (s *Session) newOpener(op string, keys *e2ee.PrivateKeys) *opener {
	return &opener{s: s, op: op, keys: keys, bundles: map[privateline.Address]*e2ee.KeyBundle{},
		lookupErr: map[privateline.Address]error{}, groups: map[string]*Group{}}
}

// openPage opens one page of mailbox entries.
func (o *opener) openPage(ctx context.Context, page []mailItem) ([]Item, error) {
	s, op := o.s, o.op
	envs := make([]*e2ee.Envelope, len(page))
	items := make([]Item, len(page))
	var senders []privateline.Address
	for i, m := range page {
		it := &items[i]
		it.Seq, it.Outgoing, it.ReadBy = m.Seq, m.Direction == "out", m.ReadBy
		if m.Read != nil {
			it.Read = *m.Read
		}
		e, err := e2ee.ParseEnvelope(m.Envelope)
		if err != nil {
			it.Err = privateline.E(op, err)
			continue
		}
		if o.onlyGroup != "" && e.Header.Group != o.onlyGroup {
			it.Err = privateline.E(op, privateline.Forbidden, "the server filed the message under the wrong group")
			continue
		}
		envs[i] = e
		h := &e.Header
		it.ID, it.From, it.To, it.SentAt, it.Group, it.Epoch = h.ID, h.From, slices.Clone(h.To), h.SentAt, h.Group, h.Epoch
		if (h.From == s.address) != it.Outgoing {
			it.Err = privateline.E(op, privateline.Forbidden, "the server filed the message under the wrong direction")
			envs[i] = nil
			continue
		}
		if h.From != s.address {
			senders = append(senders, h.From)
		}
	}
	if err := o.loadPins(ctx, senders); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := items[:0]
	for i := range items {
		it := items[i]
		if e := envs[i]; e != nil {
			key := string(e.Header.From) + "\x00" + e.Header.ID
			if seen[key] {
				continue // a replay (§7.6)
			}
			seen[key] = true
			if e.Header.IsGroup() {
				g, err := o.group(ctx, e.Header.Group, e.Header.Epoch)
				if err != nil {
					return nil, err
				}
				it.Message, it.KeyChanged, it.Err = s.openGroup(ctx, o, g, e)
			} else {
				it.Message, it.KeyChanged, it.Err = o.open(ctx, e)
			}
		}
		out = append(out, it)
	}
	return out, nil
}

// opener opens one page's envelopes, looking each address up once.
type opener struct {
	s         *Session
	op        string
	keys      *e2ee.PrivateKeys
	pins      e2ee.Pins
	bundles   map[privateline.Address]*e2ee.KeyBundle
	lookupErr map[privateline.Address]error
	// onlyGroup, if set, is the one group whose messages the page may
	// hold (GroupMessages).
	onlyGroup string
	// groups are the groups of the group messages opened, as fetched;
	// a group this account is no longer in is a stub with only its id
	// (its messages open with the keys still held, if any).
	groups map[string]*Group
}

// group returns the group id for a message of epoch: the one fetched
// before unless that is older than the message, else fetched now. A group
// the server no longer shows this account is a stub with only its id.
func (o *opener) group(ctx context.Context, id string, epoch int64) (*Group, error) {
	if g, ok := o.groups[id]; ok && (g.Epoch >= epoch || g.Epoch == 0) {
		return g, nil
	}
	g, err := o.s.Group(ctx, id)
	if privateline.Is(privateline.NotExist, err) {
		g, err = &Group{ID: id}, nil
	}
	if err != nil {
		return nil, err
	}
	o.groups[id] = g
	return g, nil
}

func (o *opener) bundle(ctx context.Context, a privateline.Address) (*e2ee.KeyBundle, error) {
	if a == o.s.address {
		return o.s.Bundle(), nil
	}
	if b, ok := o.bundles[a]; ok {
		return b, nil
	}
	if err, ok := o.lookupErr[a]; ok {
		return nil, err
	}
	b, err := o.s.PublicKey(ctx, a)
	if err != nil {
		o.lookupErr[a] = err
		return nil, err
	}
	o.bundles[a] = b
	return b, nil
}

// loadPins reads the pins and pins the senders seen for the first time.
func (o *opener) loadPins(ctx context.Context, senders []privateline.Address) error {
	p, err := o.s.GetPins(ctx)
	if err != nil {
		return err
	}
	var fresh []*e2ee.KeyBundle
	slices.Sort(senders)
	for _, a := range slices.Compact(senders) {
		if _, ok := p.Pins[a]; ok {
			continue
		}
		if b, err := o.bundle(ctx, a); err == nil {
			fresh = append(fresh, b)
		}
	}
	if len(fresh) > 0 {
		if p, err = o.s.pinFirstUse(ctx, fresh); err != nil {
			return err
		}
	}
	o.pins = p.Pins
	return nil
}

func (o *opener) open(ctx context.Context, e *e2ee.Envelope) (*e2ee.Message, bool, error) {
	h := &e.Header
	sender, err := o.bundle(ctx, h.From)
	if err != nil {
		return nil, false, privateline.E(o.op, "cannot look up the sender "+string(h.From), err)
	}
	if h.From != o.s.address {
		pin, ok := o.pins[h.From]
		if !ok {
			return nil, false, privateline.E(o.op, privateline.Unavailable, "the sender "+string(h.From)+" could not be pinned")
		}
		if err := e2ee.CheckPinned(pin.IdentityKey, sender); err != nil {
			return nil, true, privateline.E(o.op, privateline.Forbidden, "the identity key of "+string(h.From)+" changed; verify it to read their messages", err)
		}
	}
	// The wrapped keys must be those of the recipients' verified bundles.
	// This account's own messages are vouched for by its own signature
	// (and stay readable after a recipient's key change).
	var recipients []*e2ee.KeyBundle
	for _, a := range h.To {
		if h.From == o.s.address {
			break
		}
		b, err := o.bundle(ctx, a)
		if err != nil {
			return nil, false, privateline.E(o.op, "cannot look up the recipient "+string(a), err)
		}
		recipients = append(recipients, b)
	}
	m, err := e2ee.OpenDirect(e, o.keys, sender, e2ee.OpenOptions{Now: o.s.c.now(), Recipients: recipients})
	if err != nil {
		return nil, false, privateline.E(o.op, err)
	}
	return m, false, nil
}

// MarkRead marks a received message read (POST /api/messages/{id}/read).
func (s *Session) MarkRead(ctx context.Context, id string) error {
	return s.messageCall(ctx, "client.Session.MarkRead", http.MethodPost, id, "/read")
}

// Delete deletes a message (DELETE /api/messages/{id}): for everyone if
// this account sent it, else this account's copy.
func (s *Session) Delete(ctx context.Context, id string) error {
	return s.messageCall(ctx, "client.Session.Delete", http.MethodDelete, id, "")
}

func (s *Session) messageCall(ctx context.Context, op, method, id, suffix string) error {
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return privateline.E(op, privateline.Invalid, "a message id is 32 lower-case hex digits")
	}
	r, err := s.do(ctx, op, &request{method: method, path: "/api/messages/" + id + suffix})
	if err != nil {
		return err
	}
	return expect(op, r, http.StatusNoContent)
}

// Unread is the account's unread counters (GET /api/unread_count).
type Unread struct {
	Unread int64 `json:"unread"` // all
	Direct int64 `json:"direct"`
	Groups int64 `json:"groups"`
}

// UnreadCount fetches the unread counters.
func (s *Session) UnreadCount(ctx context.Context) (*Unread, error) {
	const op = "client.Session.UnreadCount"
	r, err := s.do(ctx, op, &request{method: http.MethodGet, path: "/api/unread_count"})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, err
	}
	var u Unread
	if err := decode(op, r, &u); err != nil {
		return nil, err
	}
	return &u, nil
}
