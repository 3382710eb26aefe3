package clientapi

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientIPTrustedProxies(t *testing.T) {
	a := &API{cfg: Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
	}}}
	for _, tc := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"203.0.113.5:4000", nil, "203.0.113.5"},
		{"203.0.113.5:4000", []string{"1.2.3.4"}, "203.0.113.5"}, // untrusted peer: header ignored
		{"10.1.2.3:4000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"10.1.2.3:4000", []string{"6.6.6.6, 198.51.100.7, 10.9.9.9"}, "198.51.100.7"}, // spoofed left part ignored
		{"10.1.2.3:4000", []string{"6.6.6.6", "198.51.100.7"}, "198.51.100.7"},         // several header lines
		{"10.1.2.3:4000", nil, "10.1.2.3"},
		{"10.1.2.3:4000", []string{"garbage, 10.0.0.1"}, "10.1.2.3"},
		{"[::1]:4000", []string{"2001:db8::1"}, "2001:db8::/64"},
		{"[2001:db8:1:2:3::9]:4000", nil, "2001:db8:1:2::/64"}, // an IPv6 client is its /64
		{"[::ffff:10.0.0.1]:4000", []string{"198.51.100.9"}, "198.51.100.9"},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := a.clientIP(r); got != tc.want {
			t.Errorf("peer %s xff %q: got %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}
