#!/usr/bin/env sh
# First command on a fresh machine: installs the pinned pnpm if it is missing, installs the
# workspace exactly as locked, then runs `pnpm start` (build, local Postgres/NATS if none
# are running, every service, wait until ready). Arguments go to `pnpm start`, e.g.
#   scripts/up.sh --no-build
set -eu

PNPM_VERSION=12.4.2
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1; then
  echo "Node.js 20.19 or newer is required: https://nodejs.org/ (or your package manager)." >&2
  exit 1
fi

if ! command -v pnpm >/dev/null 2>&1; then
  echo "Installing pnpm@$PNPM_VERSION (npm i -g)…"
  npm i -g "pnpm@$PNPM_VERSION"
elif [ "$(pnpm --version)" != "$PNPM_VERSION" ]; then
  # Newer 12.x releases have rejected this lockfile under --frozen-lockfile.
  echo "Note: this repository is locked with pnpm $PNPM_VERSION; you have $(pnpm --version)." >&2
  echo "      If the install below fails, run: npm i -g pnpm@$PNPM_VERSION" >&2
fi

# The optional PKCS#11 addon (KEY_PROVIDER=pkcs11) builds with node-gyp: against the
# machine's Node headers when they are there, so no headers download is needed.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then export npm_config_nodedir=/usr; fi
pnpm install --frozen-lockfile
exec pnpm start "$@"
