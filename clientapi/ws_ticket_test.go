package clientapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/privateline/privateline/storage"
)

// TestWSTickets: single use, expiry at 30 s, the per-user bound evicts
// the user's oldest, and the global bound refuses once full of live
// tickets but makes room from expired ones.
func TestWSTickets(t *testing.T) {
	ts := newWSTickets()
	now := time.Unix(1_800_000_000, 0)
	p := &principal{UserID: storage.NewID(), SessionID: storage.NewID(), TokenID: "t"}
	tk, err := ts.issue(p, now)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := ts.take(tk, now.Add(wsTicketTTL-time.Millisecond)); !ok || got.UserID != p.UserID || got.SessionID != p.SessionID {
		t.Fatalf("take: %+v %v", got, ok)
	}
	if _, ok := ts.take(tk, now); ok {
		t.Fatal("a ticket was used twice")
	}
	tk, _ = ts.issue(p, now)
	if _, ok := ts.take(tk, now.Add(wsTicketTTL)); ok {
		t.Fatal("an expired ticket was accepted")
	}
	var first string
	for i := range maxUserWSTickets + 1 {
		tk, _ := ts.issue(p, now)
		if i == 0 {
			first = tk
		}
	}
	if ts.count() != maxUserWSTickets {
		t.Fatalf("%d tickets for one user", ts.count())
	}
	if _, ok := ts.take(first, now); ok {
		t.Fatal("the user's oldest ticket was not evicted")
	}
	for ts.count() < maxWSTickets {
		if _, err := ts.issue(&principal{UserID: storage.NewID()}, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ts.issue(&principal{UserID: storage.NewID()}, now); err == nil {
		t.Fatal("a ticket beyond the bound")
	}
	if _, err := ts.issue(&principal{UserID: storage.NewID()}, now.Add(wsTicketTTL)); err != nil || ts.count() != 1 {
		t.Fatalf("after expiry: %v, %d tickets", err, ts.count())
	}
}

// TestWSOrigin: no Origin, an allowed one and the server's own pass.
func TestWSOrigin(t *testing.T) {
	a := &API{cfg: Config{CORSOrigins: []string{"https://app.example"}}}
	for origin, want := range map[string]bool{
		"": true, "https://app.example": true, "https://hs.example": true, "http://hs.example": true,
		"https://evil.example": false, "null": false, "https://hs.example.evil": false, "https://app.example/": false,
	} {
		r, _ := http.NewRequest("GET", "https://hs.example/api/ws", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if got := a.originAllowed(r); got != want {
			t.Errorf("Origin %q: allowed = %v, want %v", origin, got, want)
		}
	}
}
