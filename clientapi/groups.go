package clientapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/storage"
)

// GroupStore is what the group routes need from storage (*storage.DB).
type GroupStore interface {
	CreateGroup(server privateline.ServerName, owner storage.GroupMember, members []storage.GroupMember, meta string, now time.Time) (*storage.Group, error)
	GroupFor(id string, user storage.ID) (*storage.Group, error)
	UserGroups(user storage.ID) ([]*storage.Group, error)
	UpdateGroup(storage.ChangeGroup) (*storage.Group, error)
	PutGroupKey(*storage.GroupKeyUpload) (replay bool, err error)
	GroupKey(id string, epoch int64, user storage.ID) (signed []byte, keyID, wrap string, err error)
	// GroupForAddress: a group of this server whose member a is (the
	// requester of a forwarded change, fedgroups.go).
	GroupForAddress(id string, a privateline.Address) (*storage.Group, error)
	// RaiseGroupEpochByMember: a member's client held a key of an epoch
	// the group has not passed (lost epochs, storage/fedepochs.go).
	RaiseGroupEpochByMember(id string, user storage.ID, seen int64) (bool, *storage.Group, error)
}

type noGroups struct{}

var errNoGroups = privateline.E("clientapi", privateline.Unavailable, "groups are not available")

func (noGroups) CreateGroup(privateline.ServerName, storage.GroupMember, []storage.GroupMember, string, time.Time) (*storage.Group, error) {
	return nil, errNoGroups
}
func (noGroups) GroupFor(string, storage.ID) (*storage.Group, error)     { return nil, errNoGroups }
func (noGroups) UserGroups(storage.ID) ([]*storage.Group, error)         { return nil, errNoGroups }
func (noGroups) UpdateGroup(storage.ChangeGroup) (*storage.Group, error) { return nil, errNoGroups }
func (noGroups) PutGroupKey(*storage.GroupKeyUpload) (bool, error)       { return false, errNoGroups }
func (noGroups) GroupKey(string, int64, storage.ID) ([]byte, string, string, error) {
	return nil, "", "", errNoGroups
}
func (noGroups) GroupForAddress(string, privateline.Address) (*storage.Group, error) {
	return nil, errNoGroups
}
func (noGroups) RaiseGroupEpochByMember(string, storage.ID, int64) (bool, *storage.Group, error) {
	return false, nil, errNoGroups
}

// Group-route errors with their own codes.
var (
	errStaleEpoch     = &statusError{http.StatusConflict, "stale_epoch", "the group has moved to another epoch; fetch the group and its key, then retry"}
	errMembersChanged = &statusError{http.StatusConflict, "members_changed", "the members or their current keys differ from the document's; fetch them and rekey"}
	// groupIDRE is the charset of spec/e2ee.md §11 for ids.
	groupIDRE = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)
)

// storeErr maps the storage errors the group routes answer precisely.
func storeErr(err error) error {
	switch {
	case errors.Is(err, storage.ErrStaleEpoch):
		return errStaleEpoch
	case errors.Is(err, storage.ErrMembersChanged):
		return errMembersChanged
	}
	return err
}

type groupMemberJSON struct {
	Address privateline.Address `json:"address"`
	Role    string              `json:"role"`
}

type groupJSON struct {
	ID        string            `json:"id"`
	Epoch     int64             `json:"epoch"`
	Members   []groupMemberJSON `json:"members"`
	Meta      string            `json:"meta,omitempty"`
	Retention int64             `json:"retention_seconds"`
	CreatedAt time.Time         `json:"created_at"`
}

func groupOut(g *storage.Group) groupJSON {
	out := groupJSON{ID: g.ID, Epoch: g.Epoch, Meta: g.Meta, Retention: g.Retention, CreatedAt: g.CreatedAt, Members: []groupMemberJSON{}}
	for _, m := range g.Members {
		out.Members = append(out.Members, groupMemberJSON{m.Address, m.Role})
	}
	return out
}

// member returns the calling user's group or NotExist; every group route
// starts here, so a non-member learns nothing about a group.
func (a *API) member(c *call) (*storage.Group, error) {
	return a.grps.GroupFor(c.params.ByName("id"), c.auth.UserID)
}

