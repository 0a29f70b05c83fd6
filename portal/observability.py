"""Operations: health and readiness, Prometheus metrics, structured logs, request ids.

``init_app(app)`` (called by the factory) adds:

* ``GET /health`` — liveness: the process answers.  No database, no Redis, no auth.
* ``GET /health/ready`` — readiness: ``SELECT 1`` on the database, Redis ``PING`` (when
  ``REDIS_URL`` is set), the depth of each job queue and each payout provider's switch and
  breaker.  200 when ready, 503 naming the failing checks (``failing``).  Errors are shown
  as their exception class only: no host names, URLs, secrets or customer data.
* ``GET /metrics`` — Prometheus text format.  With ``CASHBACK_METRICS_TOKEN`` set it wants
  ``Authorization: Bearer <token>`` from anywhere; empty (the default) it answers only
  requests from the loopback address (a scraper on the same host, or behind a proxy that
  does not forward ``/metrics``) and 403 to anyone else — except under
  ``CASHBACK_ENV=production``, where a same-host proxy makes every visitor "loopback": there
  it always wants the token (no token set: 403 to everyone, and a warning at start).
* a warning (once per process) when ``CASHBACK_TRUSTED_PROXIES`` looks wrong: 0 while loopback
  requests carry ``X-Forwarded-For`` (a proxy on this host: every client shares its IP for
  throttling and looks local), or set while requests arrive without it (clients could choose
  their IP).
* a request id per request (``X-Request-ID`` from the client when it is a sane token, else a
  new one), returned in the ``X-Request-ID`` header and put on every log record;
* logging: JSON lines (``ts``, ``level``, ``logger``, ``message``, ``request_id`` and any
  ``extra`` fields) with ``CASHBACK_LOG_FORMAT=json`` (the default when
  ``CASHBACK_ENV=production``), plain text otherwise; every handler this module installs
  redacts secrets (``SECRET_KEY``, postback secrets, provider credentials, the metrics
  token, URL passwords, ``Authorization`` values, ``password=…``-like pairs).

Metrics recorded by the code (``cashback_`` prefix):

* ``payouts_finished_total{provider,state}`` — a payout reached a final state (counted when
  its transaction commits: :func:`count_on_commit`);
* ``provider_call_seconds{provider,operation}`` and ``provider_calls_total{provider,
  operation,status}`` — each call of a provider plugin by a job (:func:`provider_call`);
* ``postback_rejections_total{reason}`` — refused network postbacks;
* ``ledger_postings_total{kind}`` — new ledger postings (replays are not counted);

and computed at scrape time from the database and Redis (:class:`StateCollector`):
``payouts{state}``, ``queue_depth{queue}``, ``provider_breaker_open{provider}``,
``provider_enabled{provider}``.

Several processes (gunicorn workers, RQ workers): set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory shared by all of them before they start (wipe it at deployment); each
process then writes its counters there and ``/metrics``, whichever worker answers, sums
them (``prometheus_client.multiprocess``).  Without it each process counts for itself.
"""
from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import os
import re
import sys
import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app, g, has_request_context, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# --- metrics recorded by the code --------------------------------------------------------

PAYOUTS_FINISHED = Counter("cashback_payouts_finished_total", "Payouts that reached a final state.",
                           ["provider", "state"])
