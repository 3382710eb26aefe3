// Package transport makes the links between homeservers: QUIC (quic-go)
// with TLS 1.3 and mutual authentication by the servers' Ed25519 identity
// keys (serverkey), checked against the key known for each server name.
//
// # Certificate
//
// Each server presents one self-signed X.509 v3 certificate whose subject
// public key is its Ed25519 identity key and whose signature is by that key
// (PureEd25519). It names the server twice:
//
//   - a URI SAN privateline://<server name>, the exact SERVER_NAME with its
//     port if it has one (privateline://chat.example.org,
//     privateline://localhost:8081, privateline://[::1]:8443). This is the
//     name a peer is checked for: two servers on one host differ only by
//     port, so the host alone cannot name them;
//   - the host part of the name (without ":port" and brackets) as a DNS SAN,
//     or as an IP SAN for an IP literal, and as the subject CN, for tools.
//
// Other fields: a random 127-bit serial, KeyUsage digitalSignature,
// ExtKeyUsage serverAuth and clientAuth, basic constraints CA=false,
// notAfter 99991231235959Z. Verifiers ignore the validity period and the
// issuer: trust is by key, never by a CA or a date. The private key handed
// to crypto/tls signs TLS 1.3 CertificateVerify inputs only (see
// serverkey.PrivateKey.TLSCertificate).
//
// # Handshake
//
// TLS 1.3 only, ALPN "privateline-fed/1", a client certificate required.
// The dialer sends the host part of the name it dials as SNI (none for an
// IP literal). Both sides verify the peer's certificate themselves
// (crypto/tls's chain verification is off, InsecureSkipVerify on the
// dialer, RequireAnyClientCert on the listener, with VerifyConnection
// always set): exactly one certificate, self-signed by an Ed25519 key,
// exactly one privateline:// URI SAN holding a valid server name whose host
// part is among its DNS/IP SANs, and the Trust must accept that key for
// that name. The dialer also requires the name to be the one it dialed; the
// listener learns the client's name from the certificate and refuses a
// client claiming the listener's own name. A refusal is a TLS alert
// (bad_certificate, certificate_required), i.e. a QUIC CRYPTO_ERROR.
//
// # Key-change statement
//
// A server whose identity key changed proves it with statements signed by
// the old key (spec/federation.md §2.2):
//
//	signing input = UTF-8("privateline/v1/federation-key-change") ‖ 0x00 ‖
//	    canonical JSON {"created_at": ms, "new_key": b64(new), "old_key": b64(old), "server": name}
//	signature = Ed25519(old private key, signing input)
//
// (b64 is standard base64 with padding; keys are the 32 raw public-key
// bytes.) A statement is written as canonical JSON {"created_at",
// "new_key", "old_key", "server", "signature"}. Besides the server
// document and gossip (§2.1, §5.2), it travels in the server's certificate
// as a URI SAN privateline-key-change:<base64url without padding of that
// JSON> (§6.2), at most 8 of them, forming a chain (each NewKey is the next
// OldKey, the last NewKey the certificate's key). A peer that knows an
// older key follows valid statements for the name from its key to the
// presented one. (A URI SAN rather than a private X.509 extension: the
// project has no registered OID arc.)
//
// # Trust
//
// Trust is an interface; Policy is the homeserver's: the deny list refuses,
// a non-empty allow list refuses every other name, a configured peer's key
// must be its configured key (statements do not change it),
// and, with a PinStore, an unknown name is pinned on first contact (a
// warning in the log) and a later different key is refused unless
// statements lead from the pinned key to it, which re-pins (a warning).
//
// # Streams and frames
//
// Every exchange is one bidirectional stream opened by the requester: the
// opener sends one frame and ends its direction (FIN); the acceptor answers
// with one frame and FIN. A frame is a uint32 big-endian length and that
// many bytes. A length over the receiver's MaxFrameSize is refused at once,
// before any payload is read, with STOP_SENDING and RESET_STREAM code 0x110;
// data after the frame with code 0x3; an abandoned exchange uses 0x1.
// Unidirectional streams are not allowed. A connection closed normally uses
// application error 0x0.
//
// # Limits
//
// Limits sets the handshake timeout, the idle timeout (no keep-alives: an
// unused link closes), the number of streams a peer may have open at once
// (QUIC MAX_STREAMS; the opener waits for credit) and the frame cap.
package transport
