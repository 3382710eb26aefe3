package logging

import (
	"log/slog"
	"strings"
)

// redactedText replaces the value of a secret attribute.
const redactedText = "[REDACTED]"

// secretKeys are attribute keys whose values are never written (compared in
// lower case). See the package doc for the whole rule.
var secretKeys = map[string]bool{
	"token": true, "access_token": true, "refresh_token": true,
	"authorization": true, "auth_key": true, "current_auth_key": true,
	"password": true, "secret": true, "email": true, "cookie": true,
	"encrypted_private_key": true, "key": true, "private_key": true,
	"jwt": true, "csrf": true, "csrf_token": true, "salt": true, "nonce": true,
}

var secretSuffixes = []string{"_token", "_key", "_secret"}

// isSecretKey reports whether an attribute or group named k holds a secret.
func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	if secretKeys[k] {
		return true
	}
	for _, s := range secretSuffixes {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return false
}

// inSecretGroup reports whether any of the enclosing groups is secret.
func inSecretGroup(groups []string) bool {
	for _, g := range groups {
		if isSecretKey(g) {
			return true
		}
	}
	return false
}

// redactAttr is the ReplaceAttr of the JSON handler. slog calls it with
// resolved values and only for non-group attributes, with the names of the
// groups they are in.
func redactAttr(groups []string, a slog.Attr) slog.Attr {
	if isSecretKey(a.Key) || inSecretGroup(groups) {
		a.Value = slog.StringValue(redactedText)
	}
	return a
}
