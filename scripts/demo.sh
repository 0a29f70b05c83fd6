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
mkdir -p instance
log "starting the Test Bank payout sandbox on http://127.0.0.1:8765 (log: instance/sandbox.log)"
.venv/bin/python -m payment_providers.testbank.sandbox --port 8765 --settle-after 3 > instance/sandbox.log 2>&1 &
SANDBOX_PID=$!
trap 'kill "$SANDBOX_PID" 2>/dev/null || true' EXIT INT TERM
# Jobs run on a thread of the web process (no Redis); check pending payouts every few seconds.
export CASHBACK_PAYOUT_CHECK_SECONDS=5,30,3600
log "serving the portal (Ctrl+C to stop)"
.venv/bin/python run.py
