package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/serverkey"
)

// Discovery and liveness with memberlist (spec/federation.md §5.2): the
// cluster tells where each server's QUIC listener is and whether it is up.
// Nothing learnt here is trusted: the key in a member's metadata is a hint
// that is compared with the configured or pinned key and never pinned; the
// TLS handshake (§4.2) alone decides who a peer is.

// GossipConfig configures gossip (FEDERATION_GOSSIP_*); a nil
// Config.Gossip is no gossip.
type GossipConfig struct {
	// BindAddr is the TCP and UDP ip:port memberlist listens on
	// ("0.0.0.0:7946"; port 0 picks a free port, see Service.GossipAddr).
	BindAddr string
	// AdvertiseAddr is the host:port other members reach this one at; ""
	// is the bound address, or a private address of this host when bound
	// to 0.0.0.0. A host name is resolved once, at Start.
	AdvertiseAddr string
	// Seeds are host:port gossip addresses of members to join through.
	// Joining is retried in the background while none answers.
	Seeds []string
	// Key, if not nil, encrypts and authenticates gossip (AES-GCM with a
	// 16, 24 or 32-byte key): only members holding it can join.
	Key []byte
	// Interval is the failure-detection probe interval; the other timings
	// scale with it. Default 5 s (memberlist's WAN profile); tests use
	// short ones.
	Interval time.Duration
}

// Gossip constants (spec §5.2).
const (
	// GossipLabel is put on every gossip packet and stream (memberlist's
	// label; the additional data of its encryption when keyed): members of
	// other memberlist clusters on the same port are not mixed in.
	GossipLabel = "privateline-fed/1"
	// MaxGossipMeta is memberlist's cap on a node's metadata.
	MaxGossipMeta = memberlist.MetaMaxSize
	// DefaultGossipInterval is the default probe interval.
	DefaultGossipInterval = 5 * time.Second
	// gossipLeaveTimeout bounds the wait for the leave message at Close.
	gossipLeaveTimeout = 3 * time.Second
	// maxWarned bounds the ignored nodes remembered as already logged at
	// warn level (names are anyone's to make up); later ones log at debug.
	maxWarned = 1024
)

// Member is one server of the gossip cluster as this server sees it
// (Service.Members).
type Member struct {
	Name       privateline.ServerName
	Federation string            // its QUIC address, from its metadata
	Gossip     string            // its memberlist ip:port
	KeyHint    ed25519.PublicKey // the key its metadata names, never trusted; nil if none
	State      string            // MemberUp or MemberDown
	Self       bool
	Since      time.Time // when State last changed
}

// Member states: up (alive, or suspected but not yet dead) or down (it
// left the cluster, or stopped answering probes; memberlist's event does
// not tell which).
const (
	MemberUp   = "up"
	MemberDown = "down"
)

// gossipMeta is a member's metadata (spec §5.2).
type gossipMeta struct {
	Server     privateline.ServerName
	Federation string
	Key        ed25519.PublicKey // nil when left out
}

// encodeGossipMeta returns the canonical JSON metadata of a server; the
// key, only a hint, is left out when the whole would be over
// MaxGossipMeta, and a metadata that is over without it is an error.
func encodeGossipMeta(server privateline.ServerName, federation string, key ed25519.PublicKey) ([]byte, error) {
	m := map[string]any{"federation": federation, "key": std64.EncodeToString(key), "server": string(server), "v": int64(wire.Version)}
	raw, err := cjson.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(raw) <= MaxGossipMeta {
		return raw, nil
	}
	delete(m, "key")
	if raw, err = cjson.Marshal(m); err != nil {
		return nil, err
	}
	if len(raw) > MaxGossipMeta {
		return nil, fmt.Errorf("the gossip metadata of %s with federation address %q is %d bytes, over memberlist's %d: use a shorter FEDERATION_ADVERTISE_ADDR", server, federation, len(raw), MaxGossipMeta)
	}
	return raw, nil
}

