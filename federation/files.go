package federation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation/transport"
	"github.com/privateline/privateline/federation/wire"
)

// Files across servers (spec/federation.md §12.4): answering a peer's
// file_request with a signed file_answer and the blob's bytes on the same
// stream (answerFile), and fetching a file of another server for a local
// user (FetchRemoteFile): one fetch per (origin, file) at a time, the
// bytes checked against the answer's size and SHA-256 before the store
// keeps them.

// Limits of file transfers (spec §12.4).
const (
	// MaxFileStreamsPerOrigin bounds the file answers streaming to one
	// origin at once, and this server's fetches from one origin.
	MaxFileStreamsPerOrigin = 4
	// fileProgressTimeout: each chunk of a body must move within it.
	fileProgressTimeout = 30 * time.Second
	// fileFetchTimeout bounds a whole fetch.
	fileFetchTimeout = 30 * time.Minute
	// errUnknownFile is a file_answer's only error code.
	errUnknownFile = "unknown_file"
)

// fileState is the Service's bookkeeping of file transfers.
type fileState struct {
	mu       sync.Mutex
	serving  map[privateline.ServerName]int           // answers streaming per origin
	fetching map[privateline.ServerName]chan struct{} // fetch slots per origin
	flights  map[fileKey]*flight                      // fetches in progress
}

type fileKey struct {
	origin privateline.ServerName
	file   string
}

// flight is one fetch that concurrent downloads of the same file wait for.
type flight struct {
	done    chan struct{}
	err     error
	waiters int // downloads waiting for it (guarded by fileState.mu)
}

func (fs *fileState) init() {
	if fs.serving == nil {
		fs.serving = map[privateline.ServerName]int{}
		fs.fetching = map[privateline.ServerName]chan struct{}{}
		fs.flights = map[fileKey]*flight{}
	}
}

// answerFile answers a verified file_request (spec §12.4) on st: an
// unknown_file answer, an error frame, or the file_answer followed by
// the blob's bytes, which it writes itself (then it returns nil).
func (s *Service) answerFile(tx *wire.Transaction, st *transport.Stream) []byte {
	origin := tx.Origin
	s.files.mu.Lock()
	s.files.init()
	if s.files.serving[origin] >= MaxFileStreamsPerOrigin {
		s.files.mu.Unlock()
		return s.refuse(origin, codeRateLimited, fmt.Sprintf("more than %d file transfers in progress", MaxFileStreamsPerOrigin), time.Second)
	}
	s.files.serving[origin]++
	s.files.mu.Unlock()
	defer func() {
		s.files.mu.Lock()
		if s.files.serving[origin]--; s.files.serving[origin] <= 0 {
			delete(s.files.serving, origin)
		}
		s.files.mu.Unlock()
	}()

	e := tx.Entries[0]
	ans := &wire.Receipt{
		Header:  wire.Header{Origin: s.cfg.Name, Destination: origin, TxnID: tx.TxnID},
		Type:    wire.TypeFileAnswer,
		Results: []wire.Result{{ID: e.ID}},
	}
	fi, f, err := s.store.FileForPeer(origin, e.Requester, e.Message, e.File, s.now())
	switch {
	case privateline.Is(privateline.NotExist, err):
		ans.Results[0].Error = errUnknownFile
		s.met.files.WithLabelValues("answered_unknown").Inc()
	case err != nil:
		s.log.Error("federation: answering a file request", "origin", string(origin), "err", err)
		return s.refuse(origin, codeUnavailable, "the file cannot be read now", 0)
	default:
		defer f.Close()
		ans.Results[0].File, ans.Results[0].Size, ans.Results[0].SHA256 = fi.ID, fi.Size, fi.SHA256
	}
	ans.CreatedAt = s.now().UnixMilli()
	out, err := wire.Sign(ans, s.cfg.Key)
	if err != nil {
		s.log.Error("federation: signing a file answer", "origin", string(origin), "err", err)
		return s.refuse(origin, codeInternal, "the receiver could not sign its answer", 0)
	}
	if f == nil {
		return out
	}
	if err := st.SendFrame(out); err != nil {
		st.Cancel()
		return nil
	}
	if err := st.SendBody(f, fi.Size, fileProgressTimeout); err != nil {
		s.log.Info("federation: a file transfer failed", "origin", string(origin), "err", err)
		s.met.files.WithLabelValues("served_failed").Inc()
		st.Cancel()
		return nil
	}
	s.met.files.WithLabelValues("served").Inc()
	s.met.fileBytes.WithLabelValues("served").Add(float64(fi.Size))
	return nil
}

