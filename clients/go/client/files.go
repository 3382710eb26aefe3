package client

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// Files (POST/GET/DELETE /api/files, spec/e2ee.md §9): an attachment is
// encrypted under its own key, the blob uploaded, and the returned
// e2ee.Attachment — id, key, digest, size — put in the Message that Send
// seals; e2ee fills the header's "files" from it, which is what lets the
// recipients download the blob. A receiver downloads with DownloadFile,
// which checks the digest before decrypting.

// maxBlob is the largest blob a client uploads or downloads.
const maxBlob = e2ee.MaxAttachment + e2ee.NonceSize + 16

// UploadFile encrypts data as an attachment named name of type mime and
// uploads the blob, streaming it from memory (no copy is made). The
// result goes into Message.Attachments. Over the server's MAX_FILE_SIZE is
// TooLarge (code too_large), over the user's quota TooLarge with code
// quota_exceeded.
func (s *Session) UploadFile(ctx context.Context, data []byte, name, mime string) (*e2ee.Attachment, error) {
	const op = "client.Session.UploadFile"
	blob, att, err := e2ee.EncryptAttachment(nil, data)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	att.Name, att.MIME = name, mime
	resp, err := s.stream(ctx, op, http.MethodPost, "/api/files", blob)
	if err != nil {
		return nil, err
	}
	r, err := readAll(op, resp, MaxResponse)
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusCreated); err != nil {
		return nil, err
	}
	var fr struct {
		ID   string `json:"id"`
		Size int64  `json:"size"`
	}
	if err := decode(op, r, &fr); err != nil {
		return nil, err
	}
	if fr.Size != int64(len(blob)) {
		return nil, privateline.E(op, privateline.Invalid, "the server stored another number of bytes than were sent")
	}
	att.FileID = fr.ID
	return &att, nil
}

// DownloadFile downloads an attachment's blob and decrypts it: the blob's
// SHA-256 is checked against the attachment before anything is decrypted
// (e2ee.DecryptAttachment). A file the caller may not read, or that has
// gone with its messages, is NotExist.
func (s *Session) DownloadFile(ctx context.Context, a e2ee.Attachment) ([]byte, error) {
	const op = "client.Session.DownloadFile"
	resp, err := s.stream(ctx, op, http.MethodGet, "/api/files/"+url.PathEscape(a.FileID), nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		r, err := readAll(op, resp, MaxResponse)
		if err != nil {
			return nil, err
		}
		return nil, apiError(op, r)
	}
	if resp.ContentLength > maxBlob {
		resp.Body.Close()
		return nil, privateline.E(op, privateline.TooLarge, "the file is over the attachment size limit")
	}
	r, err := readAll(op, resp, maxBlob)
	if err != nil {
		return nil, err
	}
	data, err := e2ee.DecryptAttachment(a, r.body)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return data, nil
}

// DeleteFile deletes an uploaded file that no message lists (a listed one
// goes with its last message: Exist, code file_in_use).
func (s *Session) DeleteFile(ctx context.Context, fileID string) error {
	const op = "client.Session.DeleteFile"
	r, err := s.do(ctx, op, &request{method: http.MethodDelete, path: "/api/files/" + url.PathEscape(fileID)})
	if err != nil {
		return err
	}
	return expect(op, r, http.StatusNoContent)
}

// stream sends an authenticated request with a raw body (nil: none) and
// returns the answer unread; the caller closes its body. On 401 it
// refreshes the tokens and sends the request once more.
func (s *Session) stream(ctx context.Context, op, method, path string, body []byte) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		tok, err := s.access(op)
		if err != nil {
			return nil, err
		}
		resp, err := s.c.raw(ctx, op, method, path, tok, body)
		if err != nil || resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return resp, err
		}
		resp.Body.Close()
		if err := s.refresh(ctx, op, tok); err != nil {
			return nil, err
		}
	}
}

// raw sends one request with an octet-stream body (nil: none).
func (c *Client) raw(ctx context.Context, op, method, path string, tok privateline.Secret, body []byte) (*http.Response, error) {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, privateline.E(op, privateline.Invalid, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if c.ua != "" {
		req.Header.Set("User-Agent", c.ua)
	}
	req.Header.Set("Authorization", "Bearer "+string(tok.Bytes()))
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, privateline.E(op, privateline.Unavailable, "cannot reach the server", err)
	}
	return resp, nil
}

// readAll reads an answer of at most max bytes and closes it.
func readAll(op string, resp *http.Response, max int64) (*response, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, privateline.E(op, privateline.Unavailable, "the server's answer was cut off", err)
	}
	if int64(len(b)) > max {
		return nil, privateline.E(op, privateline.TooLarge, "the server's answer is over the client's size cap")
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}