// parseGossipMeta checks a member's metadata (spec §5.2): canonical JSON,
// v = 1, "server" a server name, "federation" a host:port, "key" absent
// or 32 bytes. Unknown members are ignored (later versions may add hints).
func parseGossipMeta(raw []byte) (*gossipMeta, error) {
	if len(raw) == 0 {
		return nil, errors.New("no metadata")
	}
	if len(raw) > MaxGossipMeta {
		return nil, fmt.Errorf("metadata of %d bytes", len(raw))
	}
	if err := cjson.Check(raw); err != nil {
		return nil, err
	}
	v, err := cjson.Parse(raw)
	if err != nil {
		return nil, err
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, errors.New("metadata is not an object")
	}
	o := cjson.NewObject(v)
	ver := o.Int("v", true, 0, cjson.MaxSafeInt)
	m := &gossipMeta{
		Server:     privateline.ServerName(o.String("server", true)),
		Federation: o.String("federation", true),
	}
	if k := o.Bytes("key", false, ed25519.PublicKeySize, ed25519.PublicKeySize); k != nil {
		m.Key = ed25519.PublicKey(k)
	}
	if err := o.Done(true); err != nil {
		return nil, err
	}
	if ver != wire.Version {
		return nil, fmt.Errorf("version %d", ver)
	}
	if _, err := privateline.ParseServerName(string(m.Server)); err != nil {
		return nil, err
	}
	if msg := checkDialAddr(m.Federation); msg != "" {
		return nil, fmt.Errorf(`"federation" %s`, msg)
	}
	return m, nil
}

// checkDialAddr returns "" if addr is a host:port one can dial (a host and
// a port 1–65535), else what is wrong.
func checkDialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "is not host:port"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return "has no port between 1 and 65535"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "is an unspecified address"
	}
	return ""
}

// checkGossipConfig checks c (New).
func checkGossipConfig(c *GossipConfig) error {
	if _, _, err := splitBind(c.BindAddr); err != nil {
		return err
	}
	if c.AdvertiseAddr != "" {
		if msg := checkDialAddr(c.AdvertiseAddr); msg != "" {
			return fmt.Errorf("gossip advertise address %q %s", c.AdvertiseAddr, msg)
		}
	}
	for _, s := range c.Seeds {
		if msg := checkDialAddr(s); msg != "" {
			return fmt.Errorf("gossip seed %q %s", s, msg)
		}
	}
	if k := len(c.Key); c.Key != nil && k != 16 && k != 24 && k != 32 {
		return fmt.Errorf("the gossip key must be 16, 24 or 32 bytes, not %d", k)
	}
	if c.Interval < 0 {
		return errors.New("negative gossip interval")
	}
	return nil
}

// splitBind splits a bind address: an IP literal (or empty: 0.0.0.0) and
// a port (0: any).
func splitBind(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("gossip bind address %q is not ip:port", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("gossip bind address %q has no port between 0 and 65535", addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("gossip bind address %q: the host must be an IP address", addr)
	}
	return host, p, nil
}

// gossip is the Service's memberlist node.
type gossip struct {
	s     *Service
	cfg   GossipConfig
	self  privateline.ServerName
	allow map[privateline.ServerName]bool
	deny  map[privateline.ServerName]bool
	met   *gossipMetrics
	log   *log.Logger // memberlist's, into the service's log at debug level

	ml     *memberlist.Memberlist
	meta   []byte
	addr   string // the advertised gossip ip:port
	cancel context.CancelFunc
	done   chan struct{} // the join loop ended

	mu      sync.Mutex
	members map[privateline.ServerName]*Member
	warned  map[string]bool // name ‖ reason of refusals already logged at warn
}

func newGossip(s *Service, cfg GossipConfig) *gossip {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultGossipInterval
	}
	g := &gossip{
		s:       s,
		cfg:     cfg,
		self:    s.cfg.Name,
		allow:   map[privateline.ServerName]bool{},
		deny:    map[privateline.ServerName]bool{},
		met:     newGossipMetrics(s.cfg.Registry),
		members: map[privateline.ServerName]*Member{},
		warned:  map[string]bool{},
	}
	for _, n := range s.cfg.Allow {
		g.allow[n] = true
	}
	for _, n := range s.cfg.Deny {
		g.deny[n] = true
	}
	g.log = log.New(slogWriter{s.log}, "", 0)
	g.met.members = g
	return g
}

