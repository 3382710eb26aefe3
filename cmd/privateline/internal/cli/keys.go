package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
)

func verifyFlags(fs *flag.FlagSet, r *runner) {
	fs.BoolVar(&r.mark, "mark", false, "record the contact as verified in the pinned keys (asks for the password)")
}

// keysOut is what keys prints.
type keysOut struct {
	Address         privateline.Address `json:"address"`
	IdentityKey     []byte              `json:"identity_key"`
	Fingerprint     string              `json:"fingerprint"`
	EncryptionKeyID string              `json:"encryption_key_id"`
	CreatedAt       time.Time           `json:"created_at"`
	Directory       *dirCheck           `json:"directory,omitempty"`
	Rotated         bool                `json:"rotated,omitempty"`
}

// dirCheck is the key directory's view of the account's own bundle.
type dirCheck struct {
	Matches  bool   `json:"matches"`
	TreeSize uint64 `json:"tree_size"`
}

func newKeysOut(b *e2ee.KeyBundle) *keysOut {
	return &keysOut{
		Address:         b.Address,
		IdentityKey:     b.Identity[:],
		Fingerprint:     groups(e2ee.FingerprintDigits(e2ee.PartyFingerprint(b.Address, b.Identity))),
		EncryptionKeyID: b.Encryption.ID(),
		CreatedAt:       b.CreatedAt,
	}
}

func (k *keysOut) print(w io.Writer) {
	fmt.Fprintf(w, "address:       %s\n", k.Address)
	fmt.Fprintf(w, "identity key:  %s (Ed25519)\n", b64.EncodeToString(k.IdentityKey))
	fmt.Fprintf(w, "fingerprint:   %s\n", k.Fingerprint)
	fmt.Fprintf(w, "key id:        %s (RSA-OAEP-4096)\n", k.EncryptionKeyID)
	fmt.Fprintf(w, "created:       %s\n", k.CreatedAt.Format(time.RFC3339))
	if d := k.Directory; d != nil {
		if d.Matches {
			fmt.Fprintf(w, "directory:     shows these keys (verified, log of %d entries)\n", d.TreeSize)
		} else {
			fmt.Fprintf(w, "directory:     SHOWS OTHER KEYS for this account (log of %d entries)\n", d.TreeSize)
		}
	}
}

func runKeys(ctx context.Context, r *runner, args []string) error {
	rotate := false
	switch {
	case len(args) == 0:
	case len(args) == 1 && args[0] == "rotate":
		rotate = true
	default:
		return usagef("keys takes no argument but 'rotate'")
	}
	s, _, unlock, err := r.lockedSession()
	if err != nil {
		return err
	}
	defer unlock()
	if rotate {
		return rotateKeys(ctx, r, s)
	}
	out := newKeysOut(s.Bundle())
	// What the directory shows others for this account, verified as they
	// verify it.
	seen, err := s.PublicKey(ctx, s.Address())
	if err != nil {
		return err
	}
	head, _ := s.Client().LastHead()
	out.Directory = &dirCheck{Matches: seen.Equal(s.Bundle())}
	if head != nil {
		out.Directory.TreeSize = head.TreeSize
	}
	if err := r.emit(out, out.print); err != nil {
		return err
	}
	if !out.Directory.Matches {
		return privateline.E("cli", privateline.Forbidden, "the key directory shows other keys for this account than this device holds (changed on another device? run 'privateline login' to fetch them)")
	}
	return nil
}

func rotateKeys(ctx context.Context, r *runner, s *client.Session) error {
	if err := r.unlock(s); err != nil {
		return err
	}
	nb, err := s.ChangeKeys(ctx, nil)
	if err != nil {
		return err
	}
	out := newKeysOut(nb)
	out.Rotated = true
	return r.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "New keys are in place and logged in the key directory.\n")
		fmt.Fprintf(w, "Contacts will see that your key changed and must verify you again.\n\n")
		out.print(w)
	})
}

// verifyOut is what verify prints.
type verifyOut struct {
	Address      privateline.Address `json:"address"`
	IdentityKey  []byte              `json:"identity_key"`
	Fingerprint  string              `json:"fingerprint"`
	SafetyNumber string              `json:"safety_number"`
	QRPayload    string              `json:"qr_payload"`
	Marked       bool                `json:"marked,omitempty"`
	KeyChanged   bool                `json:"key_changed,omitempty"` // the pin held another key, now replaced
	PreviousKey  []byte              `json:"previous_identity_key,omitempty"`
}