PROVIDER_CALL_SECONDS = Histogram(
    "cashback_provider_call_seconds", "Duration of payout provider calls made by jobs.",
    ["provider", "operation"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
PROVIDER_CALLS = Counter("cashback_provider_calls_total", "Payout provider calls by answer status.",
                         ["provider", "operation", "status"])
POSTBACK_REJECTIONS = Counter("cashback_postback_rejections_total", "Refused network postbacks.", ["reason"])
LEDGER_POSTINGS = Counter("cashback_ledger_postings_total", "New ledger postings.", ["kind"])

_PENDING = "cashback_pending_metrics"


def count_on_commit(session: Session, counter: Counter, **labels: str) -> None:
    """Increment ``counter`` once ``session`` commits (nothing when it rolls back)."""
    session.info.setdefault(_PENDING, []).append((counter, labels))


@sa.event.listens_for(Session, "after_commit")
def _count_pending(session: Session) -> None:
    for counter, labels in session.info.pop(_PENDING, []):
        counter.labels(**labels).inc()


@sa.event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


@contextmanager
def provider_call(provider: str, operation: str) -> Iterator[dict]:
    """Time one provider call; put the answer's status in the yielded dict (``status``)."""
    outcome = {"status": "raised"}
    started = time.perf_counter()
    try:
        yield outcome
    finally:
        PROVIDER_CALL_SECONDS.labels(provider=provider, operation=operation).observe(time.perf_counter() - started)
        PROVIDER_CALLS.labels(provider=provider, operation=operation, status=str(outcome["status"])).inc()


# --- metrics computed at scrape time -------------------------------------------------------

class StateCollector:
    """Gauges read from the database (and Redis) when Prometheus scrapes: cheap GROUP BYs."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from portal.extensions import db
        from portal.models import Payout, ProviderState

        payouts = GaugeMetricFamily("cashback_payouts", "Payouts by state (from the database).", labels=["state"])
        breaker = GaugeMetricFamily("cashback_provider_breaker_open", "1 when a provider's breaker is open.",
                                    labels=["provider"])
        enabled = GaugeMetricFamily("cashback_provider_enabled", "0 when a provider is switched off.",
                                    labels=["provider"])
        with self.app.app_context(), db.engine.connect() as conn:
            for state, count in conn.execute(sa.select(Payout.state, sa.func.count()).group_by(Payout.state)):
                payouts.add_metric([state], count)
            for code, is_enabled, state in conn.execute(
                    sa.select(ProviderState.code, ProviderState.enabled, ProviderState.breaker)):
                breaker.add_metric([code], 1 if state == "open" else 0)
                enabled.add_metric([code], 1 if is_enabled else 0)
        yield payouts
        yield breaker
        yield enabled
        depths = queue_depths(self.app)
        if depths is not None:
            queues = GaugeMetricFamily("cashback_queue_depth", "Jobs waiting in each RQ queue.", labels=["queue"])
            for name, depth in depths.items():
                queues.add_metric([name], depth)
            yield queues


def queue_depths(app: Flask) -> dict[str, int] | None:
    """Jobs waiting per project queue (RQ), or None without Redis."""
    if not app.config.get("REDIS_URL"):
        return None
    from rq import Queue

    from portal.tasks import QUEUES, queue_name

    conn = _health_redis(app)
    return {name: Queue(queue_name(app, name), connection=conn).count for name in QUEUES}


def metrics_text(app: Flask | None = None) -> bytes:
    """The exposition: this process's (or, in multiprocess mode, all processes') counters,
    plus ``app``'s scrape-time gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    text = generate_latest(registry)
    if app is not None:
        state = CollectorRegistry(auto_describe=False)
        state.register(StateCollector(app))
        text += generate_latest(state)
    return text


# --- health ------------------------------------------------------------------------------

def _health_redis(app: Flask):
    """A Redis client with short timeouts (a hung Redis must not hang the probe)."""
    from redis import Redis

    conn = app.extensions.get("cashback_health_redis")
    if conn is None:
        conn = app.extensions["cashback_health_redis"] = Redis.from_url(
            app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=2)
    return conn


def _failure(exc: BaseException) -> dict:
    # the class only: messages may carry host names, URLs or credentials
    return {"ok": False, "error": type(exc).__name__}


def readiness(app: Flask) -> tuple[bool, dict]:
    """Run the readiness checks; ``(ready, report)``.  Never raises."""
    from portal.extensions import db

    checks: dict[str, dict] = {}
    with app.app_context():
        try:
            with db.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            checks["database"] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 — a probe reports, it does not crash
            checks["database"] = _failure(exc)
        if app.config.get("REDIS_URL"):
            try:
                _health_redis(app).ping()
                checks["redis"] = {"ok": True}
            except Exception as exc:  # noqa: BLE001
                checks["redis"] = _failure(exc)
            if checks["redis"]["ok"]:
                try:
                    checks["queues"] = {"ok": True, "depths": queue_depths(app)}
                except Exception as exc:  # noqa: BLE001
                    checks["queues"] = _failure(exc)
        else:
            checks["redis"] = {"ok": True, "skipped": "no REDIS_URL: jobs run in-process"}
        if checks["database"]["ok"]:
            try:
                checks["providers"] = {"ok": True, "states": provider_states(app)}
            except Exception as exc:  # noqa: BLE001
                checks["providers"] = _failure(exc)
    failing = sorted(name for name, check in checks.items() if not check["ok"])
    return not failing, {"status": "ready" if not failing else "unready", "failing": failing, "checks": checks}


def provider_states(app: Flask) -> dict[str, dict]:
    """Each configured provider's switch and breaker (read only: no row is created here).

    A provider that is paused or switched off does not make the app unready: its payouts
    wait; the state is shown so an operator sees it.
    """
    from sqlalchemy.orm import Session

    from portal import providers
    from portal.extensions import db
    from portal.models.types import utcnow
    from portal.services.payouts import provider_available, provider_states as switchboard

    now = utcnow()
    known = providers.all_providers(app)
    with Session(db.engine) as session:
        rows = switchboard(session, known)  # a provider never used yet: as its plugin starts it
    return {code: {"enabled": bool(row.enabled), "breaker": row.breaker,
                   "available": provider_available(row, known[code], now)}
            for code, row in rows.items() if code in known}


blueprint = Blueprint("observability", __name__)


@blueprint.get("/health")
def health() -> Response:
    return jsonify(status="ok")


@blueprint.get("/health/ready")
def ready() -> Response:
    is_ready, report = readiness(current_app._get_current_object())
    response = jsonify(report)
    response.status_code = 200 if is_ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def _metrics_allowed() -> tuple[bool, int]:
    token = current_app.config.get("METRICS_TOKEN") or ""
    if token:
        given = request.headers.get("Authorization", "")
        ok = given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), token.encode())
        return ok, 401
    if current_app.config.get("CASHBACK_ENV") == "production":
        return False, 403  # behind a same-host proxy every visitor is "loopback": a token or nothing
    return request.remote_addr in ("127.0.0.1", "::1"), 403


