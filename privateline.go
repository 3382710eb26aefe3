// Package privateline holds the shared vocabulary of PrivateLine, a federated
// messenger whose homeservers store and forward only end-to-end encrypted
// ciphertext: addresses, server names, usernames, secrets and the error kinds
// that every other package speaks. It imports nothing of the project's own.
package privateline

import (
	"fmt"
	"strings"
)

// ServerName names a homeserver, e.g. "chat.example.org" or "localhost:8081".
type ServerName string

// Username is the local part of an address: 3–64 characters of [a-z0-9._-].
type Username string

// Address is a user's global name, "username@server".
type Address string

// MinUsernameLen and MaxUsernameLen bound a username's length.
const (
	MinUsernameLen = 3
	MaxUsernameLen = 64
)

// ParseUsername case-folds s and checks it against the username rules.
func ParseUsername(s string) (Username, error) {
	const op = "privateline.ParseUsername"
	if len(s) < MinUsernameLen || len(s) > MaxUsernameLen {
		return "", E(op, Invalid, fmt.Sprintf("username must be %d to %d characters", MinUsernameLen, MaxUsernameLen))
	}
	// Only ASCII letters fold: Unicode case mapping would let "K" (Kelvin
	// sign) or "İ" stand for "k" and "i".
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
			b[i] = c
		}
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return "", E(op, Invalid, "username may contain only a-z, 0-9, '.', '_' and '-'")
		}
	}
	return Username(b), nil
}

// ParseServerName checks that s is a plausible host or host:port.
func ParseServerName(s string) (ServerName, error) {
	const op = "privateline.ParseServerName"
	if s == "" || len(s) > 255 {
		return "", E(op, Invalid, "server name must be 1 to 255 characters")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '-', c == ':', c == '[', c == ']':
		default:
			return "", E(op, Invalid, "server name may contain only lower-case letters, digits, '.', '-', ':' and brackets")
		}
	}
	return ServerName(s), nil
}

// MakeAddress joins a username and a server name.
func MakeAddress(u Username, s ServerName) Address {
	return Address(string(u) + "@" + string(s))
}

// Split returns the address's username and server.
func (a Address) Split() (Username, ServerName, error) {
	const op = "privateline.Address.Split"
	i := strings.IndexByte(string(a), '@')
	if i < 0 {
		return "", "", E(op, Invalid, "address must be username@server")
	}
	u, err := ParseUsername(string(a[:i]))
	if err != nil {
		return "", "", E(op, err)
	}
	if string(u) != string(a[:i]) {
		return "", "", E(op, Invalid, "address username must be lower case")
	}
	s, err := ParseServerName(string(a[i+1:]))
	if err != nil {
		return "", "", E(op, err)
	}
	return u, s, nil
}
