"""The network postback endpoint's command: verify, parse, store, apply — or reject and log.

Status codes: 401 for a missing/forged signature, an unknown network or a stale
timestamp; 400 for a body that is not a valid event; 409 for an event id replayed with
other data; 413 for an oversized body; 422 when an RUB event's day has no exchange rate
yet (the network retries later).  Every refusal is recorded in ``postback_rejection``
(nothing else changes) for Developers; every accepted event is stored in
``network_event``, replays included as a no-op answer.  Refusals before the sender proved who
it is (401: unknown network, bad signature, stale timestamp; 413) cost an attacker nothing at
the per-IP limit, so only a bounded sample of them is stored: ``POSTBACK_REJECTION_SAMPLE``
rows a minute per process (60; no limit under testing unless set), with a 256-character
excerpt (the metric counts every one).
"""
from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from typing import Mapping

import psycopg
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from portal import observability
from portal.errors import DomainError
from portal.i18n import _l
from portal.models import PostbackRejection
from portal.services import ledger, orders
from portal.services.clicks import hash_ip
from portal.services.fx import NoRate
from portal.services.postback_signing import SignatureError, network_code, verify


class PostbackRejected(DomainError):
    """A refused postback; ``status`` and ``code`` say why."""


def _reject(status: int, code: str, message, errors=None) -> PostbackRejected:
    err = PostbackRejected(message, code=code, errors=errors)
    err.status = status
    return err


#: Statuses of refusals before the sender authenticated (anyone can send them).
UNAUTHENTICATED = frozenset({401, 413})
#: Unauthenticated refusals stored per minute and process unless POSTBACK_REJECTION_SAMPLE says.
DEFAULT_SAMPLE = 60
#: Body characters kept of a sampled unauthenticated refusal (an authenticated one keeps 2,000).
UNAUTHENTICATED_EXCERPT = 256


class _Sample:
    """At most ``limit`` unauthenticated refusals stored per minute by this process."""

    def __init__(self) -> None:
        self._lock, self._minute, self._stored = threading.Lock(), -1, 0

    def take(self, limit: int, now: int) -> bool:
        if limit <= 0:
            return True
        with self._lock:
            if now // 60 != self._minute:
                self._minute, self._stored = now // 60, 0
            if self._stored >= limit:
                return False
            self._stored += 1
            return True


SAMPLE = _Sample()


def _sample_limit(config: Mapping) -> int:
    """Unauthenticated refusals stored a minute; 0 (no limit) by default under testing."""
    limit = config.get("POSTBACK_REJECTION_SAMPLE")
    if limit is None:
        return 0 if config.get("CASHBACK_ENV") == "testing" else DEFAULT_SAMPLE
    return int(limit)


def _check(body: bytes, headers: Mapping[str, str], config: Mapping, now: int) -> orders.OrderEvent:
    if len(body) > int(config["POSTBACK_MAX_BYTES"]):
        raise _reject(413, "body_too_large", _l("The postback body is too large."))
    network = network_code(headers)
    secret = config["POSTBACK_SECRETS"].get(network) if network else None
    if secret is None:
        raise _reject(401, "unknown_network", _l("Unknown or missing X-Cashback-Network header."))
    try:
        verify(secret.encode(), body, headers, now=now, window=int(config["POSTBACK_WINDOW_SECONDS"]))
    except SignatureError as err:
        raise _reject(401, str(err.code), err.message) from None
    try:
        text = body.decode("utf-8")
        data = json.loads(text, parse_float=Decimal)
    except (UnicodeDecodeError, ValueError):
        raise _reject(400, "malformed_body", _l("The body is not valid UTF-8 JSON.")) from None
    if "\x00" in text or "\\u0000" in text.lower():  # a NUL cannot be stored (PostgreSQL text)
        raise _reject(400, "malformed_body", _l("The body is not valid UTF-8 JSON."))
    try:
        return orders.parse_event(data, network)
    except DomainError as err:
        raise _reject(400, err.code, err.message, err.errors) from None


