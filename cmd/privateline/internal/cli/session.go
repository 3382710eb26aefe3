package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
)

// loadConfig reads config.json; --server or $PRIVATELINE_SERVER override
// its URL. needURL makes a missing URL a usage error.
func (r *runner) loadConfig(needURL bool) (*config, error) {
	cfg := &config{}
	if _, err := r.dir.read(configFile, cfg); err != nil {
		return nil, err
	}
	url := r.server
	if url == "" {
		url = r.env.Getenv("PRIVATELINE_SERVER")
	}
	if url != "" && strings.TrimSuffix(url, "/") != strings.TrimSuffix(cfg.ServerURL, "/") {
		// Another server: what was learned about the old one does not apply.
		cfg = &config{ServerURL: url}
	}
	if needURL && cfg.ServerURL == "" {
		return nil, usagef("no server: give --server URL (or set PRIVATELINE_SERVER)")
	}
	return cfg, nil
}

// newClient returns an SDK client for cfg's server, keeping the key
// directory's state in directory.json.
func (r *runner) newClient(cfg *config) (*client.Client, error) {
	return client.New(client.Options{
		BaseURL:    cfg.ServerURL,
		HTTPClient: r.env.HTTPClient,
		ServerName: cfg.ServerName,
		Directory:  &dirStore{d: r.dir},
		Now:        r.env.Now,
		UserAgent:  "privateline-cli",
	})
}

// errNotLoggedIn is the error of commands that need a session.
func errNotLoggedIn() error {
	return privateline.E("cli", privateline.Unauthenticated, "not logged in: run 'privateline login USERNAME' (or register)")
}

// lockedSession takes the config directory's lock, then loads the session;
// the caller runs unlock when done.
func (r *runner) lockedSession() (*client.Session, *config, func(), error) {
	unlock, err := r.dir.lock()
	if err != nil {
		return nil, nil, nil, err
	}
	s, cfg, err := r.session()
	if err != nil {
		unlock()
		return nil, nil, nil, err
	}
	return s, cfg, unlock, nil
}

// session resumes the saved session. Changes the SDK reports (new tokens
// after a refresh, new wrapped keys, a held epoch that rose) are saved at
// once; of a session the server ended only the held epochs stay.
func (r *runner) session() (*client.Session, *config, error) {
	cfg, err := r.loadConfig(false)
	if err != nil {
		return nil, nil, err
	}
	var saved savedSession
	ok, err := r.dir.read(sessionFile, &saved)
	if err != nil {
		return nil, nil, err
	}
	if !ok || !saved.loggedIn() || cfg.ServerURL == "" {
		return nil, nil, errNotLoggedIn()
	}
	c, err := r.newClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	s, err := c.Resume(saved.state())
	if err != nil {
		return nil, nil, privateline.E("cli", "the saved session cannot be used; log in again", err)
	}
	s.OnChange(r.sessionChanged)
	return s, cfg, nil
}

// sessionChanged is the SDK's OnChange: it saves the session. Once the
// server ended it, the session goes, and only its held epochs stay (if
// any): the account's next login reports them still (spec/e2ee.md §8.1;
// a group's server restored from a backup ends the sessions it lost).
func (r *runner) sessionChanged(st client.SessionState) {
	var err error
	switch {
	case len(st.Tokens.Access) != 0:
		err = r.dir.write(sessionFile, toSaved(st))
	case len(st.Epochs) != 0:
		err = r.dir.write(sessionFile, endedSession{Address: st.Address, HeldEpochs: st.Epochs})
	default:
		err = r.dir.remove(sessionFile)
	}
	if err != nil && r.saveErr == nil {
		r.saveErr = err
	}
}

