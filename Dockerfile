# syntax=docker/dockerfile:1
#
# One image with all three programs. The default command runs the management
# node; run a worker or the CLI by naming it:
#
#   docker build -t sched .
#   docker run -d --name manager -p 7070:7070 -v sched-data:/var/lib/sched sched
#   docker exec manager schedctl workers ls        # /etc/sched/schedctl.yaml dials 127.0.0.1:7070
#   docker run -d --init -v ./worker.yaml:/etc/sched/worker-node.yaml:ro sched \
#     worker-node -f /etc/sched/worker-node.yaml    # a worker config whose `manager:` is the manager's address
#
# Use --init (or another init) for worker-node: it spawns processes, and an
# init reaps any orphans they leave behind.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: compile the three bundles ---------------------------------------
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN make build \
 && for p in management-node worker-node schedctl; do test -x "$p/bin/$p"; done
# The examples listen on loopback; in a container the manager must listen on
# all interfaces or the published port reaches nothing. Fail if that line moved.
RUN mkdir -p /out/etc/sched \
 && cp management-node/management-node.yaml worker-node/worker-node.yaml schedctl/schedctl.yaml /out/etc/sched/ \
 && sed -i 's/^listen: 127\.0\.0\.1:7070/listen: 0.0.0.0:7070/' /out/etc/sched/management-node.yaml \
 && grep -q '^listen: 0\.0\.0\.0:7070' /out/etc/sched/management-node.yaml

# ---- prod-deps: runtime node_modules ----------------------------------------
# The bundles keep lmdb (a native addon) and its helpers external; they load
# the prebuilt binary for this platform from node_modules at run time.
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /opt/sched
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime ----------------------------------------------------------------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /opt/sched
# package.json marks the extensionless bundles as ES modules.
COPY --from=prod-deps /opt/sched/package.json ./package.json
COPY --from=prod-deps /opt/sched/node_modules ./node_modules
COPY --from=build /src/management-node/bin/management-node ./management-node/bin/management-node
COPY --from=build /src/worker-node/bin/worker-node ./worker-node/bin/worker-node
# schedctl is code-split (build.mjs): bin/schedctl and the chunks it loads from bin/chunks/.
COPY --from=build /src/schedctl/bin/ ./schedctl/bin/
COPY --from=build /out/etc/sched/ /etc/sched/
# Links the programs onto PATH, adds the user, and checks that each bundle
# starts (schedctl --help loads its chunks; --version alone does not) and that
# lmdb's native addon loads from node_modules.
RUN for p in management-node worker-node schedctl; do ln -s "/opt/sched/$p/bin/$p" "/usr/local/bin/$p"; done \
 && groupadd --system sched \
 && useradd --system --gid sched --home-dir /var/lib/sched --shell /usr/sbin/nologin sched \
 && mkdir -p /var/lib/sched \
 && chown sched:sched /var/lib/sched \
 && management-node --version && worker-node --version && schedctl --version && schedctl --help >/dev/null \
 && node --input-type=module -e "const { open } = await import('lmdb'); const db = open({ path: '/tmp/lmdb-check' }); await db.put('k', 1); await db.close();" \
 && rm -rf /tmp/lmdb-check

USER sched
# The examples keep data under ./data (manager: ./data/manager, worker: ./data/worker).
WORKDIR /var/lib/sched
VOLUME ["/var/lib/sched"]
EXPOSE 7070
CMD ["management-node", "-f", "/etc/sched/management-node.yaml"]
