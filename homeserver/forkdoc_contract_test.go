package homeserver_test

import (
	"encoding/base64"
	"testing"
)

// forkDocumentContract drives GET /api/keys/forks/document for
// TestContractResponses: b.test keeps evidence that a.test's directory
// forked, and passes on a's server document (and no other server's).
func forkDocumentContract(t *testing.T, c *contract) {
	a, b := forkedPair(t, "fdalice")
	aKey := identityOf(t, a)
	if m := c.send(t, b, specAccepts, 200, apiReq("GET", "/api/keys/forks", nil)).json(t); len(m["forks"].([]any)) != 1 {
		t.Fatalf("b's forks: %v", m)
	}
	m := c.send(t, b, specAccepts, 200, apiReq("GET", "/api/keys/forks/document?server=a.test", nil)).json(t)
	if m["server"] != "a.test" || m["key"] != base64.StdEncoding.EncodeToString(aKey.Public()) {
		t.Errorf("a's server document as b passes it on: %v", m)
	}
	// No evidence about b itself, nor about a server b never heard of.
	c.send(t, b, specAccepts, 404, apiReq("GET", "/api/keys/forks/document?server=b.test", nil))
	c.send(t, b, specAccepts, 404, apiReq("GET", "/api/keys/forks/document?server=elsewhere.test", nil))
}