// FetchRemoteFile fetches file, a file of origin listed by message (an
// envelope from origin that requester, a local user, holds), and has the
// store keep it (spec §12.4). Concurrent calls for one (origin, file)
// wait for one fetch, which runs to its end even if the caller that
// started it gives up. Errors: NotExist when the origin answers
// unknown_file (or the message went here meanwhile); Unavailable, with a
// sentence for people, when the origin cannot be reached, refuses, or
// sends something that does not check out (nothing is stored then).
func (s *Service) FetchRemoteFile(ctx context.Context, origin privateline.ServerName, file, message string, requester privateline.Address) error {
	const op = "federation.FetchRemoteFile"
	if origin == s.cfg.Name {
		return privateline.E(op, privateline.Invalid, "a file of this server")
	}
	s.mu.Lock()
	running := s.started && !s.closed
	s.mu.Unlock()
	if !running {
		return privateline.E(op, privateline.Unavailable, "federation is not running")
	}
	k := fileKey{origin, file}
	s.files.mu.Lock()
	s.files.init()
	fl := s.files.flights[k]
	if fl == nil {
		fl = &flight{done: make(chan struct{})}
		s.files.flights[k] = fl
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			fl.err = s.fetchFile(origin, file, message, requester)
			s.files.mu.Lock()
			delete(s.files.flights, k)
			s.files.mu.Unlock()
			close(fl.done)
		}()
	}
	fl.waiters++
	s.files.mu.Unlock()
	select {
	case <-fl.done:
		return fl.err
	case <-ctx.Done():
		return privateline.E(op, privateline.Unavailable, "the download was abandoned", ctx.Err())
	}
}

