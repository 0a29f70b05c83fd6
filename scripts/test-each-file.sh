#!/usr/bin/env bash
# Each test file run alone, one after the other, in its own pytest process (a developer's tool:
# a file that passes only after other files have run depends on their state, which this finds).
#   bash scripts/test-each-file.sh                      # every tests/**/test_*.py
#   bash scripts/test-each-file.sh tests/browser        # the files under a directory
#   bash scripts/test-each-file.sh tests/unit -- -x     # extra pytest arguments after --
# Each file runs in a random order (pytest-randomly; the seed is in each file's line, replay with
# `bash scripts/test.sh FILE --randomly-seed=N`); the log of a failing file is kept and named.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

paths=() extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  paths+=("$1"); shift
done
[ "${#paths[@]}" -gt 0 ] || paths=(tests)

ensure_venv test
ensure_postgres
ensure_redis
ensure_chromium
export DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"

mapfile -t files < <(find "${paths[@]}" -name 'test_*.py' -type f | sort)
[ "${#files[@]}" -gt 0 ] || { echo "no test files under ${paths[*]}" >&2; exit 1; }
logs="$(mktemp -d -t test-each-file.XXXXXX)"
failed=()
started=$SECONDS
for file in "${files[@]}"; do
  seed="$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')"
  log="$logs/$(echo "$file" | tr '/' '_').log"
  t0=$SECONDS
  if .venv/bin/python -m pytest "$file" -q -p no:cacheprovider --randomly-seed="$seed" "${extra[@]}" >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$file (seed $seed, log $log)")
  fi
  printf '%-7s %4ss  seed %-10s  %s  %s\n' "$status" "$((SECONDS - t0))" "$seed" "$file" \
    "$(grep -E '^[0-9]+ (passed|failed)|^(FAILED|ERROR)|no tests ran' "$log" | tail -1)"
done
echo "${#files[@]} files in $((SECONDS - started)) s, ${#failed[@]} failed"
if [ "${#failed[@]}" -gt 0 ]; then
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
rm -rf "$logs"
