package clientapi

import (
	"net/http"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/storage"
)

// Retention: how long a user keeps the messages of a conversation.
//
// Each user has an account default (PUT /api/account-settings
// "default_retention_seconds") and may set a per-conversation value
// (PUT /api/conversations/{address}/retention), which wins over the
// default; 0 means "keep until deleted". A new direct message expires at
// the earliest of its header's expires_at and, for each participant (the
// sender for each recipient, each local recipient for the sender), now +
// that participant's retention for the other party: the strictest wins.
// Retention is fixed when a message is sent; changing it later does not
// change messages already stored.

// RetentionStore is what the retention routes need from storage.
type RetentionStore interface {
	SetConversationRetention(user storage.ID, peer privateline.Address, seconds *int64) error
	ConversationRetention(user storage.ID, peer privateline.Address) (time.Duration, bool, error)
}

type noRetention struct{}

var errNoRetention = privateline.E("clientapi", privateline.Unavailable, "retention settings are not available")

func (noRetention) SetConversationRetention(storage.ID, privateline.Address, *int64) error {
	return errNoRetention
}
func (noRetention) ConversationRetention(storage.ID, privateline.Address) (time.Duration, bool, error) {
	return 0, false, nil
}

// MaxRetentionSeconds caps a retention setting (365 days).
const MaxRetentionSeconds = 365 * 24 * 60 * 60

// checkRetention validates a retention in seconds.
func checkRetention(field string, n int64) error {
	if n < 0 || n > MaxRetentionSeconds {
		return invalid(field + " must be 0 (keep until deleted) to 31536000 seconds (365 days)")
	}
	return nil
}

// retentionFor is u's retention for the conversation with peer: the
// conversation's setting, else the account default; 0: none.
func (a *API) retentionFor(u *storage.User, peer privateline.Address) (time.Duration, error) {
	d, ok, err := a.retention.ConversationRetention(u.ID, peer)
	if err != nil {
		return 0, err
	}
	if ok {
		return d, nil
	}
	return u.DefaultRetention(), nil
}

// effectiveExpiry is a new direct message's expiry (see above): the
// earliest of the header's and of every participant's retention.
func (a *API) effectiveExpiry(sender *storage.User, from privateline.Address, rcpts []*storage.User, addrs []privateline.Address, header, now time.Time) (time.Time, error) {
	exp := header
	limit := func(d time.Duration) {
		if d <= 0 {
			return
		}
		if t := now.Add(d); exp.IsZero() || t.Before(exp) {
			exp = t
		}
	}
	for i, r := range rcpts {
		d, err := a.retentionFor(sender, addrs[i])
		if err != nil {
			return time.Time{}, err
		}
		limit(d)
		if r == nil {
			continue // a user of another server: their own retention is not known here
		}
		if d, err = a.retentionFor(r, from); err != nil {
			return time.Time{}, err
		}
		limit(d)
	}
	return exp, nil
}

// conversationPeer parses the {address} of a retention route.
func (a *API) conversationPeer(c *call) (privateline.Address, *storage.User, error) {
	peer := privateline.Address(c.params.ByName("address"))
	if _, _, err := peer.Split(); err != nil {
		return "", nil, invalid("the path must name an address such as bob@chat.example.org")
	}
	u, err := a.caller(c)
	if err != nil {
		return "", nil, err
	}
	if peer == privateline.MakeAddress(u.Username, a.cfg.ServerName) {
		return "", nil, invalid("a conversation is with someone else")
	}
	return peer, u, nil
}

type retentionResp struct {
	Address privateline.Address `json:"address"`
	// Seconds is the conversation's own setting; null: the account
	// default applies.
	Seconds   *int64 `json:"seconds"`
	Effective int64  `json:"effective_seconds"`
}

func (a *API) writeRetention(w http.ResponseWriter, u *storage.User, peer privateline.Address) error {
	d, ok, err := a.retention.ConversationRetention(u.ID, peer)
	if err != nil {
		return err
	}
	resp := retentionResp{Address: peer, Effective: int64(u.DefaultRetention() / time.Second)}
	if ok {
		s := int64(d / time.Second)
		resp.Seconds, resp.Effective = &s, s
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (a *API) getRetention(w http.ResponseWriter, r *http.Request, c *call) error {
	peer, u, err := a.conversationPeer(c)
	if err != nil {
		return err
	}
	return a.writeRetention(w, u, peer)
}

type retentionReq struct {
	Seconds *int64 `json:"seconds"`
}

func (a *API) putRetention(w http.ResponseWriter, r *http.Request, c *call) error {
	var req retentionReq
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	if req.Seconds == nil {
		return invalid(`"seconds" is required`)
	}
	n := *req.Seconds
	if err := checkRetention(`"seconds"`, n); err != nil {
		return err
	}
	peer, u, err := a.conversationPeer(c)
	if err != nil {
		return err
	}
	if err := a.retention.SetConversationRetention(u.ID, peer, &n); err != nil {
		return goneIsUnauthenticated(err)
	}
	return a.writeRetention(w, u, peer)
}

func (a *API) deleteRetention(w http.ResponseWriter, r *http.Request, c *call) error {
	peer, u, err := a.conversationPeer(c)
	if err != nil {
		return err
	}
	if err := a.retention.SetConversationRetention(u.ID, peer, nil); err != nil {
		return goneIsUnauthenticated(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