// fetchFile is one fetch; see FetchRemoteFile.
func (s *Service) fetchFile(origin privateline.ServerName, file, message string, requester privateline.Address) (err error) {
	const op = "federation.FetchRemoteFile"
	ctx, cancel := context.WithTimeout(s.ctx, fileFetchTimeout)
	defer cancel()
	unreachable := func(what string, cause error) error {
		s.met.files.WithLabelValues("fetch_failed").Inc()
		s.log.Info("federation: fetching a file failed", "origin", string(origin), "reason", what, "err", cause)
		return privateline.E(op, privateline.Unavailable, fmt.Sprintf("the file is on %s, which %s; try again later", origin, what), cause)
	}

	// A fetch slot for origin (spec §12.4: at most 4 at once).
	s.files.mu.Lock()
	slots := s.files.fetching[origin]
	if slots == nil {
		slots = make(chan struct{}, MaxFileStreamsPerOrigin)
		s.files.fetching[origin] = slots
	}
	s.files.mu.Unlock()
	select {
	case slots <- struct{}{}:
		defer func() { <-slots }()
	case <-ctx.Done():
		return unreachable("is busy", ctx.Err())
	}

	s.mu.Lock()
	if !s.started || s.closed {
		s.mu.Unlock()
		return privateline.E(op, privateline.Unavailable, "federation is not running")
	}
	sd := s.senderLocked(origin)
	s.mu.Unlock()

	req := &wire.Transaction{Type: wire.TypeFileRequest,
		Entries: []wire.Entry{{ID: wire.NewTxnID(), File: file, Message: message, Requester: requester}},
		Header:  wire.Header{Origin: s.cfg.Name, Destination: origin, TxnID: wire.NewTxnID(), CreatedAt: s.now().UnixMilli()}}
	raw, err := wire.Sign(req, s.cfg.Key)
	if err != nil {
		return privateline.E(op, privateline.Internal, err)
	}
	lctx, lcancel := context.WithTimeout(ctx, attemptTimeout)
	conn, err := sd.link(lctx)
	lcancel()
	if err != nil {
		return unreachable("cannot be reached", err)
	}
	st, err := conn.OpenStream(ctx)
	if err != nil {
		sd.dropLink()
		return unreachable("cannot be reached", err)
	}
	stop := context.AfterFunc(ctx, st.Cancel)
	defer stop()
	st.SetDeadline(time.Now().Add(attemptTimeout))
	if err := st.Send(raw); err != nil {
		st.Cancel()
		sd.dropLink()
		return unreachable("did not answer", err)
	}
	resp, err := st.ReceiveFrame()
	if err != nil {
		st.Cancel()
		sd.dropLink()
		return unreachable("did not answer", err)
	}
	st.SetDeadline(time.Time{}) // the body's reads have their own deadlines
	if ef, ok := parseErrorFrame(resp); ok {
		st.Cancel()
		return unreachable(fmt.Sprintf("refused to send it (%s)", ef.code), errors.New(ef.message))
	}
	peer := wire.Peer{Name: origin, Key: conn.PeerKey()}
	ans, err := wire.VerifyReceipt(resp, peer, s.cfg.Name, s.now(), wire.DefaultLimits(), req)
	if err != nil {
		st.Cancel()
		s.met.rejected.WithLabelValues(string(wire.ReasonOf(err))).Inc()
		return unreachable("answered with something that does not verify", err)
	}
	r := ans.Results[0]
	switch {
	case r.Error == errUnknownFile:
		st.Cancel()
		s.met.files.WithLabelValues("fetch_unknown").Inc()
		return privateline.E(op, privateline.NotExist, fmt.Sprintf("%s does not have this file for you (the message may have been deleted there)", origin))
	case r.Error != "":
		st.Cancel()
		return unreachable(fmt.Sprintf("refused to send it (%s)", r.Error), errors.New(r.Error))
	case r.File != file:
		st.Cancel()
		return unreachable("answered for another file", fmt.Errorf("answer for %s, asked for %s", r.File, file))
	case r.Size > s.cfg.MaxFileSize:
		st.Cancel()
		return unreachable(fmt.Sprintf("offers %d bytes, more than this server takes (%d)", r.Size, s.cfg.MaxFileSize), errors.New("too_large"))
	}
	body := st.Body(r.Size, fileProgressTimeout)
	_, err = s.store.StoreRemoteFile(origin, file, body, r.Size, r.SHA256, s.now())
	if err != nil {
		st.Cancel()
		switch {
		case privateline.Is(privateline.NotExist, err):
			return privateline.E(op, privateline.NotExist, "the message that lists this file is gone", err)
		case privateline.Is(privateline.Invalid, err):
			s.log.Warn("federation: a file from another server does not match its answer; nothing was kept",
				"origin", string(origin), "size", r.Size, "err", err)
			s.met.files.WithLabelValues("fetch_mismatch").Inc()
			return privateline.E(op, privateline.Unavailable, fmt.Sprintf("the file %s sent does not match what it announced; nothing was kept", origin), err)
		case errors.Is(err, transport.ErrProtocol), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF):
			return unreachable("stopped sending it", err)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) || s.ctx.Err() != nil {
			return unreachable("did not send it in time", err)
		}
		return unreachable("stopped sending it", err)
	}
	s.met.files.WithLabelValues("fetched").Inc()
	s.met.fileBytes.WithLabelValues("fetched").Add(float64(r.Size))
	return nil
}
