package client

import (
	"bytes"
	"context"
	"net/http"
	"strconv"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// PinnedKeys is the account's pinned-keys blob, opened, at a version.
type PinnedKeys struct {
	Pins    e2ee.Pins
	Version uint64 // 0 before the first write
}

// maxPinAttempts bounds UpdatePins' read-merge-write rounds.
const maxPinAttempts = 8

func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

// getPinsBlob fetches the sealed blob and its version.
func (s *Session) getPinsBlob(ctx context.Context, op string) ([]byte, uint64, error) {
	r, err := s.do(ctx, op, &request{method: http.MethodGet, path: "/api/pinned_keys"})
	if err != nil {
		return nil, 0, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, 0, err
	}
	var pr struct {
		Version uint64 `json:"version"`
		Blob    []byte `json:"blob"`
	}
	if err := decode(op, r, &pr); err != nil {
		return nil, 0, err
	}
	if tag := r.header.Get("ETag"); tag != "" && tag != etag(pr.Version) {
		return nil, 0, privateline.E(op, privateline.Invalid, "the pinned keys' ETag does not match their version")
	}
	return pr.Blob, pr.Version, nil
}

// GetPins fetches and opens the pinned-keys blob (GET /api/pinned_keys).
// Before the first write it is empty at version 0. A blob that does not
// decrypt under the session's KEK is refused (decrypt_failed). The session
// must be unlocked.
func (s *Session) GetPins(ctx context.Context) (*PinnedKeys, error) {
	const op = "client.Session.GetPins"
	_, kek, err := s.unlocked(op)
	if err != nil {
		return nil, err
	}
	blob, v, err := s.getPinsBlob(ctx, op)
	if err != nil {
		return nil, err
	}
	p, err := e2ee.OpenPins(kek, s.address, blob)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return &PinnedKeys{Pins: p, Version: v}, nil
}

// PutPins seals pins under the session's KEK and stores them (PUT
// /api/pinned_keys) as the successor of version, the version they were
// read at, and returns the new version. If another device wrote since,
// the answer is a version conflict (Exist, IsVersionConflict): read the
// pins again, merge (e2ee.MergePins) and put again. The session must be
// unlocked.
func (s *Session) PutPins(ctx context.Context, pins e2ee.Pins, version uint64) (uint64, error) {
	const op = "client.Session.PutPins"
	_, kek, err := s.unlocked(op)
	if err != nil {
		return 0, err
	}
	blob, err := e2ee.SealPins(nil, kek, s.address, pins)
	if err != nil {
		return 0, privateline.E(op, err)
	}
	body, err := jsonBody(op, map[string]string{"blob": b64.EncodeToString(blob)})
	if err != nil {
		return 0, err
	}
	r, err := s.do(ctx, op, &request{method: http.MethodPut, path: "/api/pinned_keys", body: body, ifMatch: etag(version)})
	if err != nil {
		return 0, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		if r.status == http.StatusPreconditionFailed {
			return 0, privateline.E(op, privateline.Exist, "the pinned keys changed on another device since version "+strconv.FormatUint(version, 10)+"; read them again, merge and retry", err)
		}
		return 0, err
	}
	var vr struct {
		Version uint64 `json:"version"`
	}
	if err := decode(op, r, &vr); err != nil {
		return 0, err
	}
	return vr.Version, nil
}

// UpdatePins reads the pins, lets f change them, and writes them back; on
// a version conflict it reads the newer pins and applies f to them again,
// so f must be a change that can be re-applied ("mark bob verified"), not
// a snapshot. Nothing is written when f changes nothing. It returns the
// pins as stored.
func (s *Session) UpdatePins(ctx context.Context, f func(e2ee.Pins) error) (*PinnedKeys, error) {
	const op = "client.Session.UpdatePins"
	var last error
	for range maxPinAttempts {
		cur, err := s.GetPins(ctx)
		if err != nil {
			return nil, err
		}
		before, err := e2ee.EncodePins(cur.Pins)
		if err != nil {
			return nil, privateline.E(op, err)
		}
		next := cur.Pins.Clone()
		if err := f(next); err != nil {
			return nil, err
		}
		after, err := e2ee.EncodePins(next)
		if err != nil {
			return nil, privateline.E(op, err)
		}
		if bytes.Equal(before, after) {
			return cur, nil
		}
		v, err := s.PutPins(ctx, next, cur.Version)
		if IsVersionConflict(err) {
			last = err
			continue
		}
		if err != nil {
			return nil, err
		}
		return &PinnedKeys{Pins: next, Version: v}, nil
	}
	return nil, privateline.E(op, "the pinned keys kept changing on another device", last)
}

// resealPins writes pins, read under oldKEK, under the session's new KEK
// after a password change, merging with anything written meanwhile
// (sealed under either KEK).
func (s *Session) resealPins(ctx context.Context, op string, pins *PinnedKeys, oldKEK *e2ee.KEK) error {
	p, version := pins.Pins, pins.Version
	var last error
	for range maxPinAttempts {
		_, err := s.PutPins(ctx, p, version)
		if !IsVersionConflict(err) {
			return err
		}
		last = err
		blob, v, err := s.getPinsBlob(ctx, op)
		if err != nil {
			return err
		}
		_, kek, err := s.unlocked(op)
		if err != nil {
			return err
		}
		theirs, err := e2ee.OpenPins(kek, s.address, blob)
		if err != nil {
			if theirs, err = e2ee.OpenPins(oldKEK, s.address, blob); err != nil {
				return privateline.E(op, err)
			}
		}
		p, version = e2ee.MergePins(p, theirs), v
	}
	return last
}