def apply_direct(engine: Engine, event: orders.OrderEvent, config: Mapping) -> orders.EventOutcome | None:
    """PostgreSQL: the event applied on a pooled DBAPI connection of its own as ONE statement in
    autocommit — the function call is its own transaction, so no ``BEGIN`` and no ``COMMIT`` round
    trip, no ORM session, no SQLAlchemy statement machinery (they cost more CPU than the function
    itself); the answer comes back only once it is committed.  None when there is nothing to gain
    (SQLite) or when the function handed the event back (it undid its work): then the session's
    path runs."""
    if engine.dialect.name != "postgresql":
        return None
    for attempt in (1, 2):
        connection = engine.raw_connection()
        driver = connection.driver_connection
        try:
            driver.autocommit = True
            outcome = orders.apply_on_connection(driver, event, config["DEFAULT_CASHBACK_RATE"], orders.NETWORK_ACTOR,
                                                 ledger.hot_shards())
            break
        except psycopg.OperationalError:
            # The pool does not ping (portal.api.postback.network_app): a connection the server
            # dropped (a restart, an idle timeout) fails here.  The call is idempotent — if it did
            # commit, the second one answers it as a duplicate — so it runs once more on a fresh one.
            if not driver.closed or attempt == 2:
                raise
            connection.invalidate()
            engine.pool.dispose()  # the pool's other connections died with this one
        finally:
            if not driver.closed:
                driver.autocommit = False  # as the pool hands connections out
            connection.close()  # back to the pool (a no-op after invalidate)
    if outcome is not None and outcome.posting_kind:
        observability.LEDGER_POSTINGS.labels(kind=outcome.posting_kind).inc()
    return outcome


def accept(engine: Engine, body: bytes, headers: Mapping[str, str], config: Mapping,
           now: int | None = None) -> tuple[orders.EventOutcome | None, bool]:
    """The common case whole, without a session: a valid event applied by :func:`apply_direct`
    (stored, applied, committed): ``(outcome, False)``.  ``(None, handed_back)`` when anything
    else has to happen and nothing was changed — a refusal to record and answer, a replay with
    other data, or (``handed_back``) an event the function handed back to the Python path: the
    caller then runs :func:`process_postback` (``server_side=not handed_back``), which checks
    the postback again and does it (the web endpoint's fast path: ``portal.api.postback``).
    A database error propagates."""
    try:
        event = _check(body, headers, config, int(time.time()) if now is None else now)
        outcome = apply_direct(engine, event, config)
    except (PostbackRejected, orders.EventConflict):
        return None, False
    return outcome, outcome is None


def process_postback(session: Session, *, body: bytes, headers: Mapping[str, str], remote_ip: str | None,
                     config: Mapping, now: int | None = None, server_side: bool = True) -> orders.EventOutcome:
    """Handle one postback and commit; on refusal record it, commit that, and raise.
    ``server_side=False``: the caller saw ``apply_order_event()`` hand this event back, so it
    is not run again (:func:`accept`)."""
    now = int(time.time()) if now is None else now
    try:
        event = _check(body, headers, config, now)
        outcome = apply_direct(session.get_bind(), event, config) if server_side else None
        if outcome is None:  # SQLite, or the function handed it back (its work undone): the Python path
            outcome = orders.receive_event(session, event, default_rate=config["DEFAULT_CASHBACK_RATE"],
                                           server_side=False)
            session.commit()
        return outcome
    except (PostbackRejected, orders.EventConflict, NoRate) as err:
        session.rollback()
        if not isinstance(err, PostbackRejected):
            status = 409 if isinstance(err, orders.EventConflict) else 422
            err = _reject(status, err.code, err.message)
        anonymous = err.status in UNAUTHENTICATED
        if not anonymous or SAMPLE.take(_sample_limit(config), now):
            session.add(PostbackRejection(
                network=(network_code(headers) or "").replace("\x00", "")[:30] or None, reason=err.code[:40],
                message=str(err.message)[:400], http_status=err.status,
                ip_hash=hash_ip(remote_ip, config["SECRET_KEY"]),
                body_excerpt=body[:UNAUTHENTICATED_EXCERPT if anonymous else 2000]
                .decode("utf-8", "replace").replace("\x00", "\ufffd")))
            session.commit()
        observability.POSTBACK_REJECTIONS.labels(reason=err.code[:40]).inc()
        raise err
    except Exception:
        session.rollback()
        raise
