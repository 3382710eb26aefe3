package clientapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/storage"
)

// MessageStore is what the direct-message routes need from storage
// (*storage.DB): the one Deliver path, mailbox pages, deletion, read state
// and the unread counters.
type MessageStore interface {
	Deliver(*storage.Delivery) (seq uint64, replay bool, err error)
	Mailbox(user storage.ID, q storage.MailQuery) ([]storage.MailItem, error)
	DeleteMessage(user storage.ID, msgID string, now time.Time) error
	MarkRead(user storage.ID, msgID string, now time.Time) error
	UnreadCounts(user storage.ID) (storage.Counters, error)
}

type noMessages struct{}

var errNoMessages = privateline.E("clientapi", privateline.Unavailable, "messaging is not available")

func (noMessages) Deliver(*storage.Delivery) (uint64, bool, error) { return 0, false, errNoMessages }
func (noMessages) Mailbox(storage.ID, storage.MailQuery) ([]storage.MailItem, error) {
	return nil, errNoMessages
}
func (noMessages) DeleteMessage(storage.ID, string, time.Time) error { return errNoMessages }
func (noMessages) MarkRead(storage.ID, string, time.Time) error      { return errNoMessages }
func (noMessages) UnreadCounts(storage.ID) (storage.Counters, error) {
	return storage.Counters{}, errNoMessages
}

// Paging of GET /api/messages.
const (
	defaultPage = 50
	maxPage     = 100
	maxOffset   = 100_000
	// maxSentAtSkew is how far in the future a header's sent_at may be.
	maxSentAtSkew = 10 * time.Minute
)

// Defaults of the per-user send limit.
const (
	DefaultMessageRatePerMinute = 120
	DefaultMessageBurst         = 60
)

// postMessage validates a direct envelope's routing header and delivers it
// to the local recipients' mailboxes and the sender's (one synced write);
// the answer comes after the commit. The envelope id is the idempotency
// key: a retry with the same bytes is answered 200 with the first
// delivery's sequence number, other content under the id is 409.
func (a *API) postMessage(w http.ResponseWriter, r *http.Request, c *call) error {
	body, err := readEnvelopeBody(r)
	if err != nil {
		return err
	}
	res, err := a.sendEnvelope(c.auth.UserID, body)
	if err != nil {
		return err
	}
	writeSent(w, res)
	return nil
}

// writeSent answers an accepted envelope: 201, or 200 for a replay.
func writeSent(w http.ResponseWriter, res *sent) {
	status := http.StatusCreated
	if res.replay {
		status = http.StatusOK
	}
	writeJSON(w, status, map[string]any{"id": res.id, "seq": res.seq})
}

// sent is what sendEnvelope did.
type sent struct {
	id     string
	seq    uint64 // the sender's sequence number
	replay bool   // the id and bytes were delivered before
	// relayTo: a group message from a member of another server, the
	// members on that server it is for (storage.Delivery.RelayTo).
	relayTo []privateline.Address
}

// sendEnvelope is the one path that accepts a direct envelope from a
// user, over POST /api/messages and the WebSocket alike: acceptEnvelope
// with the direct header and local recipients that exist.
func (a *API) sendEnvelope(user storage.ID, body []byte) (*sent, error) {
	return a.acceptEnvelope(user, body, envelope.Parse, a.routeDirect)
}

// routeDirect fills in a direct message's recipients — local users that
// exist, and users of other servers, whose servers get it through the
// federation outbox — and bounds its expiry by the strictest retention of
// the participants this server knows.
func (a *API) routeDirect(h *envelope.Header, d *storage.Delivery, u *storage.User, now time.Time) error {
	var rusers []*storage.User // for the retention rules (retention.go); nil for remote users
	for _, to := range h.To {
		name, server, _ := to.Split() // checked by envelope.Parse
		if server != a.cfg.ServerName {
			if a.remote == nil {
				return invalid(fmt.Sprintf("%s is on another server, and this server does not federate", to))
			}
			d.Remote = append(d.Remote, to)
			rusers = append(rusers, nil)
			continue
		}
		ru, err := a.store.UserByName(name)
		if privateline.Is(privateline.NotExist, err) {
			return privateline.E("clientapi.routeDirect", privateline.NotExist, "no such recipient: "+string(to))
		} else if err != nil {
			return err
		}
		d.Recipients = append(d.Recipients, storage.Recipient{ID: ru.ID, Address: to})
		rusers = append(rusers, ru)
	}
	var err error
	d.ExpiresAt, err = a.effectiveExpiry(u, d.Sender.Address, rusers, h.To, h.ExpiresAt, now)
	return err
}

