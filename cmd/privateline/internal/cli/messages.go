package cli

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// maxMessageText caps a message read from a file or standard input (the
// envelope's plaintext cap is larger; a text message this long is a
// mistake).
const maxMessageText = 64 << 10

// messageFlags are the flags of send and history.
type messageFlags struct {
	file     string
	with     string
	limit    int
	after    uint64
	hasAfter bool
	attach   []string // send: files to attach
	out      string   // get-file: where to write
}

func sendFlags(fs *flag.FlagSet, r *runner) {
	fs.StringVar(&r.msg.file, "file", "", "read the message text from this file ('-': standard input)")
	fs.Func("attach", "attach this file, encrypted (repeatable)", func(p string) error {
		if len(r.msg.attach) >= e2ee.MaxAttachments {
			return fmt.Errorf("at most %d attachments", e2ee.MaxAttachments)
		}
		r.msg.attach = append(r.msg.attach, p)
		return nil
	})
}

func historyFlags(fs *flag.FlagSet, r *runner) {
	fs.StringVar(&r.msg.with, "with", "", "only the conversation with this contact")
	fs.IntVar(&r.msg.limit, "limit", 0, "at most this many messages, 1 to 100 (default: the server's, 50)")
	fs.Func("after", "only the messages after this sequence number (oldest first)", func(s string) error {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("not a sequence number: %q", s)
		}
		r.msg.after, r.msg.hasAfter = n, true
		return nil
	})
}

// splitSend reads send's arguments: ADDRESS... -- TEXT..., or ADDRESS
// TEXT... (one recipient), or ADDRESS... alone (text from --file or
// standard input).
func splitSend(args []string, haveFile bool) (addrs, text []string, err error) {
	if i := slices.Index(args, "--"); i >= 0 {
		addrs, text = args[:i], args[i+1:]
	} else if haveFile {
		addrs = args
	} else if len(args) > 0 {
		addrs, text = args[:1], args[1:]
	}
	if len(addrs) == 0 {
		return nil, nil, usagef("send needs a recipient: send ADDRESS [TEXT...], or send ADDRESS... -- TEXT...")
	}
	if haveFile && len(text) > 0 {
		return nil, nil, usagef("send takes the text from --file or from the arguments, not both")
	}
	return addrs, text, nil
}

// sendOut is what send prints.
type sendOut struct {
	ID         string                `json:"id"`
	Seq        uint64                `json:"seq"`
	SentAt     time.Time             `json:"sent_at"`
	To         []privateline.Address `json:"to"`
	Replayed   bool                  `json:"replayed,omitempty"`
	KeyChanged []privateline.Address `json:"key_changed"`
	Pinned     []privateline.Address `json:"pinned"`
	Files      []attachOut           `json:"attachments,omitempty"`
}

func runSend(ctx context.Context, r *runner, args []string) error {
	addrArgs, words, err := splitSend(args, r.msg.file != "")
	if err != nil {
		return err
	}
	fromStdin := r.msg.file == "-" || (r.msg.file == "" && len(words) == 0 && len(r.msg.attach) == 0)
	if fromStdin && r.passwordFile == "" && r.env.Getenv("PRIVATELINE_PASSWORD_FILE") == "" && !isTerminal(r.env.Stdin) {
		return usagef("the message comes from standard input, so the password cannot: give --password-file")
	}
	s, _, unlock, err := r.lockedSession()
	if err != nil {
		return err
	}
	defer unlock()
	var to []privateline.Address
	for _, a := range addrArgs {
		addr, err := resolveAddress(s, a)
		if err != nil {
			return err
		}
		to = append(to, addr)
	}
	if err := r.unlock(s); err != nil {
		return err
	}
	body := strings.Join(words, " ")
	if len(words) == 0 && (r.msg.file != "" || len(r.msg.attach) == 0) {
		if body, err = r.messageText(); err != nil {
			return err
		}
	}
	if strings.TrimSpace(body) == "" && len(r.msg.attach) == 0 {
		return usagef("the message is empty")
	}
	atts, err := r.uploadAttachments(ctx, s) // files.go
	if err != nil {
		return err
	}
	res, err := s.Send(ctx, to, &e2ee.Message{Type: e2ee.MessageTypeText, Body: body, Attachments: atts}, client.SendOptions{})
	if err != nil {
		return err
	}
	slices.Sort(to)
	to = slices.Compact(to)
	out := &sendOut{ID: res.ID, Seq: res.Seq, SentAt: res.SentAt, To: to, Replayed: res.Replayed,
		KeyChanged: nonNil(res.KeyChanged), Pinned: nonNil(res.Pinned), Files: attachmentsOut(atts)}
	for _, a := range out.KeyChanged {
		fmt.Fprintf(r.env.Stderr, "privateline: warning: the identity key of %s changed since it was pinned; the message went to the new key. Check it: privateline verify %s\n", a, a)
	}
	return r.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "Sent to %s (id %s).\n", joinAddrs(to), out.ID)
		for _, a := range out.Pinned {
			fmt.Fprintf(w, "Pinned %s's key on first use; compare safety numbers with: privateline verify %s\n", a, a)
		}
	})
}