func runVerify(ctx context.Context, r *runner, args []string) error {
	arg, err := oneArg(args, "ADDRESS")
	if err != nil {
		return err
	}
	s, _, unlock, err := r.lockedSession()
	if err != nil {
		return err
	}
	defer unlock()
	peer, err := resolveAddress(s, arg)
	if err != nil {
		return err
	}
	if peer == s.Address() {
		return usagef("%s is this account; verify a contact", peer)
	}
	b, err := s.PublicKey(ctx, peer)
	if err != nil {
		return err
	}
	me := s.Bundle()
	sn := e2ee.SafetyNumber(me.Address, me.Identity, b.Address, b.Identity)
	out := &verifyOut{
		Address:      b.Address,
		IdentityKey:  b.Identity[:],
		Fingerprint:  groups(e2ee.FingerprintDigits(e2ee.PartyFingerprint(b.Address, b.Identity))),
		SafetyNumber: groups(sn),
		QRPayload:    e2ee.QRPayload(me.Address, me.Identity, b.Address, b.Identity),
	}
	if r.mark {
		if err := r.unlock(s); err != nil {
			return err
		}
		var prev e2ee.Pin
		var replaced bool
		_, err := s.UpdatePins(ctx, func(p e2ee.Pins) error {
			prev, replaced = p.MarkVerified(b, r.now())
			return nil
		})
		if err != nil {
			return err
		}
		out.Marked, out.KeyChanged = true, replaced
		if replaced {
			out.PreviousKey = prev.IdentityKey[:]
		}
	}
	return r.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "Safety number with %s:\n\n", b.Address)
		g := out.SafetyNumber
		for i := 0; i < len(g); i += 24 { // 4 groups of 5 and their spaces a line
			fmt.Fprintf(w, "    %s\n", g[i:min(i+23, len(g))])
		}
		fmt.Fprintf(w, "\nQR code text: %s\n\n", out.QRPayload)
		switch {
		case out.KeyChanged:
			fmt.Fprintf(w, "%s's key CHANGED since it was pinned (%s); the new key is now pinned and verified.\n", b.Address, b64.EncodeToString(out.PreviousKey))
		case out.Marked:
			fmt.Fprintf(w, "%s is marked as verified.\n", b.Address)
		default:
			fmt.Fprintf(w, "Compare the number with %s's screen, in person or over a channel you trust.\n", b.Address)
			fmt.Fprintf(w, "If it is the same, run: privateline verify --mark %s\n", b.Address)
		}
	})
}

// pinOut is one contact in pins' output.
type pinOut struct {
	Address     privateline.Address `json:"address"`
	IdentityKey []byte              `json:"identity_key"`
	Fingerprint string              `json:"fingerprint"`
	FirstSeen   time.Time           `json:"first_seen"`
	Verified    bool                `json:"verified"`
	VerifiedAt  *time.Time          `json:"verified_at,omitempty"`
}

func runPins(ctx context.Context, r *runner, args []string) error {
	if len(args) != 0 {
		return usagef("pins takes no arguments")
	}
	s, _, unlock, err := r.lockedSession()
	if err != nil {
		return err
	}
	defer unlock()
	if err := r.unlock(s); err != nil {
		return err
	}
	p, err := s.GetPins(ctx)
	if err != nil {
		return err
	}
	list := []pinOut{}
	for _, a := range slices.Sorted(maps.Keys(p.Pins)) {
		pin := p.Pins[a]
		o := pinOut{Address: a, IdentityKey: pin.IdentityKey[:], FirstSeen: pin.FirstSeen, Verified: pin.Verified,
			Fingerprint: groups(e2ee.FingerprintDigits(e2ee.PartyFingerprint(a, pin.IdentityKey)))}
		if pin.Verified {
			at := pin.VerifiedAt
			o.VerifiedAt = &at
		}
		list = append(list, o)
	}
	return r.emit(map[string]any{"version": p.Version, "pins": list}, func(w io.Writer) {
		if len(list) == 0 {
			fmt.Fprintln(w, "No pinned contacts yet (privateline verify --mark ADDRESS pins one).")
			return
		}
		for _, o := range list {
			state := "not verified"
			if o.Verified {
				state = "verified " + o.VerifiedAt.Local().Format("2006-01-02 15:04")
			}
			fmt.Fprintf(w, "%s\n    %s\n    fingerprint %s, pinned %s\n", o.Address, state, o.Fingerprint, o.FirstSeen.Local().Format("2006-01-02 15:04"))
		}
	})
}
