package storage

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/privateline/privateline"
)

// Groups.
//
// Keys (see also the package doc):
//
//	'G' group(16)                    group record: id, members with roles and
//	                                 join order (the group → members index),
//	                                 epoch, opaque meta, retention
//	'g' userID(16) group(16)         user → groups index
//	'H' group(16) epoch(8)           the epoch's key document: its signed part
//	                                 (without "keys") and the SHA-256 of the
//	                                 document as uploaded
//	'h' group(16) userID(16) epoch(8) one member's wrap of that epoch's key
//	                                 (key id, base64 wrap)
//
// group(16) is the 16 bytes of the id's hex part. A group id is
// "<32 lower-case hex digits>@<server name>": the homeserver that created
// the group makes it, and the server part will let federation route by the
// owning server.
//
// Every change of a group holds the stripes (see messages.go) of the group
// and of every member, old and new, so a group's record changes under its
// own stripe and a member's sequence numbers stay ordered. Every membership
// change (add, remove, leave, account deletion) starts a new epoch, and
// every change tells each member, old and new, with a group_changed event in
// the change's batch.

// Group roles.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Group limits.
const (
	MaxGroupMembers  = 512     // members of a group (spec/e2ee.md §11)
	MaxGroupsPerUser = 1000    // groups a user belongs to
	MaxGroupMeta     = 4 << 10 // bytes of the opaque meta blob, base64
)

// GroupMember is one member of a group.
type GroupMember struct {
	User    ID                  `json:"user"`
	Address privateline.Address `json:"address"`
	Role    string              `json:"role"`
	Joined  uint64              `json:"joined"` // join order: smaller joined earlier
	// Remote: the member has no account on this server (a user of another
	// server, fedgroups.go); User is then remoteMemberID(Address), never
	// a user's id, so the checks by id work for every member alike.
	Remote bool `json:"remote,omitempty"`
}

// Group is a group's record.
type Group struct {
	ID        string        `json:"id"`
	Members   []GroupMember `json:"members"` // in join order
	Epoch     int64         `json:"epoch"`
	Meta      string        `json:"meta,omitempty"`      // opaque, client-encrypted, base64
	Retention int64         `json:"retention,omitempty"` // seconds; 0: keep
	CreatedAt time.Time     `json:"created_at"`
	NextJoin  uint64        `json:"next_join"`
	// Version grows with every change the group's server makes (spec
	// federation §12.1); Replica: this server keeps the group for its
	// members, and the group's server (the id's server part) decides
	// every change (fedgroups.go).
	Version uint64 `json:"version,omitempty"`
	Replica bool   `json:"replica,omitempty"`
	// Era (a replica's): the era of the group's server's store when it
	// made the state the replica holds (fedgroupsync.go).
	Era uint64 `json:"era,omitempty"`
	// Lost epochs (fedepochs.go). The group's server: EpochEra is the
	// era in which the current epoch began; FloorEra and FloorFrom the
	// era of the last raise past a replica's epoch and the epoch the
	// group was at before the first raise in it; FloorBy the servers
	// whose claims moved it in that era (one move each). A replica: SeenEpoch is
	// the highest epoch of any state it held, SeenEra the era of the
	// state it first held it in.
	EpochEra  uint64 `json:"epoch_era,omitempty"`
	FloorEra  uint64 `json:"floor_era,omitempty"`
	FloorFrom int64  `json:"floor_from,omitempty"`
	// FloorBy: the servers whose claims moved the group in FloorEra.
	FloorBy []privateline.ServerName `json:"floor_by,omitempty"`
	// FloorUsers: the members here whose clients' reports moved the
	// group in FloorEra (RaiseGroupEpochByMember, one move each).
	FloorUsers []ID   `json:"floor_users,omitempty"`
	SeenEpoch  int64  `json:"seen_epoch,omitempty"`
	SeenEra    uint64 `json:"seen_era,omitempty"`
}

