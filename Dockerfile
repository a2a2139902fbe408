# syntax=docker/dockerfile:1
#
# One image with all three programs, as the standalone executables of
# `make dist` (Node inside each, no node_modules) on Debian slim. The default
# command runs the management node; run a worker or the CLI by naming it:
#
#   docker build -t sched .
#   docker run -d --name manager -p 127.0.0.1:7070:7070 -v sched-data:/var/lib/sched sched
#   docker exec manager schedctl workers ls        # /etc/sched/schedctl.yaml dials 127.0.0.1:7070
#   docker run -d --init --no-healthcheck -v ./worker.yaml:/etc/sched/worker-node.yaml:ro sched \
#     worker-node -f /etc/sched/worker-node.yaml    # a worker config whose `manager:` is the manager's address
#
# Use --init (or another init) for worker-node: it spawns processes, and an
# init reaps any orphans they leave behind. The HEALTHCHECK below asks the
# manager in the same container; a worker container has none, hence --no-healthcheck.
#
# Which user tasks run as: the image runs as the user sched, and so does a
# worker started from it, so its tasks run as sched too (a worker switches
# users only as root). To run tasks as other users, start the worker with
# --user 0 and name them in its config: run_as (the default user of tasks)
# and allowed_users (those a task may pick with --user).
#
# Why not node:24-bookworm-slim at run time: the executables carry their own
# Node 24 (and lmdb's native addon), so the image needs neither node nor
# node_modules; it is smaller, and what runs is exactly what `make dist`
# built and checksummed.

ARG NODE_IMAGE=node:24-bookworm-slim
ARG RUN_IMAGE=debian:bookworm-slim

# ---- build: the standalone executables ---------------------------------------
# make dist builds them on the Node version the Makefile pins (NODE_VERSION),
# fetched from the npm registry, whatever this image's node is.
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN make dist \
 && cd dist && sha256sum -c SHA256SUMS
# The examples listen on loopback; in a container the manager must listen on
# all interfaces or the published port reaches nothing. Fail if that line moved.
RUN mkdir -p /out/etc/sched \
 && cp management-node/management-node.yaml worker-node/worker-node.yaml schedctl/schedctl.yaml /out/etc/sched/ \
 && sed -i 's/^listen: 127\.0\.0\.1:7070/listen: 0.0.0.0:7070/' /out/etc/sched/management-node.yaml \
 && grep -q '^listen: 0\.0\.0\.0:7070' /out/etc/sched/management-node.yaml

# ---- runtime ----------------------------------------------------------------
FROM ${RUN_IMAGE}
COPY --from=build /src/dist/management-node /src/dist/worker-node /src/dist/schedctl /usr/local/bin/
COPY --from=build /out/etc/sched/ /etc/sched/
# Adds the user and checks that each executable starts; schedctl --help loads all of it.
RUN groupadd --system sched \
 && useradd --system --gid sched --home-dir /var/lib/sched --shell /usr/sbin/nologin sched \
 && mkdir -p /var/lib/sched \
 && chown sched:sched /var/lib/sched \
 && management-node --version && worker-node --version && schedctl --version && schedctl --help >/dev/null

USER sched
# The examples keep data under ./data (manager: ./data/manager, worker: ./data/worker).
WORKDIR /var/lib/sched
VOLUME ["/var/lib/sched"]
# management-node writes lmdb's native addon here to load it (packaging/README.md):
# the volume, not /tmp, which may be mounted noexec.
ENV SCHED_NATIVE_DIR=/var/lib/sched/.native

# WARNING: port 7070 is the manager's gRPC API, and as configured here it is
# UNAUTHENTICATED and UNENCRYPTED: whoever reaches it can run any command on
# every worker. Publish it on loopback only (-p 127.0.0.1:7070:7070) or on a
# private network, until the manager's config sets tls (mutual TLS) and
# join_token (docs/operations.md).
LABEL org.opencontainers.image.title="sched" \
      org.opencontainers.image.description="sched: management-node, worker-node and schedctl" \
      sched.security.warning="port 7070 serves the gRPC API without authentication or TLS unless the config sets tls and join_token"
EXPOSE 7070

# The manager answers Status once it serves (schedctl dials 127.0.0.1:7070 per
# /etc/sched/schedctl.yaml; with tls, that file needs an admin certificate).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["schedctl", "status"]
CMD ["management-node", "-f", "/etc/sched/management-node.yaml"]
