package cli

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/directory"
	"github.com/privateline/privateline/keylog"
)

// The state directory holds three JSON files, each mode 0600 in a
// directory of mode 0700, written atomically (a temporary file renamed
// over the old one):
//
//	config.json     the server's URL and name, the username
//	session.json    the session: tokens, and the account's key material
//	                exactly as the server stores it (KDF parameters and the
//	                private keys wrapped under the password's KEK; never
//	                unwrapped on disk), the account's key bundle, and the
//	                highest epoch of each group it held a key of
//	                (spec/e2ee.md §8.1). After the server ended the session
//	                only the address and those epochs stay, for the next
//	                login of the account
//	directory.json  per server: the key directory's pinned Ed25519 key and
//	                the last signed tree head verified, so a directory that
//	                forks or rolls back its log is caught between runs
//
// No password, KEK or unwrapped private key is ever written.
const (
	configFile    = "config.json"
	sessionFile   = "session.json"
	directoryFile = "directory.json"
	lockFile      = "lock"
	fileMode      = 0o600
	dirMode       = 0o700
)

// stateDir is the configuration directory.
type stateDir struct{ path string }

// config is config.json.
type config struct {
	ServerURL  string                 `json:"server_url"`
	ServerName privateline.ServerName `json:"server_name,omitempty"`
	Username   privateline.Username   `json:"username,omitempty"`
}

// savedSession is session.json: client.SessionState on disk.
type savedSession struct {
	Address             privateline.Address `json:"address"`
	AccessToken         string              `json:"access_token"`
	RefreshToken        string              `json:"refresh_token"`
	AccessExpiresAt     time.Time           `json:"access_expires_at"`
	RefreshExpiresAt    time.Time           `json:"refresh_expires_at"`
	KDF                 string              `json:"kdf"`
	Iterations          int                 `json:"iterations"`
	Salt                []byte              `json:"salt"`
	Nonce               []byte              `json:"nonce"`
	EncryptedPrivateKey []byte              `json:"encrypted_private_key"`
	KeyBundle           json.RawMessage     `json:"key_bundle"`
	// HeldEpochs is client.SessionState.Epochs: by group id, the highest
	// epoch the account held a key of. Files written before it was added
	// have none.
	HeldEpochs map[string]client.HeldEpoch `json:"held_epochs,omitempty"`
}

// loggedIn reports whether the saved session has tokens; without them it
// is what an ended session leaves: the account's held epochs.
func (s *savedSession) loggedIn() bool { return s.AccessToken != "" }

// endedSession is what session.json keeps of a session the server ended:
// its address and held epochs, which the account's next login takes over.
// It reads as a savedSession without tokens.
type endedSession struct {
	Address    privateline.Address         `json:"address"`
	HeldEpochs map[string]client.HeldEpoch `json:"held_epochs"`
}

func toSaved(st client.SessionState) savedSession {
	return savedSession{
		Address:             st.Address,
		AccessToken:         string(st.Tokens.Access.Bytes()),
		RefreshToken:        string(st.Tokens.Refresh.Bytes()),
		AccessExpiresAt:     st.Tokens.AccessExpiresAt,
		RefreshExpiresAt:    st.Tokens.RefreshExpiresAt,
		KDF:                 st.Wrapped.KDF,
		Iterations:          st.Wrapped.Iterations,
		Salt:                st.Wrapped.Salt,
		Nonce:               st.Wrapped.Nonce,
		EncryptedPrivateKey: st.Wrapped.EncryptedPrivateKey,
		KeyBundle:           st.Bundle,
		HeldEpochs:          st.Epochs,
	}
}

func (s *savedSession) state() client.SessionState {
	return client.SessionState{
		Address: s.Address,
		Tokens: client.Tokens{
			Access:           privateline.Secret(s.AccessToken),
			Refresh:          privateline.Secret(s.RefreshToken),
			AccessExpiresAt:  s.AccessExpiresAt,
			RefreshExpiresAt: s.RefreshExpiresAt,
		},
		Wrapped: client.WrappedKeys{KDF: s.KDF, Iterations: s.Iterations, Salt: s.Salt, Nonce: s.Nonce, EncryptedPrivateKey: s.EncryptedPrivateKey},
		Bundle:  s.KeyBundle,
		Epochs:  s.HeldEpochs,
	}
}

