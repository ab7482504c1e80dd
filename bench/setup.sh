#!/usr/bin/env bash
# Install what the benchmarks need, only what is missing: Debian's wrk, nginx, haproxy and
# postgresql (scenario d), the Koa baseline's npm packages (npm ci), and matplotlib in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v node >/dev/null || missing+=(nodejs npm)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || command -v pg_ctl >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}"
fi

lock=bench/baseline/package-lock.json
stamp=bench/baseline/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  (cd bench/baseline && npm ci --no-audit --no-fund --loglevel=error)
fi

.venv/bin/python -c "import matplotlib" 2>/dev/null || .venv/bin/python -m pip install --quiet -e '.[bench]'
