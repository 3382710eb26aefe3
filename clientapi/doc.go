// Package clientapi is the homeserver's HTTP API for clients.
//
// Every route is listed once in routes.go and described in
// spec/openapi.yaml (a test keeps the two in step). Requests pass through
// one middleware chain (recover, security headers, CORS, body cap, metrics)
// and handlers return errors of the project's kinds, which errors.go maps to
// HTTP statuses and {"error": {"code", "message"}} bodies in one table.
//
// # Accounts and sessions
//
// The server never sees a password: clients derive an auth key from the
// password (spec/e2ee.md) and the server keeps only an Argon2id hash of it.
// A login creates a session, a refresh-token family. Access tokens are
// HS256 JWTs (iss = server name, aud = "privateline-client", sub = user id,
// sid = session id, jti, iat, exp 15 minutes). Refresh tokens are opaque:
// base64url(session id(16) || generation(8) || HMAC-SHA256(session key,
// "privateline/v1/refresh" || session id || generation)); each refresh moves
// the session to the next generation, and presenting an earlier generation
// (a stolen or replayed token) revokes the whole session. Every
// authenticated request checks that the token's session still exists and
// that its id is not denied, so revocation takes effect at once.
//
// Browsers may ask for HttpOnly cookies instead of tokens in the body. With
// JWT_COOKIE_CSRF_PROTECT a state-changing request authenticated by cookie
// must carry X-CSRF-Token, an HMAC of the session id under a key derived
// from JWT_SECRET_KEY (a signed double-submit token), which the login
// response returns and the pl_csrf cookie repeats.
//
// # Key directory
//
// Registration, PUT /api/keys and account deletion go through the key
// directory (the Directory interface, *keydir.Directory), which verifies
// bundles and logs every change in the same write as the account change.
// GET /api/public_key/{username} answers a bundle with the directory's
// signed entry, an inclusion proof and the signed tree head; the head and
// consistency proofs are public (GET /api/keys/head, /api/keys/consistency).
// The pinned-keys blob (GET/PUT /api/pinned_keys) is versioned: its ETag is
// the version, and a PUT needs If-Match with it (428 without, 412 when it is
// stale). Without a Directory every one of these answers 503.
//
// # Files, retention, push tokens
//
// POST /api/files streams a client-encrypted blob to disk (files.go); it is
// served only to its uploader and to the holders of a live message whose
// signed header lists it, and goes with the last such message. A new
// direct message's expiry is the strictest of its header's and its
// participants' retention settings (retention.go). Push tokens are checked
// per platform and kept for a later push service (pushtokens.go).
package clientapi
