package client

import (
	"context"
	"net/http"

	"github.com/privateline/privateline"
)

// Health checks that the server process answers (GET /healthz).
func (c *Client) Health(ctx context.Context) error {
	const op = "client.Health"
	r, err := c.do(ctx, op, &request{method: http.MethodGet, path: "/healthz"})
	if err != nil {
		return err
	}
	return expect(op, r, http.StatusOK)
}

// Ready checks that the server takes traffic (GET /readyz). A server that
// is not ready is Unavailable, with its reason ("shutting down", "storage
// unavailable") as the message.
func (c *Client) Ready(ctx context.Context) error {
	const op = "client.Ready"
	r, err := c.do(ctx, op, &request{method: http.MethodGet, path: "/readyz"})
	if err != nil {
		return err
	}
	if r.status == http.StatusServiceUnavailable {
		var nr struct {
			Status string `json:"status"`
		}
		if decode(op, r, &nr) == nil && nr.Status != "" {
			return privateline.E(op, privateline.Unavailable, "the server is not ready: "+nr.Status, apiError(op, r))
		}
	}
	return expect(op, r, http.StatusOK)
}

// OpenAPI returns the server's API description (GET /api/openapi.yaml).
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	const op = "client.OpenAPI"
	r, err := c.do(ctx, op, &request{method: http.MethodGet, path: "/api/openapi.yaml"})
	if err != nil {
		return nil, err
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return nil, err
	}
	return r.body, nil
}