// Member returns the member record of user, or nil.
func (g *Group) Member(user ID) *GroupMember {
	for i := range g.Members {
		if g.Members[i].User == user {
			return &g.Members[i]
		}
	}
	return nil
}

// Addresses returns the members' addresses, sorted bytewise.
func (g *Group) Addresses() []privateline.Address {
	out := make([]privateline.Address, len(g.Members))
	for i, m := range g.Members {
		out[i] = m.Address
	}
	slices.Sort(out)
	return out
}

func (g *Group) memberIDs() []ID {
	out := make([]ID, len(g.Members))
	for i, m := range g.Members {
		out[i] = m.User
	}
	return out
}

// admin reports whether user is the owner or an admin.
func (g *Group) admin(user ID) bool {
	m := g.Member(user)
	return m != nil && (m.Role == RoleOwner || m.Role == RoleAdmin)
}

// groupKeyID parses a group id into its storage key part; a malformed id is
// NotExist (indistinguishable from a missing group).
func groupKeyID(id string) ([]byte, error) {
	hexPart, _, ok := strings.Cut(id, "@")
	b, err := hex.DecodeString(hexPart)
	if !ok || err != nil || len(b) != 16 || hex.EncodeToString(b) != hexPart {
		return nil, privateline.E("storage.groupID", privateline.NotExist)
	}
	return b, nil
}

// groupConvKey is the conversation-index key of a group: distinct from
// every peerKey, so a group never shares a conversation with an address.
func (d *DB) groupConvKey(id string) []byte {
	m := hmac.New(sha256.New, d.nameKey)
	m.Write([]byte("group\x00"))
	m.Write([]byte(id))
	return m.Sum(nil)[:16]
}

// group reads a group record by id. A missing or malformed id is NotExist.
func (d *DB) group(id string) (*Group, []byte, error) {
	gk, err := groupKeyID(id)
	if err != nil {
		return nil, nil, err
	}
	var g Group
	if err := d.getJSON(tGroup.key(gk), &g); err != nil {
		return nil, nil, err
	}
	if g.ID != id {
		return nil, nil, privateline.E("storage.group", privateline.NotExist)
	}
	return &g, gk, nil
}

// GroupFor returns the group if user is a member; otherwise NotExist, as
// for a group that does not exist.
func (d *DB) GroupFor(id string, user ID) (*Group, error) {
	g, _, err := d.group(id)
	if err == nil && g.Member(user) == nil {
		err = privateline.E("storage.GroupFor", privateline.NotExist)
	}
	if err != nil {
		return nil, privateline.E("storage.GroupFor", err)
	}
	return g, nil
}

// UserGroups returns the groups user belongs to.
func (d *DB) UserGroups(user ID) ([]*Group, error) {
	const op = "storage.UserGroups"
	var keys [][]byte
	err := d.scanKeys(tUserGroup.key(user[:]), func(k, _ []byte) error {
		keys = append(keys, slices.Clone(k[17:]))
		return nil
	})
	if err != nil {
		return nil, privateline.E(op, err)
	}
	out := []*Group{}
	for _, gk := range keys {
		var g Group
		if err := d.getJSON(tGroup.key(gk), &g); privateline.Is(privateline.NotExist, err) {
			continue
		} else if err != nil {
			return nil, privateline.E(op, err)
		}
		out = append(out, &g)
	}
	return out, nil
}

func (d *DB) userGroupCount(user ID) (int, error) {
	n := 0
	err := d.scanKeys(tUserGroup.key(user[:]), func(_, _ []byte) error { n++; return nil })
	return n, err
}