// groupMember resolves an address to a new group member: a user of this
// server, or, if this server federates, a user of another server (their
// server checks nothing here; their keys are checked when the group's key
// is distributed).
func (a *API) groupMember(addr privateline.Address) (storage.GroupMember, error) {
	name, server, err := addr.Split()
	if err != nil {
		return storage.GroupMember{}, invalid(fmt.Sprintf("%q is not an address", addr))
	}
	if server != a.cfg.ServerName {
		if a.remote == nil || a.remoteGroups == nil {
			return storage.GroupMember{}, invalid(fmt.Sprintf("%s is on another server, and this server does not federate", addr))
		}
		return storage.GroupMember{Address: addr, Remote: true}, nil
	}
	u, err := a.store.UserByName(name)
	if privateline.Is(privateline.NotExist, err) {
		return storage.GroupMember{}, privateline.E("clientapi.groupMember", privateline.NotExist, "no such user: "+string(addr))
	} else if err != nil {
		return storage.GroupMember{}, err
	}
	return storage.GroupMember{User: u.ID, Address: addr}, nil
}

func checkMeta(meta string) error {
	if meta == "" {
		return nil
	}
	if len(meta) > storage.MaxGroupMeta {
		return privateline.E("clientapi.checkMeta", privateline.TooLarge, fmt.Sprintf(`"meta" may be at most %d base64 characters`, storage.MaxGroupMeta))
	}
	_, err := decodeB64("meta", meta, 1, storage.MaxGroupMeta)
	return err
}