// messageText reads the text from --file or standard input.
func (r *runner) messageText() (string, error) {
	var src io.Reader = r.env.Stdin
	if r.msg.file != "" && r.msg.file != "-" {
		f, err := os.Open(r.msg.file)
		if err != nil {
			return "", privateline.E("cli", privateline.Invalid, "cannot open the message file", err)
		}
		defer f.Close()
		src = f
	}
	b, err := io.ReadAll(io.LimitReader(src, maxMessageText+1))
	if err != nil {
		return "", privateline.E("cli", privateline.Invalid, "cannot read the message", err)
	}
	if len(b) > maxMessageText {
		return "", privateline.E("cli", privateline.TooLarge, fmt.Sprintf("the message is over %d bytes", maxMessageText))
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func joinAddrs(as []privateline.Address) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// itemOut is one message in history's output.
type itemOut struct {
	Seq        uint64                `json:"seq"`
	ID         string                `json:"id"`
	From       privateline.Address   `json:"from"`
	To         []privateline.Address `json:"to"`
	Group      string                `json:"group,omitempty"`
	SentAt     time.Time             `json:"sent_at"`
	Outgoing   bool                  `json:"outgoing"`
	Read       bool                  `json:"read"`
	ReadBy     []privateline.Address `json:"read_by,omitempty"`
	Type       string                `json:"type,omitempty"`
	Text       *string               `json:"text,omitempty"`
	Files      []attachOut           `json:"attachments,omitempty"`
	KeyChanged bool                  `json:"key_changed,omitempty"`
	Error      *itemError            `json:"error,omitempty"`
}

type itemError struct {
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
}

func newItemOut(it *client.Item) itemOut {
	o := itemOut{Seq: it.Seq, ID: it.ID, From: it.From, To: nonNil(it.To), Group: it.Group, SentAt: it.SentAt, Outgoing: it.Outgoing,
		Read: it.Read, ReadBy: it.ReadBy, KeyChanged: it.KeyChanged}
	if it.Err != nil {
		msg := privateline.MessageOf(it.Err)
		if msg == "" {
			msg = it.Err.Error()
		}
		o.Error = &itemError{Reason: string(e2ee.ReasonOf(it.Err)), Message: msg}
	} else if it.Message != nil {
		body := it.Message.Body
		o.Type, o.Text = it.Message.Type, &body
		o.Files = attachmentsOut(it.Message.Attachments)
	}
	return o
}

func (o *itemOut) print(w io.Writer) {
	state := ""
	switch {
	case o.Outgoing && len(o.ReadBy) > 0:
		state = "  read by " + joinAddrs(o.ReadBy)
	case !o.Outgoing && !o.Read:
		state = "  unread"
	}
	to := joinAddrs(o.To)
	if o.Group != "" {
		to = "group " + o.Group
	}
	fmt.Fprintf(w, "%s  %s → %s  #%d %s%s\n", o.SentAt.Local().Format("2006-01-02 15:04"), o.From, to, o.Seq, o.ID, state)
	switch {
	case o.KeyChanged:
		fmt.Fprintf(w, "    [not shown: %s's identity key changed; check it with: privateline verify %s]\n", o.From, o.From)
	case o.Error != nil:
		reason := ""
		if o.Error.Reason != "" {
			reason = " (" + o.Error.Reason + ")"
		}
		fmt.Fprintf(w, "    [cannot be shown: %s%s]\n", o.Error.Message, reason)
	case o.Type != e2ee.MessageTypeText:
		fmt.Fprintf(w, "    [unsupported message type %q]\n", o.Type)
	default:
		if *o.Text != "" || len(o.Files) == 0 {
			for line := range strings.SplitSeq(*o.Text, "\n") {
				fmt.Fprintf(w, "    %s\n", line)
			}
		}
		for _, f := range o.Files {
			fmt.Fprintf(w, "    [attachment %q, %s, %d bytes; save it with: privateline get-file %s %s]\n", f.Name, f.MIME, f.Size, o.ID, f.FileID)
		}
	}
}

func runHistory(ctx context.Context, r *runner, args []string) error {
	if len(args) != 0 {
		return usagef("history takes no arguments but flags")
	}
	if r.msg.limit < 0 || r.msg.limit > 100 {
		return usagef("--limit must be 1 to 100")
	}
	s, _, unlock, err := r.lockedSession()
	if err != nil {
		return err
	}
	defer unlock()
	q := client.MessagesQuery{Limit: r.msg.limit, After: r.msg.after, HasAfter: r.msg.hasAfter}
	if r.msg.with != "" {
		if q.With, err = resolveAddress(s, r.msg.with); err != nil {
			return err
		}
	}
	if err := r.unlock(s); err != nil {
		return err
	}
	items, err := s.Messages(ctx, q)
	if err != nil {
		return err
	}
	// Oldest first, as a conversation reads.
	slices.SortFunc(items, func(a, b client.Item) int { return cmp.Compare(a.Seq, b.Seq) })
	list := make([]itemOut, 0, len(items))
	for i := range items {
		list = append(list, newItemOut(&items[i]))
	}
	return r.emit(map[string]any{"messages": list}, func(w io.Writer) {
		if len(list) == 0 {
			fmt.Fprintln(w, "No messages.")
			return
		}
		for i := range list {
			list[i].print(w)
		}
	})
}

func runRead(ctx context.Context, r *runner, args []string) error {
	id, err := oneArg(args, "ID")
	if err != nil {
		return err
	}
	s, _, unlock, err := r.lockedSession()
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.MarkRead(ctx, strings.ToLower(id)); err != nil {
		return err
	}
	return r.emit(map[string]any{"id": strings.ToLower(id), "read": true}, func(w io.Writer) {
		fmt.Fprintf(w, "Marked %s read.\n", strings.ToLower(id))
	})
}

func runUnread(ctx context.Context, r *runner, args []string) error {
	if len(args) != 0 {
		return usagef("unread takes no arguments")
	}
	s, _, unlock, err := r.lockedSession()
	if err != nil {
		return err
	}
	defer unlock()
	u, err := s.UnreadCount(ctx)
	if err != nil {
		return err
	}
	return r.emit(u, func(w io.Writer) {
		fmt.Fprintf(w, "%d unread (%d direct, %d in groups)\n", u.Unread, u.Direct, u.Groups)
	})
}