// slogWriter turns memberlist's log lines into debug records.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug(strings.TrimRight(string(p), "\n"), "component", "gossip")
	return len(p), nil
}

// start binds memberlist, announces this server with quic (the QUIC
// address peers dial) and starts joining the seeds in the background.
func (g *gossip) start(quic string) error {
	bindIP, port, err := splitBind(g.cfg.BindAddr)
	if err != nil {
		return err
	}
	var nt *memberlist.NetTransport
	for try := 0; ; try++ {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{bindIP}, BindPort: port, Logger: g.log})
		// Port 0 binds TCP on a free port, then UDP on the same one,
		// which another process may hold: try again.
		if err == nil || port != 0 || try == 9 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("gossip: binding %s: %w", g.cfg.BindAddr, err)
	}
	ok := false
	defer func() {
		if !ok {
			nt.Shutdown()
		}
	}()
	bound := nt.GetAutoBindPort()
	advIP, advPort := "", bound
	if g.cfg.AdvertiseAddr != "" {
		host, p, _ := net.SplitHostPort(g.cfg.AdvertiseAddr)
		advPort, _ = strconv.Atoi(p)
		ip := net.ParseIP(host)
		if ip == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
			cancel()
			if err != nil || len(ips) == 0 {
				return fmt.Errorf("gossip: resolving the advertise address %s: %v", g.cfg.AdvertiseAddr, err)
			}
			ip = ips[0]
		}
		advIP = ip.String()
	} else if net.ParseIP(bindIP).IsUnspecified() && bindIP != "0.0.0.0" {
		return fmt.Errorf("gossip: bound to %s: set an advertise address (FEDERATION_GOSSIP_ADVERTISE_ADDR)", g.cfg.BindAddr)
	}
	ip, advPort, err := nt.FinalAdvertiseAddr(advIP, advPort)
	if err != nil {
		return fmt.Errorf("gossip: the address to advertise: %w (set FEDERATION_GOSSIP_ADVERTISE_ADDR)", err)
	}

	// The QUIC address in the metadata: an unspecified host (a listener
	// on every interface, no advertised address) is replaced by the
	// address gossip advertises.
	if host, p, err := net.SplitHostPort(quic); err == nil {
		if h := net.ParseIP(host); h != nil && h.IsUnspecified() {
			quic = net.JoinHostPort(ip.String(), p)
		}
	}
	if g.meta, err = encodeGossipMeta(g.self, quic, g.s.cfg.Key.Public()); err != nil {
		return fmt.Errorf("gossip: %w", err)
	}

	c := memberlist.DefaultWANConfig()
	c.Name = string(g.self)
	c.Transport = nt
	c.BindAddr, c.BindPort = bindIP, bound
	c.AdvertiseAddr, c.AdvertisePort = ip.String(), advPort
	c.Label = GossipLabel
	c.Logger = g.log
	c.Delegate = gossipDelegate{g}
	c.Events = gossipEvents{g}
	c.Alive = gossipAlive{g}
	// Timings: the WAN profile (probe 5 s, timeout 3 s, gossip 500 ms,
	// push/pull 60 s), scaled to the interval.
	iv := g.cfg.Interval
	c.ProbeInterval = iv
	c.ProbeTimeout = iv * 3 / 5
	c.GossipInterval = iv / 10
	c.PushPullInterval = iv * 12
	c.GossipToTheDeadTime = iv * 12
	c.TCPTimeout = max(iv*6, time.Second)
	// A server that died and comes back from another address is taken
	// back once it is known dead (its name is not trusted anyway).
	c.DeadNodeReclaimTime = iv
	if g.cfg.Key != nil {
		if c.Keyring, err = memberlist.NewKeyring(nil, g.cfg.Key); err != nil {
			return fmt.Errorf("gossip: %w", err)
		}
	}
	ml, err := memberlist.Create(c)
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	ok = true
	g.ml = ml
	g.addr = net.JoinHostPort(ip.String(), strconv.Itoa(advPort))
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel, g.done = cancel, make(chan struct{})
	go g.joinLoop(ctx)
	g.s.log.Info("federation: gossip started", "gossip_addr", g.addr, "federation_addr", quic,
		"seeds", strings.Join(g.cfg.Seeds, ","), "encrypted", g.cfg.Key != nil)
	return nil
}

