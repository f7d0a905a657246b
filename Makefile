# ldapscim — the front door. `make help` lists the targets.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
PKGS := ./...
# staticcheck at a pinned version, fetched through the Go module proxy on first use (go.mod
# stays free of it).
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help build test bench bench-scale reliability fuzz lint demo deps clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

build: ## build bin/ldapscim
	$(GO) build -o bin/ldapscim ./cmd/ldapscim

deps: ## install the real servers tests and the demo use (slapd, Samba AD DC, headless Chromium, SCIMMY), without starting system services
	scripts/install-deps.sh ldap samba chromium scimmy

test: deps ## run every test (race detector, real slapd)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

bench: deps ## measure speed and memory against real servers; prints tables (BENCH_USERS=100000, SCALE_SIZES=10000,100000)
	scripts/install-deps.sh wrk
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./cache/ ./internal/ldapwire/ ./internal/jsonappend/ ./scim/filter/ ./scimapi/
	$(GO) test -run '^$$' -bench BenchmarkAD -benchtime 3x -timeout 20m ./ldapsync/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 20m ./push/
	LDAPSCIM_BENCH_USERS=$${BENCH_USERS:-100000} $(GO) test -run '^$$' -bench Sync100k -benchtime 1x -timeout 30m ./cmd/ldapscim/
	LDAPSCIM_SCALE_SIZES=$${SCALE_SIZES:-10000,100000} $(GO) test -run '^$$' -bench Scale -benchtime 1x -timeout 60m ./cmd/ldapscim/

bench-scale: deps ## only the scale table: enterprise shape at SCALE_SIZES users (default 10000,100000; 1000000 works)
	LDAPSCIM_SCALE_SIZES=$${SCALE_SIZES:-10000,100000} $(GO) test -run '^$$' -bench Scale -benchtime 1x -timeout 60m ./cmd/ldapscim/

reliability: deps ## reliability suite, ~15 min, prints a table (REL_USERS=10000 REL_KILLS=21 REL_R7_USERS=100000 REL_FUZZSECONDS=30)
	LDAPSCIM_REL_USERS=$${REL_USERS:-10000} LDAPSCIM_REL_KILLS=$${REL_KILLS:-21} LDAPSCIM_REL_R7_USERS=$${REL_R7_USERS:-100000} \
	LDAPSCIM_REL_FUZZSECONDS=$${REL_FUZZSECONDS:-30} $(GO) test -tags reliability -count=1 -v -timeout 60m -run TestReliability ./reliability/ \
	  | grep -v -e '^=== RUN' -e '^=== PAUSE' -e '^=== CONT'; exit $${PIPESTATUS[0]}

fuzz: ## run the fuzz targets (FUZZTIME each, default 60s)
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $${FUZZTIME:-60s} ./scim/filter/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $${FUZZTIME:-60s} ./internal/ldapwire/
	$(GO) test -run '^$$' -fuzz FuzzValue -fuzztime $${FUZZTIME:-60s} ./internal/jsonappend/
	$(GO) test -run '^$$' -fuzz FuzzString -fuzztime $${FUZZTIME:-60s} ./internal/jsonappend/
	$(GO) test -run '^$$' -fuzz FuzzFloat -fuzztime $${FUZZTIME:-60s} ./internal/jsonappend/

lint: ## gofmt check, go vet and staticcheck (also with -tags reliability)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags reliability ./reliability/
	$(STATICCHECK) $(PKGS)
	$(STATICCHECK) -tags reliability $(PKGS)

demo: deps build ## run ldapscim against a throwaway local slapd with sample data (Ctrl-C stops it)
	scripts/demo.sh

clean: ## remove build output and demo data
	rm -rf bin .cache/demo
