# syntax=docker/dockerfile:1.7
# One image recipe for all seven services; pick the service with a build argument:
#   docker build --build-arg SERVICE=gateway -t context-gateway/gateway .
# SERVICE is one of the names in proto/services.json.
# Everything up to and including `pnpm build` is independent of SERVICE, so BuildKit builds
# the workspace once and all seven images (docker compose build) share that layer.

ARG NODE_IMAGE=node:20-bookworm-slim
ARG PNPM_VERSION=12.4.2

FROM ${NODE_IMAGE} AS pnpm
ARG PNPM_VERSION
ENV PNPM_HOME=/pnpm \
    PATH=/pnpm:$PATH \
    CI=true
# Pinned: newer 12.x releases reject this lockfile under --frozen-lockfile.
RUN npm i -g "pnpm@${PNPM_VERSION}" && npm cache clean --force

FROM pnpm AS build
WORKDIR /repo
# Download every locked package first, from the lockfile alone, so source edits do not
# invalidate the (slow) download layer.
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
RUN --mount=type=cache,id=pnpm-store,target=/pnpm/store pnpm fetch --store-dir /pnpm/store
COPY . .
RUN --mount=type=cache,id=pnpm-store,target=/pnpm/store \
    pnpm install --frozen-lockfile --offline --store-dir /pnpm/store
RUN pnpm build

# A self-contained folder for one service: its dist/, its production dependencies, and the
# workspace libs it uses copied in (with their dist/). No sources of other services.
FROM build AS deploy
ARG SERVICE
RUN test -n "${SERVICE}" || (echo 'build with --build-arg SERVICE=<service name>' >&2; exit 1)
RUN --mount=type=cache,id=pnpm-store,target=/pnpm/store \
    pnpm --filter "@context-gateway/${SERVICE}" deploy --prod --offline --store-dir /pnpm/store /out \
 && test -f /out/dist/main.js

FROM ${NODE_IMAGE} AS runtime
ARG SERVICE
ENV NODE_ENV=production \
    SERVICE=${SERVICE} \
    HTTP_HOST=0.0.0.0 \
    MASTER_KEY_FILE=/var/lib/context-gateway/keys/master.key
WORKDIR /app
# Code stays root-owned and read-only to the service user; only the key folder is its own.
# A named volume mounted on that folder starts out with this ownership and mode.
COPY --from=deploy /out /app
COPY deploy/docker/healthcheck.mjs proto/services.json /usr/local/lib/context-gateway/
RUN install -d -o node -g node -m 0700 /var/lib/context-gateway/keys
USER node
# Liveness only: readiness (database and NATS reachable) is for the orchestrator to route on,
# and restarting a container because Postgres is briefly away would not help.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/usr/local/lib/context-gateway/healthcheck.mjs", "/healthz"]
STOPSIGNAL SIGTERM
CMD ["node", "--enable-source-maps", "dist/main.js"]