// acceptEnvelope is the one send path of direct and group messages: the
// per-user send limit, the JSON shape, the routing header as parse reads
// it (from the sender, times), route filling in recipients and expiry, and
// the one Deliver write. body is the envelope as posted, already within
// envelope.MaxSize.
func (a *API) acceptEnvelope(user storage.ID, body []byte, parse func([]byte) (*envelope.Header, error),
	route func(h *envelope.Header, d *storage.Delivery, u *storage.User, now time.Time) error) (*sent, error) {
	return a.acceptEnvelopeFrom(storage.GroupMember{User: user}, body, parse, route)
}

// acceptEnvelopeFrom is acceptEnvelope for a sender that is a user of
// this server (by.User) or, for a group of this server, a member of
// another server whose server forwarded the message (by.Remote,
// by.Address; route gets no user).
func (a *API) acceptEnvelopeFrom(by storage.GroupMember, body []byte, parse func([]byte) (*envelope.Header, error),
	route func(h *envelope.Header, d *storage.Delivery, u *storage.User, now time.Time) error) (*sent, error) {
	const op = "clientapi.acceptEnvelope"
	user := by.User
	if !utf8.Valid(body) {
		return nil, invalid("the envelope is not valid UTF-8")
	}
	if err := checkJSONShape(body); err != nil {
		return nil, err
	}
	limitKey := user.String()
	if by.Remote {
		limitKey = "remote:" + string(by.Address)
	}
	if ok, after := a.msgLimit.allow(limitKey); !ok {
		return nil, &rateLimitError{after}
	}
	h, err := parse(body)
	if err != nil {
		return nil, err
	}
	var u *storage.User
	me := by.Address
	if !by.Remote {
		if u, err = a.store.UserByID(user); err != nil {
			return nil, goneIsUnauthenticated(err)
		}
		me = privateline.MakeAddress(u.Username, a.cfg.ServerName)
	}
	if h.From != me {
		return nil, privateline.E(op, privateline.Forbidden, `"from" must be your own address`)
	}
	now := a.now()
	if h.SentAt.After(now.Add(maxSentAtSkew)) {
		return nil, invalid(`"sent_at" is in the future`)
	}
	if !h.ExpiresAt.IsZero() && !h.ExpiresAt.After(now) {
		return nil, invalid(`"expires_at" has passed`)
	}
	d := &storage.Delivery{
		MsgID:        h.ID,
		Raw:          body,
		Sender:       storage.Recipient{ID: user, Address: me},
		ExpiresAt:    h.ExpiresAt,
		RemoteSender: by.Remote,
	}
	if err := route(h, d, u, now); err != nil {
		return nil, err
	}
	d.Files = h.Files // must be the sender's (Deliver checks)
	seq, replay, err := a.msgs.Deliver(d)
	if err != nil {
		switch {
		case errors.Is(err, storage.ErrUnknownFile):
			return nil, errUnknownFile
		case errors.Is(err, storage.ErrTombstoned):
			return nil, errTombstoned
		case errors.Is(err, storage.ErrStaleEpoch):
			return nil, errStaleEpoch
		}
		if privateline.Is(privateline.Exist, err) {
			return nil, privateline.E(op, privateline.Exist, "another message with this id exists")
		}
		return nil, err
	}
	return &sent{id: h.ID, seq: seq, replay: replay, relayTo: d.RelayTo}, nil
}

// readEnvelopeBody reads a JSON body of at most envelope.MaxSize bytes.
func readEnvelopeBody(r *http.Request) ([]byte, error) {
	return readJSONBody(r, envelope.MaxSize, "an envelope")
}

