#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine:
# virtual environment + dependencies, PostgreSQL and Redis started if down, then pytest.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/unit -x`).
# The whole suite, or directories of it, run in CASHBACK_TEST_WORKERS parallel pytest-xdist
# worker processes (default 4: the suite mostly waits on browsers, servers and sandboxes), one
# test at a time handed to whichever worker is free (--dist loadgroup).  Named files or tests
# alone run in this one process (starting workers costs more than they save there), and so
# does any run with `-n 0`, CASHBACK_TEST_WORKERS=0, --pdb, --trace or -p no:xdist.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv test
ensure_postgres
ensure_redis
ensure_chromium
export DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
parallel=(-n "${CASHBACK_TEST_WORKERS:-4}" --dist loadgroup)
files=0 dirs=0
for arg in "$@"; do
  case "$arg" in
    --pdb|--trace|no:xdist|-pno:xdist) parallel=() ;;
    -*) ;;
    *) if [ -d "$arg" ]; then dirs=$((dirs + 1)); elif [ -f "${arg%%::*}" ]; then files=$((files + 1)); fi ;;
  esac
done
[ "$files" -gt 0 ] && [ "$dirs" = 0 ] && parallel=()
log "running the test suite${parallel:+ (${CASHBACK_TEST_WORKERS:-4} worker processes)}"
exec .venv/bin/python -m pytest "${parallel[@]}" "$@"
