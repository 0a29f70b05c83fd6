"""All settings of the cashback back-office, read from the environment.

Every setting has a documented, safe default: with nothing set the app runs on an
embedded SQLite database (``instance/cashback.db``) and needs no Redis (RQ jobs run
in-process, synchronously).  ``portal.app.create_app(config)`` loads these defaults,
then applies an explicit override mapping (tests use that).

Environment variables (the names are the contract; keep README.md in step):

``CASHBACK_ENV``
    ``production`` (default), ``development`` or ``testing``.  Fail closed: production refuses
    to start with the built-in ``SECRET_KEY`` or postback secrets (and without
    ``CASHBACK_PUBLIC_URL``); the built-in secrets are accepted only when ``development`` or
    ``testing`` is asked for explicitly and the server binds to loopback (``CASHBACK_HOST``).
``CASHBACK_HOST`` / ``CASHBACK_PORT``
    Where ``python run.py`` binds (default 127.0.0.1:5000); also what the built-in-secrets check
    looks at (a non-loopback address with the built-in secrets is refused in every env).
``DATABASE_URL``
    SQLAlchemy URL.  ``postgresql://…`` is accepted and mapped to psycopg 3.
    Default: SQLite at ``instance/cashback.db``.
``CASHBACK_REPORTS_DATABASE_URL``
    Optional read replica for reports (Finance dashboard, payouts by day); empty: the
    primary.  See ``portal/reporting.py``.
``REDIS_URL``
    Redis for RQ queues.  Empty (default): jobs run synchronously in the web process.
``SECRET_KEY``
    Flask session / CSRF / JWT signing key.
``CASHBACK_POSTBACK_SECRETS``
    ``network:secret`` pairs, comma-separated: the HMAC key of each affiliate network's
    postbacks.  Production refuses the development default.
``CASHBACK_NETWORK_URL_TEMPLATE``
    The affiliate redirect: ``{sub_id}`` and ``{url}`` (URL-encoded product link) are filled in.
``CASHBACK_LOG_FORMAT`` / ``CASHBACK_LOG_LEVEL``
    ``json`` or ``text`` log lines (empty: json in production); level ``INFO``.
``CASHBACK_METRICS_TOKEN``
    Bearer token of ``/metrics``; empty: loopback clients only, and nobody in production.
``CASHBACK_JWT_REFRESH_DAYS``
    Lifetime of the API's refresh tokens (7); a customer's password change or partner link
    revokes every token minted before it.
``CASHBACK_POSTBACK_REJECTION_SAMPLE``
    Unauthenticated refused postbacks stored per minute and process (60).
``CASHBACK_PARTNER_DIRECTORY_URL`` / ``CASHBACK_PARTNER_DIRECTORY_TOKEN``
    The CPA platform's partner directory (partner login, ``docs/partner-directory.md``) and its
    service token; empty URL (default): partner login off.
``CASHBACK_RATE_LIMITS``, ``CASHBACK_LOGIN_RATE_LIMIT``, ``CASHBACK_LINKS_RATE_LIMIT``, ``CASHBACK_POSTBACK_RATE_LIMIT``
    Throttling (see ``portal/limits.py``): on except under testing; per client IP.
``MAIL_SERVER``, ``MAIL_PORT``, ``MAIL_USE_TLS``, ``MAIL_USE_SSL``, ``MAIL_USERNAME``, ``MAIL_PASSWORD``, ``MAIL_DEFAULT_SENDER``
    Outgoing mail (registration confirmation, password reset; Flask-Mail's names); default
    127.0.0.1:8025, the local outbox of ``cashback mail-outbox``.
``CASHBACK_RECON_LINE_CAP_USD`` / ``CASHBACK_RAISED_BALANCE_DAYS``
    Four eyes: the most one reconciliation line may raise a customer's cashback (larger lines are
    refused; smaller ones wait for a second Finance user), and how long whoever raised a balance
    by hand may not approve that customer's payouts.
``CASHBACK_REFERRAL_REWARD_PERCENT``
    Share of a referred customer's available cashback paid to the referrer; 0 (default): off.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path

from flask_appbuilder.security.manager import AUTH_DB

BASE_DIR = Path(__file__).resolve().parent

#: The key used when none is configured.  Fine for a laptop demo, refused in production.
DEFAULT_SECRET_KEY = "dev-insecure-change-me"
#: Postback HMAC key of the demo network; refused in production.
DEFAULT_POSTBACK_SECRETS = "epn:dev-postback-secret"


def normalize_database_url(url: str) -> str:
    """Map plain PostgreSQL URLs to the psycopg 3 driver SQLAlchemy should use."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _env_bool(name: str, default: bool) -> bool:
    return _env(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _env_decimal(name: str, default: str) -> Decimal:
    return Decimal(_env(name, default))


def _pairs(raw: str) -> dict[str, str]:
    """``"a:1,b:2"`` -> ``{"a": "1", "b": "2"}``."""
    result = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, _, value = item.partition(":")
        if not name or not value:
            raise ConfigError(f"expected network:secret, got {item!r}")
        result[name.strip()] = value.strip()
    return result


def load() -> dict:
    """Read the settings from the environment now (tests change the environment)."""
    instance = Path(_env("CASHBACK_INSTANCE_DIR", str(BASE_DIR / "instance")))
    env = _env("CASHBACK_ENV", "production")
    return {
        # --- runtime -----------------------------------------------------------------
        "CASHBACK_ENV": env,
        "INSTANCE_DIR": str(instance),
        #: The address the server binds to (``python run.py``); the built-in secrets need loopback.
        "BIND_HOST": _env("CASHBACK_HOST", "127.0.0.1"),
        "BIND_PORT": _env_int("CASHBACK_PORT", 5000),
        "SECRET_KEY": _env("SECRET_KEY", DEFAULT_SECRET_KEY),
        "TESTING": env == "testing",
        # --- database ----------------------------------------------------------------
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(
            _env("DATABASE_URL", f"sqlite:///{instance / 'cashback.db'}")
        ),
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        #: A read replica for reports only (portal/reporting.py); absent: reports read the primary.
        "SQLALCHEMY_BINDS": ({"reports": normalize_database_url(_env("CASHBACK_REPORTS_DATABASE_URL", ""))}
                             if _env("CASHBACK_REPORTS_DATABASE_URL", "") else {}),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        #: Alembic revisions live at the top of the repository.
        "MIGRATIONS_DIR": str(BASE_DIR / "migrations"),
        # --- queues ------------------------------------------------------------------
        #: Empty: no Redis, jobs run in-process on a background thread.
        "REDIS_URL": _env("REDIS_URL", ""),
        #: Prefix of RQ queue names and job ids (several deployments or test runs on one Redis).
        "QUEUE_PREFIX": _env("CASHBACK_QUEUE_PREFIX", ""),
        #: Where jobs go: "rq" (Redis), "thread" (in-process), "collect" (tests drive them);
        #: empty picks rq when REDIS_URL is set, else thread.
        "JOBS_MODE": _env("CASHBACK_JOBS_MODE", ""),
        # --- ledger ------------------------------------------------------------------
        #: Sub-balance rows per hot system account (network receivable, provider float…).
        #: Postings spread over them so concurrent postings do not queue on one row.
        "LEDGER_HOT_SHARDS": _env_int("CASHBACK_LEDGER_HOT_SHARDS", 16),
        # --- money -------------------------------------------------------------------
        #: Minimum withdrawal, in USD; shown to customers in RUB at the day's rate.
        "MIN_WITHDRAWAL_USD": _env_decimal("CASHBACK_MIN_WITHDRAWAL_USD", "0.20"),
        #: Default share of our network commission paid to the customer, in percent.
        "DEFAULT_CASHBACK_RATE": _env_decimal("CASHBACK_DEFAULT_RATE", "7.00"),
        # --- the cashback path ------------------------------------------------------
        #: HMAC keys of the networks' postbacks, by network code.
        "POSTBACK_SECRETS": _pairs(_env("CASHBACK_POSTBACK_SECRETS", DEFAULT_POSTBACK_SECRETS)),
        #: Accepted clock difference of a postback's timestamp, seconds.
        "POSTBACK_WINDOW_SECONDS": _env_int("CASHBACK_POSTBACK_WINDOW_SECONDS", 300),
        #: Largest postback body accepted, bytes.
        "POSTBACK_MAX_BYTES": _env_int("CASHBACK_POSTBACK_MAX_BYTES", 16384),
        #: Refused postbacks of unauthenticated senders (unknown network, bad signature) stored per
        #: minute and process: a sample for Developers, not a disk-filling log.
        #: Empty: 60, but no limit under CASHBACK_ENV=testing (tests look at every refusal); 0: no limit.
        "POSTBACK_REJECTION_SAMPLE": (_env_int("CASHBACK_POSTBACK_REJECTION_SAMPLE", 60)
                                      if os.environ.get("CASHBACK_POSTBACK_REJECTION_SAMPLE") else None),
        #: The network code clicks are tracked with.
        "DEFAULT_NETWORK": _env("CASHBACK_DEFAULT_NETWORK", "epn"),
        #: Affiliate redirect; {sub_id} and {url} (URL-encoded product link) are filled in.
        "NETWORK_URL_TEMPLATE": _env(
            "CASHBACK_NETWORK_URL_TEMPLATE",
            "https://alitems.site/g/1e8d114494c02ea3d6a016525dc3e8/?sub={sub_id}&ulp={url}",
        ),
        #: Clicks on one product by one customer within this many minutes count as repeats.
        "CLICK_REPEAT_WINDOW_MINUTES": _env_int("CASHBACK_CLICK_REPEAT_WINDOW_MINUTES", 60),
        #: From this many repeats on, the customer is warned the network may see spam.
        "CLICK_SPAM_THRESHOLD": _env_int("CASHBACK_CLICK_SPAM_THRESHOLD", 3),
        #: Follow short links (s.click.aliexpress.com) over the network; off in tests/offline.
        "OUTBOUND_HTTP": _env_bool("CASHBACK_OUTBOUND_HTTP", False),
        #: A reconciliation line may raise one customer's cashback by at most this much (USD);
        #: larger lines are refused, smaller ones wait for a second Finance user's approval.
        "RECON_LINE_CAP_USD": _env_decimal("CASHBACK_RECON_LINE_CAP_USD", "100.00"),
        #: A Finance user who raised a customer's balance (proposed or approved a reconciliation
        #: line, a claim credit or an orphan attachment) may not approve that customer's payouts
        #: for this many days.
        "RAISED_BALANCE_DAYS": _env_int("CASHBACK_RAISED_BALANCE_DAYS", 30),
        # --- payouts -------------------------------------------------------------------
        #: Provider settings by code (base_url, credentials, timeouts), JSON; the default
        #: points the built-in test provider at its local sandbox.
        "PAYOUT_PROVIDER_SETTINGS": json.loads(_env(
            "CASHBACK_PROVIDER_SETTINGS",
            '{"test": {"base_url": "http://127.0.0.1:8765", "read_timeout": 10}}')),
        #: Payouts above this amount (USD) go to Finance review.
        "REVIEW_THRESHOLD_USD": _env_decimal("CASHBACK_REVIEW_THRESHOLD_USD", "50.00"),
        #: Above this amount (USD) two different Finance users must approve.
        "SECOND_APPROVAL_USD": _env_decimal("CASHBACK_SECOND_APPROVAL_USD", "200.00"),
        #: Payout details younger than this many hours send a payout to review.
        "NEW_DETAILS_HOURS": _env_int("CASHBACK_NEW_DETAILS_HOURS", 24),
        #: More withdrawals than this by one customer in a day go to review.
        "MAX_WITHDRAWALS_PER_DAY": _env_int("CASHBACK_MAX_WITHDRAWALS_PER_DAY", 3),
        #: Attempts with a new key after retryable failures before a payout fails for good.
        "PAYOUT_MAX_ATTEMPTS": _env_int("CASHBACK_PAYOUT_MAX_ATTEMPTS", 5),
        #: Seconds between retries of retryable failures (the last one repeats).
        "PAYOUT_RETRY_SECONDS": [int(x) for x in _env("CASHBACK_PAYOUT_RETRY_SECONDS", "30,300,3600").split(",")],
        #: Seconds between status checks of unknown/pending attempts (the janitor's back-off:
        #: 5 min, 1 h, then daily); after the last one the payout goes to Finance.
        "PAYOUT_CHECK_SECONDS": [int(x) for x in _env("CASHBACK_PAYOUT_CHECK_SECONDS", "300,3600,86400").split(",")],
        #: Status checks of one attempt before it is handed to Finance ("fix state").
        "PAYOUT_MAX_CHECKS": _env_int("CASHBACK_PAYOUT_MAX_CHECKS", 6),
        #: Provider calls one `cashback worker` keeps in flight (submits and status checks, each
        #: on a call thread of its own; every call's key is committed before it).
        "WORKER_CALLS": _env_int("CASHBACK_WORKER_CALLS", 4),
        #: An attempt still "submitting" after this many seconds is treated as unknown (and a
        #: status check being asked is leased for as long).
        "PAYOUT_STALE_SUBMIT_SECONDS": _env_int("CASHBACK_PAYOUT_STALE_SUBMIT_SECONDS", 120),
        #: The janitor refreshes provider balances older than this (low-balance alerts).
        "BALANCE_POLL_SECONDS": _env_int("CASHBACK_BALANCE_POLL_SECONDS", 600),
        #: Consecutive transport failures that open a provider's circuit breaker, and for how long.
        "BREAKER_THRESHOLD": _env_int("CASHBACK_BREAKER_THRESHOLD", 5),
        "BREAKER_COOLDOWN_SECONDS": _env_int("CASHBACK_BREAKER_COOLDOWN_SECONDS", 60),
        # --- claims (missing cashback) ---------------------------------------------------
        #: SLA per claim state, hours (JSON): a claim longer in its state than this breaches.
        "CLAIM_SLA_HOURS": json.loads(_env("CASHBACK_CLAIM_SLA_HOURS",
                                           '{"open": 1, "diagnosed": 24, "escalated": 336}')),
        #: Largest screenshot attached to a claim, bytes (PNG or JPEG only).
        "CLAIM_SCREENSHOT_MAX_BYTES": _env_int("CASHBACK_CLAIM_SCREENSHOT_MAX_BYTES", 2 * 1024 * 1024),
        #: The diagnosis looks for the customer's clicks this many days before the order.
        "CLAIM_CLICK_LOOKBACK_DAYS": _env_int("CASHBACK_CLAIM_CLICK_LOOKBACK_DAYS", 30),
        #: How long the network usually takes to confirm a paid order, days (told to customers).
        "CLAIM_CONFIRMATION_DAYS": _env_int("CASHBACK_CLAIM_CONFIRMATION_DAYS", 60),
        # --- customer accounts: registration, mail, referrals (portal/services/accounts.py)
        #: Outgoing mail (confirmation, password reset).  The names are Flask-Mail's / FAB's;
        #: the demo points them at `cashback mail-outbox` (127.0.0.1:8025, no TLS, no login).
        "MAIL_SERVER": _env("MAIL_SERVER", "127.0.0.1"),
        "MAIL_PORT": _env_int("MAIL_PORT", 8025),
        "MAIL_USE_TLS": _env_bool("MAIL_USE_TLS", False),
        "MAIL_USE_SSL": _env_bool("MAIL_USE_SSL", False),
        "MAIL_USERNAME": _env("MAIL_USERNAME", ""),
        "MAIL_PASSWORD": _env("MAIL_PASSWORD", ""),
        #: The sender of mail; default: the brand (CASHBACK_APP_NAME) at no-reply@cashback.local.
        "MAIL_DEFAULT_SENDER": _env("MAIL_DEFAULT_SENDER",
                                    f'{_env("CASHBACK_APP_NAME", "Cashback")} <no-reply@cashback.local>'),
        #: Seconds an SMTP conversation may take before sending gives up (logged, not retried).
        "MAIL_TIMEOUT": _env_int("MAIL_TIMEOUT", 10),
        #: The public address of the portal, for links in mail; empty: the request's host.
        "PUBLIC_URL": _env("CASHBACK_PUBLIC_URL", ""),
        #: How long an e-mail confirmation link and a password reset link stay valid, seconds.
        "CONFIRM_TOKEN_MAX_AGE": _env_int("CASHBACK_CONFIRM_TOKEN_MAX_AGE", 3 * 86400),
        "RESET_TOKEN_MAX_AGE": _env_int("CASHBACK_RESET_TOKEN_MAX_AGE", 3600),
        #: Registrations per client IP, and confirmation/reset mails per address (throttling).
        "REGISTER_RATE_LIMIT": _env("CASHBACK_REGISTER_RATE_LIMIT", "5 per hour"),
        "ACCOUNT_MAIL_RATE_LIMIT": _env("CASHBACK_ACCOUNT_MAIL_RATE_LIMIT", "3 per hour"),
        #: Login attempts per account (username), on top of LOGIN_RATE_LIMIT per IP.
        "ACCOUNT_LOGIN_RATE_LIMIT": _env("CASHBACK_ACCOUNT_LOGIN_RATE_LIMIT", "20 per hour"),
        #: Referral reward: this percent of the referred customer's cashback, credited to the
        #: referrer from promo_expense when the cashback becomes available; 0 (default): off.
        "REFERRAL_REWARD_PERCENT": _env_decimal("CASHBACK_REFERRAL_REWARD_PERCENT", "0"),
        # --- CPA-partner login (portal/services/partners.py, docs/partner-directory.md) ---
        #: The CPA platform's partner directory; empty (default): partner login is off.
        "PARTNER_DIRECTORY_URL": _env("CASHBACK_PARTNER_DIRECTORY_URL", ""),
        #: Service token sent as ``Authorization: Bearer …`` to the directory.
        "PARTNER_DIRECTORY_TOKEN": _env("CASHBACK_PARTNER_DIRECTORY_TOKEN", ""),
        #: Seconds to connect to / wait for an answer of the directory; then "try again later".
        "PARTNER_DIRECTORY_CONNECT_TIMEOUT": float(_env("CASHBACK_PARTNER_DIRECTORY_CONNECT_TIMEOUT", "2")),
        "PARTNER_DIRECTORY_READ_TIMEOUT": float(_env("CASHBACK_PARTNER_DIRECTORY_READ_TIMEOUT", "5")),
        # --- operations: logs, metrics, throttling (portal/observability.py, portal/limits.py)
        #: "json" (one object per line) or "text"; empty: json in production, else text.
        "LOG_FORMAT": _env("CASHBACK_LOG_FORMAT", ""),
        "LOG_LEVEL": _env("CASHBACK_LOG_LEVEL", "INFO"),
        #: Bearer token /metrics wants; empty: /metrics answers loopback (127.0.0.1, ::1) only.
        "METRICS_TOKEN": _env("CASHBACK_METRICS_TOKEN", ""),
        #: Reverse proxies in front of the app (client IP from X-Forwarded-For); 0: none.
        "TRUSTED_PROXIES": _env_int("CASHBACK_TRUSTED_PROXIES", 0),
        #: Throttling on/off; None (empty): on, except under CASHBACK_ENV=testing.
        "RATELIMIT_ENABLED": (_env_bool("CASHBACK_RATE_LIMITS", True)
                              if os.environ.get("CASHBACK_RATE_LIMITS") else None),
        #: Where the counters live; empty: REDIS_URL when set, else memory (per process).
        "RATELIMIT_STORAGE_URI": _env("CASHBACK_RATE_LIMIT_STORAGE", ""),
        #: Key prefix of the counters (deployments/test runs sharing one Redis).
        "RATELIMIT_KEY_PREFIX": _env("CASHBACK_RATE_LIMIT_PREFIX", "cashback"),
        #: No X-RateLimit-* headers; a refusal carries Retry-After (portal/limits.py).
        "RATELIMIT_HEADERS_ENABLED": False,
        #: Storage down: count in memory and log it, never refuse everyone.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": True,
        #: Login attempts per client IP (the form and the JWT login share one bucket).
        "LOGIN_RATE_LIMIT": _env("CASHBACK_LOGIN_RATE_LIMIT", "10 per minute"),
        #: POST /api/v1/links/check per client IP (public).
        "LINKS_RATE_LIMIT": _env("CASHBACK_LINKS_RATE_LIMIT", "120 per minute"),
        #: Network postbacks per client IP (bursts are normal; this stops floods only).
        "POSTBACK_RATE_LIMIT": _env("CASHBACK_POSTBACK_RATE_LIMIT", "1000 per second"),
        # --- JWT (the extension's and the app's logins) ---------------------------------
        #: Lifetime of a refresh token (flask-jwt-extended's default is 30 days), days; tokens
        #: minted before a customer's last password change or partner link are refused anyway.
        "JWT_REFRESH_TOKEN_EXPIRES": dt.timedelta(days=_env_int("CASHBACK_JWT_REFRESH_DAYS", 7)),
        # --- Flask-AppBuilder --------------------------------------------------------
        #: The brand: the navbar, the page titles, the landing page and the mail (subject, signature, sender).
        "APP_NAME": _env("CASHBACK_APP_NAME", "Cashback"),
        "AUTH_TYPE": AUTH_DB,
        "AUTH_ROLE_ADMIN": "Admin",
        "AUTH_ROLE_PUBLIC": "Public",
        #: Schema is Alembic's job, roles are `cashback sync-roles`' job: never on boot.
        "FAB_CREATE_DB": False,
        "FAB_UPDATE_PERMS": False,
        "FAB_ADD_SECURITY_API": True,
        "FAB_API_SWAGGER_UI": True,
        "WTF_CSRF_ENABLED": _env_bool("CASHBACK_CSRF", True),
        "BABEL_DEFAULT_LOCALE": "ru",
        "BABEL_TRANSLATION_DIRECTORIES": str(BASE_DIR / "portal" / "translations"),
        "LANGUAGES": {
            "ru": {"flag": "ru", "name": "Русский"},
            "en": {"flag": "gb", "name": "English"},
        },
        #: Largest request body accepted (uploads of rate files and network reports), bytes.
        "MAX_CONTENT_LENGTH": _env_int("CASHBACK_MAX_CONTENT_LENGTH", 8 * 1024 * 1024),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env == "production",
    }


class ConfigError(RuntimeError):
    """The configuration is unsafe or inconsistent; the app refuses to start."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: a server only this machine reaches."""
    import ipaddress

    host = (host or "").strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def builtin_secrets(settings: dict) -> list[str]:
    """The names of the settings that still hold a built-in (public) secret."""
    names = []
    if settings["SECRET_KEY"] == DEFAULT_SECRET_KEY:
        names.append("SECRET_KEY")
    defaults = _pairs(DEFAULT_POSTBACK_SECRETS)
    if any(settings["POSTBACK_SECRETS"].get(name) == secret for name, secret in defaults.items()):
        names.append("CASHBACK_POSTBACK_SECRETS")
    return names


def check(settings: dict) -> None:
    """Refuse configurations that must never run (fail closed: production is the default)."""
    env = settings["CASHBACK_ENV"]
    if env not in {"development", "testing", "production"}:
        raise ConfigError(f"CASHBACK_ENV must be development, testing or production, not {env!r}")
    builtin = builtin_secrets(settings)
    if env == "production" and "SECRET_KEY" in builtin:
        raise ConfigError(
            "SECRET_KEY is the built-in development key: set SECRET_KEY in the environment "
            "(CASHBACK_ENV is production unless CASHBACK_ENV=development is set for a laptop demo)."
        )
    if env == "production" and builtin:
        raise ConfigError("CASHBACK_POSTBACK_SECRETS is the development default: set the networks' real keys.")
    if builtin and not is_loopback(settings.get("BIND_HOST", "")):
        raise ConfigError(
            f"{' and '.join(builtin)} hold the built-in public secrets, accepted only on loopback: "
            f"CASHBACK_HOST={settings.get('BIND_HOST')!r} would let anyone forge sessions, tokens and postbacks.")
    if env == "production" and not settings.get("PUBLIC_URL"):
        raise ConfigError("CASHBACK_PUBLIC_URL is not set: links in mail (e-mail confirmation, password reset) "
                          "must never be built from a request's Host header.")
