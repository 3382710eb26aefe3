package storage

import (
	"time"

	"github.com/privateline/privateline"
)

// Retention: how long a user keeps the messages of a conversation.
//
//	'z' userID(16) peer(16)   seconds; peer is the conversation index's
//	                          HMAC of the other party's address (peerKey)
//
// A user's default for every conversation is User.DefaultRetentionSeconds.
// The client API computes a new message's expiry from them (the strictest
// of its participants wins); the store only keeps the settings.

type retentionRecord struct {
	Seconds int64 `json:"seconds"`
}

// SetConversationRetention sets user's retention for the conversation
// with peer (0: keep messages until deleted); nil returns the
// conversation to the user's default.
func (d *DB) SetConversationRetention(user ID, peer privateline.Address, seconds *int64) error {
	const op = "storage.SetConversationRetention"
	k := tRetention.key(user[:], d.peerKey(peer))
	unlock := d.lockStripes(user[:])
	defer unlock()
	if ok, err := d.exists(tUser.key(user[:])); err != nil || !ok {
		if err == nil {
			err = privateline.E(op, privateline.NotExist, "no such user")
		}
		return privateline.E(op, err)
	}
	b := d.db.NewBatch()
	if seconds == nil {
		if err := b.Delete(k, nil); err != nil {
			b.Close()
			return privateline.E(op, privateline.Internal, err)
		}
	} else if err := d.setJSON(b, k, retentionRecord{Seconds: *seconds}); err != nil {
		b.Close()
		return privateline.E(op, err)
	}
	return d.commit(b)
}

// ConversationRetention returns user's retention setting for the
// conversation with peer, and whether there is one.
func (d *DB) ConversationRetention(user ID, peer privateline.Address) (time.Duration, bool, error) {
	var r retentionRecord
	err := d.getJSON(tRetention.key(user[:], d.peerKey(peer)), &r)
	if privateline.Is(privateline.NotExist, err) {
		return 0, false, nil
	} else if err != nil {
		return 0, false, privateline.E("storage.ConversationRetention", err)
	}
	return time.Duration(r.Seconds) * time.Second, true, nil
}
