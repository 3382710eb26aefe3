package storage

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

type table struct {
	prefix byte
	name   string
}

// The tables of the keyspace; see the package doc.
var (
	tMeta         = table{0x00, "meta"}
	tUser         = table{'u', "user"}
	tUserName     = table{'n', "user-name"}
	tSession      = table{'s', "session"}
	tUserSessions = table{'S', "user-sessions"}
	tDeniedToken  = table{'j', "denied-token"}
	tKeyLeaf      = table{'L', "key-log-leaf"}
	tKeyNode      = table{'T', "key-log-node"}
	tKeyEntry     = table{'K', "user-key-entry"}
	tPinnedKeys   = table{'P', "pinned-keys"}
	tEnvelope     = table{'E', "envelope"}
	tMailbox      = table{'M', "mailbox"}
	tMailboxByID  = table{'m', "mailbox-by-id"}
	tConversation = table{'C', "conversation"}
	tCounters     = table{'c', "counters"}
	tExpiry       = table{'X', "expiry"}
	tParticipant  = table{'p', "participant"}
	tEvent        = table{'V', "event"}
	// Files, tombstones, retention and push tokens (files.go, tombstones.go,
	// retention.go, pushtokens.go).
	tFile            = table{'F', "file"}
	tUserFile        = table{'f', "user-file"}
	tFileRef         = table{'r', "file-ref"}
	tFileOrphan      = table{'o', "file-unreferenced"}
	tFileUsage       = table{'Q', "file-usage"}
	tTombstone       = table{'x', "tombstone"}
	tTombstoneExpiry = table{'y', "tombstone-expiry"}
	tRetention       = table{'z', "retention"}
	tPushToken       = table{'k', "push-token"}
	tContact         = table{'w', "contact"} // contacts.go
	tGroup           = table{'G', "group"}
	tUserGroup       = table{'g', "user-group"}
	tGroupKey        = table{'H', "group-key"}
	tGroupWrap       = table{'h', "group-key-wrap"}
	// Federation (outbox.go, inbound.go, peers.go).
	tOutbox       = table{'O', "fed-outbox"}
	tOutboxDest   = table{'D', "fed-outbox-destination"}
	tReplayTxn    = table{'R', "fed-replay-txn"}
	tReplayEnv    = table{'I', "fed-replay-envelope"}
	tReplayByTime = table{'W', "fed-replay-by-time"}
	tPeerPin      = table{'N', "fed-peer-pin"}
	tPeerHead     = table{'B', "fed-peer-directory-head"}
	tRemoteLookup = table{'A', "fed-remote-lookup"}
	// Remote contacts (contacts.go).
	tRemoteContact       = table{'U', "remote-contact"}
	tRemoteContactByUser = table{'Z', "remote-contact-by-user"}
	// Other servers' files (remotefiles.go).
	tRemoteFile    = table{'q', "fed-remote-file"}
	tRemoteFileRef = table{'v', "fed-remote-file-ref"}
	// Tree-head witnessing (witness.go).
	tCosignature = table{'J', "fed-witness-cosignature"}
	tFork        = table{'Y', "fed-directory-fork"}
	// The last group item queued per destination and group (fedgroupsync.go).
	tGroupLastQueued = table{'l', "fed-group-last-queued"}
)

var tables = []table{tMeta, tUser, tUserName, tSession, tUserSessions, tDeniedToken, tKeyLeaf, tKeyNode, tKeyEntry, tPinnedKeys,
	tEnvelope, tMailbox, tMailboxByID, tConversation, tCounters, tExpiry, tParticipant, tEvent,
	tFile, tUserFile, tFileRef, tFileOrphan, tFileUsage, tTombstone, tTombstoneExpiry, tRetention, tPushToken, tContact,
	tGroup, tUserGroup, tGroupKey, tGroupWrap,
	tOutbox, tOutboxDest, tReplayTxn, tReplayEnv, tReplayByTime, tPeerPin, tPeerHead, tRemoteLookup,
	tRemoteContact, tRemoteContactByUser,
	tRemoteFile, tRemoteFileRef,
	tCosignature, tFork,
	tGroupLastQueued}

func (t table) key(parts ...[]byte) []byte {
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 1, n)
	k[0] = t.prefix
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

// prefixEnd returns the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// ID is a random 128-bit identifier (users, sessions).
type ID [16]byte

// NewID returns a random ID.
func NewID() ID {
	var id ID
	rand.Read(id[:])
	return id
}

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses the hex form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("storage: bad id length")
	}
	_, err := hex.Decode(id[:], []byte(s))
	return id, err
}

func nameIndexKey(nameKey []byte, username string) []byte {
	m := hmac.New(sha256.New, nameKey)
	m.Write([]byte(username))
	return tUserName.key(m.Sum(nil)[:16])
}
