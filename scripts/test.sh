#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine:
# virtual environment + dependencies, PostgreSQL and Redis started if down, then pytest.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/unit -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv test
ensure_postgres
ensure_redis
ensure_chromium
export DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
log "running the test suite"
exec .venv/bin/python -m pytest "$@"
