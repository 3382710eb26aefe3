package push

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/payload"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"
)

// APNsConfig configures the APNs sender: a client certificate (Cert) or a
// .p8 signing key (Key, KeyID, TeamID), exactly one of the two.
type APNsConfig struct {
	Cert    *tls.Certificate
	Key     *ecdsa.PrivateKey
	KeyID   string
	TeamID  string
	Topic   string // the app's bundle id
	Sandbox bool   // the development environment

	// Tests only: where the fake APNs listens and the roots that trust it.
	Host    string
	RootCAs *x509.CertPool
}

// APNs sends to Apple's push service.
type APNs struct {
	client *apns2.Client
	topic  string
}

// NewAPNs checks cfg and returns the sender.
func NewAPNs(cfg APNsConfig) (*APNs, error) {
	if cfg.Topic == "" {
		return nil, errors.New("push: APNS_TOPIC (the app's bundle id) is required for APNs")
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs}
	var c *apns2.Client
	switch {
	case cfg.Cert != nil && cfg.Key != nil:
		return nil, errors.New("push: APNs takes a certificate or a signing key, not both")
	case cfg.Cert != nil:
		c = apns2.NewClient(*cfg.Cert)
		tlsCfg.Certificates = []tls.Certificate{*cfg.Cert}
	case cfg.Key != nil:
		if cfg.KeyID == "" || cfg.TeamID == "" {
			return nil, errors.New("push: APNs token authentication needs APNS_KEY_ID and APNS_TEAM_ID")
		}
		c = apns2.NewTokenClient(&token.Token{AuthKey: cfg.Key, KeyID: cfg.KeyID, TeamID: cfg.TeamID})
	default:
		return nil, errors.New("push: APNs needs APNS_CERT or APNS_KEY")
	}
	dialer := &net.Dialer{Timeout: 20 * time.Second, KeepAlive: 15 * time.Second}
	c.HTTPClient = &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http2.Transport{
			TLSClientConfig: tlsCfg,
			ReadIdleTimeout: 15 * time.Second,
			DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
				return (&tls.Dialer{NetDialer: dialer, Config: cfg}).DialContext(ctx, network, addr)
			},
		},
	}
	switch {
	case cfg.Host != "":
		c.Host = cfg.Host
	case cfg.Sandbox:
		c.Host = apns2.HostDevelopment
	default:
		c.Host = apns2.HostProduction
	}
	return &APNs{client: c, topic: cfg.Topic}, nil
}

// Send pushes n to the device token (hex).
func (a *APNs) Send(ctx context.Context, tok string, n Notification) error {
	p := payload.NewPayload().AlertTitle(Title).AlertBody(Body).Badge(int(min(n.Unread, 1<<31-1))).Sound("default").
		Custom("privateline", map[string]any{"unread": n.Unread})
	res, err := a.client.PushWithContext(ctx, &apns2.Notification{
		DeviceToken: tok,
		Topic:       a.topic,
		CollapseID:  Collapse,
		PushType:    apns2.PushTypeAlert,
		Priority:    apns2.PriorityHigh,
		Expiration:  time.Now().Add(24 * time.Hour),
		Payload:     p,
	})
	if err != nil {
		return networkErr(err)
	}
	// 410 Unregistered: the device token is no longer active for the topic.
	gone := res.StatusCode == http.StatusGone
	return classify(res.StatusCode, nil, gone, res.Reason)
}
