# Shared steps of scripts/demo.sh and scripts/test.sh (sourced, not run).
# Everything here is idempotent: a second run on a set-up machine is quick.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# ensure_venv [extra]: .venv with the project installed (editable), reinstalled when setup.py changes.
ensure_venv() {
  local extra="${1:-}" spec="." stamp
  [ -n "$extra" ] && spec=".[$extra]"
  if [ ! -x .venv/bin/python ]; then
    log "creating the virtual environment .venv"
    python3 -m venv .venv
  fi
  stamp=".venv/.installed-$(sha256sum setup.py | cut -c1-16)-${extra:-base}"
  if [ ! -f "$stamp" ]; then
    log "installing the project and its dependencies ($spec)"
    .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
    .venv/bin/python -m pip install --quiet -e "$spec"
    touch "$stamp"
  fi
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  log "installing Debian packages: $*"
  as_root apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# ensure_postgres: PostgreSQL answering on the server of DATABASE_URL (default 127.0.0.1:5432).
ensure_postgres() {
  command -v pg_isready >/dev/null || apt_install postgresql
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
}

# ensure_redis: Redis answering on 127.0.0.1:6379.
ensure_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }
}

# ensure_chromium: Debian's Chromium for the browser tests (tests/browser), installed when missing,
# with openssl (the tests' local HTTPS "AliExpress" makes its certificate with it).
# apt-get update runs only when the first install attempt fails (stale or empty package lists).
ensure_chromium() {
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v openssl >/dev/null || missing+=(openssl)
  [ "${#missing[@]}" = 0 ] && return 0
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    log "missing ${missing[*]} and neither root nor sudo is available: the browser tests will fail"
    return 0
  fi
  log "installing ${missing[*]} (browser tests)"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  command -v chromium >/dev/null || { echo "Chromium could not be installed (apt-get install chromium)" >&2; exit 1; }
}
