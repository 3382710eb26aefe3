// Package storage keeps a homeserver's data in an embedded Pebble store.
//
// # Keyspace
//
// One Pebble keyspace; the first byte of every key names its table, and
// integers inside keys are big-endian so that range scans are the indexes.
//
//	0x00 'schema'                      schema version (sealed)
//	'u' userID(16)                     user record
//	'n' HMAC(nameKey, username)[:16]   userID — the username index; the name
//	                                   itself never appears in a key
//	's' sessionID(16)                  session (refresh-token family)
//	'S' userID(16) sessionID(16)       user → session index
//	'j' tokenID                        denied access-token id → expiry
//	0x00 'keylog-size'                 number of leaves of the key directory's log
//	'L' index(8)                       key-log leaf: leaf data and the directory's
//	                                   signature; commitments only, nothing that
//	                                   names a user (see keylog.go)
//	'T' level(1) index(8)              key-log tree: hash of the perfect subtree of
//	                                   2^level leaves starting at index·2^level
//	'K' userID(16)                     the directory's record of the user's current
//	                                   log entry (bundle, salt, index); erased with
//	                                   the user
//	'P' userID(16)                     the user's pinned-keys blob and its version
//	'E' msgID(16)                      direct envelope as posted, with its
//	                                   digest, sender, recipients, expiry,
//	                                   the sender's seq and who read it
//	'M' userID(16) seq(8)              mailbox entry (message id, direction,
//	                                   read)
//	'm' userID(16) msgID(16)           seq of the user's live copy
//	'C' userID(16) peer(16) seq(8)     conversation index; peer is an HMAC of
//	                                   the other party's address
//	'c' userID(16)                     counters: last seq, unread (direct,
//	                                   groups)
//	'X' expiresAtMillis(8) msgID(16)   expiry index
//	'p' userID(16) msgID(16)           participation (sender or recipient),
//	                                   kept until the envelope goes; account
//	                                   deletion deletes every envelope found
//	                                   here (see messages.go)
//	'V' userID(16) seq(8)              event log: the newest EventWindow events
//	                                   of the user (see events.go)
//	'F' fileID(16)                     file record: uploader, size, SHA-256 of
//	                                   the blob, created_at, references
//	                                   (files.go); the blob is on disk under a
//	                                   name derived from the id with an HMAC
//	'f' userID(16) fileID(16)          the uploader's files
//	'r' fileID(16) msgID(16)           file reference: an envelope whose signed
//	                                   header lists the file
//	'o' createdAtMillis(8) fileID(16)  files never referenced yet (swept after
//	                                   a grace period)
//	'Q' userID(16)                     the user's file usage (bytes, files)
//	'x' msgID(16)                      tombstone of a deleted or expired
//	                                   message: refuses its id for a while
//	                                   (tombstones.go)
//	'y' deletedAtMillis(8) msgID(16)   tombstone expiry index
//	'z' userID(16) peer(16)            per-conversation retention; peer as in
//	                                   'C' (retention.go)
//	'k' userID(16) HMAC(token)[:16]    push token (pushtokens.go); the token
//	                                   never appears in a key
//	'w' userID(16) contactID(16)       contacts index: the two exchanged a direct
//	                                   message (Deliver writes both directions);
//	                                   a key change puts a key_changed event in
//	                                   each contact's log (contacts.go)
//	'G' group(16)                      group record: id, members with roles
//	                                   (the group → members index), epoch,
//	                                   opaque meta, retention (groups.go)
//	'g' userID(16) group(16)           user → groups index
//	'H' group(16) epoch(8)             an epoch's group-key document without
//	                                   "keys" (its signed part), and its digest
//	'h' group(16) userID(16) epoch(8)  a member's own wrap of that epoch's key
//	'O' server(16) seq(8)              federation outbox item: type, entry id
//	                                   (the message id: the envelope's bytes
//	                                   are read from 'E', never copied) and
//	                                   time queued (outbox.go)
//	'D' server(16) 'q'|'p'|'e'         outbox destination: name, last seq,
//	                                   depth, newest queue time ('q'); the
//	                                   pending transaction ('p', in a binary
//	                                   form: pendingrec.go); the last
//	                                   delivery error ('e')
//	'R' server(16) txn(16)             inbound replay: results answered for
//	                                   an origin's transaction (inbound.go)
//	'I' server(16) msgID(16)           inbound replay: the origin's envelope
//	                                   was committed
//	'W' at(8) server(16) txn(16)       replay records by write time, for
//	                                   SweepReplay
//	'N' server(16)                     pinned identity key of a peer server
//	                                   (peers.go)
//	'B' server(16)                     the last tree head of a peer's key
//	                                   directory this server verified
//	                                   (peers.go)
//	'A' HMAC(nameKey, address)[:16]    the last verified directory answer
//	                                   for a user of another server
//	                                   (peers.go)
//	'U' remote(16) userID(16)          remote contacts: the local user and the
//	                                   user of another server exchanged a
//	                                   direct message (contacts.go)
//	'Z' userID(16) remote(16)          the same, by local user (for account
//	                                   deletion)
//	'J' server(16)                     the latest co-signature a witness made
//	                                   of this server's directory head
//	                                   (witness.go)
//	'Y' server(16) hash(16)            fork evidence about a peer's
//	                                   directory (witness.go)
//
// server is HMAC(nameKey, "server" 0x00 name)[:16] and txn HMAC(nameKey,
// "txn" 0x00 txn id)[:16]: server names and txn ids never appear in keys.
// A direct envelope from another server is an 'E' record whose sender has
// the zero id; it has no sender copy, events or contacts here.
//
// # Sealing
//
// Every value is sealed with AES-256-GCM under a per-table subkey derived
// from AES_KEY with HKDF-SHA256 (info "privateline/v1/storage/<table>"), with
// the full Pebble key as associated data, so a value moved to another key or
// altered by one bit fails to open. Sealed values are
// version(1) || nonce(12) || ciphertext+tag.
//
// # Durability
//
// Every write that precedes an acknowledgement is one batch made durable
// (pebble.Sync, or applied and then waited for through the commit
// pipeline, commit.go) before the acknowledgement. Read-modify-write operations (unique usernames, refresh-token
// rotation) hold DB.mu; messaging read-modify-writes (sequence numbers,
// counters) hold per-user and per-message stripes, locked in ascending
// order after DB.mu if that is needed (messages.go); the hot paths release
// them once their batch is applied, so concurrent writes share fsyncs.
//
// # Schema
//
// The schema version is stored under the 0x00 prefix; Open runs every
// migration newer than the stored version, in order, each in one synced batch
// with the version bump, and refuses a store written by a newer schema.
package storage
