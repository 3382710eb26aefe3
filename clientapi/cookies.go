package clientapi

import (
	"net/http"
	"time"
)

// Cookie names for browsers that ask for cookie sessions.
const (
	cookieAccess  = "pl_access"
	cookieRefresh = "pl_refresh"
	cookieCSRF    = "pl_csrf"
)

func (a *API) cookie(name, value, path string, maxAge time.Duration, httpOnly bool) *http.Cookie {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     path,
		HttpOnly: httpOnly,
		Secure:   a.cfg.CookieSecure,
		SameSite: a.cfg.CookieSameSite,
	}
	if maxAge > 0 {
		c.MaxAge = int(maxAge.Seconds())
	} else {
		c.MaxAge = -1
	}
	return c
}

// setSessionCookies sets the access, refresh and CSRF cookies.
func (a *API) setSessionCookies(w http.ResponseWriter, access, refresh, csrf string) {
	http.SetCookie(w, a.cookie(cookieAccess, access, "/", a.cfg.AccessTokenTTL, true))
	http.SetCookie(w, a.cookie(cookieRefresh, refresh, "/api/", a.cfg.RefreshTokenTTL, true))
	http.SetCookie(w, a.cookie(cookieCSRF, csrf, "/", a.cfg.RefreshTokenTTL, false))
}

// clearSessionCookies removes them.
func (a *API) clearSessionCookies(w http.ResponseWriter) {
	http.SetCookie(w, a.cookie(cookieAccess, "", "/", 0, true))
	http.SetCookie(w, a.cookie(cookieRefresh, "", "/api/", 0, true))
	http.SetCookie(w, a.cookie(cookieCSRF, "", "/", 0, false))
}
