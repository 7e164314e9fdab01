# syntax=docker/dockerfile:1.7
# One image recipe for all seven services; pick the service with a build argument:
#   docker build --build-arg SERVICE=gateway -t context-gateway/gateway .
# SERVICE is one of the names in proto/services.json, or `witness` (services/witness, the
# audit log's witness, deployed apart: deploy/witness).
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
# The PKCS#11 binding (graphene-pk11 over the native pkcs11js addon, KEY_PROVIDER=pkcs11) is
# compiled at install: a compiler, make and python3 for node-gyp, and the image's own Node
# headers (npm_config_nodedir) instead of a headers download.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local
# Download every locked package first, from the lockfile alone, so source edits do not
# invalidate the (slow) download layer.
# patches/: local fixes to locked packages (pnpm-workspace.yaml patchedDependencies).
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
COPY patches ./patches
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
 && test -f /out/dist/main.js && test -f /out/dist/main.bundle.js
# The bundle loads from the deployed folder: with an empty environment it must stop at its env
# check, not at a module it cannot find there (scripts/bundle/check-bundles.mjs).
RUN node scripts/bundle/check-bundles.mjs /out

# The database setup job (docker compose `db-setup`, deploy/ `db-setup` Job): migrations as the
# owner role, then one login role per service (scripts/db-migrate.mjs, scripts/db-roles.mjs).
#   docker build --target db-setup -t context-gateway/db-setup .
# Only libs/database (with its production dependencies), the two scripts and every service's
# migrations; no service code. Placed before `runtime` so a plain build still ends there.
FROM build AS db-setup-files
RUN --mount=type=cache,id=pnpm-store,target=/pnpm/store \
    pnpm --filter @context-gateway/database deploy --prod --offline --store-dir /pnpm/store /out/libs/database \
 && test -f /out/libs/database/dist/index.js \
 && mkdir -p /out/scripts/db \
 && cp scripts/db-migrate.mjs scripts/db-roles.mjs /out/scripts/ \
 && cp scripts/db/services.mjs scripts/db/roles.mjs /out/scripts/db/ \
 && for dir in services/*/prisma/migrations; do mkdir -p "/out/${dir}" && cp -R "${dir}/." "/out/${dir}/"; done

FROM ${NODE_IMAGE} AS db-setup
ENV NODE_ENV=production \
    DB_ROLES_FILE=/tmp/db-roles.json
WORKDIR /app
COPY --from=db-setup-files /out /app
USER node
# DATABASE_URL: an admin login (superuser, or CREATEROLE and owner of the database);
# DB_ROLE_PASSWORD_<SCHEMA>: each service's password, from the same Secret the service reads.
CMD ["sh", "-c", "node scripts/db-migrate.mjs && node scripts/db-roles.mjs"]

FROM ${NODE_IMAGE} AS runtime
ARG SERVICE
# The vendor's PKCS#11 module for KEY_PROVIDER=pkcs11, when it comes as a Debian package
# (e.g. --build-arg RUNTIME_PACKAGES=softhsm2 for SoftHSM2); HSM vendors' modules are usually
# mounted into the container instead. Empty by default: the local provider needs nothing.
ARG RUNTIME_PACKAGES=""
RUN if [ -n "${RUNTIME_PACKAGES}" ]; then \
      apt-get update -qq && apt-get install -y -qq --no-install-recommends ${RUNTIME_PACKAGES} \
      && rm -rf /var/lib/apt/lists/*; \
    fi
ENV NODE_ENV=production \
    SERVICE=${SERVICE} \
    HTTP_HOST=0.0.0.0 \
    MASTER_KEY_FILE=/var/lib/context-gateway/keys/master.key
WORKDIR /app
# Code stays root-owned and read-only to the service user; only the key folder is its own,
# and the folder of public keys a service publishes for another to pin (compose's witness).
# A named volume mounted on such a folder starts out with this ownership and mode.
COPY --from=deploy /out /app
COPY deploy/docker/healthcheck.mjs proto/services.json /usr/local/lib/context-gateway/
RUN install -d -o node -g node -m 0700 /var/lib/context-gateway/keys \
    && install -d -o node -g node -m 0755 /var/lib/context-gateway/trust
USER node
# Liveness only: readiness (database and NATS reachable) is for the orchestrator to route on,
# and restarting a container because Postgres is briefly away would not help.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/usr/local/lib/context-gateway/healthcheck.mjs", "/healthz"]
STOPSIGNAL SIGTERM
# The service as one bundled file (scripts/bundle/bundle-service.mjs): a start loads one
# module instead of ~2,200. dist/main.js beside it runs the same code, module by module.
# No --enable-source-maps: Node would decode the bundle's whole map (5 MB for the gateway) on
# the first stack trace it formats, +133 MiB peak RSS, more than the headroom under the
# gateway's 256Mi limit (docs/operations.md "What a service runs, and its source maps").
# Traces name the bundle's line and function (keepNames); dist/main.bundle.js.map stays in
# the image for scripts/bundle/trace-sources.mjs. NODE_OPTIONS=--enable-source-maps turns
# it on, for a service given the memory.
CMD ["node", "dist/main.bundle.js"]
