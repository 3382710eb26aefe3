package push

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FCM HTTP v1 (https://firebase.google.com/docs/cloud-messaging/send/v1-api)
// with a service account: the OAuth 2.0 JWT bearer grant (RFC 7523) for an
// access token, then one POST per device.

// DefaultFCMEndpoint is the FCM HTTP v1 API's base URL.
const DefaultFCMEndpoint = "https://fcm.googleapis.com"

const fcmScope = "https://www.googleapis.com/auth/firebase.messaging"

// ServiceAccount is the part of a service-account key file FCM needs.
type ServiceAccount struct {
	Type        string `json:"type"`
	ProjectID   string `json:"project_id"`
	PrivateKey  string `json:"private_key"`
	ClientEmail string `json:"client_email"`
	TokenURI    string `json:"token_uri"`
}

// FCMConfig configures the FCM sender.
type FCMConfig struct {
	Credentials []byte // the service-account key file (JSON)
	Endpoint    string // default DefaultFCMEndpoint (tests: a fake)
	Client      *http.Client
}

// FCM sends to Firebase Cloud Messaging.
type FCM struct {
	acct     ServiceAccount
	key      *rsa.PrivateKey
	endpoint string
	client   *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
}

// NewFCM parses the service-account file and returns the sender.
func NewFCM(cfg FCMConfig) (*FCM, error) {
	var a ServiceAccount
	if err := json.Unmarshal(cfg.Credentials, &a); err != nil {
		return nil, fmt.Errorf("push: the FCM service-account file is not JSON: %w", err)
	}
	if a.Type != "service_account" || a.ProjectID == "" || a.ClientEmail == "" || a.PrivateKey == "" || a.TokenURI == "" {
		return nil, errors.New(`push: the FCM credentials must be a service-account key file (type "service_account" with project_id, client_email, private_key and token_uri)`)
	}
	if u, err := url.Parse(a.TokenURI); err != nil || u.Scheme != "https" {
		return nil, errors.New("push: the service account's token_uri must be an https URL")
	}
	blk, _ := pem.Decode([]byte(a.PrivateKey))
	if blk == nil {
		return nil, errors.New("push: the service account's private_key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("push: the service account's private_key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("push: the service account's private_key is not an RSA key")
	}
	f := &FCM{acct: a, key: rk, endpoint: strings.TrimSuffix(cfg.Endpoint, "/"), client: cfg.Client}
	if f.endpoint == "" {
		f.endpoint = DefaultFCMEndpoint
	}
	if f.client == nil {
		f.client = &http.Client{Timeout: 30 * time.Second}
	}
	return f, nil
}

// accessToken returns a cached OAuth token, fetching a new one when it is
// missing or about to expire.
func (f *FCM) accessToken(ctx context.Context, refresh bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !refresh && f.token != "" && time.Until(f.expires) > time.Minute {
		return f.token, nil
	}
	now := time.Now()
	assertion, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss":   f.acct.ClientEmail,
		"scope": fcmScope,
		"aud":   f.acct.TokenURI,
		"iat":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
	}).SignedString(f.key)
	if err != nil {
		return "", &SendError{Reason: "rejected", Err: err}
	}
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.acct.TokenURI, strings.NewReader(form.Encode()))
	if err != nil {
		return "", &SendError{Reason: "rejected", Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.client.Do(req)
	if err != nil {
		return "", networkErr(fmt.Errorf("fetching an OAuth token: %w", err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		// A refused grant is the operator's problem (wrong or revoked key):
		// not retried per notification.
		if e := classify(resp.StatusCode, resp.Header, false, "OAuth token: "+strings.TrimSpace(string(body))); e != nil {
			return "", e
		}
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", &SendError{Reason: "rejected", Err: errors.New("the OAuth token answer holds no access_token")}
	}
	f.token = tr.AccessToken
	f.expires = now.Add(time.Duration(max(tr.ExpiresIn, 60)) * time.Second)
	return f.token, nil
}

type fcmMessage struct {
	Message struct {
		Token   string            `json:"token"`
		Data    map[string]string `json:"data"`
		Android struct {
			CollapseKey  string `json:"collapse_key"`
			Priority     string `json:"priority"`
			TTL          string `json:"ttl"`
			Notification struct {
				Title             string `json:"title"`
				Body              string `json:"body"`
				Tag               string `json:"tag"`
				NotificationCount int64  `json:"notification_count"`
			} `json:"notification"`
		} `json:"android"`
	} `json:"message"`
}

// Send pushes n to the registration token.
func (f *FCM) Send(ctx context.Context, tok string, n Notification) error {
	var m fcmMessage
	m.Message.Token = tok
	m.Message.Data = map[string]string{"type": "new_message", "unread": strconv.FormatInt(n.Unread, 10)}
	a := &m.Message.Android
	a.CollapseKey, a.Priority, a.TTL = Collapse, "HIGH", "86400s"
	a.Notification.Title, a.Notification.Body, a.Notification.Tag = Title, Body, Collapse
	a.Notification.NotificationCount = n.Unread
	body, err := json.Marshal(m)
	if err != nil {
		return &SendError{Reason: "rejected", Err: err}
	}
	for refresh := false; ; refresh = true {
		at, err := f.accessToken(ctx, refresh)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.endpoint+"/v1/projects/"+url.PathEscape(f.acct.ProjectID)+"/messages:send", bytes.NewReader(body))
		if err != nil {
			return &SendError{Reason: "rejected", Err: err}
		}
		req.Header.Set("Authorization", "Bearer "+at)
		req.Header.Set("Content-Type", "application/json")
		resp, err := f.client.Do(req)
		if err != nil {
			return networkErr(err)
		}
		detail, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized && !refresh {
			continue // the token expired early or was revoked: one fresh one
		}
		code := fcmErrorCode(detail)
		return classify(resp.StatusCode, resp.Header, code == "UNREGISTERED", strings.TrimSpace(code+" "+fcmErrorMessage(detail)))
	}
}

// fcmError is the error body of the v1 API.
type fcmError struct {
	Error struct {
		Message string `json:"message"`
		Details []struct {
			Type      string `json:"@type"`
			ErrorCode string `json:"errorCode"`
		} `json:"details"`
	} `json:"error"`
}

func fcmErrorCode(body []byte) string {
	var e fcmError
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	for _, d := range e.Error.Details {
		if d.ErrorCode != "" {
			return d.ErrorCode
		}
	}
	return ""
}

func fcmErrorMessage(body []byte) string {
	var e fcmError
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Message
}