// readJSONBody reads a JSON body of at most max bytes (the limit the
// middleware set for the route); what names the body in the error.
func readJSONBody(r *http.Request, max int, what string) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, privateline.E("clientapi.readJSONBody", privateline.TooLarge, fmt.Sprintf("%s may be at most %d bytes", what, max))
		}
		return nil, invalid("could not read the request body")
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, errUnsupportedMediaType
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, errUnsupportedMediaType
	}
	return body, nil // sendEnvelope checks the bytes
}

type mailItem struct {
	Seq       uint64                 `json:"seq"`
	Envelope  json.RawMessage        `json:"envelope"`
	Direction string                 `json:"direction"` // "in" or "out"
	Read      *bool                  `json:"read,omitempty"`
	ReadBy    *[]privateline.Address `json:"read_by,omitempty"`
}

// newMailItem is a mailbox entry as GET /api/messages and the WebSocket
// show it.
func newMailItem(it *storage.MailItem) mailItem {
	m := mailItem{Seq: it.Seq, Envelope: json.RawMessage(it.Envelope), Direction: "in"}
	if it.Out {
		m.Direction = "out"
		readBy := it.ReadBy
		if readBy == nil {
			readBy = []privateline.Address{}
		}
		m.ReadBy = &readBy
	} else {
		read := it.Read
		m.Read = &read
	}
	return m
}

// getMessages answers a page of the caller's mailbox.
func (a *API) getMessages(w http.ResponseWriter, r *http.Request, c *call) error {
	mq, err := a.mailQuery(r, true)
	if err != nil {
		return err
	}
	return a.writeMailbox(w, c, mq)
}

// mailQuery reads the paging parameters limit, offset, after and, if
// withOK, with.
func (a *API) mailQuery(r *http.Request, withOK bool) (storage.MailQuery, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return storage.MailQuery{}, invalid("malformed query string")
	}
	mq := storage.MailQuery{Limit: defaultPage, Now: a.now()}
	for k, vs := range q {
		if len(vs) != 1 {
			return mq, invalid("query parameter " + strconv.Quote(k) + " may appear once")
		}
		v := vs[0]
		switch k {
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxPage {
				return mq, invalid(fmt.Sprintf(`"limit" must be 1 to %d`, maxPage))
			}
			mq.Limit = n
		case "offset":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxOffset {
				return mq, invalid(fmt.Sprintf(`"offset" must be 0 to %d`, maxOffset))
			}
			mq.Offset = n
		case "after":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return mq, invalid(`"after" must be a sequence number`)
			}
			mq.After, mq.HasAfter = n, true
		case "with":
			if !withOK {
				return mq, invalid("unknown query parameter " + strconv.Quote(k))
			}
			if _, _, err := privateline.Address(v).Split(); err != nil {
				return mq, invalid(`"with" must be an address`)
			}
			mq.With = privateline.Address(v)
		default:
			return mq, invalid("unknown query parameter " + strconv.Quote(k))
		}
	}
	return mq, nil
}

// writeMailbox answers a page of the caller's mailbox.
func (a *API) writeMailbox(w http.ResponseWriter, c *call, mq storage.MailQuery) error {
	items, err := a.msgs.Mailbox(c.auth.UserID, mq)
	if err != nil {
		return err
	}
	out := make([]mailItem, 0, len(items))
	for i := range items {
		out = append(out, newMailItem(&items[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out})
	return nil
}

// deleteMessage deletes a message for everyone (its sender) or removes the
// caller's own copy (a recipient); anyone else gets 404.
func (a *API) deleteMessage(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := a.msgs.DeleteMessage(c.auth.UserID, c.params.ByName("id"), a.now()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// readMessage marks the caller's copy of a received message read.
func (a *API) readMessage(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := a.msgs.MarkRead(c.auth.UserID, c.params.ByName("id"), a.now()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// getUnreadCount answers the caller's unread counters.
func (a *API) getUnreadCount(w http.ResponseWriter, r *http.Request, c *call) error {
	n, err := a.msgs.UnreadCounts(c.auth.UserID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"unread": n.Unread, "direct": n.Direct, "groups": n.Groups})
	return nil
}