// CreateGroup stores a new group with a fresh id on server: owner is its
// owner, members join as members (each a distinct local user, not the
// owner), epoch 1. Each of them hears of it with a group_changed event.
func (d *DB) CreateGroup(server privateline.ServerName, owner GroupMember, members []GroupMember, meta string, now time.Time) (*Group, error) {
	const op = "storage.CreateGroup"
	if len(members)+1 > MaxGroupMembers {
		return nil, privateline.E(op, privateline.Invalid, "a group has at most 512 members")
	}
	if len(meta) > MaxGroupMeta {
		return nil, privateline.E(op, privateline.TooLarge, "group meta may be at most 4 KiB of base64")
	}
	gid := NewID()
	g := &Group{ID: gid.String() + "@" + string(server), Epoch: 1, Meta: meta, CreatedAt: now.UTC().Truncate(time.Millisecond)}
	owner.Role = RoleOwner
	all := append([]GroupMember{owner}, members...)
	ids := [][]byte{gid[:]}
	for i, m := range all {
		if g.Member(m.User) != nil {
			return nil, privateline.E(op, privateline.Invalid, "a member is listed twice: "+string(m.Address))
		}
		if i > 0 {
			m.Role = RoleMember
		}
		if m.Remote {
			m.User = d.remoteMemberID(m.Address)
		}
		if g.Member(m.User) != nil {
			return nil, privateline.E(op, privateline.Invalid, "a member is listed twice: "+string(m.Address))
		}
		m.Joined = g.NextJoin
		g.NextJoin++
		g.Members = append(g.Members, m)
		ids = append(ids, m.User[:])
	}
	unlock := d.lockStripes(ids...)
	defer unlock()
	t := d.newMtxn(nil)
	defer t.unlockGroupDests()
	if err := t.writeGroup(gid[:], g.ID, nil, g); err != nil {
		t.b.Close()
		return nil, privateline.E(op, err)
	}
	if err := t.commit(); err != nil {
		return nil, privateline.E(op, err)
	}
	return g, nil
}

// writeGroup writes g (nil: the group is deleted) in t's batch, fixes the
// user → groups index from the old member list, and tells every member,
// old and new, with a group_changed event. New members must be existing
// users under the group-per-user cap.
func (t *mtxn) writeGroup(gk []byte, id string, old []GroupMember, g *Group) error {
	var now []GroupMember
	if g != nil {
		now = g.Members
	}
	var prev *Group // as stored
	if p, _, err := t.d.group(id); err == nil {
		prev = p
	} else if !privateline.Is(privateline.NotExist, err) {
		return err
	}
	replica := g != nil && g.Replica || prev != nil && prev.Replica
	if !replica {
		// The group's server: a new version, told to the servers of
		// its remote members, old and new (fedgroups.go).
		var version uint64 = 1
		if prev != nil {
			version = prev.Version + 1
		}
		if g != nil {
			g.Version = version
			if prev == nil || prev.Epoch != g.Epoch {
				g.EpochEra = t.d.groupEra // fedepochs.go
			}
		}
		if err := t.queueGroupUpdates(gk, id, old, g, version, nil); err != nil {
			return err
		}
	}
	concerned := map[ID]bool{}
	for _, m := range old {
		if m.Remote {
			continue
		}
		concerned[m.User] = true
		if !slices.ContainsFunc(now, func(n GroupMember) bool { return n.User == m.User }) {
			t.del(tUserGroup.key(m.User[:], gk))
		}
	}
	for _, m := range now {
		if m.Remote || concerned[m.User] {
			continue
		}
		concerned[m.User] = true
		if m.User == t.gone {
			continue
		}
		ok, err := t.d.exists(tUser.key(m.User[:]))
		if err != nil {
			return err
		}
		if !ok {
			return privateline.E("storage.writeGroup", privateline.NotExist, "no such user: "+string(m.Address))
		}
		n, err := t.d.userGroupCount(m.User)
		if err != nil {
			return err
		}
		if n >= MaxGroupsPerUser && !replica { // a replica follows its group's server
			return privateline.E("storage.writeGroup", privateline.Invalid, string(m.Address)+" is in too many groups")
		}
		t.d.setSealed(t.b, tUserGroup.key(m.User[:], gk), nil)
	}
	if g == nil {
		t.del(tGroup.key(gk))
		for _, p := range [][]byte{tGroupKey.key(gk), tGroupWrap.key(gk)} {
			if err := t.b.DeleteRange(p, prefixEnd(p), nil); err != nil {
				return err
			}
		}
	} else if err := t.d.setJSON(t.b, tGroup.key(gk), g); err != nil {
		return err
	}
	users := make([]ID, 0, len(concerned))
	for u := range concerned {
		users = append(users, u)
	}
	slices.SortFunc(users, func(a, b ID) int { return strings.Compare(string(a[:]), string(b[:])) })
	for _, u := range users {
		if _, err := t.event(u, Event{Type: EventGroupChanged, Group: id}); err != nil {
			return err
		}
	}
	return nil
}

