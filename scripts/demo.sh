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
# CPA-partner login goes to the local partner directory started below (docs/partner-directory.md).
export CASHBACK_PARTNER_DIRECTORY_URL=http://127.0.0.1:8790
export CASHBACK_PARTNER_DIRECTORY_TOKEN=partner-directory-dev-token
# Registration and password mail go to the local outbox started below (instance/outbox/*.eml);
# referrers earn 5 % of their friends' available cashback in the demo (off by default).
export MAIL_SERVER=127.0.0.1 MAIL_PORT=8025 MAIL_USE_TLS=0 CASHBACK_REFERRAL_REWARD_PERCENT=5
# Provider settings: the defaults (every sandbox) plus a low-balance threshold for MegaFon, whose
# seeded balance is below it: the providers page shows the warning.
export CASHBACK_PROVIDER_SETTINGS='{"test": {"base_url": "http://127.0.0.1:8765", "read_timeout": 10}, "megafon": {"low_balance": "20000"}}'
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
log "starting the local CPA partner directory :8790; partner logins: partner-demo / partner-demo (a new partner), lucas-partner / partner-demo (customer 20, partner-linked)"
.venv/bin/cashback partner-directory --port 8790 > instance/partner-directory.log 2>&1 &
PIDS="$PIDS $!"
log "starting the mail outbox smtp://127.0.0.1:8025: registration and password mails land in instance/outbox/*.eml"
.venv/bin/cashback mail-outbox --port 8025 > instance/mail-outbox.log 2>&1 &
PIDS="$PIDS $!"
trap 'kill $PIDS 2>/dev/null || true' EXIT INT TERM
# Jobs run on a thread of the web process (no Redis); check pending payouts every few seconds.
export CASHBACK_PAYOUT_CHECK_SECONDS=5,30,3600
log "browser extension: chrome://extensions -> Developer mode -> Load unpacked -> $(pwd)/extension;"
log "  its options: portal http://127.0.0.1:5000 (the default); log in as customer1@demo.cashback.local / customer-demo"
log "serving the portal (Ctrl+C to stop)"
.venv/bin/python run.py
