package cli

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// The group command: group create|list|show|add|remove|leave|send|history.
// Each subcommand reads its own flags after its name. Commands that change
// the membership or read or send messages need the password: the SDK
// rekeys after a membership change and seals and opens with the group key.

const groupUsage = "group create [MEMBER...] | list | show ID | add [--role admin] ID MEMBER | remove ID MEMBER | leave ID | send [--file F] ID [TEXT...] | history [--limit N] [--after SEQ] ID"

// groupOut is a group as the command prints it.
type groupOut struct {
	ID      string               `json:"id"`
	Epoch   int64                `json:"epoch"`
	Members []client.GroupMember `json:"members"`
}

func newGroupOut(g *client.Group) groupOut {
	return groupOut{ID: g.ID, Epoch: g.Epoch, Members: nonNil(g.Members)}
}

func (g groupOut) print(w io.Writer) {
	fmt.Fprintf(w, "%s  epoch %d, %d members\n", g.ID, g.Epoch, len(g.Members))
	for _, m := range g.Members {
		fmt.Fprintf(w, "    %s (%s)\n", m.Address, m.Role)
	}
}

func runGroup(ctx context.Context, r *runner, args []string) error {
	if len(args) == 0 {
		return usagef("usage: privateline %s", groupUsage)
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("privateline group "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	r.globalFlags(fs)
	role := ""
	switch sub {
	case "add":
		fs.StringVar(&role, "role", "", `"admin" or "member" (default)`)
	case "send":
		sendFlags(fs, r)
	case "history":
		historyFlags(fs, r)
	case "create", "list", "show", "remove", "leave":
	default:
		return usagef("unknown group command %q; usage: privateline %s", sub, groupUsage)
	}
	if err := fs.Parse(rest); err != nil {
		return usagef("%v", err)
	}
	rest = fs.Args()
	need := map[string]int{"list": 0, "show": 1, "add": 2, "remove": 2, "leave": 1}
	if n, ok := need[sub]; ok && len(rest) != n {
		return usagef("usage: privateline %s", groupUsage)
	}
	if (sub == "send" || sub == "history") && len(rest) < 1 {
		return usagef("usage: privateline %s", groupUsage)
	}
	if sub == "history" && (len(rest) != 1 || r.msg.limit < 0 || r.msg.limit > 100 || r.msg.with != "") {
		return usagef("group history takes one group id and no --with; --limit must be 1 to 100")
	}
	if sub == "send" && len(r.msg.attach) > 0 {
		return usagef("group send does not take attachments yet")
	}
	s, _, unlock, err := r.lockedSession()
	if err != nil {
		return err
	}
	defer unlock()
	var addrs []privateline.Address
	memberArgs := rest
	if sub != "create" && len(rest) > 0 {
		memberArgs = rest[1:]
	}
	if sub == "send" {
		memberArgs = nil
	}
	for _, a := range memberArgs {
		addr, err := resolveAddress(s, a)
		if err != nil {
			return err
		}
		addrs = append(addrs, addr)
	}
	if sub != "list" && sub != "show" && sub != "leave" {
		if err := r.unlock(s); err != nil {
			return err
		}
	}
	switch sub {
	case "create":
		g, err := s.CreateGroup(ctx, addrs)
		if err != nil {
			return err
		}
		out := newGroupOut(g)
		return r.emit(out, func(w io.Writer) { fmt.Fprint(w, "Created "); out.print(w) })
	case "list":
		gs, err := s.Groups(ctx)
		if err != nil {
			return err
		}
		list := make([]groupOut, 0, len(gs))
		for i := range gs {
			list = append(list, newGroupOut(&gs[i]))
		}
		return r.emit(map[string]any{"groups": list}, func(w io.Writer) {
			if len(list) == 0 {
				fmt.Fprintln(w, "No groups.")
			}
			for _, g := range list {
				g.print(w)
			}
		})
	case "show":
		g, err := s.Group(ctx, rest[0])
		if err != nil {
			return err
		}
		out := newGroupOut(g)
		return r.emit(out, out.print)
	case "add":
		g, err := s.AddMember(ctx, rest[0], addrs[0], role)
		if err != nil {
			return err
		}
		out := newGroupOut(g)
		return r.emit(out, func(w io.Writer) { fmt.Fprintf(w, "Added %s; new key distributed. ", addrs[0]); out.print(w) })
	case "remove":
		if err := s.RemoveMember(ctx, rest[0], addrs[0]); err != nil {
			return err
		}
		return r.emit(map[string]any{"group": rest[0], "removed": addrs[0]}, func(w io.Writer) {
			fmt.Fprintf(w, "Removed %s from %s; new key distributed.\n", addrs[0], rest[0])
		})
	case "leave":
		if err := s.Leave(ctx, rest[0]); err != nil {
			return err
		}
		return r.emit(map[string]any{"group": rest[0], "left": true}, func(w io.Writer) { fmt.Fprintf(w, "Left %s.\n", rest[0]) })
	case "send":
		return groupSend(ctx, r, s, rest[0], rest[1:])
	default: // history
		return groupHistory(ctx, r, s, rest[0])
	}
}

func groupSend(ctx context.Context, r *runner, s *client.Session, id string, words []string) error {
	if r.msg.file != "" && len(words) > 0 {
		return usagef("send takes the text from --file or from the arguments, not both")
	}
	body := strings.Join(words, " ")
	if len(words) == 0 {
		var err error
		if body, err = r.messageText(); err != nil {
			return err
		}
	}
	if strings.TrimSpace(body) == "" {
		return usagef("the message is empty")
	}
	res, err := s.SendGroup(ctx, id, &e2ee.Message{Type: e2ee.MessageTypeText, Body: body}, client.SendOptions{})
	if err != nil {
		return err
	}
	return r.emit(map[string]any{"id": res.ID, "seq": res.Seq, "group": id, "sent_at": res.SentAt}, func(w io.Writer) {
		fmt.Fprintf(w, "Sent to %s (id %s).\n", id, res.ID)
	})
}

func groupHistory(ctx context.Context, r *runner, s *client.Session, id string) error {
	items, err := s.GroupMessages(ctx, id, client.MessagesQuery{Limit: r.msg.limit, After: r.msg.after, HasAfter: r.msg.hasAfter})
	if err != nil {
		return err
	}
	slices.SortFunc(items, func(a, b client.Item) int { return cmp.Compare(a.Seq, b.Seq) })
	list := make([]itemOut, 0, len(items))
	for i := range items {
		o := newItemOut(&items[i])
		o.To = []privateline.Address{}
		list = append(list, o)
	}
	return r.emit(map[string]any{"group": id, "messages": list}, func(w io.Writer) {
		if len(list) == 0 {
			fmt.Fprintln(w, "No messages.")
			return
		}
		for i := range list {
			list[i].print(w)
		}
		fmt.Fprintf(w, "(%d messages in %s)\n", len(list), id)
	})
}