// lockGroup reads a group and locks its stripe and its members' and
// those of extra; it retries if the members changed before the locks were
// held. The caller must call unlock.
func (d *DB) lockGroup(id string, extra ...ID) (*Group, []byte, func(), error) {
	for {
		g, gk, err := d.group(id)
		if err != nil {
			return nil, nil, nil, err
		}
		ids := [][]byte{gk}
		for _, u := range append(g.memberIDs(), extra...) {
			ids = append(ids, u[:])
		}
		unlock := d.lockStripes(ids...)
		g2, _, err := d.group(id)
		if err != nil {
			unlock()
			return nil, nil, nil, err
		}
		if slices.Equal(g.memberIDs(), g2.memberIDs()) {
			return g2, gk, unlock, nil
		}
		unlock()
	}
}

// ChangeGroup is one change of a group by a member.
type ChangeGroup struct {
	Group string
	By    ID // the member making the change

	Add    *GroupMember // add a member (owner or admin); Role "" is member
	Remove *ID          // remove a member (admins remove non-owners; anyone themself)
	Role   *GroupMember // set a member's role (owner only; not to or from owner)
	Meta   *string      // replace the meta blob (owner or admin)
	// Retention replaces the retention in seconds (owner or admin).
	Retention *int64
	// Joined, with Remove: only the member who joined at this place
	// (fedleave.go); another is NotExist.
	Joined *uint64
}

