package wire

import "github.com/privateline/privateline/cjson"

// group_leaves (spec/federation.md §12.1): a member's server tells a
// group's server that the member's account was deleted, durably. Entry:
// {"group", "id", "joined", "member"}.

func leaveEntryBody(e Entry) map[string]any {
	return map[string]any{"group": e.Group, "id": e.ID, "joined": e.Joined, "member": string(e.Member)}
}

func readLeaveEntry(e *cjson.Object) Entry {
	return Entry{ID: e.String("id", true), Group: groupID(e, "group"), Member: address(e, "member"),
		Joined: e.Int("joined", true, 0, cjson.MaxSafeInt)}
}
