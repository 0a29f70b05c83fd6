"""Throttling: login attempts and the public endpoints, per client IP (Flask-Limiter).

FAB 5.3 already builds a Flask-Limiter ``Limiter`` (``appbuilder.sm.limiter``) from the
``RATELIMIT_*`` settings while ``AppBuilder.init_app`` runs; this module reuses it and puts
our limits on the blueprints once the views are registered (:func:`init_app`):

* the login form (``POST /login/``) and the JWT login (``POST /api/v1/security/login``)
  share one bucket per IP: ``CASHBACK_LOGIN_RATE_LIMIT`` (``10 per minute``); the token
  refresh is not counted;
* ``POST /api/v1/links/check`` (public): ``CASHBACK_LINKS_RATE_LIMIT`` (``120 per minute``);
* ``POST /api/v1/network/postback``: ``CASHBACK_POSTBACK_RATE_LIMIT`` (``1000 per second``)
  counts *refused* postbacks per IP (:func:`refused_postback`): a signed event is never
  throttled — on a sale day the network pushes thousands a second from a few addresses, and
  checking a counter before each would cost every event a storage round trip — while a flood
  of forged or broken ones gets 429 once it passes the limit.

A refused request gets 429, ``Retry-After`` (seconds) and a translated message: the API's
one JSON error shape under ``/api/``, a short page elsewhere.

Settings (``config.py``), resolved by :func:`resolve_settings` before the app is built:

* ``CASHBACK_RATE_LIMITS`` — ``1``/``0``; empty: on, except under ``CASHBACK_ENV=testing``
  (the suite logs in hundreds of times from 127.0.0.1; the throttling tests switch it on);
* ``CASHBACK_RATE_LIMIT_STORAGE`` — a ``limits`` storage URI; empty: ``REDIS_URL`` when set
  (counts shared by every worker and host), else ``memory://`` (per process);
* ``CASHBACK_RATE_LIMIT_PREFIX`` — prefix of the counters' keys (``cashback``): deployments
  or test runs sharing one Redis do not count each other's requests;
* ``CASHBACK_TRUSTED_PROXIES`` — behind N reverse proxies the client IP is taken from
  ``X-Forwarded-For`` (werkzeug ``ProxyFix``); with 0 (the default) every client behind a
  proxy would share the proxy's bucket.

If the storage is unreachable the limiter falls back to memory and logs it: a Redis outage
never locks everyone out of the login form.
"""
from __future__ import annotations

import math
import time
from typing import Any, MutableMapping

from flask import Flask, Response, current_app, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from limits import parse as parse_limit
from markupsafe import escape

from portal.errors import error_body
from portal.i18n import API_PREFIX, _

#: Blueprint names of FAB's views/APIs (the class name) and our APIs.
SECURITY_API = "SecurityApi"
LINKS_API = "LinksApi"


def resolve_settings(settings: MutableMapping[str, Any]) -> None:
    """Fill in the automatic values (after the test/explicit overrides are applied)."""
    if settings.get("RATELIMIT_ENABLED") is None:
        settings["RATELIMIT_ENABLED"] = settings.get("CASHBACK_ENV") != "testing"
    if not settings.get("RATELIMIT_STORAGE_URI"):
        settings["RATELIMIT_STORAGE_URI"] = settings.get("REDIS_URL") or "memory://"


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _links_limit() -> str:
    return current_app.config["LINKS_RATE_LIMIT"]


def _is_refresh() -> bool:
    return request.endpoint == f"{SECURITY_API}.refresh"


def init_app(app: Flask) -> None:
    """Put the limits on the registered blueprints and answer 429 in our words."""
    app.register_error_handler(RateLimitExceeded, _too_many)
    limiter = app.appbuilder.sm.limiter
    if not limiter.enabled:
        return
    auth_view = app.appbuilder.sm.auth_view
    limiter.shared_limit(_login_limit, scope="login", methods=["POST"])(auth_view.blueprint)
    if SECURITY_API in app.blueprints:
        limiter.shared_limit(_login_limit, scope="login", methods=["POST"],
                             exempt_when=_is_refresh)(app.blueprints[SECURITY_API])
    if LINKS_API in app.blueprints:
        limiter.limit(_links_limit, methods=["POST"])(app.blueprints[LINKS_API])


#: The counter of refused postbacks (one per client IP).
POSTBACK_SCOPE = "postback-refused"


def _refusal_counter():
    """The ``limits`` rate limiter (fixed window) over the ``RATELIMIT_STORAGE_URI`` storage —
    Redis in production, so every worker and host counts together — made once per app.  No
    Flask-Limiter hook: a signed postback must not pay a limit check (see the module docstring)."""
    counter = current_app.extensions.get("postback_refusals")
    if counter is None:
        from limits.storage import storage_from_string
        from limits.strategies import FixedWindowRateLimiter

        config = current_app.config
        storage = storage_from_string(config.get("RATELIMIT_STORAGE_URI") or "memory://",
                                      **(config.get("RATELIMIT_STORAGE_OPTIONS") or {}))
        counter = current_app.extensions["postback_refusals"] = FixedWindowRateLimiter(storage)
    return counter


def refused_postback(remote_ip: str | None) -> Response | None:
    """Count one refused postback from ``remote_ip``; a 429 answer once the IP is over
    ``POSTBACK_RATE_LIMIT`` in the window (None: answer the refusal as usual).

    Storage trouble never refuses anything: the refusal stands as it is."""
    config = current_app.config
    if not config.get("RATELIMIT_ENABLED"):
        return None
    item = parse_limit(config["POSTBACK_RATE_LIMIT"])
    key = (config.get("RATELIMIT_KEY_PREFIX") or "", POSTBACK_SCOPE, remote_ip or "-")
    try:
        counter = _refusal_counter()
        if counter.hit(item, *key):
            return None
        reset = counter.get_window_stats(item, *key).reset_time
    except Exception:  # noqa: BLE001 - the storage is down: never refuse for it
        current_app.logger.warning("postback refusal counter unavailable", exc_info=True)
        return None
    window = max(1, int(item.get_expiry()))
    seconds = min(window, max(1, math.ceil(reset - time.time())))
    message = _("Too many requests from your address. Please try again in %(seconds)s seconds.", seconds=seconds)
    response = jsonify(error_body(429, "rate_limited", message))
    response.status_code = 429
    response.headers["Retry-After"] = str(seconds)
    return response


def _retry_after(err: RateLimitExceeded) -> int:
    """Seconds until the window resets (at most the window: ``reset_at`` is rounded up)."""
    window = max(1, int(err.limit.limit.get_expiry()))
    limiter = next(iter(current_app.extensions.get("limiter", ())), None)  # the portal's (FAB's) or the lean app's
    limit = limiter.current_limit if limiter is not None else None
    if limit is not None:
        return min(window, max(1, math.ceil(limit.reset_at - time.time())))
    return window


def _too_many(err: RateLimitExceeded) -> Response:
    seconds = _retry_after(err)
    message = _("Too many requests from your address. Please try again in %(seconds)s seconds.",
                seconds=seconds)
    if request.path.startswith(API_PREFIX):
        response = jsonify(error_body(429, "rate_limited", message))
    else:
        title = _("Too many attempts")
        response = Response(f"<!doctype html><title>{escape(title)}</title><h1>{escape(title)}</h1>"
                            f"<p>{escape(message)}</p>", mimetype="text/html")
    response.status_code = 429
    response.headers["Retry-After"] = str(seconds)
    return response
