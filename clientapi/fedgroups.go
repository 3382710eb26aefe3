package clientapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/federation"
	"github.com/privateline/privateline/storage"
)

// Groups across servers (spec/federation.md §12.1). A group lives on the
// server in its id. There, every change runs runGroupOp, for local
// members (groupWrite) and for members of other servers whose server
// forwarded it (HandleGroupRequest) alike. Elsewhere the reads answer from
// this server's replica of the group, and the changes are forwarded to
// the group's server at once (forwardGroupOp): its answer is the client's.

// RemoteGroups forwards a member's change of a group of another server
// to that server (*federation.Service).
type RemoteGroups interface {
	GroupRequest(ctx context.Context, req federation.GroupRequest) (*federation.GroupResult, error)
}

var _ federation.GroupHandler = (*API)(nil)

// ownGroup reports whether group id is one of this server's.
func (a *API) ownGroup(id string) bool {
	_, srv, ok := strings.Cut(id, "@")
	return !ok || privateline.ServerName(srv) == a.cfg.ServerName
}

// errNoForwarding: a change of a group of another server while this
// server does not federate.
var errNoForwarding = privateline.E("clientapi", privateline.Unavailable, "this group is kept on another server, which this server cannot reach now; try again later")

// forwardGroupOp forwards the caller's change of g, a group of another
// server, and answers what that server answered. A server that cannot be
// reached is 503: nothing changed, the client may retry.
func (a *API) forwardGroupOp(w http.ResponseWriter, r *http.Request, c *call, g *storage.Group, op string, target privateline.Address) error {
	if a.remoteGroups == nil {
		return errNoForwarding
	}
	u, err := a.caller(c)
	if err != nil {
		return err
	}
	me := privateline.MakeAddress(u.Username, a.cfg.ServerName)
	var body []byte
	if op != opRemove {
		max := int(a.cfg.MaxBodyBytes)
		switch op {
		case opSend:
			max = envelope.MaxSize
		case opKey:
			max = envelope.MaxGroupKeySize
		}
		if body, err = readJSONBody(r, max, "the request body"); err != nil {
			return err
		}
		if len(body) == 0 {
			return invalid("request body is empty; a JSON object is required")
		}
	}
	if op == opSend {
		if ok, after := a.msgLimit.allow(u.ID.String()); !ok {
			return &rateLimitError{after}
		}
	}
	res, err := a.remoteGroups.GroupRequest(r.Context(), federation.GroupRequest{Group: g.ID, Op: op, Requester: me, Target: target, Body: body})
	if err != nil {
		return err
	}
	if res.Status >= 400 {
		msg := res.Message
		if msg == "" {
			msg = "the group's server refused the request"
		}
		return &statusError{res.Status, res.Code, msg}
	}
	switch op {
	case opSend:
		return a.storeRelayed(w, u, me, g, body, res)
	case opKey:
		doc, err := envelope.ParseGroupKey(body)
		if err != nil { // the group's server took it
			return privateline.E("clientapi.forwardGroupOp", privateline.Internal, err)
		}
		writeJSON(w, res.Status, map[string]any{"group": g.ID, "epoch": doc.Epoch})
		return nil
	case opRemove:
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if res.Status == http.StatusNoContent {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	after, err := a.grps.GroupFor(g.ID, u.ID) // the replica, with the answer's state applied
	if err != nil {
		return err
	}
	writeJSON(w, res.Status, groupOut(after))
	return nil
}

// storeRelayed stores the caller's group message, accepted by the group's
// server, for the caller and the members here that server named.
func (a *API) storeRelayed(w http.ResponseWriter, u *storage.User, me privateline.Address, g *storage.Group, body []byte, res *federation.GroupResult) error {
	const op = "clientapi.storeRelayed"
	h, err := envelope.ParseGroup(body)
	if err != nil { // the group's server took it
		return privateline.E(op, privateline.Internal, err)
	}
	d := &storage.Delivery{MsgID: h.ID, Raw: body, Sender: storage.Recipient{ID: u.ID, Address: me}, ExpiresAt: h.ExpiresAt,
		Group: g.ID, Epoch: h.Epoch, Relayed: true, Files: h.Files}
	if g.Retention > 0 {
		limit := a.now().Add(time.Duration(g.Retention) * time.Second)
		if d.ExpiresAt.IsZero() || limit.Before(d.ExpiresAt) {
			d.ExpiresAt = limit
		}
	}
	for _, addr := range res.Recipients {
		name, _, _ := addr.Split()
		if addr == me {
			continue
		}
		ru, err := a.store.UserByName(name)
		if privateline.Is(privateline.NotExist, err) {
			continue
		} else if err != nil {
			return err
		}
		d.Recipients = append(d.Recipients, storage.Recipient{ID: ru.ID, Address: addr})
	}
	seq, replay, err := a.msgs.Deliver(d)
	if err != nil {
		switch {
		case errors.Is(err, storage.ErrUnknownFile):
			return errUnknownFile
		case errors.Is(err, storage.ErrTombstoned):
			return errTombstoned
		}
		if privateline.Is(privateline.Exist, err) {
			return privateline.E(op, privateline.Exist, "another message with this id exists")
		}
		return err
	}
	writeSent(w, &sent{id: h.ID, seq: seq, replay: replay})
	return nil
}

// HandleGroupRequest runs a change forwarded by the server of a member of
// a group of this server (federation checked that the requester is a
// user of req.Origin): the same checks and storage operations as for a
// local member, and the answer the client API would give.
func (a *API) HandleGroupRequest(ctx context.Context, req federation.GroupRequest) federation.GroupResult {
	fail := func(err error) federation.GroupResult {
		e := a.describe(err)
		if e.status >= 500 {
			a.log.Error("group request failed", "origin", string(req.Origin), "group", req.Group, "op", req.Op, "err", err)
		}
		return federation.GroupResult{Status: e.status, Code: e.code, Message: e.msg}
	}
	g, err := a.grps.GroupForAddress(req.Group, req.Requester)
	if err == nil && !a.ownGroup(g.ID) {
		err = privateline.E("clientapi.HandleGroupRequest", privateline.NotExist)
	}
	if err != nil {
		return fail(err)
	}
	by := g.MemberAt(req.Requester)
	if !by.Remote {
		return fail(privateline.E("clientapi.HandleGroupRequest", privateline.Forbidden, "a user of this server acts here"))
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewReader(req.Body))
	if err != nil {
		return fail(err)
	}
	r.Header.Set("Content-Type", "application/json")
	res, err := a.runGroupOp(ctx, g, *by, req.Op, req.Target, r)
	if err != nil {
		return fail(err)
	}
	return federation.GroupResult{Status: res.status, Recipients: res.relayTo, Replayed: res.replay}
}

// leaveRemoteGroups asks the servers of u's groups of other servers to
// remove u, before u's account is deleted (spec/federation.md §12.1). A
// server that cannot be reached hears of it later: the deletion goes on
// and queues a durable group_leaves entry for each group whose replica
// still lists u (storage/fedleave.go).
func (a *API) leaveRemoteGroups(ctx context.Context, u *storage.User) {
	if a.remoteGroups == nil {
		return
	}
	gs, err := a.grps.UserGroups(u.ID)
	if err != nil {
		a.log.Warn("account deletion: listing the groups to leave", "err", err)
		return
	}
	me := privateline.MakeAddress(u.Username, a.cfg.ServerName)
	for _, g := range gs {
		if a.ownGroup(g.ID) {
			continue
		}
		res, err := a.remoteGroups.GroupRequest(ctx, federation.GroupRequest{Group: g.ID, Op: opRemove, Requester: me, Target: me})
		if err == nil && res.Status >= 400 {
			err = errors.New(res.Code + ": " + res.Message)
		}
		if err != nil {
			a.log.Warn("account deletion: the group's server did not remove the user", "group", g.ID, "err", err)
		}
	}
}
