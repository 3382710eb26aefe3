// Package client is the Go SDK's client for a PrivateLine homeserver's
// HTTP API (spec/openapi.yaml). It speaks every route of the contract and
// does the client's half of the protocol of spec/e2ee.md with
// clients/go/e2ee and clients/go/directory, so that the server never sees
// a password or a private key:
//
//   - Register picks a salt, derives the auth key and the key-encryption
//     key (KEK) from the password (PBKDF2-HMAC-SHA256, 600,000 iterations,
//     then HKDF), generates the Ed25519 identity key and the RSA-OAEP-4096
//     encryption key, wraps both private keys under the KEK, signs the key
//     bundle and sends the lot. Registration does not log in; the returned
//     *Registered logs in without deriving the keys again.
//   - Login asks for the account's KDF parameters (prelogin), derives the
//     keys, logs in, and unwraps the private keys the server hands back, so
//     a new device holds the same keys. The result is a *Session: the
//     tokens, the KEK and the private keys, in memory only.
//   - A Session refreshes its access token when the server answers 401,
//     and then retries the request once. Refresh tokens are single-use and
//     a reused one revokes the session on the server, so refreshes are
//     serialized: exactly one is in flight, and callers that saw the same
//     expired token wait for it and use its result. OnChange tells the
//     caller about new tokens (and new wrapped keys) so it can store them
//     before they are used. State, which Resume takes back, also carries
//     the account's held epochs, the highest epoch of each group whose key
//     it held (SessionState.Epochs, lostepochs.go: reported when a group's
//     restored server shows an older one); a rise fires OnChange too, and
//     RememberEpochs hands them to a new login after a session ended.
//   - Key lookups are verified through the server's key directory
//     (clients/go/directory): the directory key pinned on first use, the
//     signed tree head, the entry's commitment and signature, the inclusion
//     proof, and a consistency proof from the last tree head seen, so a
//     forked or rolled-back directory is an error. The directory state
//     lives in Options.Directory (in memory by default).
//   - The pinned-keys blob (spec/e2ee.md §18) is sealed under the KEK;
//     GetPins and PutPins handle its version (ETag / If-Match), and a write
//     based on a stale version fails with a version conflict
//     (IsVersionConflict) so the caller re-reads and merges; UpdatePins
//     does that loop.
//   - Send looks every recipient up through the directory, checks the
//     bundle against the pinned keys (a verified contact whose key changed
//     blocks the send; an unverified one is reported; a first contact is
//     pinned), seals a pl1 envelope that includes the sender's own key and
//     posts it, retrying with the same id (the server treats a retry as the
//     same message). Messages fetches a page, checks each sender against the
//     pins, verifies and decrypts; an item that fails carries Err and never
//     a plaintext. MarkRead, Delete and UnreadCount complete the set.
//   - Groups (groups.go): the admin who adds or removes a member rekeys in
//     that call; SendGroup and GroupMessages use the key of each epoch,
//     fetched and opened once. Listen (listen.go) delivers the account's
//     events over the WebSocket in order, direct and group messages opened
//     as Messages and GroupMessages open them; on group_changed it refetches
//     the group and never rekeys by itself.
//
// Errors are privateline errors. Answers of the server keep their status
// and code in an *APIError cause; the kind follows the status: 400
// Invalid, 401 Unauthenticated, 403 Forbidden, 404 NotExist, 409, 412 and
// 428 Exist (a conflict with the current state), 413 TooLarge, 429
// RateLimited (RetryAfter tells how long to wait), 503 and other 5xx
// Unavailable, 500 Internal. Refusals of the end-to-end checks carry an
// e2ee.Reason (e2ee.ReasonOf).
//
// Every call takes a context. Responses are read up to a size cap, and the
// default http.Client has a timeout. Private keys, the KEK and tokens are
// of types that never print.
package client