#: Whether this process already warned about the proxy setting (once is enough).
_PROXY_WARNED: set[str] = set()


def _check_proxy_setting() -> None:
    """Warn once when ``CASHBACK_TRUSTED_PROXIES`` does not match the requests that arrive."""
    if len(_PROXY_WARNED) == 2:
        return
    forwarded = "X-Forwarded-For" in request.headers
    proxies = int(current_app.config.get("TRUSTED_PROXIES") or 0)
    if not proxies and forwarded and request.remote_addr in ("127.0.0.1", "::1") and "none" not in _PROXY_WARNED:
        _PROXY_WARNED.add("none")
        log.warning("requests from loopback carry X-Forwarded-For but CASHBACK_TRUSTED_PROXIES=0: a proxy on this "
                    "host makes every client share its IP (throttling) and look local; set CASHBACK_TRUSTED_PROXIES")
    elif proxies and not forwarded and "set" not in _PROXY_WARNED:
        _PROXY_WARNED.add("set")
        log.warning("CASHBACK_TRUSTED_PROXIES=%s but a request came without X-Forwarded-For: if clients reach the "
                    "app directly they choose their own IP; set it to the number of proxies in front", proxies)


@blueprint.get("/metrics")
def metrics() -> Response:
    allowed, status = _metrics_allowed()
    if not allowed:
        response = Response("forbidden\n", status=status, mimetype="text/plain")
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return Response(metrics_text(current_app._get_current_object()), mimetype=CONTENT_TYPE_LATEST)


# --- request ids ---------------------------------------------------------------------------

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def current_request_id() -> str:
    """The request id of the current request, the RQ job id in a worker, else ``-``."""
    if has_request_context():
        rid = g.get("request_id")
        if rid is None:
            rid = g.request_id = _incoming_id()
        return rid
    try:
        from rq import get_current_job

        job = get_current_job()
    except Exception:  # noqa: BLE001 — no RQ context
        job = None
    return f"job:{job.id}" if job is not None else "-"


def request_id(given: str | None) -> str:
    """The client's ``X-Request-ID`` if it is sane, else a new one."""
    return given if given and _SANE_ID.fullmatch(given) else uuid.uuid4().hex


def _incoming_id() -> str:
    return request_id(request.headers.get(REQUEST_ID_HEADER))


def _start_request() -> None:
    g.request_id = _incoming_id()


def _tag_response(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = current_request_id()
    return response


# --- logs ------------------------------------------------------------------------------------

REDACTED = "[REDACTED]"
#: ``password=…``, ``"client_secret": "…"``, ``Authorization: Bearer …``: the value goes
_PAIR = re.compile(
    r"(?i)(\b[\w-]*(?:password|passwd|secret|token|api[_-]?key|authorization|credentials?)[\w-]*[\"']?"
    r"\s*[:=]\s*[\"']?)((?:bearer|basic|token)\s+)?([^\s\"',;&}]+)")
#: ``scheme://user:password@host``: the password goes
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)([^@\s/]+)(@)", re.I)
_SECRET_KEY_NAMES = re.compile(r"(?i)password|passwd|secret|token|api[_-]?key|credential|private")
#: A payout attempt's key (``payouts.new_attempt_key``): its random part is what makes a forged
#: provider notification about it guesswork, so logs keep only its first 4 hex digits.
_ATTEMPT_KEY = re.compile(r"\b(cb-\d+-\d+-[0-9a-f]{4})[0-9a-f]{12}\b")


