# ldapscim — the front door. `make help` lists the targets.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
PKGS := ./...
# The version every build stamps in (`ldapscim version`, ldapscim_build_info); "dev" outside git.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The commit too: Go's own VCS stamp (the fallback) is missing under -buildvcs=false or in a
# git worktree.
COMMIT ?= $(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && { git diff --quiet HEAD 2>/dev/null || c=$$c-dirty; echo $$c; })
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# staticcheck at a pinned version, fetched through the Go module proxy on first use (go.mod
# stays free of it).
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help build package static image test bench bench-scale bench-ha reliability fuzz lint demo deps clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

build: ## build bin/ldapscim (VERSION=... overrides the git describe version)
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ldapscim ./cmd/ldapscim

package: ## build the Debian package dist/ldapscim_VERSION_amd64.deb (static binary, sandboxed systemd unit)
	VERSION='$(VERSION)' COMMIT='$(COMMIT)' GO='$(GO)' scripts/build-deb.sh dist

static: ## build bin/ldapscim-static as the package and image do (CGO_ENABLED=0, -trimpath) and check it is static
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o bin/ldapscim-static ./cmd/ldapscim
	file bin/ldapscim-static | grep -q 'statically linked' || { file bin/ldapscim-static; echo "not static"; exit 1; }
	! ldd bin/ldapscim-static >/dev/null 2>&1 || { ldd bin/ldapscim-static; echo "not static"; exit 1; }
	bin/ldapscim-static version

image: ## build the container image ldapscim:VERSION (needs a Docker daemon that can pull golang and distroless)
	docker build --build-arg VERSION='$(VERSION)' --build-arg COMMIT='$(COMMIT)' -t ldapscim:$(VERSION) .

deps: ## install the real servers tests and the demo use (slapd, Samba AD DC, headless Chromium, SCIMMY, etcd) and the package test's tools, without starting system services
	scripts/install-deps.sh ldap samba chromium scimmy etcd deb

test: deps ## run every test (race detector, real slapd)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

bench: deps ## measure speed and memory against real servers; prints tables (BENCH_USERS=100000, SCALE_SIZES=10000,100000, HA_TRIALS=10 HA_TTL=10s)
	scripts/install-deps.sh wrk
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./cache/ ./internal/ldapwire/ ./internal/jsonappend/ ./scim/filter/ ./scimapi/
	$(GO) test -run '^$$' -bench BenchmarkAD -benchtime 3x -timeout 20m ./ldapsync/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 40m ./push/
	LDAPSCIM_BENCH_USERS=$${BENCH_USERS:-100000} $(GO) test -run '^$$' -bench Sync100k -benchtime 1x -timeout 30m ./cmd/ldapscim/
	LDAPSCIM_BENCH_USERS=$${BENCH_USERS:-100000} $(GO) test -run '^$$' -bench Enrich100k -benchtime 3x -timeout 30m ./hrsync/
	LDAPSCIM_SCALE_SIZES=$${SCALE_SIZES:-10000,100000} $(GO) test -run '^$$' -bench Scale -benchtime 1x -timeout 60m ./cmd/ldapscim/
	$(MAKE) --no-print-directory bench-ha

bench-ha: deps ## only the HA failover figures: HA_TRIALS kill -9s of the leader of 3 serve replicas (default 10) at lease_ttl HA_TTL (default 10s)
	LDAPSCIM_BENCH_HA_TRIALS=$${HA_TRIALS:-10} LDAPSCIM_BENCH_HA_TTL=$${HA_TTL:-10s} $(GO) test -run '^$$' -bench HAFailover -benchtime 1x -timeout 30m ./cmd/ldapscim/

bench-scale: deps ## only the scale table: enterprise shape at SCALE_SIZES users (default 10000,100000; 1000000 works)
	LDAPSCIM_SCALE_SIZES=$${SCALE_SIZES:-10000,100000} $(GO) test -run '^$$' -bench Scale -benchtime 1x -timeout 60m ./cmd/ldapscim/

reliability: deps ## reliability suite, ~15 min, prints a table (REL_USERS=10000 REL_KILLS=21 REL_R7_USERS=100000 REL_FUZZSECONDS=30 REL_SLAPD_FAULTS=3 REL_R2_FAULT=kill: only R2's faults named so)
	LDAPSCIM_REL_USERS=$${REL_USERS:-10000} LDAPSCIM_REL_KILLS=$${REL_KILLS:-21} LDAPSCIM_REL_R7_USERS=$${REL_R7_USERS:-100000} \
	LDAPSCIM_REL_SLAPD_FAULTS=$${REL_SLAPD_FAULTS:-$${LDAPSCIM_REL_SLAPD_FAULTS:-3}} LDAPSCIM_REL_R2_FAULT=$${REL_R2_FAULT:-$${LDAPSCIM_REL_R2_FAULT:-}} \
	LDAPSCIM_REL_FUZZSECONDS=$${REL_FUZZSECONDS:-30} $(GO) test -tags reliability -count=1 -v -timeout 60m -run TestReliability ./reliability/ \
	  | grep -v -e '^=== RUN' -e '^=== PAUSE' -e '^=== CONT'; exit $${PIPESTATUS[0]}

fuzz: ## run the fuzz targets (FUZZTIME each, default 60s)
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $${FUZZTIME:-60s} ./scim/filter/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $${FUZZTIME:-60s} ./internal/ldapwire/
	$(GO) test -run '^$$' -fuzz FuzzValue -fuzztime $${FUZZTIME:-60s} ./internal/jsonappend/
	$(GO) test -run '^$$' -fuzz FuzzString -fuzztime $${FUZZTIME:-60s} ./internal/jsonappend/
	$(GO) test -run '^$$' -fuzz FuzzFloat -fuzztime $${FUZZTIME:-60s} ./internal/jsonappend/
	$(GO) test -run '^$$' -fuzz FuzzCheck -fuzztime $${FUZZTIME:-60s} ./hrcsv/

lint: ## gofmt check, go vet and staticcheck (also with -tags reliability)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags reliability ./reliability/
	$(STATICCHECK) $(PKGS)
	$(STATICCHECK) -tags reliability $(PKGS)

demo: deps build ## run ldapscim against a throwaway local slapd with sample data (Ctrl-C stops it)
	scripts/demo.sh

clean: ## remove build output and demo data
	rm -rf bin dist .cache/demo
