package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// Attachments: send --attach PATH encrypts and uploads each file before
// sealing the message that carries their keys; history lists them;
// get-file downloads, checks and decrypts one into a file.

// attachOut is an attachment in history's and get-file's output.
type attachOut struct {
	FileID string `json:"file_id"`
	Name   string `json:"name"`
	MIME   string `json:"mime"`
	Size   int64  `json:"size"`
}

// maxHistoryPages bounds the pages get-file searches for a message.
const maxHistoryPages = 100

// readAttachment reads a file to attach and names its type.
func readAttachment(path string) (data []byte, name, typ string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", "", privateline.E("cli", privateline.Invalid, "cannot open the file to attach", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, "", "", privateline.E("cli", privateline.Invalid, path+" is not a regular file")
	}
	if fi.Size() > e2ee.MaxAttachment {
		return nil, "", "", privateline.E("cli", privateline.TooLarge, fmt.Sprintf("%s is over %d bytes, the attachment limit", path, e2ee.MaxAttachment))
	}
	if data, err = os.ReadFile(path); err != nil {
		return nil, "", "", privateline.E("cli", privateline.Invalid, "cannot read the file to attach", err)
	}
	name = filepath.Base(path)
	for len(name) > 255 || !utf8.ValidString(name) {
		name = strings.ToValidUTF8(name, "_")
		if len(name) > 255 {
			name = name[:255]
		}
	}
	typ = mime.TypeByExtension(filepath.Ext(path))
	if typ == "" {
		typ = http.DetectContentType(data)
	}
	if mt, _, err := mime.ParseMediaType(typ); err == nil {
		typ = mt
	} else {
		typ = "application/octet-stream"
	}
	return data, name, typ, nil
}

// uploadAttachments encrypts and uploads the files of send --attach.
func (r *runner) uploadAttachments(ctx context.Context, s *client.Session) ([]e2ee.Attachment, error) {
	var atts []e2ee.Attachment
	for _, p := range r.msg.attach {
		data, name, typ, err := readAttachment(p)
		if err != nil {
			return nil, err
		}
		a, err := s.UploadFile(ctx, data, name, typ)
		if err != nil {
			return nil, err
		}
		atts = append(atts, *a)
	}
	return atts, nil
}

func attachmentsOut(as []e2ee.Attachment) []attachOut {
	var out []attachOut
	for _, a := range as {
		out = append(out, attachOut{FileID: a.FileID, Name: a.Name, MIME: a.MIME, Size: a.Size})
	}
	return out
}

// safeName is the file name get-file writes by default: the attachment's
// name without any directory part.
func safeName(name, fileID string) string {
	n := filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	if n == "." || n == ".." || n == "/" || n == "" || strings.HasPrefix(n, ".") {
		n = "attachment-" + fileID
	}
	return n
}

func getFileFlags(fs *flag.FlagSet, r *runner) {
	fs.StringVar(&r.msg.out, "out", "", "write the file here (default: its name, in the current directory; never overwrites)")
}

// runGetFile downloads an attachment of a message: get-file MESSAGE_ID
// [FILE_ID or NAME] (the only attachment when the message has one).
func runGetFile(ctx context.Context, r *runner, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usagef("get-file needs a message id and, when it has several attachments, the file id or name")
	}
	msgID := strings.ToLower(args[0])
	s, _, unlock, err := r.lockedSession()
	if err != nil {
		return err
	}
	defer unlock()
	if err := r.unlock(s); err != nil {
		return err
	}
	it, err := findMessage(ctx, s, msgID)
	if err != nil {
		return err
	}
	if it.Err != nil {
		return it.Err
	}
	var pick *e2ee.Attachment
	for i, a := range it.Message.Attachments {
		if len(args) == 1 || a.FileID == args[1] || a.Name == args[1] {
			if pick != nil {
				return usagef("the message has several attachments; name one: %s", names(it.Message.Attachments))
			}
			pick = &it.Message.Attachments[i]
		}
	}
	if pick == nil {
		return privateline.E("cli", privateline.NotExist, "no such attachment in message "+msgID)
	}
	data, err := s.DownloadFile(ctx, *pick)
	if err != nil {
		return err
	}
	out := r.msg.out
	if out == "" {
		out = safeName(pick.Name, pick.FileID)
	}
	if err := writeNew(out, data); err != nil {
		return err
	}
	res := struct {
		attachOut
		Path string `json:"path"`
	}{attachmentsOut([]e2ee.Attachment{*pick})[0], out}
	return r.emit(res, func(w io.Writer) {
		fmt.Fprintf(w, "Saved %s (%s, %d bytes) to %s.\n", pick.Name, pick.MIME, pick.Size, out)
	})
}

func names(as []e2ee.Attachment) string {
	var n []string
	for _, a := range as {
		n = append(n, fmt.Sprintf("%s (%s)", a.Name, a.FileID))
	}
	return strings.Join(n, ", ")
}

// writeNew writes data to a file that must not exist yet.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return privateline.E("cli", privateline.Exist, path+" exists; choose another with --out")
	} else if err != nil {
		return privateline.E("cli", privateline.Invalid, "cannot create the file", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return privateline.E("cli", privateline.Unavailable, "cannot write the file", err)
	}
	return f.Close()
}

// findMessage pages through the mailbox, newest first, for a message.
func findMessage(ctx context.Context, s *client.Session, id string) (*client.Item, error) {
	for page := range maxHistoryPages {
		items, err := s.Messages(ctx, client.MessagesQuery{Limit: 100, Offset: page * 100})
		if err != nil {
			return nil, err
		}
		for i := range items {
			if items[i].ID == id {
				return &items[i], nil
			}
		}
		if len(items) < 100 {
			break
		}
	}
	return nil, privateline.E("cli", privateline.NotExist, "no message "+id+" in your history")
}
