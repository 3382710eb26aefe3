package privateline_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/privateline/privateline"

// allowedImports is the dependency direction of ARCHITECTURE.md: for each
// package of ours, the packages of ours it may import (non-test code). A new
// package must be added here.
var allowedImports = map[string][]string{
	"":                   {},
	"spec":               {},
	"internal/logging":   {},
	"internal/fakeclock": {},
	// Shared by the server and the client SDK: public-key code only, no
	// server packages, no clients/go (see sharedPackages).
	"cjson":     {},
	"merkle":    {},
	"keybundle": {"", "cjson"},
	"keylog":    {"", "cjson", "merkle", "keybundle"},
	"serverkey": {},
	// The public routing header of envelopes, for the server: no
	// clients/go, no signature checks (hashing only).
	"envelope":   {"", "cjson"},
	"storage":    {"", "merkle", "cjson"}, // cjson: group states are canonical JSON (fedgroups.go)
	"keydir":     {"", "storage", "merkle", "keybundle", "keylog"},
	"federation": {"", "storage", "keydir", "serverkey", "cjson", "merkle", "keybundle", "keylog", "envelope", "federation/wire", "federation/transport"},
	// The federation byte format and its one verification function.
	"federation/wire": {"", "cjson", "serverkey"},
	"push":            {"", "storage"},
	// Fakes of the push services, for tests (imports none of ours).
	"push/pushtest": {},
	"clientapi":     {"", "storage", "keydir", "federation", "push", "spec", "cjson", "keybundle", "keylog", "envelope"},
	"homeserver":    {"", "storage", "keydir", "federation", "push", "clientapi", "spec", "internal/logging", "serverkey", "keylog"}, // keylog: rotate-key
	// QUIC links between homeservers (identity, trust, frames).
	"federation/transport": {"", "serverkey", "cjson", "keylog"}, // keylog: key-change statements (shared with clients)
	// The client SDK; private-key code lives in clients/go/e2ee only.
	"clients/go":      {"", "cjson", "merkle", "keybundle", "keylog"},
	"cmd/homeserver":  {"homeserver"},
	"cmd/privateline": {"", "clients/go", "cjson", "keybundle", "keylog"},
	"cmd/plvectors":   {"", "clients/go", "cjson", "merkle", "keybundle", "keylog"},
	// The load generator: clients through the SDK, and (-federation) two
	// homeservers' stores and federation services in one process.
	"cmd/plbench": {"", "clients/go", "storage", "federation", "serverkey"},
}

// sharedPackages are imported by both the homeserver and the client SDK;
// they may import only the vocabulary and each other.
var sharedPackages = []string{"cjson", "merkle", "keybundle", "keylog"}

// forbiddenExternal are third-party imports a package must not use
// directly: clientapi talks to storage through its own interfaces.
var forbiddenExternal = map[string][]string{
	"clientapi": {"github.com/cockroachdb/pebble"},
	"keydir":    {"github.com/cockroachdb/pebble"},
	"push":      {"github.com/cockroachdb/pebble"},
}

// externalOwners are third-party imports only the listed packages of ours
// may use (non-test code): gossip stays inside federation, which exposes
// what it learns through its own types.
var externalOwners = map[string][]string{
	"github.com/hashicorp/memberlist": {"federation"},
}

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		rule := ruleFor(rel)
		allowed, ok := allowedImports[rule]
		if !ok {
			t.Errorf("package %q has no import rule; add it to allowedImports in deps_test.go", rel)
			continue
		}
		for _, imp := range p.Imports {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				dep := ruleFor(strings.TrimPrefix(strings.TrimPrefix(imp, module), "/"))
				if dep == rule {
					continue // a package's own subpackages
				}
				if !slices.Contains(allowed, dep) {
					t.Errorf("%s imports %s, which the dependency direction forbids", display(rel), display(dep))
				}
				continue
			}
			for ext, owners := range externalOwners {
				if (imp == ext || strings.HasPrefix(imp, ext+"/")) && !slices.Contains(owners, rel) {
					t.Errorf("%s imports %s; only %s may", display(rel), imp, strings.Join(owners, ", "))
				}
			}
			for _, f := range forbiddenExternal[rule] {
				if strings.HasPrefix(imp, f) {
					t.Errorf("%s imports %s directly; go through storage", display(rel), imp)
				}
			}
		}
	}
	if seen < 5 {
		t.Fatalf("go list reported only %d packages", seen)
	}
}

// ruleFor maps a package to the rule of its component: the longest rule
// that is the package or a parent of it (cmd/homeserver, clients/go,
// federation/wire and federation/transport are components of their own).
func ruleFor(rel string) string {
	best := ""
	for r := range allowedImports {
		if r != "" && len(r) > len(best) && (rel == r || strings.HasPrefix(rel, r+"/")) {
			best = r
		}
	}
	if best != "" {
		return best
	}
	if rel == "" {
		return ""
	}
	return rel
}

func display(rel string) string {
	if rel == "" {
		return "privateline (root)"
	}
	return rel
}

func TestForbiddenRuleBites(t *testing.T) {
	// The table itself must keep clientapi away from Pebble and homeserver
	// away from everything but cmd/.
	for pkg, allowed := range allowedImports {
		if slices.Contains(allowed, "homeserver") && !strings.HasPrefix(pkg, "cmd/") {
			t.Errorf("%s may import homeserver; only cmd/ may", pkg)
		}
		// The server never depends on the client SDK.
		if slices.Contains(allowed, "clients/go") && !slices.Contains([]string{"cmd/privateline", "cmd/plvectors", "cmd/plbench"}, pkg) {
			t.Errorf("%s may import clients/go; only the command-line tools may", pkg)
		}
	}
	for _, pkg := range sharedPackages {
		for _, dep := range allowedImports[pkg] {
			if dep != "" && !slices.Contains(sharedPackages, dep) {
				t.Errorf("shared package %s may import %s, which is not shared", pkg, dep)
			}
		}
	}
}
