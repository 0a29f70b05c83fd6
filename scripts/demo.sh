#!/usr/bin/env bash
# The demo, from a fresh clone: virtual environment, embedded SQLite database
# (instance/cashback.db), schema, roles, demo data, then the portal on a printed URL.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv
# The demo runs on the embedded defaults, whatever this shell has set.
unset DATABASE_URL REDIS_URL
export CASHBACK_ENV=development
log "migrating the database"
.venv/bin/cashback db upgrade
log "syncing roles"
.venv/bin/cashback sync-roles >/dev/null
log "seeding demo data"
.venv/bin/cashback seed-demo
.venv/bin/cashback verify-ledger
log "serving the portal (Ctrl+C to stop)"
exec .venv/bin/python run.py
