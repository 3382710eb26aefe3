# PrivateLine — `make run` builds the web client and starts a development
# homeserver on http://localhost:8080; `make test` runs every check CI runs.

GO    ?= go
SHELL := /bin/bash

# Binaries are built without cgo, as in the Docker image: Pebble then keeps
# its block cache in Go memory instead of allocating every block through
# cgo, which cost about a fifth of the CPU of federation
# (docs/benchmarks.md, "Federation, fourth pass"). The race detector needs
# cgo, so tests keep the default.
NOCGO := CGO_ENABLED=0

.PHONY: run build web federation test vet gotest webtest e2e fuzz-short clean

# The web client is built first and served at / (WEB_ROOT).
run: web
	WEB_ROOT=clients/web/dist $(NOCGO) $(GO) run ./cmd/homeserver

# Builds the web client into clients/web/dist (npm ci when needed).
web:
	@command -v npm >/dev/null || { echo "make web: npm is missing (need Node.js >= 20.19 and npm)"; exit 1; }
	cd clients/web && { [ -d node_modules ] && [ node_modules -nt package-lock.json ] || npm ci --no-audit --no-fund; } && npm run build

# Three federated homeservers on loopback (localhost:8081, :8082, :8083; data
# in data/federation/), for trying federation without Docker; Ctrl-C stops
# them. See docs/federation.md.
federation:
	GO=$(GO) scripts/federation.sh

build:
	mkdir -p bin
	$(NOCGO) $(GO) build -o bin/homeserver ./cmd/homeserver

test: vet gotest webtest e2e fuzz-short

vet:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || { echo "gofmt: the files above need formatting (run gofmt -w .)"; exit 1; }
	$(GO) vet ./...

# Every Go test with the race detector; a skipped test fails the run.
gotest:
	scripts/gotest.sh

# The web client's unit tests (every spec/vectors case through WebCrypto);
# installs its packages with npm ci when needed.
webtest:
	scripts/webtest.sh

# The browser end-to-end tests: builds the web client and the homeserver,
# then drives Debian's chromium (/usr/bin/chromium, or CHROMIUM) against a
# real homeserver. Fails, never skips, without chromium.
e2e:
	scripts/e2etest.sh

# A short run of every fuzz target: its seeds and FUZZTIME new inputs.
FUZZTIME ?= 3000x
fuzz-short:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

clean:
	rm -rf bin