// joinLoop joins the seeds while this server sees no other member: at
// start, with backoff while none answers, and again whenever it is left
// alone (every member gone, or a partition). A seed that is this server
// itself answers but adds no member, so it does not count as joined; a
// member that found this server first (it was its seed) does.
func (g *gossip) joinLoop(ctx context.Context) {
	defer close(g.done)
	if len(g.cfg.Seeds) == 0 {
		return
	}
	base, capWait, check := g.cfg.Interval/5, g.cfg.Interval*12, g.cfg.Interval*6
	fails := 0
	alone := true
	wait := time.Duration(0)
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if g.ml.NumMembers() <= 1 {
			alone = true
			n, err := g.ml.Join(g.cfg.Seeds)
			if n == 0 || g.ml.NumMembers() <= 1 {
				g.met.joins.WithLabelValues("failed").Inc()
				if err == nil {
					err = errors.New("no other member")
				}
				lvl := slog.LevelDebug
				if fails == 0 {
					lvl = slog.LevelWarn
				}
				wait = min(backoff(base, fails, g.s.jitter()), capWait)
				g.s.log.Log(context.Background(), lvl, "federation: no other gossip member reached through the seeds yet (normal for the first server of a cluster); retrying in the background",
					"seeds", strings.Join(g.cfg.Seeds, ","), "attempt", fails+1, "retry_in", wait.String(), "err", err)
				fails++
				continue
			}
		}
		if alone {
			alone = false
			g.met.joins.WithLabelValues("joined").Inc()
			g.s.log.Info("federation: joined the gossip cluster", "members", g.ml.NumMembers())
		}
		fails, wait = 0, check
	}
}

// close leaves the cluster (other members see this server as left at
// once, rather than dead after probing) and stops memberlist.
func (g *gossip) close() {
	if g.ml == nil {
		return
	}
	g.cancel()
	<-g.done
	if err := g.ml.Leave(gossipLeaveTimeout); err != nil {
		g.s.log.Info("federation: left the gossip cluster without a member confirming it (none reachable)", "err", err)
	}
	if err := g.ml.Shutdown(); err != nil {
		g.s.log.Warn("federation: stopping gossip", "err", err)
	}
}

// refuse returns why the alive node n is ignored, or "".
func (g *gossip) refuse(n *memberlist.Node) (reason string, err error) {
	name, perr := privateline.ParseServerName(n.Name)
	if perr != nil {
		return "bad_name", perr
	}
	if g.deny[name] {
		return "forbidden", errors.New("on FEDERATION_DENY")
	}
	if len(g.allow) > 0 && !g.allow[name] {
		return "forbidden", errors.New("not on FEDERATION_ALLOW")
	}
	m, perr := parseGossipMeta(n.Meta)
	if perr != nil {
		return "bad_metadata", perr
	}
	if m.Server != name {
		return "name_mismatch", fmt.Errorf("its metadata names %s", m.Server)
	}
	return "", nil
}

// seen records that name is alive at meta's address (a join, or an
// update of its metadata) and wakes its sender if it came back or moved.
func (g *gossip) seen(n *memberlist.Node, join bool) {
	name := privateline.ServerName(n.Name)
	if name == g.self {
		g.setSelf(n)
		return
	}
	meta, err := parseGossipMeta(n.Meta)
	if err != nil || meta.Server != name { // the alive delegate let no such node in
		return
	}
	now := g.s.now()
	g.mu.Lock()
	m := g.members[name]
	if m == nil {
		m = &Member{Name: name}
		g.members[name] = m
	}
	moved := m.Federation != meta.Federation
	back := m.State != MemberUp
	m.Federation, m.KeyHint = meta.Federation, meta.Key
	m.Gossip = n.Address()
	if back {
		m.State, m.Since = MemberUp, now
	}
	// Under g.mu: whoever sees the member sees its address in use.
	if (moved || back) && g.s.gossipSeen(name, meta.Federation, moved) {
		g.met.wakeups.Inc()
	}
	g.mu.Unlock()
	event := "update"
	if join {
		event = "join"
	}
	g.met.events.WithLabelValues(event).Inc()
	g.s.log.Debug("federation: gossip "+event, "peer", string(name), "federation_addr", meta.Federation, "gossip_addr", n.Address())
	g.checkHint(name, meta.Key)
}

