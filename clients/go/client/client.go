package client

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/directory"
)

// Defaults and caps.
const (
	// DefaultTimeout bounds one HTTP exchange of the default http.Client.
	DefaultTimeout = 30 * time.Second
	// MaxResponse caps the body of an answer the client reads (the largest
	// legitimate one is the pinned-keys blob, about 350 KB of base64).
	MaxResponse = 1 << 20
)

// Options configure a Client.
type Options struct {
	// BaseURL is the homeserver's origin, e.g. "https://chat.example.org"
	// (a path prefix is kept, for a server behind a reverse proxy).
	BaseURL string
	// HTTPClient sends the requests; nil means a client with
	// DefaultTimeout. Tests inject one to count or fault requests.
	HTTPClient *http.Client
	// ServerName is the homeserver's name (SERVER_NAME), the part after
	// "@" in its users' addresses. Empty: learned from the server's first
	// answer that names it (its key directory's tree head, or an address).
	ServerName privateline.ServerName
	// Directory keeps the key directory's pinned key and last tree head
	// per server; nil means in memory. A client that keeps state between
	// runs should persist it, or it cannot detect a directory that rolls
	// back between runs.
	Directory directory.Store
	// Now is the clock for the created_at of new key bundles and pins;
	// nil means time.Now.
	Now func() time.Time
	// UserAgent, if set, is sent as User-Agent.
	UserAgent string
}

// Client talks to one homeserver. It is safe for concurrent use. Calls
// that need a login are methods of *Session.
type Client struct {
	base  *url.URL
	hc    *http.Client
	now   func() time.Time
	store directory.Store
	dir   *directory.Verifier
	ua    string

	mu     sync.Mutex
	server privateline.ServerName // guarded by mu; "" until known
	// epochs: the highest epoch of each group an account's sessions held
	// a key of (lostepochs.go); guarded by mu.
	epochs map[privateline.Address]map[string]HeldEpoch
}

// New returns a client for the homeserver at o.BaseURL.
func New(o Options) (*Client, error) {
	const op = "client.New"
	u, err := url.Parse(o.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, privateline.E(op, privateline.Invalid, "the server URL must be http(s)://host[:port][/path], without query or credentials")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{base: u, hc: o.HTTPClient, now: o.Now, store: o.Directory, ua: o.UserAgent}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: DefaultTimeout}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.store == nil {
		c.store = &directory.Memory{}
	}
	if o.ServerName != "" {
		if _, err := privateline.ParseServerName(string(o.ServerName)); err != nil {
			return nil, privateline.E(op, err)
		}
		c.server = o.ServerName
	}
	c.dir = directory.NewVerifier(c.store, c.fetchConsistency)
	return c, nil
}

// BaseURL returns the server's URL as configured.
func (c *Client) BaseURL() string { return c.base.String() }

// knownServer returns the server's name, or "" before it is known.
func (c *Client) knownServer() privateline.ServerName {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.server
}

// adoptServer records the server's name as the server states it, and
// refuses a name other than the one known.
func (c *Client) adoptServer(op string, name privateline.ServerName) error {
	if _, err := privateline.ParseServerName(string(name)); err != nil {
		return privateline.E(op, privateline.Invalid, "the server gave an invalid server name", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.server {
	case "":
		c.server = name
	case name:
	default:
		return privateline.E(op, privateline.Forbidden, "the server calls itself "+string(name)+", but it is "+string(c.server))
	}
	return nil
}

// request is one HTTP exchange.
type request struct {
	method, path string
	query        url.Values
	body         []byte             // JSON; nil for none
	token        privateline.Secret // access token; nil for none
	ifMatch      string
}

// response is an answer read in full (up to MaxResponse).
type response struct {
	status int
	header http.Header
	body   []byte
}

// jsonBody encodes v for a request.
func jsonBody(op string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	return b, nil
}

// do sends rq and reads the answer. Transport failures are Unavailable;
// HTTP error statuses are not errors here (see expect).
func (c *Client) do(ctx context.Context, op string, rq *request) (*response, error) {
	u := *c.base
	u.Path = c.base.Path + rq.path
	u.RawPath = ""
	if rq.query != nil {
		u.RawQuery = rq.query.Encode()
	}
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, u.String(), body)
	if err != nil {
		return nil, privateline.E(op, privateline.Invalid, err)
	}
	req.Header.Set("Accept", "application/json")
	if rq.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.ua != "" {
		req.Header.Set("User-Agent", c.ua)
	}
	if rq.token != nil {
		req.Header.Set("Authorization", "Bearer "+string(rq.token.Bytes()))
	}
	if rq.ifMatch != "" {
		req.Header.Set("If-Match", rq.ifMatch)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, privateline.E(op, privateline.Unavailable, "cannot reach the server", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return nil, privateline.E(op, privateline.Unavailable, "the server's answer was cut off", err)
	}
	if len(b) > MaxResponse {
		return nil, privateline.E(op, privateline.TooLarge, "the server's answer is over the client's size cap")
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// expect returns the API error unless r has one of the statuses.
func expect(op string, r *response, statuses ...int) error {
	if slices.Contains(statuses, r.status) {
		return nil
	}
	return apiError(op, r)
}

// decode reads a JSON answer into v.
func decode(op string, r *response, v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return privateline.E(op, privateline.Invalid, "the server's answer is malformed", err)
	}
	return nil
}
