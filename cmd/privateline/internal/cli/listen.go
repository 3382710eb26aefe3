package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/privateline/privateline/clients/go/client"
)

// listen prints the account's events as they happen (the SDK's Listen
// over the server's WebSocket): messages (direct and group) decrypted and
// verified, read receipts, deletions, expiries, contacts' key changes and
// changes of the groups, until interrupted. It holds the config directory's lock while it runs, since
// it may refresh the session's tokens.

func listenFlags(fs *flag.FlagSet, r *runner) {
	fs.Func("after", "first print the events after this sequence number (default: only new events)", func(s string) error {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("not a sequence number: %q", s)
		}
		r.msg.after, r.msg.hasAfter = n, true
		return nil
	})
}

// eventOut is one line of listen's JSON output.
type eventOut struct {
	Type    string   `json:"type"`
	Seq     uint64   `json:"seq"`
	Message *itemOut `json:"message,omitempty"`
	ID      string   `json:"id,omitempty"`
	By      string   `json:"by,omitempty"`
	Address string   `json:"address,omitempty"`
	Group   string   `json:"group,omitempty"`
	// group_changed: the group now, or removed (no longer a member).
	Epoch   int64                `json:"epoch,omitempty"`
	Members []client.GroupMember `json:"members,omitempty"`
	Removed bool                 `json:"removed,omitempty"`
}

func runListen(ctx context.Context, r *runner, args []string) error {
	if len(args) != 0 {
		return usagef("listen takes no arguments but flags")
	}
	s, _, unlock, err := r.lockedSession()
	if err != nil {
		return err
	}
	defer unlock()
	if err := r.unlock(s); err != nil {
		return err
	}
	o := client.ListenOptions{After: r.msg.after, LiveOnly: !r.msg.hasAfter}
	err = s.Listen(ctx, o, func(ev *client.Event) error { return r.printEvent(ev) })
	if errors.Is(err, context.Canceled) {
		return nil // interrupted
	}
	return err
}

func (r *runner) printEvent(ev *client.Event) error {
	out := eventOut{Type: ev.Type, Seq: ev.Seq, ID: ev.ID, By: string(ev.By), Address: string(ev.Address), Group: ev.Group}
	if ev.Item != nil {
		it := newItemOut(ev.Item)
		out.Message = &it
	}
	out.Removed = ev.Removed
	if ev.Info != nil {
		out.Epoch, out.Members = ev.Info.Epoch, ev.Info.Members
	}
	if r.jsonOut {
		return writeJSONLine(r.out, out)
	}
	w := r.out
	switch ev.Type {
	case client.EventReady:
		fmt.Fprintf(r.env.Stderr, "Listening (at #%d); press Ctrl-C to stop.\n", ev.Seq)
	case client.EventReset:
		fmt.Fprintf(w, "#%d  [missed events were no longer kept; the messages since then are shown above]\n", ev.Seq)
	case client.EventMessage, client.EventGroupMessage:
		if out.Message != nil {
			out.Message.print(w)
		}
	case client.EventRead:
		fmt.Fprintf(w, "#%d  %s read %s\n", ev.Seq, ev.By, ev.ID)
	case client.EventDeleted:
		fmt.Fprintf(w, "#%d  message %s was deleted\n", ev.Seq, ev.ID)
	case client.EventExpired:
		fmt.Fprintf(w, "#%d  message %s expired\n", ev.Seq, ev.ID)
	case client.EventKeyChanged:
		fmt.Fprintf(w, "#%d  warning: the keys of %s changed; check them: privateline verify %s\n", ev.Seq, ev.Address, ev.Address)
	case client.EventGroupChanged:
		if ev.Removed {
			fmt.Fprintf(w, "#%d  you are no longer a member of group %s\n", ev.Seq, ev.Group)
		} else {
			var ms []string
			for _, m := range out.Members {
				ms = append(ms, string(m.Address)+" ("+m.Role+")")
			}
			fmt.Fprintf(w, "#%d  group %s changed: epoch %d, members %s\n", ev.Seq, ev.Group, out.Epoch, strings.Join(ms, ", "))
		}
	default:
		fmt.Fprintf(w, "#%d  %s %s\n", ev.Seq, ev.Type, ev.Group)
	}
	return nil
}
