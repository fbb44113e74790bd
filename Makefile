# kedascalers: one workspace, many modules. Every target loops over the
# modules of go.work (go test ./... does not cross modules).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
MODULES := $(shell go list -m -f '{{.Dir}}' | sed "s|^$(CURDIR)/||")
SERVICES := $(notdir $(wildcard services/*))
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/kedascalers/kedascalers/libs/scalerkit.Version=$(VERSION)
GOTEST_FLAGS ?= -race -count=1 -timeout 20m
IMAGE_REPO ?= ghcr.io/kedascalers
# Progress lines of long phases count from here (tools/devtools/progress.sh).
ifndef KS_START
KS_START := $(shell date +%s)
endif
export KS_START
PROGRESS := tools/devtools/progress.sh

.PHONY: all generate lint lint-go lint-proto lint-actions test unit deploy-check alerts-check e2e e2e-lifecycle e2e-scale build images demo abuse scale bench tidy deps help

all: lint test build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

generate: ## regenerate the gRPC stubs from proto/externalscaler.proto
	cd proto && go tool buf generate

lint: lint-go lint-proto lint-actions ## gofmt, go vet, buf lint, stub drift, each module alone, workflows

lint-go: ## gofmt, go vet, and each module built, vetted and tidy alone (MODULES=dir... for some)
	@$(PROGRESS) gofmt . bash -c 'u=$$(gofmt -l $(MODULES)); if [ -n "$$u" ]; then echo "gofmt needed: $$u" >&2; exit 1; fi'
	@for m in $(MODULES); do $(PROGRESS) "go vet" $$m go vet ./...; done
	@for m in $(MODULES); do $(PROGRESS) "alone (build, vet, tidy; GOWORK=off)" $$m $(CURDIR)/tools/devtools/modcheck.sh $$m; done

lint-proto: ## buf lint, and the committed stubs match externalscaler.proto
	@$(PROGRESS) "buf lint" proto go tool buf lint
	@$(PROGRESS) "buf generate" proto go tool buf generate
	@if ! git diff --quiet -- proto/externalscaler || [ -n "$$(git ls-files --others --exclude-standard proto/externalscaler)" ]; then \
		echo "proto/externalscaler is out of date with externalscaler.proto: run 'make generate' and commit" >&2; exit 1; fi

lint-actions: ## actionlint on .github/workflows (and shellcheck on their scripts, where installed)
	@$(PROGRESS) actionlint . go tool actionlint

deps: ## install redis-server, PostgreSQL and promtool if missing (apt-get as root)
	tools/devtools/deps.sh

unit: deps ## go test -race in every module but deploy and e2e (deploy-check and e2e run those)
	@for m in $(filter-out deploy e2e,$(MODULES)); do $(PROGRESS) "go test" $$m go test $(GOTEST_FLAGS) ./...; done

test: lint unit deploy-check alerts-check ## lint, then every module's tests against throwaway backends

deploy-check: ## render and check every kustomization and example, the release workflow and the glue of each service; replay the image builds (deploy/)
	@$(PROGRESS) "deploy-check (kustomize, examples, image builds)" deploy go test -count=1 -timeout 20m -skip '^TestAlertRules$$' ./...

alerts-check: deps ## promtool check and test the alerting rules of every service (deploy/kustomize/components/alerts/alerts_test.yaml)
	@$(PROGRESS) "promtool test rules" deploy go test -count=1 -run '^TestAlertRules$$' .

# E2E_FLAGS go to the scenarios' test binary: -test.run TestHPA picks one.
# The first run builds etcd, kube-apiserver, kube-controller-manager and
# KEDA from their Go modules into ~/.cache/kedascalers-e2e (about 11
# minutes on 2 cores); later runs reuse them.
e2e: deps build ## our scalers under the real KEDA operator, adapter and HPA, on a real API server, as local processes (e2e/)
	e2e/run.sh -test.skip '^TestLifecycle|^TestAtScale$$' $(E2E_FLAGS)

# The lifecycle scenarios: replicas behind one name, aged, rolled, crashed.
# First KEDA's own push client (pkg/scalers, from e2e/build's module) through
# MAX_CONNECTION_AGE cycles against a scaler from bin/, without a cluster;
# built with e2e/build.sh's flags, so that it shares the operator's build
# cache.
e2e-lifecycle: deps build ## the scalers as replicas under KEDA: connection aging, rolling restart, crashes (e2e/lifecycle_test.go); KEDA's push client through connection aging (e2e/build/kedaclient)
	@$(PROGRESS) "KEDA's push client through MAX_CONNECTION_AGE" e2e/build env GOWORK=off CGO_ENABLED=0 go test -trimpath -count=1 -timeout 10m -v ./kedaclient
	E2E_NAME=e2e-lifecycle e2e/run.sh -test.run '^TestLifecycle' $(E2E_FLAGS)

# 500 ScaledObjects in 50 namespaces, alone in a cluster of their own.
e2e-scale: deps build ## 500 ScaledObjects in 50 namespaces under KEDA: all Ready, no KEDAScalerFailed, push activation p99 < 1 s (e2e/scale_test.go)
	E2E_NAME=e2e-scale e2e/run.sh -test.run '^TestAtScale$$' $(E2E_FLAGS)

build: ## static binaries into bin/
	mkdir -p bin
	for s in $(SERVICES); do (cd services/$$s && CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o ../../bin/$$s .); done
	cd tools/scalerctl && CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o ../../bin/scalerctl .

# One Dockerfile for every service (--build-arg SERVICE); the tag of each
# image is its service's own release version (services/<name>/v1.2.3 ->
# v1.2.3), as the release workflow tags them.
images: ## container images of every service, where a Docker engine runs
	@if ! docker info >/dev/null 2>&1; then echo "no Docker engine here (docker info failed): skipping image builds"; exit 0; fi; \
	for m in services/*/go.mod; do \
		s=$$(basename "$$(dirname "$$m")"); \
		v=$$(git describe --tags --match "services/$$s/v*" --dirty 2>/dev/null || git describe --always --dirty 2>/dev/null || echo dev); \
		v=$${v#services/$$s/}; \
		echo "docker build $(IMAGE_REPO)/$$s:$$v"; \
		docker build --build-arg SERVICE="$$s" --build-arg VERSION="$$v" -t "$(IMAGE_REPO)/$$s:$$v" .; \
	done

demo: deps build ## throwaway backends, the scalers, and scalerctl asking them as KEDA does
	go run ./tools/demo --bin bin

# ABUSE_FLAGS: -run REGEXP picks cases, -scale 0.05 is a quick run, -list lists them.
abuse: deps build ## throwaway backends and the scalers, attacked as a hostile tenant would; prints what each attack cost
	go build -o bin/abuse ./tools/abuse
	nice -n 10 bin/abuse --bin bin $(ABUSE_FLAGS)

# SCALE_FLAGS go to `abuse scale`: -duration 90s, -services <one of services/>, -sos/-push/-targets/-pg-sos, -max-streams N.
scale: deps build ## an honest cluster at defaults (10,000 ScaledObjects in 1,000 namespaces, as KEDA calls them): refusals, memory, backend load
	go build -o bin/abuse ./tools/abuse
	nice -n 10 bin/abuse scale --bin bin $(SCALE_FLAGS)

# POLLBENCH_FLAGS go to tools/pollbench: -services <one of services/>, -runs 1.
bench: deps build ## benchmarks of every module, then a KEDA poll of each scaler against a bare gRPC server (tools/pollbench)
	for m in $(MODULES); do (cd $$m && go test -run '^$$' -bench . -benchmem ./...); done
	go build -o bin/pollbench ./tools/pollbench
	bin/pollbench --bin bin $(POLLBENCH_FLAGS)

tidy: ## go mod tidy every module on its own
	tools/devtools/modcheck.sh --fix $(MODULES)
