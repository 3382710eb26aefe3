package storage

import (
	"crypto/hmac"
	"crypto/sha256"
	"slices"
	"time"

	"github.com/privateline/privateline"
)

// Push tokens: the devices a later push service notifies.
//
//	'k' userID(16) HMAC(nameKey, "push-token" 0x00 token)[:16]   token,
//	                                   platform, created_at (sealed)
//
// The token itself is only in the sealed value. A user keeps at most
// MaxPushTokens; adding one more forgets the one least recently
// registered, so a token its device registers again on every start is
// never the one to go while that device is in use. They go with the
// account.

// MaxPushTokens bounds a user's push tokens.
const MaxPushTokens = 10

// PushToken is one registered device.
type PushToken struct {
	Token     string    `json:"token"`
	Platform  string    `json:"platform"` // "ios", "android" or "web"
	CreatedAt time.Time `json:"created_at"`
	// RefreshedAt is when the token was last registered (its device
	// registers it again on every start).
	RefreshedAt time.Time `json:"refreshed_at,omitzero"`
}

func (d *DB) pushTokenKey(user ID, token string) []byte {
	m := hmac.New(sha256.New, d.nameKey)
	m.Write([]byte("push-token\x00"))
	m.Write([]byte(token))
	return tPushToken.key(user[:], m.Sum(nil)[:16])
}

// AddPushToken registers a token for user, at pt.CreatedAt; it reports
// false when the token was registered already (its platform and
// RefreshedAt are updated, CreatedAt kept). Beyond MaxPushTokens the token
// least recently registered is forgotten.
func (d *DB) AddPushToken(user ID, pt PushToken) (created bool, err error) {
	const op = "storage.AddPushToken"
	unlock := d.lockStripes(user[:])
	defer unlock()
	if ok, err := d.exists(tUser.key(user[:])); err != nil || !ok {
		if err == nil {
			err = privateline.E(op, privateline.NotExist, "no such user")
		}
		return false, privateline.E(op, err)
	}
	k := d.pushTokenKey(user, pt.Token)
	b := d.db.NewBatch()
	var cur PushToken
	switch err := d.getJSON(k, &cur); {
	case err == nil:
		pt.RefreshedAt = pt.CreatedAt
		pt.CreatedAt = cur.CreatedAt
	case privateline.Is(privateline.NotExist, err):
		created = true
		all, keys, err := d.pushTokens(user)
		if err != nil {
			b.Close()
			return false, privateline.E(op, err)
		}
		for len(all) >= MaxPushTokens {
			oldest := 0
			for i := range all {
				if all[i].RefreshedAt.Before(all[oldest].RefreshedAt) {
					oldest = i
				}
			}
			if err := b.Delete(keys[oldest], nil); err != nil {
				b.Close()
				return false, privateline.E(op, privateline.Internal, err)
			}
			all, keys = slices.Delete(all, oldest, oldest+1), slices.Delete(keys, oldest, oldest+1)
		}
	default:
		b.Close()
		return false, privateline.E(op, err)
	}
	if pt.RefreshedAt.IsZero() {
		pt.RefreshedAt = pt.CreatedAt
	}
	if err := d.setJSON(b, k, pt); err != nil {
		b.Close()
		return false, privateline.E(op, err)
	}
	return created, d.commit(b)
}

// RemovePushToken removes one of user's tokens; a token the user does not
// have is NotExist.
func (d *DB) RemovePushToken(user ID, token string) error {
	const op = "storage.RemovePushToken"
	unlock := d.lockStripes(user[:])
	defer unlock()
	k := d.pushTokenKey(user, token)
	ok, err := d.exists(k)
	if err != nil {
		return privateline.E(op, err)
	}
	if !ok {
		return privateline.E(op, privateline.NotExist, "no such push token")
	}
	b := d.db.NewBatch()
	if err := b.Delete(k, nil); err != nil {
		b.Close()
		return privateline.E(op, privateline.Internal, err)
	}
	return d.commit(b)
}

// PushTokens returns user's tokens, oldest first.
func (d *DB) PushTokens(user ID) ([]PushToken, error) {
	all, _, err := d.pushTokens(user)
	if err != nil {
		return nil, privateline.E("storage.PushTokens", err)
	}
	slices.SortStableFunc(all, func(a, b PushToken) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return all, nil
}

func (d *DB) pushTokens(user ID) ([]PushToken, [][]byte, error) {
	var all []PushToken
	var keys [][]byte
	err := d.scanKeys(tPushToken.key(user[:]), func(k, _ []byte) error {
		var pt PushToken
		if err := d.getJSON(k, &pt); err != nil {
			return err
		}
		if pt.RefreshedAt.IsZero() { // registered before refreshes were kept
			pt.RefreshedAt = pt.CreatedAt
		}
		all = append(all, pt)
		keys = append(keys, slices.Clone(k))
		return nil
	})
	return all, keys, err
}
