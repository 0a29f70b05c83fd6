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
# Every provider's default settings point at its local sandbox on these ports.
log "starting the payout sandboxes: Test Bank :8765, YooMoney :8766, QIWI :8767, WebMoney :8768, phones :9094"
.venv/bin/python -m payment_providers.testbank.sandbox --port 8765 --settle-after 3 > instance/sandbox-test.log 2>&1 &
PIDS=$!
.venv/bin/python -m payment_providers.yoomoney.sandbox --port 8766 --settle-after 3 > instance/sandbox-yoomoney.log 2>&1 &
PIDS="$PIDS $!"
.venv/bin/python -m payment_providers.phones.sandbox --port 9094 --settle-after 3 > instance/sandbox-phones.log 2>&1 &
PIDS="$PIDS $!"
.venv/bin/python -m payment_providers.qiwi.sandbox --port 8767 --settle-after 3 > instance/sandbox-qiwi.log 2>&1 &
PIDS="$PIDS $!"
.venv/bin/python -m payment_providers.webmoney.sandbox --port 8768 > instance/sandbox-webmoney.log 2>&1 &
PIDS="$PIDS $!"
trap 'kill $PIDS 2>/dev/null || true' EXIT INT TERM
# Jobs run on a thread of the web process (no Redis); check pending payouts every few seconds.
export CASHBACK_PAYOUT_CHECK_SECONDS=5,30,3600
log "serving the portal (Ctrl+C to stop)"
.venv/bin/python run.py
