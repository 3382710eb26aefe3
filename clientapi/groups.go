package clientapi

import (
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

// localMember resolves an address of this server to a group member.
func (a *API) localMember(addr privateline.Address) (storage.GroupMember, error) {
	name, server, err := addr.Split()
	if err != nil {
		return storage.GroupMember{}, invalid(fmt.Sprintf("%q is not an address", addr))
	}
	if server != a.cfg.ServerName {
		return storage.GroupMember{}, invalid(fmt.Sprintf("%s is on another server; groups with members on other servers are not supported yet", addr))
	}
	u, err := a.store.UserByName(name)
	if privateline.Is(privateline.NotExist, err) {
		return storage.GroupMember{}, privateline.E("clientapi.localMember", privateline.NotExist, "no such user: "+string(addr))
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
		m, err := a.localMember(addr)
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

// updateGroup applies one change and answers the group after it.
func (a *API) updateGroup(w http.ResponseWriter, ch storage.ChangeGroup, status int) error {
	g, err := a.grps.UpdateGroup(ch)
	if err != nil {
		return err
	}
	if g == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, status, groupOut(g))
	return nil
}

func (a *API) patchGroup(w http.ResponseWriter, r *http.Request, c *call) error {
	if _, err := a.member(c); err != nil {
		return err
	}
	var req struct {
		Meta *string `json:"meta"`
	}
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	if req.Meta == nil {
		return invalid(`"meta" is required`)
	}
	if err := checkMeta(*req.Meta); err != nil {
		return err
	}
	return a.updateGroup(w, storage.ChangeGroup{Group: c.params.ByName("id"), By: c.auth.UserID, Meta: req.Meta}, http.StatusOK)
}

func (a *API) addGroupMember(w http.ResponseWriter, r *http.Request, c *call) error {
	if _, err := a.member(c); err != nil {
		return err
	}
	var req struct {
		Address privateline.Address `json:"address"`
		Role    string              `json:"role"`
	}
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	m, err := a.localMember(req.Address)
	if err != nil {
		return err
	}
	m.Role = req.Role
	return a.updateGroup(w, storage.ChangeGroup{Group: c.params.ByName("id"), By: c.auth.UserID, Add: &m}, http.StatusCreated)
}

// targetMember resolves the {address} of a member route within g.
func (a *API) targetMember(g *storage.Group, c *call) (storage.ID, error) {
	addr := privateline.Address(c.params.ByName("address"))
	for _, m := range g.Members {
		if m.Address == addr {
			return m.User, nil
		}
	}
	return storage.ID{}, privateline.E("clientapi.targetMember", privateline.NotExist, "not a member of this group: "+string(addr))
}

func (a *API) removeGroupMember(w http.ResponseWriter, r *http.Request, c *call) error {
	g, err := a.member(c)
	if err != nil {
		return err
	}
	target, err := a.targetMember(g, c)
	if err != nil {
		return err
	}
	if _, err := a.grps.UpdateGroup(storage.ChangeGroup{Group: g.ID, By: c.auth.UserID, Remove: &target}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) patchGroupMember(w http.ResponseWriter, r *http.Request, c *call) error {
	g, err := a.member(c)
	if err != nil {
		return err
	}
	target, err := a.targetMember(g, c)
	if err != nil {
		return err
	}
	var req struct {
		Role string `json:"role"`
	}
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	return a.updateGroup(w, storage.ChangeGroup{Group: g.ID, By: c.auth.UserID, Role: &storage.GroupMember{User: target, Role: req.Role}}, http.StatusOK)
}

// maxRetention is the longest group retention: ten years.
const maxRetention = 10 * 366 * 24 * 3600

func (a *API) putGroupRetention(w http.ResponseWriter, r *http.Request, c *call) error {
	g, err := a.member(c)
	if err != nil {
		return err
	}
	var req struct {
		Seconds *int64 `json:"seconds"`
	}
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	if req.Seconds == nil || *req.Seconds < 0 || *req.Seconds > maxRetention {
		return invalid(fmt.Sprintf(`"seconds" must be 0 (keep) to %d`, maxRetention))
	}
	return a.updateGroup(w, storage.ChangeGroup{Group: g.ID, By: c.auth.UserID, Retention: req.Seconds}, http.StatusOK)
}

// putGroupKey stores the current epoch's key document (the first one wins;
// the same bytes again are 200).
func (a *API) putGroupKey(w http.ResponseWriter, r *http.Request, c *call) error {
	g, err := a.member(c)
	if err != nil {
		return err
	}
	if m := g.Member(c.auth.UserID); m == nil || (m.Role != storage.RoleOwner && m.Role != storage.RoleAdmin) {
		return privateline.E("clientapi.putGroupKey", privateline.Forbidden, "only the owner and admins distribute group keys")
	}
	body, err := readJSONBody(r, envelope.MaxGroupKeySize, "a group key document")
	if err != nil {
		return err
	}
	if !utf8.Valid(body) {
		return invalid("the document is not valid UTF-8")
	}
	if err := checkJSONShape(body); err != nil {
		return err
	}
	doc, err := envelope.ParseGroupKey(body)
	if err != nil {
		return err
	}
	if doc.Group != g.ID {
		return invalid(`"group" must be this group's id`)
	}
	if me := g.Member(c.auth.UserID); me == nil || doc.From != me.Address {
		return privateline.E("clientapi.putGroupKey", privateline.Forbidden, `"from" must be your own address`)
	}
	up := &storage.GroupKeyUpload{Group: g.ID, Epoch: doc.Epoch, By: c.auth.UserID, Members: doc.Members, Signed: doc.Signed,
		Wraps: map[privateline.Address][2]string{}, KeyIDs: map[privateline.Address]string{}}
	sum := sha256.Sum256(body)
	up.Sum = sum[:]
	for _, addr := range doc.Members {
		kid, err := a.currentKeyID(addr)
		if err != nil {
			return err
		}
		up.KeyIDs[addr] = kid
		if w, ok := doc.Keys[kid]; ok {
			up.Wraps[addr] = [2]string{kid, w}
		}
	}
	replay, err := a.grps.PutGroupKey(up)
	if err != nil {
		return storeErr(err)
	}
	status := http.StatusCreated
	if replay {
		status = http.StatusOK
	}
	writeJSON(w, status, map[string]any{"group": g.ID, "epoch": doc.Epoch})
	return nil
}

// currentKeyID is the key id of a local member's current bundle; a member
// that is not (or no longer) a local user means the members changed.
func (a *API) currentKeyID(addr privateline.Address) (string, error) {
	name, server, err := addr.Split()
	if err != nil || server != a.cfg.ServerName {
		return "", errMembersChanged
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
	signed, kid, wrap, err := a.grps.GroupKey(g.ID, epoch, c.auth.UserID)
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

// postGroupMessage delivers a group envelope to the group's current
// members (one synced write); an epoch other than the current one is 409
// stale_epoch. Idempotency and the send limit are those of direct messages.
func (a *API) postGroupMessage(w http.ResponseWriter, r *http.Request, c *call) error {
	g, err := a.member(c)
	if err != nil {
		return err
	}
	body, err := readEnvelopeBody(r)
	if err != nil {
		return err
	}
	res, err := a.acceptEnvelope(c.auth.UserID, body, envelope.ParseGroup, func(h *envelope.Header, d *storage.Delivery, _ *storage.User, now time.Time) error {
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
		return err
	}
	writeSent(w, res)
	return nil
}

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
