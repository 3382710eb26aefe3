package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
)

func registerFlags(fs *flag.FlagSet, r *runner) {
	fs.StringVar(&r.email, "email", "", "an e-mail address for the account (optional, not verified)")
}

func logoutFlags(fs *flag.FlagSet, r *runner) {
	fs.BoolVar(&r.all, "all", false, "end every session of the account, on every device")
}

// accountOut is what register, login and whoami print.
type accountOut struct {
	Address         privateline.Address `json:"address"`
	Server          string              `json:"server"`
	Email           string              `json:"email,omitempty"`
	CreatedAt       *time.Time          `json:"created_at,omitempty"`
	RetentionDays   *int                `json:"default_retention_days,omitempty"`
	Sessions        *int                `json:"sessions,omitempty"`
	Fingerprint     string              `json:"fingerprint"`
	EncryptionKeyID string              `json:"encryption_key_id"`
}

func newAccountOut(cfg *config, b *e2ee.KeyBundle) *accountOut {
	return &accountOut{
		Address:         b.Address,
		Server:          cfg.ServerURL,
		Fingerprint:     groups(e2ee.FingerprintDigits(e2ee.PartyFingerprint(b.Address, b.Identity))),
		EncryptionKeyID: b.Encryption.ID(),
	}
}

func (a *accountOut) print(w io.Writer) {
	fmt.Fprintf(w, "address:      %s\n", a.Address)
	fmt.Fprintf(w, "server:       %s\n", a.Server)
	if a.Email != "" {
		fmt.Fprintf(w, "email:        %s\n", a.Email)
	}
	if a.CreatedAt != nil {
		fmt.Fprintf(w, "created:      %s\n", a.CreatedAt.Format(time.RFC3339))
	}
	if a.RetentionDays != nil {
		if *a.RetentionDays == 0 {
			fmt.Fprintf(w, "retention:    messages are kept until deleted\n")
		} else {
			fmt.Fprintf(w, "retention:    %d days\n", *a.RetentionDays)
		}
	}
	if a.Sessions != nil {
		fmt.Fprintf(w, "sessions:     %d\n", *a.Sessions)
	}
	fmt.Fprintf(w, "fingerprint:  %s\n", a.Fingerprint)
	fmt.Fprintf(w, "key id:       %s\n", a.EncryptionKeyID)
}

func oneArg(args []string, what string) (string, error) {
	if len(args) != 1 {
		return "", usagef("give exactly one %s", what)
	}
	return args[0], nil
}

// accountCommand is the start of register and login: the USERNAME
// argument, the config, the directory lock and a client.
func (r *runner) accountCommand(args []string) (name string, cfg *config, c *client.Client, unlock func(), err error) {
	if name, err = oneArg(args, "USERNAME"); err != nil {
		return "", nil, nil, nil, err
	}
	if _, err := privateline.ParseUsername(name); err != nil {
		return "", nil, nil, nil, usagef("%s", privateline.MessageOf(err))
	}
	if cfg, err = r.loadConfig(true); err != nil {
		return "", nil, nil, nil, err
	}
	if unlock, err = r.dir.lock(); err != nil {
		return "", nil, nil, nil, err
	}
	if c, err = r.newClient(cfg); err != nil {
		unlock()
		return "", nil, nil, nil, err
	}
	return name, cfg, c, unlock, nil
}

func runRegister(ctx context.Context, r *runner, args []string) error {
	name, cfg, c, unlock, err := r.accountCommand(args)
	if err != nil {
		return err
	}
	defer unlock()
	pw, err := r.readPassword("New password", true)
	if err != nil {
		return err
	}
	if len([]rune(pw)) < minNewPassword {
		return privateline.E("cli", privateline.Invalid, fmt.Sprintf("the password must have at least %d characters", minNewPassword))
	}
	reg, err := c.Register(ctx, client.RegisterParams{Username: name, Password: pw, Email: r.email})
	if err != nil {
		return err
	}
	s, err := reg.Login(ctx)
	if err != nil {
		return privateline.E("cli", "registered, but the login failed; run 'privateline login'", err)
	}
	if err := r.saveLogin(ctx, cfg, s); err != nil {
		return err
	}
	out := newAccountOut(cfg, s.Bundle())
	out.Email = reg.Email
	return r.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "Registered and logged in as %s.\n", s.Address())
		fmt.Fprintf(w, "Remember the password: without it the private keys cannot be unwrapped, by anyone.\n\n")
		out.print(w)
	})
}

func runLogin(ctx context.Context, r *runner, args []string) error {
	name, cfg, c, unlock, err := r.accountCommand(args)
	if err != nil {
		return err
	}
	defer unlock()
	pw, err := r.readPassword("Password", false)
	if err != nil {
		return err
	}
	s, err := c.Login(ctx, name, pw)
	if err != nil {
		return err
	}
	if err := r.saveLogin(ctx, cfg, s); err != nil {
		return err
	}
	out := newAccountOut(cfg, s.Bundle())
	return r.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "Logged in as %s.\n\n", s.Address())
		out.print(w)
	})
}

func runLogout(ctx context.Context, r *runner, args []string) error {
	if len(args) != 0 {
		return usagef("logout takes no arguments")
	}
	s, _, unlock, err := r.lockedSession()
	if err != nil {
		return err
	}
	defer unlock()
	if r.all {
		err = s.RevokeAll(ctx)
	} else {
		err = s.Revoke(ctx)
	}
	// The local session goes in any case: it is either over, or the user
	// wants it gone.
	if rerr := r.dir.remove(sessionFile); err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	return r.emit(map[string]any{"logged_out": s.Address(), "all": r.all}, func(w io.Writer) {
		if r.all {
			fmt.Fprintf(w, "Logged out %s on every device.\n", s.Address())
		} else {
			fmt.Fprintf(w, "Logged out %s.\n", s.Address())
		}
	})
}

func runWhoami(ctx context.Context, r *runner, args []string) error {
	if len(args) != 0 {
		return usagef("whoami takes no arguments")
	}
	s, cfg, unlock, err := r.lockedSession()
	if err != nil {
		return err
	}
	defer unlock()
	a, err := s.Account(ctx)
	if err != nil {
		return err
	}
	out := newAccountOut(cfg, a.Bundle)
	out.Email, out.CreatedAt, out.RetentionDays, out.Sessions = a.Email, &a.CreatedAt, &a.DefaultRetentionDays, &a.Sessions
	return r.emit(out, out.print)
}
