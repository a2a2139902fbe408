# sched: management-node, worker-node and schedctl.
SHELL := /bin/bash
PARTS := management-node worker-node schedctl
BINS := $(foreach p,$(PARTS),$(p)/bin/$(p))
SOURCES := $(shell find common management-node/src worker-node/src schedctl/src proto/gen -name '*.ts' 2>/dev/null)
MOCHA := node_modules/.bin/mocha
UNIT_SPECS := 'test/unit/**/*.test.ts' 'test/conformance/**/*.test.ts'
E2E_SPECS := 'test/e2e/**/*.test.ts'
# e2e files run two at a time: most of their time is spent waiting on real processes,
# sockets and timers, and each file sets up its own cluster on free ports.
E2E_PARALLEL := --parallel --jobs 2

.PHONY: all deps build proto lint test test-unit test-e2e demo testbed docker-build clean etcd netns-tools

all: build

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.package-lock.json

build: deps $(BINS)

$(BINS) &: $(SOURCES) build.mjs package.json
	node build.mjs

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

# netns-tools: the NAT e2e test builds network namespaces with ip (iproute2)
# and iptables; as root, install Debian's packages when they are missing.
# Elsewhere that test skips itself (it needs root), so this only tells.
netns-tools:
	@for t in ip:iproute2 iptables:iptables; do \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v "$${t%%:*}" >/dev/null 2>&1 && continue; \
	  pkg="$${t#*:}"; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "$${t%%:*} not found: installing Debian's $$pkg"; \
	    (apt-get install -y $$pkg >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q $$pkg >/dev/null)) \
	      || { echo "apt-get install $$pkg failed"; exit 1; }; \
	  else \
	    echo "$${t%%:*} not found: the NAT e2e test will be skipped (as root: apt-get install $$pkg)"; \
	  fi; \
	done

test: lint etcd netns-tools build
	$(MOCHA) $(UNIT_SPECS)
	$(MOCHA) $(E2E_PARALLEL) $(E2E_SPECS)

test-unit: deps etcd
	$(MOCHA) $(UNIT_SPECS)

test-e2e: deps etcd netns-tools build
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
	rm -rf $(foreach p,$(PARTS),$(p)/bin) data
