#!/usr/bin/env bash
# Runs every test of the workspace against real PostgreSQL and Redis, starting them when down.
#   usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi

# The stock JavaScript clients the subscription tests drive, from the npm registry, pinned by
# the lockfile (installed again only when the lockfile changed).
if [ ! -f tests/js/node_modules/.package-lock.json ] \
  || [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
  echo "installing the JavaScript test clients" >&2
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi

# The browser tests drive Debian's Chromium (headless) through playwright-core.
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "installing Chromium for the browser tests" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends chromium >/dev/null; }
fi

# The start-up tests run the subgraph binaries themselves, so build them first.
cargo build --workspace --bins
cargo test --workspace "$@"
