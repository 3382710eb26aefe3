package homeserver

// StoreFingerprint hashes the whole store (keys and opened values), so a
// test can assert that a request wrote nothing.
func StoreFingerprint(s *Server) ([32]byte, error) { return s.db.Fingerprint() }

// ScanStore calls fn with every key and opened value of the store.
func ScanStore(s *Server, fn func(key, value []byte)) error { return s.db.ScanAll(fn) }

// SweepMessages runs the expiry sweep of the background loop once, at the
// server's (injected) now, and returns how many envelopes went.
func SweepMessages(s *Server) int { return s.sweepMessages() }