// createGroup makes a group with the caller as owner.
func (a *API) createGroup(w http.ResponseWriter, r *http.Request, c *call) error {
	var req struct {
		Members []privateline.Address `json:"members"`
		Meta    string                `json:"meta"`
	}
	if err := decodeJSON(r, &req, true); err != nil {
		return err
	}
	if err := checkMeta(req.Meta); err != nil {
		return err
	}
	if len(req.Members)+1 > storage.MaxGroupMembers {
		return invalid(fmt.Sprintf("a group has at most %d members", storage.MaxGroupMembers))
	}
	u, err := a.caller(c)
	if err != nil {
		return err
	}
	me := privateline.MakeAddress(u.Username, a.cfg.ServerName)
	var ms []storage.GroupMember
	for _, addr := range req.Members {
		if addr == me {
			return invalid("the creator is a member already; do not list yourself")
		}
		m, err := a.groupMember(addr)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	// A group id is <32 hex>@<server name>; it must fit the id charset.
	if !groupIDRE.MatchString("00000000000000000000000000000000@" + string(a.cfg.ServerName)) {
		return privateline.E("clientapi.createGroup", privateline.Unavailable, "this server's name cannot be part of a group id (IPv6 literal or over 95 characters)")
	}
	g, err := a.grps.CreateGroup(a.cfg.ServerName, storage.GroupMember{User: u.ID, Address: me}, ms, req.Meta, a.now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, groupOut(g))
	return nil
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request, c *call) error {
	gs, err := a.grps.UserGroups(c.auth.UserID)
	if err != nil {
		return err
	}
	out := make([]groupJSON, 0, len(gs))
	for _, g := range gs {
		out = append(out, groupOut(g))
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": out})
	return nil
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request, c *call) error {
	g, err := a.member(c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, groupOut(g))
	return nil
}

func (a *API) patchGroup(w http.ResponseWriter, r *http.Request, c *call) error {
	return a.groupWrite(w, r, c, opMeta)
}

func (a *API) addGroupMember(w http.ResponseWriter, r *http.Request, c *call) error {
	return a.groupWrite(w, r, c, opAdd)
}

func (a *API) removeGroupMember(w http.ResponseWriter, r *http.Request, c *call) error {
	return a.groupWrite(w, r, c, opRemove)
}

func (a *API) patchGroupMember(w http.ResponseWriter, r *http.Request, c *call) error {
	return a.groupWrite(w, r, c, opRole)
}

func (a *API) putGroupRetention(w http.ResponseWriter, r *http.Request, c *call) error {
	return a.groupWrite(w, r, c, opRetention)
}

// putGroupKey stores the current epoch's key document (the first one wins;
// the same bytes again are 200).
func (a *API) putGroupKey(w http.ResponseWriter, r *http.Request, c *call) error {
	return a.groupWrite(w, r, c, opKey)
}

// postGroupMessage delivers a group envelope to the group's current
// members (one synced write); an epoch other than the current one is 409
// stale_epoch. Idempotency and the send limit are those of direct messages.
func (a *API) postGroupMessage(w http.ResponseWriter, r *http.Request, c *call) error {
	return a.groupWrite(w, r, c, opSend)
}

// targetMember resolves the {address} of a member route within g.
func targetMember(g *storage.Group, addr privateline.Address) (storage.ID, error) {
	if m := g.MemberAt(addr); m != nil {
		return m.User, nil
	}
	return storage.ID{}, privateline.E("clientapi.targetMember", privateline.NotExist, "not a member of this group: "+string(addr))
}

// The group write operations (the ops of group requests across servers,
// spec/federation.md §12.1).
const (
	opAdd       = "add"
	opKey       = "key"
	opMeta      = "meta"
	opRemove    = "remove"
	opRetention = "retention"
	opRole      = "role"
	opSend      = "send"
)

// opResult is what a group write answers: the status, the JSON body (nil:
// none), and for a message from a member of another server the members
// on that server it is for.
type opResult struct {
	status  int
	body    any
	relayTo []privateline.Address
	replay  bool
}

// groupWrite runs a write route for the calling member: on this server
// for its own groups, else forwarded to the group's server (fedgroups.go).
func (a *API) groupWrite(w http.ResponseWriter, r *http.Request, c *call, op string) error {
	g, err := a.member(c)
	if err != nil {
		return err
	}
	target := privateline.Address(c.params.ByName("address"))
	if !a.ownGroup(g.ID) {
		return a.forwardGroupOp(w, r, c, g, op, target)
	}
	by := g.Member(c.auth.UserID)
	res, err := a.runGroupOp(r.Context(), g, *by, op, target, r)
	if err != nil {
		return err
	}
	if res.body == nil {
		w.WriteHeader(res.status)
		return nil
	}
	writeJSON(w, res.status, res.body)
	return nil
}

// runGroupOp makes one change of g, a group of this server, for member
// by (a user of this server, or of another whose server forwarded it):
// the one path of both, so a forwarded request gets the same checks and
// answers. r carries the request body.
func (a *API) runGroupOp(ctx context.Context, g *storage.Group, by storage.GroupMember, op string, target privateline.Address, r *http.Request) (*opResult, error) {
	change := func(ch storage.ChangeGroup, status int) (*opResult, error) {
		ch.Group, ch.By = g.ID, by.User
		after, err := a.grps.UpdateGroup(ch)
		if err != nil {
			return nil, err
		}
		if after == nil {
			return &opResult{status: http.StatusNoContent}, nil
		}
		return &opResult{status: status, body: groupOut(after)}, nil
	}
	switch op {
	case opMeta:
		var req struct {
			Meta *string `json:"meta"`
		}
		if err := decodeJSON(r, &req, false); err != nil {
			return nil, err
		}
		if req.Meta == nil {
			return nil, invalid(`"meta" is required`)
		}
		if err := checkMeta(*req.Meta); err != nil {
			return nil, err
		}
		return change(storage.ChangeGroup{Meta: req.Meta}, http.StatusOK)
	case opAdd:
		var req struct {
			Address privateline.Address `json:"address"`
			Role    string              `json:"role"`
		}
		if err := decodeJSON(r, &req, false); err != nil {
			return nil, err
		}
		m, err := a.groupMember(req.Address)
		if err != nil {
			return nil, err
		}
		m.Role = req.Role
		return change(storage.ChangeGroup{Add: &m}, http.StatusCreated)
	case opRemove:
		t, err := targetMember(g, target)
		if err != nil {
			return nil, err
		}
		if _, err := change(storage.ChangeGroup{Remove: &t}, 0); err != nil {
			return nil, err
		}
		return &opResult{status: http.StatusNoContent}, nil
	case opRole:
		t, err := targetMember(g, target)
		if err != nil {
			return nil, err
		}
		var req struct {
			Role string `json:"role"`
		}
		if err := decodeJSON(r, &req, false); err != nil {
			return nil, err
		}
		return change(storage.ChangeGroup{Role: &storage.GroupMember{User: t, Role: req.Role}}, http.StatusOK)
	case opRetention:
		var req struct {
			Seconds *int64 `json:"seconds"`
		}
		if err := decodeJSON(r, &req, false); err != nil {
			return nil, err
		}
		if req.Seconds == nil || *req.Seconds < 0 || *req.Seconds > maxRetention {
			return nil, invalid(fmt.Sprintf(`"seconds" must be 0 (keep) to %d`, maxRetention))
		}
		return change(storage.ChangeGroup{Retention: req.Seconds}, http.StatusOK)
	case opKey:
		return a.runPutGroupKey(ctx, g, by, r)
	case opSend:
		body, err := readEnvelopeBody(r)
		if err != nil {
			return nil, err
		}
		res, err := a.acceptEnvelopeFrom(by, body, envelope.ParseGroup, func(h *envelope.Header, d *storage.Delivery, _ *storage.User, now time.Time) error {
			if h.Group != g.ID {
				return invalid(`"group" must be this group's id`)
			}
			d.Group, d.Epoch = g.ID, h.Epoch
			if g.Retention > 0 {
				limit := now.Add(time.Duration(g.Retention) * time.Second)
				if d.ExpiresAt.IsZero() || limit.Before(d.ExpiresAt) {
					d.ExpiresAt = limit
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		status := http.StatusCreated
		if res.replay {
			status = http.StatusOK
		}
		return &opResult{status: status, body: map[string]any{"id": res.id, "seq": res.seq}, relayTo: res.relayTo, replay: res.replay}, nil
	}
	return nil, invalid("unknown group operation " + strconv.Quote(op))
}

// maxRetention is the longest group retention: ten years.
const maxRetention = 10 * 366 * 24 * 3600

// runPutGroupKey stores the current epoch's key document of g for by.
func (a *API) runPutGroupKey(ctx context.Context, g *storage.Group, by storage.GroupMember, r *http.Request) (*opResult, error) {
	if by.Role != storage.RoleOwner && by.Role != storage.RoleAdmin {
		return nil, privateline.E("clientapi.putGroupKey", privateline.Forbidden, "only the owner and admins distribute group keys")
	}
	body, err := readJSONBody(r, envelope.MaxGroupKeySize, "a group key document")
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(body) {
		return nil, invalid("the document is not valid UTF-8")
	}
	if err := checkJSONShape(body); err != nil {
		return nil, err
	}
	doc, err := envelope.ParseGroupKey(body)
	if err != nil {
		return nil, err
	}
	if doc.Group != g.ID {
		return nil, invalid(`"group" must be this group's id`)
	}
	if doc.From != by.Address {
		return nil, privateline.E("clientapi.putGroupKey", privateline.Forbidden, `"from" must be your own address`)
	}
	up := &storage.GroupKeyUpload{Group: g.ID, Epoch: doc.Epoch, By: by.User, Members: doc.Members, Signed: doc.Signed,
		Wraps: map[privateline.Address][2]string{}, KeyIDs: map[privateline.Address]string{}}
	sum := sha256.Sum256(body)
	up.Sum = sum[:]
	for _, addr := range doc.Members {
		kid, err := a.currentKeyID(ctx, addr)
		if err != nil {
			return nil, err
		}
		up.KeyIDs[addr] = kid
		if w, ok := doc.Keys[kid]; ok {
			up.Wraps[addr] = [2]string{kid, w}
		}
	}
	replay, err := a.grps.PutGroupKey(up)
	if err != nil {
		return nil, storeErr(err)
	}
	status := http.StatusCreated
	if replay {
		status = http.StatusOK
	}
	return &opResult{status: status, body: map[string]any{"group": g.ID, "epoch": doc.Epoch}, replay: replay}, nil
}

// currentKeyID is the key id of a member's current bundle: a local
// user's, or a user of another server's as its key directory answers it
// (verified, spec/federation.md §12.5). A member that is not (or no
// longer) a user means the members changed.
func (a *API) currentKeyID(ctx context.Context, addr privateline.Address) (string, error) {
	name, server, err := addr.Split()
	if err != nil {
		return "", errMembersChanged
	}
	if server != a.cfg.ServerName {
		if a.remote == nil {
			return "", errMembersChanged
		}
		l, err := a.remote.LookupRemote(ctx, addr, 0)
		if privateline.Is(privateline.NotExist, err) {
			return "", errMembersChanged
		} else if err != nil {
			return "", privateline.E("clientapi.currentKeyID", privateline.Unavailable, "the keys of "+string(addr)+" cannot be checked now; try again later", err)
		}
		return l.Bundle.Encryption.ID(), nil
	}
	u, err := a.store.UserByName(name)
	if privateline.Is(privateline.NotExist, err) {
		return "", errMembersChanged
	} else if err != nil {
		return "", err
	}
	b, err := keybundle.Parse(u.KeyBundle)
	if err != nil {
		return "", privateline.E("clientapi.currentKeyID", privateline.Internal, err)
	}
	return b.Encryption.ID(), nil
}

// getGroupKey answers the caller's view of an epoch's key document (only
// the caller's own wrap), for epochs the caller was a member of.
func (a *API) getGroupKey(w http.ResponseWriter, r *http.Request, c *call) error {
	g, err := a.member(c)
	if err != nil {
		return err
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return invalid("malformed query string")
	}
	epoch := g.Epoch
	for k, vs := range q {
		if k != "epoch" || len(vs) != 1 {
			return invalid(`the only query parameter is "epoch", once`)
		}
		if epoch, err = strconv.ParseInt(vs[0], 10, 64); err != nil || epoch < 1 {
			return invalid(`"epoch" must be an integer ≥ 1`)
		}
	}
	get := func() ([]byte, string, string, error) { return a.grps.GroupKey(g.ID, epoch, c.auth.UserID) }
	signed, kid, wrap, err := get()
	if privateline.Is(privateline.NotExist, err) && epoch == g.Epoch {
		// The current epoch's key may be on its way (groupkeywait.go).
		signed, kid, wrap, err = a.awaitGroupKey(r.Context(), c, g, get)
	}
	if err != nil {
		return err
	}
	doc, err := envelope.View(signed, kid, wrap)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
	return nil
}

// postSeenEpoch takes a member's client's report of the highest epoch of
// the group it holds a key of (spec/e2ee.md §8.1, spec/federation.md
// §12.1 "Lost epochs"): a group of this server that was restored from a
// backup moves past it, as for a member server's report, and the answer
// is the group as it is after. For a group of another server, this
// server's replica already tells the group's server the highest epoch it
// held (every key its users hold came through it): the report makes it
// ask now (at the user's message rate), and answers the replica.
func (a *API) postSeenEpoch(w http.ResponseWriter, r *http.Request, c *call) error {
	g, err := a.member(c)
	if err != nil {
		return err
	}
	var req struct {
		SeenEpoch *int64 `json:"seen_epoch"`
	}
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	if req.SeenEpoch == nil || *req.SeenEpoch < 1 || *req.SeenEpoch > maxSeenEpoch {
		return invalid(fmt.Sprintf(`"seen_epoch" must be an integer from 1 to %d`, int64(maxSeenEpoch)))
	}
	seen := *req.SeenEpoch
	if !a.ownGroup(g.ID) {
		if seen >= g.Epoch {
			if s, ok := a.remoteGroups.(groupSyncer); ok && a.resyncAllowed(c.auth.UserID) {
				sctx, cancel := context.WithTimeout(r.Context(), keyResyncTimeout)
				err := s.SyncGroup(sctx, g.ID)
				cancel()
				if err != nil && a.log != nil {
					a.log.Info("clientapi: a group's state could not be had for a lost-epoch report", "group", g.ID, "err", err)
				}
				if g, err = a.member(c); err != nil {
					return err
				}
			}
		}
		writeJSON(w, http.StatusOK, groupOut(g))
		return nil
	}
	moved, after, err := a.grps.RaiseGroupEpochByMember(g.ID, c.auth.UserID, seen)
	if err != nil {
		return err
	}
	if moved && a.log != nil {
		a.log.Warn("a member's client held a key of an epoch this server's group has not passed (restored from a backup?); the group moved past it",
			"group", g.ID, "seen_epoch", seen, "epoch", after.Epoch)
	}
	writeJSON(w, http.StatusOK, groupOut(after))
	return nil
}

// maxSeenEpoch bounds the epoch a client may report (the JSON number is
// exact up to it, in every client).
const maxSeenEpoch = 1<<53 - 1

// getGroupMessages answers a page of the group's conversation in the
// caller's mailbox (the paging of GET /api/messages).
func (a *API) getGroupMessages(w http.ResponseWriter, r *http.Request, c *call) error {
	g, err := a.member(c)
	if err != nil {
		return err
	}
	mq, err := a.mailQuery(r, false)
	if err != nil {
		return err
	}
	mq.Group = g.ID
	return a.writeMailbox(w, c, mq)
}
