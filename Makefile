# PrivateLine — `make run` starts a development homeserver on
# http://localhost:8080; `make test` runs every check CI runs.

GO    ?= go
SHELL := /bin/bash

.PHONY: run build test vet gotest webtest fuzz-short clean

run:
	$(GO) run ./cmd/homeserver

build:
	mkdir -p bin
	$(GO) build -o bin/homeserver ./cmd/homeserver

test: vet gotest webtest fuzz-short

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

# A short run of every fuzz target: its seeds and FUZZTIME new inputs.
FUZZTIME ?= 3000x
fuzz-short:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

clean:
	rm -rf bin