// saveLogin stores a new session and the config it belongs to. The
// session saved before, if any, is logged out first when it is of the
// same server (a device keeps one session); otherwise it is only
// forgotten, with a note. If it was of the same account, its held epochs
// go on in the new session.
func (r *runner) saveLogin(ctx context.Context, cfg *config, s *client.Session) error {
	name, server, err := s.Address().Split()
	if err != nil {
		return err
	}
	r.keepHeldEpochs(s)
	r.endSaved(ctx, cfg)
	cfg.ServerName, cfg.Username = server, name
	if err := r.dir.write(configFile, cfg); err != nil {
		return err
	}
	if err := r.dir.write(sessionFile, toSaved(s.State())); err != nil {
		return err
	}
	s.OnChange(r.sessionChanged)
	return nil
}

// keepHeldEpochs gives the new session's Client the held epochs saved
// with the account's previous session (one that may have ended), so that
// they are reported still and saved with the new one. Epochs that do not
// load are forgotten, with a note.
func (r *runner) keepHeldEpochs(s *client.Session) {
	var saved savedSession
	if ok, _ := r.dir.read(sessionFile, &saved); !ok || saved.Address != s.Address() || len(saved.HeldEpochs) == 0 {
		return
	}
	if err := s.Client().RememberEpochs(saved.Address, saved.HeldEpochs); err != nil {
		fmt.Fprintf(r.env.Stderr, "privateline: note: the saved group epochs of %s do not load (%s); they are forgotten\n", saved.Address, privateline.MessageOf(err))
	}
}

// endSaved logs out the saved session before a new one replaces it (one
// that the server ended already needs nothing).
func (r *runner) endSaved(ctx context.Context, cfg *config) {
	var saved savedSession
	if ok, _ := r.dir.read(sessionFile, &saved); !ok || !saved.loggedIn() {
		return
	}
	var old config
	r.dir.read(configFile, &old)
	if old.ServerURL == cfg.ServerURL {
		if c, err := r.newClient(&old); err == nil {
			if s, err := c.Resume(saved.state()); err == nil && s.Revoke(ctx) == nil {
				return
			}
		}
	}
	fmt.Fprintf(r.env.Stderr, "privateline: note: the saved session of %s could not be logged out; it is forgotten\n", saved.Address)
}

// unlock asks for the password and unwraps the session's private keys.
func (r *runner) unlock(s *client.Session) error {
	pw, err := r.readPassword("Password for "+string(s.Address()), false)
	if err != nil {
		return err
	}
	if err := s.Unlock(pw); err != nil {
		if privateline.Is(privateline.Unauthenticated, err) {
			return privateline.E("cli", privateline.Unauthenticated, "wrong password (if it was changed on another device, log in again)", err)
		}
		return err
	}
	return nil
}

// resolveAddress reads a contact: "bob" (a user of the session's server)
// or "bob@server".
func resolveAddress(s *client.Session, arg string) (privateline.Address, error) {
	i := strings.IndexByte(arg, '@')
	if i < 0 {
		a, err := s.AddressOf(arg)
		if err != nil {
			return "", usagef("%q is not a username or address: %s", arg, privateline.MessageOf(err))
		}
		return a, nil
	}
	name, err := privateline.ParseUsername(arg[:i])
	if err != nil {
		return "", usagef("%q is not an address: %s", arg, privateline.MessageOf(err))
	}
	server, err := privateline.ParseServerName(strings.ToLower(arg[i+1:]))
	if err != nil {
		return "", usagef("%q is not an address: %s", arg, privateline.MessageOf(err))
	}
	return privateline.MakeAddress(name, server), nil
}

// emit prints v as JSON with --json, and else calls human.
func (r *runner) emit(v any, human func(w io.Writer)) error {
	if r.jsonOut {
		return writeJSON(r.out, v)
	}
	human(r.out)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return privateline.E("cli", privateline.Internal, err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeJSONLine prints v as one line of JSON (a stream of objects).
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return privateline.E("cli", privateline.Internal, err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// groups splits digits into space-separated groups of 5.
func groups(digits string) string {
	var b strings.Builder
	for i := 0; i < len(digits); i += 5 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(digits[i:min(i+5, len(digits))])
	}
	return b.String()
}