// setSelf records this server's own entry.
func (g *gossip) setSelf(n *memberlist.Node) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.members[g.self]
	if m == nil {
		m = &Member{Name: g.self, Self: true, State: MemberUp, Since: g.s.now()}
		g.members[g.self] = m
	}
	if meta, err := parseGossipMeta(n.Meta); err == nil {
		m.Federation, m.KeyHint = meta.Federation, meta.Key
	}
	m.Gossip, m.State = n.Address(), MemberUp
}

// left records that name is dead or left. Delivery does not change: the
// sender's own failures drive its backoff (spec §5.2).
func (g *gossip) left(n *memberlist.Node) {
	name := privateline.ServerName(n.Name)
	if name == g.self {
		return
	}
	g.mu.Lock()
	m := g.members[name]
	if m != nil && m.State != MemberDown {
		m.State, m.Since = MemberDown, g.s.now()
	}
	g.mu.Unlock()
	if m == nil {
		return
	}
	g.met.events.WithLabelValues("leave").Inc()
	g.s.log.Info("federation: a gossip member is down (it left, or stopped answering)", "peer", string(name))
}

// checkHint compares a member's key hint with the key configured or
// pinned for it. A difference is logged and counted, nothing else: the
// hint is never pinned and never refuses anything; the TLS handshake
// (§4.2) decides.
func (g *gossip) checkHint(name privateline.ServerName, hint ed25519.PublicKey) {
	if hint == nil {
		return
	}
	known, how := g.s.configuredKey(name), "configured"
	if known == nil {
		k, err := g.s.store.PeerPin(name)
		if err != nil {
			g.s.log.Error("federation: reading a pin", "peer", string(name), "err", err)
			return
		}
		known, how = k, "pinned"
	}
	if known == nil || known.Equal(hint) {
		return
	}
	g.met.keyMismatch.Inc()
	g.s.log.Warn("federation: the key in a gossip member's metadata is not the key "+how+" for that server; ignored (gossip grants no trust, the TLS handshake decides)",
		"peer", string(name), "gossip_key", serverkey.Fingerprint(hint), how+"_key", serverkey.Fingerprint(known))
}

// members returns the table, sorted by name.
func (g *gossip) list() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		c := *m
		c.KeyHint = slices.Clone(m.KeyHint)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(string(a.Name), string(b.Name)) })
	return out
}

// gossipSeen records the gossip address of name (used when no static
// address is configured) and wakes its sender, if it has one, with its
// backoff reset; moved also drops its link to the previous address. It
// reports whether a sender was woken. A destination without a sender has
// nothing queued: Wake starts one when something is.
func (s *Service) gossipSeen(name privateline.ServerName, addr string, moved bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.gaddrs[name] = addr
	s.resyncPoke(name) // groupsync.go
	sd := s.senders[name]
	if sd == nil {
		return false
	}
	if moved && s.addrs[name] == "" {
		sd.dropLink()
	}
	sd.poke(true)
	return true
}

// Members returns the servers of the gossip cluster, this one included,
// sorted by name (nil without gossip). Nodes that gossip ignored (denied,
// not allowed, bad metadata) are not listed.
func (s *Service) Members() []Member {
	if s.gossip == nil {
		return nil
	}
	return s.gossip.list()
}

// GossipAddr returns the gossip ip:port this server advertises ("" without
// gossip or before Start).
func (s *Service) GossipAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gossip == nil || !s.started {
		return ""
	}
	return s.gossip.addr
}

// memberlist delegates.

type gossipDelegate struct{ g *gossip }

