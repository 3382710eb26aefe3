package clientapi

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

type routeKey struct{}

// routeHolder carries the matched route pattern back out to the metrics
// middleware.
type routeHolder struct{ path string }

func setRoute(r *http.Request, path string) {
	if h, ok := r.Context().Value(routeKey{}).(*routeHolder); ok {
		h.path = path
	}
}

// middleware wraps the router in the chain every request passes through,
// outermost first: metrics, recover, security headers, CORS, body cap.
func (a *API) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := a.now()
		rh := &routeHolder{path: "unmatched"}
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, rh))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.Error("panic serving request", "method", r.Method, "route", rh.path, "panic", v)
				if !sw.wrote {
					a.writeError(sw, r, errInternal)
				}
			}
			a.metrics.observe(rh.path, r.Method, sw.status, a.now().Sub(start))
		}()
		a.securityHeaders(sw, r)
		if !a.cors(sw, r) {
			return
		}
		r.Body = http.MaxBytesReader(sw, r.Body, a.bodyLimit(r))
		next.ServeHTTP(sw, r)
	})
}

var errInternal = &statusError{http.StatusInternalServerError, "internal", "internal error"}

func (a *API) securityHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", a.cfg.CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "geolocation=(), microphone=(), camera=(self)")
	if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
		h.Set("Cache-Control", "no-store")
	}
	if a.cfg.HSTS {
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
}

// cors applies CORS_ORIGINS. It answers preflight requests itself and
// reports whether the request should continue.
func (a *API) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	h := w.Header()
	h.Add("Vary", "Origin")
	allowed := origin != "" && slices.Contains(a.cfg.CORSOrigins, origin)
	if allowed {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Expose-Headers", "Retry-After, ETag")
	}
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return true
	}
	// A preflight.
	if !allowed {
		writeJSON(w, http.StatusForbidden, errorBody("forbidden", "origin not allowed"))
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-CSRF-Token, If-Match")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return false
}

// statusWriter records the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Hijack hands the connection to the WebSocket upgrader (which needs an
// http.Hijacker) and records the switch of protocols.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, b, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.status, w.wrote = http.StatusSwitchingProtocols, true
	}
	return c, b, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// clientIP is the address rate limits are keyed on: the TCP peer, unless
// the peer is a trusted proxy (TRUSTED_PROXIES), in which case the
// right-most address in X-Forwarded-For that is not itself a trusted proxy.
func (a *API) clientIP(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip := peer.Addr().Unmap()
	if !a.trusted(ip) {
		return limitKey(ip)
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed entry: trust nothing to its left
		}
		if hop = hop.Unmap(); !a.trusted(hop) {
			return limitKey(hop)
		}
	}
	return limitKey(ip)
}

// limitKey is the rate-limit key of an address: the address itself for
// IPv4, its /64 for IPv6, since one subscriber commonly holds a whole /64.
func limitKey(ip netip.Addr) string {
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

func (a *API) trusted(ip netip.Addr) bool {
	for _, p := range a.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func statusLabel(code int) string { return strconv.Itoa(code) }