// UpdateGroup applies one change and returns the group as it is after it
// (nil if it was deleted: its last member left). A group the caller is not
// a member of is NotExist; a change the caller's role does not allow is
// Forbidden; adding a member twice is Exist.
func (d *DB) UpdateGroup(c ChangeGroup) (*Group, error) {
	const op = "storage.UpdateGroup"
	var extra []ID
	if c.Add != nil {
		if c.Add.Remote {
			add := *c.Add
			add.User = d.remoteMemberID(add.Address)
			c.Add = &add
		}
		extra = append(extra, c.Add.User)
	}
	g, gk, unlock, err := d.lockGroup(c.Group, extra...)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	defer unlock()
	me := g.Member(c.By)
	if me == nil {
		return nil, privateline.E(op, privateline.NotExist)
	}
	if g.Replica {
		return nil, privateline.E(op, privateline.Invalid, "a group of another server changes there")
	}
	old := slices.Clone(g.Members)
	switch {
	case c.Add != nil:
		if !g.admin(c.By) {
			return nil, privateline.E(op, privateline.Forbidden, "only the owner and admins add members")
		}
		if g.Member(c.Add.User) != nil {
			return nil, privateline.E(op, privateline.Exist, string(c.Add.Address)+" is already a member")
		}
		if len(g.Members) >= MaxGroupMembers {
			return nil, privateline.E(op, privateline.Invalid, "a group has at most 512 members")
		}
		m := *c.Add
		switch m.Role {
		case "":
			m.Role = RoleMember
		case RoleMember, RoleAdmin:
		default:
			return nil, privateline.E(op, privateline.Invalid, `"role" must be "admin" or "member"`)
		}
		if m.Role == RoleAdmin && me.Role != RoleOwner {
			return nil, privateline.E(op, privateline.Forbidden, "only the owner makes admins")
		}
		m.Joined = g.NextJoin
		g.NextJoin++
		g.Members = append(g.Members, m)
		g.Epoch++
	case c.Remove != nil:
		target := g.Member(*c.Remove)
		if target == nil || c.Joined != nil && target.Joined != *c.Joined {
			return nil, privateline.E(op, privateline.NotExist, "not a member of this group")
		}
		if *c.Remove != c.By && (!g.admin(c.By) || target.Role == RoleOwner || (target.Role == RoleAdmin && me.Role != RoleOwner)) {
			return nil, privateline.E(op, privateline.Forbidden, "admins remove members, the owner also admins; the owner is never removed")
		}
		removeMember(g, *c.Remove)
	case c.Role != nil:
		if me.Role != RoleOwner {
			return nil, privateline.E(op, privateline.Forbidden, "only the owner changes roles")
		}
		target := g.Member(c.Role.User)
		if target == nil {
			return nil, privateline.E(op, privateline.NotExist, "not a member of this group")
		}
		if target.Role == RoleOwner || (c.Role.Role != RoleAdmin && c.Role.Role != RoleMember) {
			return nil, privateline.E(op, privateline.Invalid, `a role is "admin" or "member", and the owner's role does not change`)
		}
		target.Role = c.Role.Role
	case c.Meta != nil, c.Retention != nil:
		if !g.admin(c.By) {
			return nil, privateline.E(op, privateline.Forbidden, "only the owner and admins change the group")
		}
		if c.Meta != nil {
			if len(*c.Meta) > MaxGroupMeta {
				return nil, privateline.E(op, privateline.TooLarge, "group meta may be at most 4 KiB of base64")
			}
			g.Meta = *c.Meta
		}
		if c.Retention != nil {
			g.Retention = *c.Retention
		}
	default:
		return nil, privateline.E(op, privateline.Invalid, "no change")
	}
	t := d.newMtxn(nil)
	defer t.unlockGroupDests()
	var after *Group
	if len(g.Members) > 0 {
		after = g
	}
	if err := t.writeGroup(gk, g.ID, old, after); err != nil {
		t.b.Close()
		return nil, privateline.E(op, err)
	}
	if err := t.commit(); err != nil {
		return nil, privateline.E(op, err)
	}
	return after, nil
}

// removeMember removes user from g and starts a new epoch; an owner who
// goes hands ownership to the longest-standing admin, else member.
func removeMember(g *Group, user ID) {
	i := slices.IndexFunc(g.Members, func(m GroupMember) bool { return m.User == user })
	if i < 0 {
		return
	}
	wasOwner := g.Members[i].Role == RoleOwner
	g.Members = slices.Delete(g.Members, i, i+1)
	g.Epoch++
	if !wasOwner || len(g.Members) == 0 {
		return
	}
	next := -1
	for j, m := range g.Members {
		if m.Role == RoleAdmin && (next < 0 || m.Joined < g.Members[next].Joined) {
			next = j
		}
	}
	if next < 0 {
		for j, m := range g.Members {
			if next < 0 || m.Joined < g.Members[next].Joined {
				next = j
			}
		}
	}
	g.Members[next].Role = RoleOwner
}