func (d gossipDelegate) NodeMeta(limit int) []byte {
	if len(d.g.meta) > limit {
		return nil // not reached: encodeGossipMeta keeps it within MaxGossipMeta
	}
	return bytes.Clone(d.g.meta)
}
func (gossipDelegate) NotifyMsg([]byte)                    {}
func (gossipDelegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (gossipDelegate) LocalState(bool) []byte              { return nil }
func (gossipDelegate) MergeRemoteState(buf []byte, _ bool) {}

type gossipEvents struct{ g *gossip }

func (e gossipEvents) NotifyJoin(n *memberlist.Node)   { e.g.seen(n, true) }
func (e gossipEvents) NotifyUpdate(n *memberlist.Node) { e.g.seen(n, false) }
func (e gossipEvents) NotifyLeave(n *memberlist.Node)  { e.g.left(n) }

// gossipAlive keeps out of this server's member list the nodes it ignores:
// a server name that is denied or not allowed, an invalid name or
// metadata, or metadata naming another server than the node.
type gossipAlive struct{ g *gossip }

func (a gossipAlive) NotifyAlive(n *memberlist.Node) error {
	g := a.g
	if n.Name == string(g.self) {
		return nil
	}
	reason, err := g.refuse(n)
	if reason == "" {
		return nil
	}
	g.met.ignored.WithLabelValues(reason).Inc()
	key := n.Name + "\x00" + reason
	g.mu.Lock()
	first := !g.warned[key] && len(g.warned) < maxWarned
	if first {
		g.warned[key] = true
	}
	g.mu.Unlock()
	lvl := slog.LevelDebug
	if first {
		lvl = slog.LevelWarn
	}
	name := n.Name
	if len(name) > 255 {
		name = truncate(name, 255)
	}
	g.s.log.Log(context.Background(), lvl, "federation: ignoring a gossip member", "node", name, "reason", reason, "err", err)
	return fmt.Errorf("%s: %v", reason, err)
}

// gossipMetrics are the gossip's metrics.
type gossipMetrics struct {
	members     *gossip
	joins       *prometheus.CounterVec // join attempts: joined, failed
	events      *prometheus.CounterVec // join, update, leave
	ignored     *prometheus.CounterVec // nodes ignored, by reason
	keyMismatch prometheus.Counter
	wakeups     prometheus.Counter
}

var gossipMembersDesc = prometheus.NewDesc("privateline_federation_gossip_members",
	"Servers in the gossip cluster as this one sees them (itself included), by state: up (alive or suspect) or down (left or dead).",
	[]string{"state"}, nil)

func newGossipMetrics(reg prometheus.Registerer) *gossipMetrics {
	m := &gossipMetrics{
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_gossip_joins_total",
			Help: "Joining the gossip cluster: joined (this server, alone, came to have other members), failed (an attempt through the seeds found none).",
		}, []string{"outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_gossip_events_total",
			Help: "Gossip events about other servers: join (up), update (new metadata), leave (dead or left).",
		}, []string{"event"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_gossip_ignored_total",
			Help: "Alive messages of gossip nodes that were ignored, by reason (forbidden, bad_name, bad_metadata, name_mismatch).",
		}, []string{"reason"}),
		keyMismatch: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privateline_federation_gossip_key_mismatch_total",
			Help: "Gossip metadata naming another key than the one configured or pinned for that server (ignored; TLS decides).",
		}),
		wakeups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privateline_federation_gossip_wakeups_total",
			Help: "Senders woken with their backoff reset because their destination came up or moved in gossip.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.joins, m.events, m.ignored, m.keyMismatch, m.wakeups, m)
	}
	return m
}

func (m *gossipMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- gossipMembersDesc }

func (m *gossipMetrics) Collect(ch chan<- prometheus.Metric) {
	n := map[string]int{}
	for _, mem := range m.members.list() {
		n[mem.State]++
	}
	for _, st := range []string{MemberUp, MemberDown} {
		ch <- prometheus.MustNewConstMetric(gossipMembersDesc, prometheus.GaugeValue, float64(n[st]), st)
	}
}
