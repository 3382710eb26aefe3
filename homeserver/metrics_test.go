package homeserver_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestMetricsAndHealth(t *testing.T) {
	ts := startServer(t, testConfig(t))
	a := ts.register("metrics")
	ts.do("GET", "/api/account", a.Access, nil)
	ts.do("GET", "/api/account", "", nil)

	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	m := "http://" + ts.srv.MetricsAddr()
	code, body := get(m + "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`privateline_http_requests_total{method="GET",route="/api/account",status="200"} 1`,
		`privateline_http_requests_total{method="GET",route="/api/account",status="401"} 1`,
		`privateline_http_requests_total{method="POST",route="/api/register",status="201"} 1`,
		`privateline_http_request_duration_seconds_count{method="POST",route="/api/login"} 1`,
		"privateline_storage_disk_bytes",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, base := range []string{m, ts.URL} {
		if code, body := get(base + "/healthz"); code != 200 || !strings.Contains(body, "ok") {
			t.Errorf("%s/healthz: %d %s", base, code, body)
		}
		if code, body := get(base + "/readyz"); code != 200 || !strings.Contains(body, "ready") {
			t.Errorf("%s/readyz: %d %s", base, code, body)
		}
	}
	// Unmatched paths share one label so scanners cannot blow up the series.
	ts.do("GET", "/api/no-such-route-1", "", nil)
	ts.do("GET", "/api/no-such-route-2", "", nil)
	if _, body := get(m + "/metrics"); !strings.Contains(body, `route="unmatched",status="404"} 2`) {
		t.Errorf("unmatched routes not folded into one label")
	}
}