// leaveAllGroupsLocked removes the user being deleted (t.gone) from every
// group, in t's batch; every stripe is held.
func (t *mtxn) leaveAllGroupsLocked(user ID) error {
	var gks [][]byte
	err := t.d.scanKeys(tUserGroup.key(user[:]), func(k, _ []byte) error {
		gks = append(gks, slices.Clone(k[17:]))
		return nil
	})
	if err != nil {
		return err
	}
	for _, gk := range gks {
		var g Group
		if err := t.d.getJSON(tGroup.key(gk), &g); privateline.Is(privateline.NotExist, err) {
			t.del(tUserGroup.key(user[:], gk))
			continue
		} else if err != nil {
			return err
		}
		if g.Replica {
			// The group's server decides its members; here the user's
			// place and keys go (spec federation §12.1), and the group's
			// server hears of it (fedleave.go).
			if m := g.Member(user); m != nil {
				if err := t.queueGroupLeave(&g, m); err != nil {
					return err
				}
			}
			t.del(tUserGroup.key(user[:], gk))
			p := tGroupWrap.key(gk, user[:])
			if err := t.b.DeleteRange(p, prefixEnd(p), nil); err != nil {
				return err
			}
			continue
		}
		old := slices.Clone(g.Members)
		removeMember(&g, user)
		var after *Group
		if len(g.Members) > 0 {
			after = &g
		}
		if err := t.writeGroup(gk, g.ID, old, after); err != nil {
			return err
		}
		p := tGroupWrap.key(gk, user[:])
		if err := t.b.DeleteRange(p, prefixEnd(p), nil); err != nil {
			return err
		}
	}
	return nil
}

// GroupKeyUpload is an epoch's key document, as checked by the caller
// (envelope.ParseGroupKey and the members' current key ids).
type GroupKeyUpload struct {
	Group   string
	Epoch   int64
	By      ID
	Members []privateline.Address // as in the document
	Signed  []byte                // the document without "keys"
	Sum     []byte                // SHA-256 of the document as uploaded
	// Wraps maps each member's address to its key id and base64 wrap.
	Wraps map[privateline.Address][2]string
	// KeyIDs are the members' current key ids, to compare with Wraps.
	KeyIDs map[privateline.Address]string
}

type groupKeyRecord struct {
	Signed []byte `json:"signed"`
	Sum    []byte `json:"sum"`
	Era    uint64 `json:"era,omitempty"` // a replica's: the era of the state it came with
}

type groupWrap struct {
	KeyID string `json:"key_id"`
	Wrap  string `json:"wrap"`
}

// Errors of PutGroupKey and Deliver a caller answers precisely.
var (
	// ErrStaleEpoch: the epoch is not the group's current one.
	ErrStaleEpoch = privateline.E("storage", privateline.Exist, "the group has moved to another epoch; fetch the group and retry")
	// ErrMembersChanged: the document's members or key ids are not the
	// group's current ones.
	ErrMembersChanged = privateline.E("storage", privateline.Exist, "the members or their keys changed; fetch them and rekey")
)

// PutGroupKey stores the key document of the group's current epoch. Only
// the owner or an admin uploads; the members must be the current ones and
// every wrap must be for a member's current key id. The first document of
// an epoch wins: the same bytes again report replay, others are Exist.
func (d *DB) PutGroupKey(u *GroupKeyUpload) (replay bool, err error) {
	const op = "storage.PutGroupKey"
	g, gk, unlock, err := d.lockGroup(u.Group)
	if err != nil {
		return false, privateline.E(op, err)
	}
	defer unlock()
	if g.Member(u.By) == nil {
		return false, privateline.E(op, privateline.NotExist)
	}
	if !g.admin(u.By) {
		return false, privateline.E(op, privateline.Forbidden, "only the owner and admins distribute group keys")
	}
	if g.Replica {
		return false, privateline.E(op, privateline.Invalid, "a group of another server changes there")
	}
	var rec groupKeyRecord
	switch err := d.getJSON(tGroupKey.key(gk, u64(uint64(u.Epoch))), &rec); {
	case err == nil:
		if slices.Equal(rec.Sum, u.Sum) {
			return true, nil
		}
		return false, privateline.E(op, privateline.Exist, "this epoch already has its key")
	case !privateline.Is(privateline.NotExist, err):
		return false, privateline.E(op, err)
	}
	if u.Epoch != g.Epoch {
		return false, ErrStaleEpoch
	}
	if !slices.Equal(u.Members, g.Addresses()) {
		return false, ErrMembersChanged
	}
	for a, kid := range u.KeyIDs {
		if w, ok := u.Wraps[a]; !ok || w[0] != kid {
			return false, ErrMembersChanged
		}
	}
	if len(u.KeyIDs) != len(g.Members) || len(u.Wraps) != len(g.Members) {
		return false, ErrMembersChanged
	}
	t := d.newMtxn(nil)
	defer t.unlockGroupDests()
	b := t.b
	if err := d.setJSON(b, tGroupKey.key(gk, u64(uint64(u.Epoch))), groupKeyRecord{Signed: u.Signed, Sum: u.Sum}); err != nil {
		b.Close()
		return false, privateline.E(op, err)
	}
	key := &groupKeyView{Epoch: u.Epoch, Signed: u.Signed, Sum: u.Sum, Wraps: map[ID]groupWrap{}}
	for _, m := range g.Members {
		w := u.Wraps[m.Address]
		key.Wraps[m.User] = groupWrap{KeyID: w[0], Wrap: w[1]}
		if err := d.setJSON(b, tGroupWrap.key(gk, m.User[:], u64(uint64(u.Epoch))), groupWrap{KeyID: w[0], Wrap: w[1]}); err != nil {
			b.Close()
			return false, privateline.E(op, err)
		}
	}
	if hasRemote(g.Members) {
		// The members' servers get the key with a new version of the
		// group (fedgroups.go).
		g.Version++
		if err := d.setJSON(b, tGroup.key(gk), g); err != nil {
			b.Close()
			return false, privateline.E(op, err)
		}
		if err := t.queueGroupUpdates(gk, g.ID, g.Members, g, g.Version, key); err != nil {
			b.Close()
			return false, privateline.E(op, err)
		}
	}
	if err := t.commit(); err != nil {
		return false, privateline.E(op, err)
	}
	return false, nil
}

