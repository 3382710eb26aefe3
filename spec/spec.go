// Package spec embeds the client API contract, spec/openapi.yaml, so the
// homeserver can serve it and tests can check routes and responses
// against it. The other documents in this directory (e2ee.md,
// federation.md, vectors/) are read by people and by tests directly.
package spec

import _ "embed"

// OpenAPI is the OpenAPI 3 description of the client API.
//
//go:embed openapi.yaml
var OpenAPI []byte