// ensure creates the directory (0700) if needed and tightens its mode.
func (d *stateDir) ensure() error {
	if err := os.MkdirAll(d.path, dirMode); err != nil {
		return privateline.E("cli.state", privateline.Unavailable, "cannot create the config directory "+d.path, err)
	}
	if err := os.Chmod(d.path, dirMode); err != nil {
		return privateline.E("cli.state", privateline.Unavailable, "cannot set the mode of "+d.path, err)
	}
	return nil
}

// read decodes a file into v; a missing file reports ok = false.
func (d *stateDir) read(name string, v any) (bool, error) {
	b, err := os.ReadFile(filepath.Join(d.path, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, privateline.E("cli.state", privateline.Unavailable, "cannot read "+name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, privateline.E("cli.state", privateline.Invalid, filepath.Join(d.path, name)+" is damaged; remove it and log in again", err)
	}
	return true, nil
}

// write stores v as name atomically, mode 0600.
func (d *stateDir) write(name string, v any) error {
	const op = "cli.state"
	if err := d.ensure(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return privateline.E(op, privateline.Internal, err)
	}
	f, err := os.CreateTemp(d.path, "."+name+".*")
	if err != nil {
		return privateline.E(op, privateline.Unavailable, "cannot write "+name, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(fileMode); err == nil {
		_, err = f.Write(append(b, '\n'))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp, filepath.Join(d.path, name))
		}
		if err == nil {
			return nil
		}
	} else {
		f.Close()
	}
	return privateline.E(op, privateline.Unavailable, "cannot write "+name, err)
}

// remove deletes a file; a missing one is fine.
func (d *stateDir) remove(name string) error {
	err := os.Remove(filepath.Join(d.path, name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return privateline.E("cli.state", privateline.Unavailable, "cannot remove "+name, err)
	}
	return nil
}

// dirStore is a directory.Store kept in directory.json.
type dirStore struct {
	d *stateDir

	mu sync.Mutex // serializes reads and writes of the file
}

type savedServer struct {
	Key     []byte          `json:"key"`
	Head    json.RawMessage `json:"head,omitempty"`
	Earlier [][]byte        `json:"earlier,omitempty"` // keys followed to Key (directory.State.Earlier)
}

type savedDirectory struct {
	Servers map[privateline.ServerName]savedServer `json:"servers"`
}

func (s *dirStore) loadLocked() (*savedDirectory, error) {
	sd := &savedDirectory{}
	if _, err := s.d.read(directoryFile, sd); err != nil {
		return nil, err
	}
	if sd.Servers == nil {
		sd.Servers = map[privateline.ServerName]savedServer{}
	}
	return sd, nil
}

// Load implements directory.Store.
func (s *dirStore) Load(server privateline.ServerName) (*directory.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sd, err := s.loadLocked()
	if err != nil {
		return nil, err
	}
	ss, ok := sd.Servers[server]
	if !ok {
		return nil, nil
	}
	st := &directory.State{}
	if len(ss.Key) != 0 {
		if len(ss.Key) != ed25519.PublicKeySize {
			return nil, privateline.E("cli.dirStore", privateline.Invalid, directoryFile+" holds a malformed key for "+string(server))
		}
		st.Key = ed25519.PublicKey(ss.Key)
	}
	for _, k := range ss.Earlier {
		if len(k) != ed25519.PublicKeySize {
			return nil, privateline.E("cli.dirStore", privateline.Invalid, directoryFile+" holds a malformed earlier key for "+string(server))
		}
		st.Earlier = append(st.Earlier, ed25519.PublicKey(k))
	}
	if len(ss.Head) != 0 && !bytes.Equal(ss.Head, []byte("null")) {
		h, err := keylog.ParseTreeHead(ss.Head)
		if err != nil {
			return nil, privateline.E("cli.dirStore", privateline.Invalid, directoryFile+" holds a malformed tree head for "+string(server), err)
		}
		st.Head = h
	}
	return st, nil
}

// Save implements directory.Store.
func (s *dirStore) Save(server privateline.ServerName, st *directory.State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sd, err := s.loadLocked()
	if err != nil {
		return err
	}
	ss := savedServer{Key: st.Key}
	for _, k := range st.Earlier {
		ss.Earlier = append(ss.Earlier, k)
	}
	if st.Head != nil {
		if ss.Head, err = st.Head.MarshalJSON(); err != nil {
			return privateline.E("cli.dirStore", privateline.Internal, err)
		}
	}
	sd.Servers[server] = ss
	return s.d.write(directoryFile, sd)
}

var b64 = base64.StdEncoding