// GroupKey returns the signed part of an epoch's key document and user's
// own wrap (key id, base64), if user was a member of that epoch and is a
// member now; otherwise NotExist.
func (d *DB) GroupKey(id string, epoch int64, user ID) (signed []byte, keyID, wrap string, err error) {
	const op = "storage.GroupKey"
	g, gk, err := d.group(id)
	if err == nil && g.Member(user) == nil {
		err = privateline.E(op, privateline.NotExist)
	}
	var w groupWrap
	if err == nil {
		err = d.getJSON(tGroupWrap.key(gk, user[:], u64(uint64(epoch))), &w)
	}
	var rec groupKeyRecord
	if err == nil {
		err = d.getJSON(tGroupKey.key(gk, u64(uint64(epoch))), &rec)
	}
	if err != nil {
		return nil, "", "", privateline.E(op, err)
	}
	return rec.Signed, w.KeyID, w.Wrap, nil
}

// lockGroupDelivery locks a group message's stripes (message, group and
// every member) and fills dl.Recipients with the members except the
// sender. It returns the group, read under the locks.
func (d *DB) lockGroupDelivery(dl *Delivery, mid []byte) (*Group, func(), error) {
	g, _, unlock, err := d.lockGroup(dl.Group, ID(mid))
	if err != nil {
		return nil, nil, err
	}
	dl.Recipients, dl.RelayTo, dl.fanout = nil, nil, nil
	_, senderServer, _ := dl.Sender.Address.Split()
	for _, m := range g.Members {
		switch {
		case m.User == dl.Sender.ID:
		case !m.Remote:
			dl.Recipients = append(dl.Recipients, Recipient{ID: m.User, Address: m.Address})
		case g.Replica:
			// A replica's other members are the group server's to reach.
		default:
			_, srv, _ := m.Address.Split()
			if dl.RemoteSender && srv == senderServer {
				// The sender's server stores the sender's members' copies
				// itself, once this delivery is answered (fedgroups.go).
				dl.RelayTo = append(dl.RelayTo, m.Address)
				continue
			}
			if dl.fanout == nil {
				dl.fanout = map[privateline.ServerName][]privateline.Address{}
			}
			dl.fanout[srv] = append(dl.fanout[srv], m.Address)
		}
	}
	slices.Sort(dl.RelayTo)
	return g, unlock, nil
}
