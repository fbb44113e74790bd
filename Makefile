# kedascalers: one workspace, many modules. Every target loops over the
# modules of go.work (go test ./... does not cross modules).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
MODULES := $(shell go list -m -f '{{.Dir}}' | sed "s|^$(CURDIR)/||")
SERVICES := $(notdir $(wildcard services/*))
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/kedascalers/kedascalers/libs/scalerkit.Version=$(VERSION)
GOTEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: all generate lint test unit build demo bench tidy deps help

all: lint test build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

generate: ## regenerate the gRPC stubs from proto/externalscaler.proto
	cd proto && go tool buf generate

lint: ## gofmt, go vet, buf lint, stub drift, each module alone
	@unformatted=$$(gofmt -l $(MODULES)); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted" >&2; exit 1; fi
	for m in $(MODULES); do (cd $$m && go vet ./...); done
	cd proto && go tool buf lint
	cd proto && go tool buf generate
	@if ! git diff --quiet -- proto/externalscaler || [ -n "$$(git ls-files --others --exclude-standard proto/externalscaler)" ]; then \
		echo "proto/externalscaler is out of date with externalscaler.proto: run 'make generate' and commit" >&2; exit 1; fi
	tools/devtools/modcheck.sh $(MODULES)

deps: ## install redis-server and PostgreSQL if missing (apt-get as root)
	tools/devtools/deps.sh

unit: deps ## go test -race in every module
	for m in $(MODULES); do (cd $$m && go test $(GOTEST_FLAGS) ./...); done

test: lint unit ## lint, then every module's tests against throwaway backends

build: ## static binaries into bin/
	mkdir -p bin
	for s in $(SERVICES); do (cd services/$$s && CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o ../../bin/$$s .); done
	cd tools/scalerctl && CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o ../../bin/scalerctl .

demo: deps build ## throwaway backends, the scalers, and scalerctl asking them as KEDA does
	go run ./tools/demo --bin bin

bench: deps ## benchmarks of every module
	for m in $(MODULES); do (cd $$m && go test -run '^$$' -bench . -benchmem ./...); done

tidy: ## go mod tidy every module on its own
	tools/devtools/modcheck.sh --fix $(MODULES)
