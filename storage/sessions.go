package storage

import (
	"encoding/binary"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/privateline/privateline"
)

// Session is one login: a refresh-token family. Refresh tokens of a session
// are MACs of (session id, generation) under the session's own key, so the
// server can recognise any earlier generation of the family and treat its
// reuse as theft.
type Session struct {
	ID        ID                 `json:"id"`
	UserID    ID                 `json:"user_id"`
	Key       privateline.Secret `json:"key"`        // refresh-token MAC key
	Gen       uint64             `json:"gen"`        // current refresh generation
	CreatedAt time.Time          `json:"created_at"` // login time
	ExpiresAt time.Time          `json:"expires_at"` // current refresh token's expiry
}

// sessionJSON mirrors Session so its key is stored (Secret marshals redacted).
type sessionJSON struct {
	Session
	Key []byte `json:"key"`
}

func (d *DB) putSession(b *pebble.Batch, s *Session) error {
	return d.setJSON(b, tSession.key(s.ID[:]), sessionJSON{Session: *s, Key: s.Key})
}

// CreateSession stores a new session.
func (d *DB) CreateSession(s *Session) error {
	const op = "storage.CreateSession"
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.get(tUser.key(s.UserID[:])); err != nil {
		return privateline.E(op, err)
	}
	b := d.db.NewBatch()
	if err := d.putSession(b, s); err != nil {
		b.Close()
		return privateline.E(op, err)
	}
	d.setSealed(b, tUserSessions.key(s.UserID[:], s.ID[:]), nil)
	return d.commit(b)
}

// SessionByID returns a live session; a revoked or unknown one is NotExist.
func (d *DB) SessionByID(id ID) (*Session, error) {
	var sj sessionJSON
	if err := d.getJSON(tSession.key(id[:]), &sj); err != nil {
		return nil, privateline.E("storage.SessionByID", err)
	}
	s := sj.Session
	s.Key = sj.Key
	return &s, nil
}

// RotateSession moves a session from generation gen to gen+1 with a new
// expiry, if it is still at gen. If it has moved on already, the session is
// revoked (a refresh token was used twice) and an Unauthenticated error
// returned.
func (d *DB) RotateSession(id ID, gen uint64, expires time.Time) (*Session, error) {
	const op = "storage.RotateSession"
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.SessionByID(id)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if s.Gen != gen {
		b := d.db.NewBatch()
		d.deleteSessionLocked(b, s)
		if err := d.commit(b); err != nil {
			return nil, privateline.E(op, err)
		}
		return nil, privateline.E(op, privateline.Unauthenticated, "refresh token reused; session revoked")
	}
	s.Gen++
	s.ExpiresAt = expires
	b := d.db.NewBatch()
	if err := d.putSession(b, s); err != nil {
		b.Close()
		return nil, privateline.E(op, err)
	}
	if err := d.commit(b); err != nil {
		return nil, privateline.E(op, err)
	}
	return s, nil
}

// RevokeSession ends a session and denies the access-token id until its
// expiry, in one batch. A session already gone is not an error.
func (d *DB) RevokeSession(id ID, tokenID string, tokenExpiry time.Time) error {
	const op = "storage.RevokeSession"
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.db.NewBatch()
	if s, err := d.SessionByID(id); err == nil {
		d.deleteSessionLocked(b, s)
	} else if !privateline.Is(privateline.NotExist, err) {
		b.Close()
		return privateline.E(op, err)
	}
	d.denyTokenLocked(b, tokenID, tokenExpiry)
	return d.commit(b)
}

// RevokeUserSessions ends every session of the user and denies the calling
// access token's id.
func (d *DB) RevokeUserSessions(userID ID, tokenID string, tokenExpiry time.Time) error {
	const op = "storage.RevokeUserSessions"
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.db.NewBatch()
	if err := d.deleteSessionsLocked(b, userID, ID{}); err != nil {
		b.Close()
		return privateline.E(op, err)
	}
	d.denyTokenLocked(b, tokenID, tokenExpiry)
	return d.commit(b)
}

// UserSessions lists the ids of a user's live sessions.
func (d *DB) UserSessions(userID ID) ([]ID, error) {
	var ids []ID
	prefix := tUserSessions.key(userID[:])
	err := d.scanKeys(prefix, func(k, _ []byte) error {
		var id ID
		copy(id[:], k[len(prefix):])
		ids = append(ids, id)
		return nil
	})
	return ids, err
}

func (d *DB) deleteSessionLocked(b *pebble.Batch, s *Session) {
	_ = b.Delete(tSession.key(s.ID[:]), nil)
	_ = b.Delete(tUserSessions.key(s.UserID[:], s.ID[:]), nil)
}

// deleteSessionsLocked adds the deletion of all the user's sessions but keep
// to b.
func (d *DB) deleteSessionsLocked(b *pebble.Batch, userID, keep ID) error {
	ids, err := d.UserSessions(userID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if id == keep {
			continue
		}
		_ = b.Delete(tSession.key(id[:]), nil)
		_ = b.Delete(tUserSessions.key(userID[:], id[:]), nil)
	}
	return nil
}

func (d *DB) denyTokenLocked(b *pebble.Batch, tokenID string, exp time.Time) {
	if tokenID == "" {
		return
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(exp.Unix()))
	d.setSealed(b, tDeniedToken.key([]byte(tokenID)), v[:])
}

// TokenDenied reports whether an access-token id has been revoked.
func (d *DB) TokenDenied(tokenID string) (bool, error) {
	_, err := d.get(tDeniedToken.key([]byte(tokenID)))
	if err == nil {
		return true, nil
	}
	if privateline.Is(privateline.NotExist, err) {
		return false, nil
	}
	return false, privateline.E("storage.TokenDenied", err)
}

// Sweep deletes denied token ids and sessions that have expired by now, and
// returns how many records it removed.
func (d *DB) Sweep(now time.Time) (int, error) {
	const op = "storage.Sweep"
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.db.NewBatch()
	n := 0
	err := d.scanKeys([]byte{tDeniedToken.prefix}, func(k, v []byte) error {
		pt, err := d.seal.open(k, v)
		if err != nil || len(pt) != 8 || int64(binary.BigEndian.Uint64(pt)) < now.Unix() {
			n++
			return b.Delete(k, nil)
		}
		return nil
	})
	if err == nil {
		err = d.scanKeys([]byte{tSession.prefix}, func(k, _ []byte) error {
			var id ID
			copy(id[:], k[1:])
			s, err := d.SessionByID(id)
			if err != nil {
				return err
			}
			if now.After(s.ExpiresAt) {
				n++
				d.deleteSessionLocked(b, s)
			}
			return nil
		})
	}
	if err != nil {
		b.Close()
		return 0, privateline.E(op, err)
	}
	if n == 0 {
		b.Close()
		return 0, nil
	}
	return n, d.commit(b)
}