def key_hint(key: str) -> str:
    """``cb-12-1-3fa2…``: enough to find the attempt, not enough to speak for it."""
    return _ATTEMPT_KEY.sub(lambda m: m.group(1) + "…", key)


class Redactor:
    """Replaces known secret values and secret-looking pairs in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        # very short values would blank ordinary words: 4 characters at least
        self.secrets.update(s for s in secrets if isinstance(s, str) and len(s) >= 4)
        self._ordered = sorted(self.secrets, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = key_hint(_URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), text))
        return _PAIR.sub(lambda m: m.group(1) + (m.group(2) or "") + REDACTED, text)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Redactor":
        return cls(config_secrets(config))


def config_secrets(config: Mapping[str, Any]) -> list[str]:
    """Every secret value the settings hold."""
    found = [config.get("SECRET_KEY") or "", config.get("METRICS_TOKEN") or ""]
    found += list((config.get("POSTBACK_SECRETS") or {}).values())

    def walk(value: Any, secret: bool) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, secret or bool(_SECRET_KEY_NAMES.search(str(key))))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, secret)
        elif secret and value is not None and not isinstance(value, bool):
            found.append(str(value))

    walk(config.get("PAYOUT_PROVIDER_SETTINGS") or {}, False)
    for key in ("SQLALCHEMY_DATABASE_URI", "REDIS_URL", "RATELIMIT_STORAGE_URI"):
        url = config.get(key) or ""
        if "://" in url:
            try:
                password = sa.make_url(url).password
            except Exception:  # noqa: BLE001 — not a URL SQLAlchemy parses
                password = None
            if password:
                found.append(str(password))
    return [s for s in found if s]


#: Secrets of every app built in this process (tests build several).
REDACTOR = Redactor()


class RedactingFilter(logging.Filter):
    """Redact the rendered message (and string ``extra`` fields) of each record, in place."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 — a bad format string: keep the raw parts
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redactor(message), None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redactor(value))
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                  "request_id", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, then extra fields."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        # the whole line once more: tracebacks and extra values carry text too
        return self.redactor(json.dumps(entry, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = "-"
        return self.redactor(super().format(record))


def make_handler(stream=None, fmt: str = "text", redactor: Redactor = REDACTOR) -> logging.Handler:
    """A stream handler that tags records with the request id and redacts secrets."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter(redactor))
    handler.setFormatter(JsonFormatter(redactor) if fmt == "json" else TextFormatter(redactor))
    handler._cashback = True  # type: ignore[attr-defined]
    return handler


def log_format(config: Mapping[str, Any]) -> str:
    chosen = (config.get("LOG_FORMAT") or "").lower()
    if chosen in ("json", "text"):
        return chosen
    return "json" if config.get("CASHBACK_ENV") == "production" else "text"


def configure_logging(app: Flask) -> None:
    """Install (or replace) this module's root handler; other handlers are left alone.

    Under ``CASHBACK_ENV=testing`` nothing is installed unless ``CASHBACK_LOG_FORMAT`` is
    set (pytest captures logs itself); the secrets are registered either way.
    """
    REDACTOR.add(config_secrets(app.config))
    if app.config.get("CASHBACK_ENV") == "testing" and not app.config.get("LOG_FORMAT"):
        return
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_cashback", False)]:
        root.removeHandler(old)
    root.addHandler(make_handler(fmt=log_format(app.config)))
    root.setLevel(str(app.config.get("LOG_LEVEL") or "INFO").upper())


def init_request_ids(app: Flask) -> None:
    """A request id for each request of ``app``, returned in ``X-Request-ID``."""
    app.before_request(_start_request)
    app.before_request(_check_proxy_setting)
    app.after_request(_tag_response)


def init_app(app: Flask) -> None:
    configure_logging(app)
    if app.config.get("CASHBACK_ENV") == "production" and not app.config.get("METRICS_TOKEN"):
        log.warning("CASHBACK_METRICS_TOKEN is empty: /metrics refuses every scrape in production")
    init_request_ids(app)
    app.register_blueprint(blueprint)
