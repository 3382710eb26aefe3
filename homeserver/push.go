package homeserver

import (
	"crypto/ecdsa"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sideshow/apns2/certificate"
	"github.com/sideshow/apns2/token"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/push"
)

// PushHooks let tests point the push senders at local fakes: each is
// called with the sender's configuration built from Config before the
// sender is made.
type PushHooks struct {
	APNs    func(*push.APNsConfig)
	FCM     func(*push.FCMConfig)
	WebPush func(*push.WebPushConfig)
}

// pushSenders builds a sender for every platform whose credentials are
// set. Errors name the variable and what to set.
func pushSenders(cfg Config, hooks PushHooks) (senders map[string]push.Sender, web *push.WebPush, err error) {
	const op = "homeserver.push"
	bad := func(variable, msg string) error {
		return privateline.E(op, privateline.Invalid, variable+" "+msg)
	}
	senders = map[string]push.Sender{}

	if cfg.FCMServerKey != "" && cfg.FCMCredentialsFile == "" {
		return nil, nil, bad("FCM_SERVER_KEY", "is the key of FCM's legacy HTTP API, which Google has retired: set FCM_CREDENTIALS_FILE to a service-account key file instead "+
			"(Firebase console → Project settings → Service accounts → Generate new private key) and remove FCM_SERVER_KEY")
	}
	if cfg.FCMCredentialsFile != "" {
		creds, err := os.ReadFile(cfg.FCMCredentialsFile)
		if err != nil {
			return nil, nil, bad("FCM_CREDENTIALS_FILE", fmt.Sprintf("cannot be read: %v", err))
		}
		fc := push.FCMConfig{Credentials: creds}
		if hooks.FCM != nil {
			hooks.FCM(&fc)
		}
		s, err := push.NewFCM(fc)
		if err != nil {
			return nil, nil, bad("FCM_CREDENTIALS_FILE", strings.TrimPrefix(err.Error(), "push: "))
		}
		senders[push.PlatformAndroid] = s
	}

	if cfg.APNSCert != "" || cfg.APNSKey != "" {
		ac := push.APNsConfig{KeyID: cfg.APNSKeyID, TeamID: cfg.APNSTeamID, Topic: cfg.APNSTopic, Sandbox: cfg.APNSUseSandbox}
		switch {
		case cfg.APNSCert != "" && cfg.APNSKey != "":
			return nil, nil, bad("APNS_KEY", "and APNS_CERT are both set: APNs takes a provider certificate (APNS_CERT) or a .p8 signing key (APNS_KEY with APNS_KEY_ID and APNS_TEAM_ID), not both")
		case cfg.APNSCert != "":
			pemBytes, err := pemOrFile(cfg.APNSCert)
			if err != nil {
				return nil, nil, bad("APNS_CERT", err.Error())
			}
			c, err := certificate.FromPemBytes(pemBytes, cfg.APNSCertPassword)
			if err != nil {
				return nil, nil, bad("APNS_CERT", fmt.Sprintf("must hold the provider certificate and its private key in PEM "+
					"(export them from Keychain as .p12, then `openssl pkcs12 -in cert.p12 -out apns.pem -nodes`): %v", err))
			}
			ac.Cert = &c
		default:
			pemBytes, err := pemOrFile(cfg.APNSKey)
			if err != nil {
				return nil, nil, bad("APNS_KEY", err.Error())
			}
			k, err := token.AuthKeyFromBytes(pemBytes)
			if err != nil {
				return nil, nil, bad("APNS_KEY", fmt.Sprintf("must be the .p8 signing key from Apple's developer site: %v", err))
			}
			ac.Key = k
			if cfg.APNSKeyID == "" || cfg.APNSTeamID == "" {
				return nil, nil, bad("APNS_KEY", "needs APNS_KEY_ID (the key's id) and APNS_TEAM_ID (your team id)")
			}
		}
		if cfg.APNSTopic == "" {
			return nil, nil, bad("APNS_TOPIC", "is required with APNs credentials: the app's bundle id, such as org.example.privateline")
		}
		if hooks.APNs != nil {
			hooks.APNs(&ac)
		}
		s, err := push.NewAPNs(ac)
		if err != nil {
			return nil, nil, bad("APNS_CERT", strings.TrimPrefix(err.Error(), "push: "))
		}
		senders[push.PlatformIOS] = s
	}

	if cfg.VAPIDPrivateKey != "" || cfg.VAPIDSubject != "" {
		if cfg.VAPIDPrivateKey == "" {
			return nil, nil, bad("VAPID_PRIVATE_KEY", "is required with VAPID_SUBJECT: make a key pair with `homeserver gen-vapid`")
		}
		if cfg.VAPIDSubject == "" {
			return nil, nil, bad("VAPID_SUBJECT", "is required with VAPID_PRIVATE_KEY: a mailto: address or https: URL where push services can reach you")
		}
		var k *ecdsa.PrivateKey
		if k, err = push.ParseVAPIDKey(cfg.VAPIDPrivateKey); err != nil {
			return nil, nil, bad("VAPID_PRIVATE_KEY", fmt.Sprintf("must be a P-256 key in PEM (or the path of a PEM file); make one with `homeserver gen-vapid`: %v", err))
		}
		wc := push.WebPushConfig{Key: k, Subject: cfg.VAPIDSubject, Hosts: cfg.WebPushHosts}
		if hooks.WebPush != nil {
			hooks.WebPush(&wc)
		}
		if web, err = push.NewWebPush(wc); err != nil {
			return nil, nil, bad("VAPID_SUBJECT", strings.TrimPrefix(err.Error(), "push: "))
		}
		senders[push.PlatformWeb] = web
	}
	return senders, web, nil
}

// pemOrFile returns v itself if it holds PEM, else the file it names.
func pemOrFile(v string) ([]byte, error) {
	if strings.Contains(v, "-----BEGIN") {
		return []byte(v), nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return nil, fmt.Errorf("is neither PEM nor a readable file: %v", err)
	}
	return b, nil
}

// genVAPID prints a new VAPID key pair for VAPID_PRIVATE_KEY.
func genVAPID(stdout, stderr io.Writer) int {
	priv, pub, err := push.GenerateVAPID()
	if err != nil {
		fmt.Fprintln(stderr, "homeserver gen-vapid:", err)
		return 1
	}
	fmt.Fprintf(stdout, "# A new VAPID key pair for Web Push. Keep the private key secret: put it\n"+
		"# in a file (e.g. vapid.pem, mode 0600) and set VAPID_PRIVATE_KEY to its path,\n"+
		"# and set VAPID_SUBJECT to a mailto: or https: contact for push services.\n"+
		"# Browsers get the public key from GET /api/push/vapid-public-key.\n"+
		"%s# public key: %s\n", priv, pub)
	return 0
}
