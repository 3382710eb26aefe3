package wire

import (
	"fmt"
	"slices"
	"strings"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// Groups across servers (spec/federation.md §12.1): the members of the
// group types' entries and of a group_answer's results.

// GroupServer returns the server of a group id, "<32 lower-case hex
// digits>@<server name>": the group's server, which created it and decides
// every change.
func GroupServer(id string) (privateline.ServerName, error) {
	hexPart, server, ok := strings.Cut(id, "@")
	if !ok || !IsID(hexPart) {
		return "", fmt.Errorf("%q is not a group id", id)
	}
	return privateline.ParseServerName(server)
}

func addresses(as []privateline.Address) []any {
	out := make([]any, len(as))
	for i, a := range as {
		out[i] = string(a)
	}
	return out
}

// parsed turns canonical JSON into a value for a message body; bytes that
// are not canonical JSON fail in Sign's own decode.
func parsed(b []byte) any {
	v, err := cjson.Parse(b)
	if err != nil {
		return string(b)
	}
	return v
}

func groupEntryBody(t Type, e Entry) map[string]any {
	m := map[string]any{"group": e.Group, "id": e.ID}
	switch t {
	case TypeGroupEnvelopes:
		m["envelope"] = b64.EncodeToString(e.Envelope)
		m["to"] = addresses(e.To)
	case TypeGroupUpdates:
		m["state"] = parsed(e.State)
	case TypeGroupRequest:
		m["op"] = e.Op
		if e.Requester != "" || e.Op != GroupOpState {
			m["requester"] = string(e.Requester)
		}
		if e.Target != "" {
			m["target"] = string(e.Target)
		}
		if e.Body != nil {
			m["body"] = b64.EncodeToString(e.Body)
		}
		if e.SeenEpoch > 0 {
			m["seen_epoch"], m["seen_era"] = e.SeenEpoch, int64(e.SeenEra)
		}
	}
	return m
}

func groupResultBody(x Result) map[string]any {
	m := map[string]any{"id": x.ID, "status": int64(x.HTTPStatus)}
	if x.Error != "" {
		m["error"] = x.Error
	}
	if x.Message != "" {
		m["message"] = x.Message
	}
	if x.State != nil {
		m["state"] = parsed(x.State)
	}
	if x.Recipients != nil {
		m["recipients"] = addresses(x.Recipients)
	}
	if x.Replayed {
		m["replayed"] = true
	}
	return m
}

// groupID reads a member that must be a group id.
func groupID(o *cjson.Object, name string) string {
	s := o.String(name, true)
	if o.Err() == nil {
		if _, err := GroupServer(s); err != nil {
			o.Fail(name, "a group id (32 lower-case hex digits @ a server name)")
		}
	}
	return s
}

// addressList reads an array of addresses, sorted bytewise and unique,
// lo to hi of them.
func addressList(o *cjson.Object, name string, required bool, lo, hi int) []privateline.Address {
	if !required && !o.Has(name) {
		return nil
	}
	a := o.Array(name, true)
	if o.Err() != nil {
		return nil
	}
	out := make([]privateline.Address, 0, len(a))
	for _, v := range a {
		s, ok := v.(string)
		if _, _, err := privateline.Address(s).Split(); !ok || err != nil {
			o.Fail(name, "an array of addresses")
			return nil
		}
		out = append(out, privateline.Address(s))
	}
	if len(out) < lo || len(out) > hi || !slices.IsSorted(out) || len(slices.Compact(slices.Clone(out))) != len(out) {
		o.Fail(name, fmt.Sprintf("%d to %d addresses, sorted and unique", lo, hi))
		return nil
	}
	return out
}

// object reads an object member as its canonical JSON.
func object(o *cjson.Object, name string, required bool) []byte {
	if !required && !o.Has(name) {
		return nil
	}
	v := o.Object(name, true)
	if o.Err() != nil {
		return nil
	}
	b, err := cjson.Marshal(v)
	if err != nil {
		o.Fail(name, "an object")
	}
	return b
}

func readGroupEntry(e *cjson.Object, t Type) Entry {
	x := Entry{ID: e.String("id", true), Group: groupID(e, "group")}
	switch t {
	case TypeGroupEnvelopes:
		// The size cap is checked by Verify after addressing and freshness.
		x.Envelope = e.Bytes("envelope", true, 1, MaxFrame)
		x.To = addressList(e, "to", true, 1, MaxGroupTo)
	case TypeGroupUpdates:
		x.State = object(e, "state", true)
	case TypeGroupRequest:
		x.Op = e.String("op", true)
		if e.Err() == nil && !slices.Contains(GroupOps, x.Op) {
			e.Fail("op", "one of "+strings.Join(GroupOps, ", "))
		}
		if x.Op == GroupOpState {
			// A server's own pull (spec §12.1): nothing but the group.
			for _, n := range []string{"requester", "target", "body"} {
				if e.Err() == nil && e.Has(n) {
					e.Fail(n, "absent in a state request")
				}
			}
			if e.Has("seen_epoch") {
				x.SeenEpoch = e.Int("seen_epoch", true, 1, cjson.MaxSafeInt)
				x.SeenEra = uint64(e.Int("seen_era", true, 0, cjson.MaxSafeInt))
			} else if e.Err() == nil && e.Has("seen_era") {
				e.Fail("seen_era", "only with seen_epoch")
			}
			break
		}
		x.Requester = address(e, "requester")
		for _, n := range []string{"seen_epoch", "seen_era"} {
			if e.Err() == nil && e.Has(n) {
				e.Fail(n, "only in a state request")
			}
		}
		if e.Has("target") {
			x.Target = address(e, "target")
		}
		if e.Has("body") {
			x.Body = e.Bytes("body", true, 1, MaxFrame)
		}
	}
	return x
}

func readGroupResult(e *cjson.Object) Result {
	r := Result{ID: e.String("id", true), HTTPStatus: int(e.Int("status", true, 200, 599))}
	if e.Has("error") || r.HTTPStatus >= 400 {
		r.Error = e.String("error", true)
		if e.Err() == nil && (!IsCode(r.Error) || r.HTTPStatus < 400) {
			e.Fail("error", "a code (1 to 32 of a-z and _), exactly with a status of 400 or more")
		}
	}
	if e.Has("message") {
		r.Message = e.String("message", true)
		if e.Err() == nil && (r.Error == "" || len(r.Message) > MaxGroupMessage) {
			e.Fail("message", "at most 512 bytes, only with an error")
		}
	}
	r.State = object(e, "state", false)
	r.Recipients = addressList(e, "recipients", false, 0, MaxGroupTo)
	if e.Has("replayed") {
		r.Replayed = e.Bool("replayed", true)
		if e.Err() == nil && !r.Replayed {
			e.Fail("replayed", "true, or absent")
		}
	}
	return r
}
