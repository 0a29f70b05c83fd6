"""The network postback endpoint: ``POST /api/v1/network/postback``.

Public: the HMAC signature is the authentication (no FAB login, no JWT, no CSRF token).
:func:`answer` reads the raw body bytes (the signature covers them byte for byte, so
nothing may parse or re-encode them first) and hands everything to
``portal.services.postbacks.process_postback``, which verifies, stores, applies and
commits — or records the refusal and raises ``PostbackRejected``.

The lean path.  A network pushes thousands of events a second on a sale day, and none of
them needs what a staff page needs.  So ``create_app`` puts :class:`NetworkDispatcher` in
front of the portal: ``POST`` to this path goes to :func:`network_app`, a bare Flask app
sharing the portal's settings object and database models — its own connection pool, no
session cookie (a null session), no FAB security manager or user loading, no template
context, no CSRF hook; the locale is only worked out when an error message is rendered
(``Accept-Language``, as for the whole API).  It keeps what the endpoint needs: the
throttle (refused postbacks counted per IP: ``portal.limits.refused_postback``), request ids, the one error shape
(``portal.errors.set_error_handlers``) and :func:`answer` itself.  Every other method on
the path still reaches the portal (``GET`` answers 405), and :class:`NetworkPostbackApi`
stays registered with FAB: it publishes the endpoint in the OpenAPI spec and answers
through the same :func:`answer` if the dispatcher is not in front.

Below even the lean app, the dispatcher answers the common case itself (a signed, valid event
the database function applies whole: ``postbacks.accept``) and hands everything else to the
lean app unchanged (:class:`NetworkDispatcher`).
"""
from __future__ import annotations

import io
import json

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.sessions import SecureCookieSessionInterface
from flask_appbuilder import AppBuilder
from flask_appbuilder.api import expose
from flask_babel import Babel
from sqlalchemy.exc import DBAPIError
from werkzeug.datastructures import EnvironHeaders

from portal import i18n, limits, observability
from portal.api.base import CashbackApi
from portal.errors import error_body, set_error_handlers
from portal.extensions import db
from portal.services import postbacks

#: The endpoint's path (the FAB API below publishes it under the same one).
URL = "/api/v1/network/postback"
#: Set in the WSGI environ by :class:`NetworkDispatcher` when ``apply_order_event()`` handed the
#: event back: :func:`answer` then does not run the function again.
HANDED_BACK = "cashback.postback.handed_back"


def _read_body(limit: int) -> bytes:
    """The raw body, as received.

    A body announced larger than ``limit`` is not buffered whole: its first ``limit + 1``
    bytes are enough for ``process_postback`` to refuse it with 413 (and log an excerpt).
    A body without a length (chunked) is read the same bounded way.
    """
    length = request.content_length
    if length is None or length > limit:
        return request.stream.read(limit + 1)
    return request.get_data(cache=False)


class NetworkPostbackApi(CashbackApi):
    """Affiliate networks report orders here (paid, confirmed, cancelled, refunded)."""

    resource_name = "network"
    openapi_spec_tag = "Network postback"
    #: No ``@protect``: the HMAC is the authentication; no FAB permission exists for it.
    allow_browser_login = False
    csrf_exempt = True

    @expose("/postback", methods=["POST"])
    def postback(self) -> Response:
        """Receive one signed order event from an affiliate network.
        ---
        post:
          summary: Receive a signed network postback (order event)
          description: >-
            The body is raw JSON signed with HMAC-SHA256 under the shared secret of the network:
            `X-Cashback-Signature: sha256=<hex>` where hex = HMAC-SHA256(secret,
            `<X-Cashback-Timestamp>.<raw body bytes>`). The timestamp must be within
            CASHBACK_POSTBACK_WINDOW_SECONDS (300) of the server clock. Events are
            idempotent by (network, event_id): an exact replay answers 200 with
            `duplicate: true`; the same event_id with other data answers 409. Every refusal
            is logged for Developers and changes nothing else.
          security: []
          parameters:
          - in: header
            name: X-Cashback-Network
            required: true
            description: The network code; selects the shared secret (e.g. `epn`).
            schema:
              type: string
              example: epn
          - in: header
            name: X-Cashback-Timestamp
            required: true
            description: Unix time in whole seconds when the request was signed.
            schema:
              type: string
              pattern: '^[0-9]{1,12}$'
              example: '1795600000'
          - in: header
            name: X-Cashback-Signature
            required: true
            description: >-
              `sha256=` followed by the lowercase hex HMAC-SHA256 of
              `<timestamp>.<raw body>` under the network's secret.
            schema:
              type: string
              pattern: '^sha256=[0-9a-fA-F]{64}$'
          requestBody:
            required: true
            description: At most CASHBACK_POSTBACK_MAX_BYTES (16384) bytes of UTF-8 JSON.
            content:
              application/json:
                schema:
                  type: object
                  required: [event_id, order_id, status, order_amount, currency, commission, event_time]
                  properties:
                    event_id:
                      type: string
                      maxLength: 120
                      example: '8100001234567:paid'
                      description: The network's id of this event; (network, event_id) is unique.
                    order_id:
                      type: string
                      maxLength: 80
                      example: '8100001234567'
                      description: The network's order number.
                    sub_id:
                      type: string
                      maxLength: 200
                      description: Our click's sub-id as the network saw it (unknown ones make an orphan order).
                    status:
                      type: string
                      enum: [paid, confirmed, cancelled, refunded]
                    order_amount:
                      type: string
                      description: Decimal amount as a string (or a JSON number), at most 6 decimal places.
                      example: '100.00'
                    currency:
                      type: string
                      enum: [USD, RUB]
                    commission:
                      type: string
                      description: Our commission from the network, in `currency`.
                      example: '8.00'
                    refunded_amount:
                      type: string
                      description: Cumulative refunded amount; required when status is refunded.
                      example: '40.00'
                    event_time:
                      type: string
                      format: date-time
                      example: '2026-11-25T10:00:00Z'
                    channel:
                      type: string
                      enum: [web, app]
                    coupon_used:
                      type: boolean
                    items_in_cart_before_click:
                      type: boolean
          responses:
            200:
              description: Accepted (applied, stale, orphan) or an exact replay (duplicate).
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      ok:
                        type: boolean
                        enum: [true]
                      outcome:
                        type: string
                        enum: [applied, stale, orphan]
                      duplicate:
                        type: boolean
                      order_id:
                        type: integer
                        nullable: true
            400:
              description: The body is not valid UTF-8 JSON or not a valid event (`errors` lists fields).
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/ErrorBody'
            401:
              description: Unknown network, missing/forged signature or stale timestamp.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/ErrorBody'
            409:
              description: This event id was already received with different data.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/ErrorBody'
            413:
              description: The body is larger than the limit.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/ErrorBody'
            422:
              description: An RUB event's day has no exchange rate yet; retry later.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/ErrorBody'
        """
        return answer()

    def add_apispec_components(self, api_spec) -> None:
        super().add_apispec_components(api_spec)
        if "ErrorBody" not in api_spec.components.schemas:
            api_spec.components.schema("ErrorBody", ERROR_BODY_SCHEMA)


#: The one JSON error shape (``portal.errors.error_body``) as an OpenAPI schema.
ERROR_BODY_SCHEMA = {
    "type": "object",
    "required": ["ok", "status", "error", "errors"],
    "properties": {
        "ok": {"type": "boolean", "enum": [False]},
        "status": {"type": "integer"},
        "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}}}},
    },
}


def answer() -> Response:
    """Handle the current request's postback (the lean app and the FAB API alike)."""
    config = current_app.config
    body = _read_body(int(config["POSTBACK_MAX_BYTES"]))
    server_side = not request.environ.get(HANDED_BACK)
    try:
        try:
            outcome = postbacks.process_postback(db.session, body=body, headers=request.headers,
                                                 remote_ip=request.remote_addr, config=config, server_side=server_side)
        except DBAPIError as err:
            # The lean app's pool does not ping (see network_app): a connection the server had
            # dropped fails once, SQLAlchemy then renews the pool's connections, and the
            # postback — idempotent by (network, event_id) — is handled once more.
            if not err.connection_invalidated:
                raise
            db.session.remove()
            outcome = postbacks.process_postback(db.session, body=body, headers=request.headers,
                                                 remote_ip=request.remote_addr, config=config, server_side=server_side)
    except postbacks.PostbackRejected as err:
        throttled = limits.refused_postback(request.remote_addr)
        if throttled is not None:
            return throttled
        response = jsonify(error_body(err.status, err.code, err.message, err.errors))
        response.status_code = err.status
        return response
    return jsonify(ok=True, outcome=outcome.outcome, duplicate=outcome.duplicate, order_id=outcome.order_id)


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_api(NetworkPostbackApi)


# --- the lean path ------------------------------------------------------------------------------

class _NoSession(SecureCookieSessionInterface):
    """No cookie is read or written: a network sends none and gets none."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response) -> None:
        return None


def network_app(portal: Flask) -> Flask:
    """The bare Flask app that serves ``POST`` :data:`URL` (see the module docstring)."""
    app = Flask(__name__)
    app.config = portal.config  # one settings object: a change to the portal's applies here too
    app.session_interface = _NoSession()
    # The models are shared; the pool is this app's, and it does not ping a connection on each
    # checkout (a round trip per event): the direct path retries once on a connection that
    # turns out dead (``postbacks.apply_direct``), and SQLAlchemy drops the pool's other
    # connections on the first disconnect it sees.
    options = portal.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}
    portal.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**options, "pool_pre_ping": False}
    try:
        db.init_app(app)
    finally:
        portal.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    Babel(app, locale_selector=i18n.select_locale)
    set_error_handlers(app)
    observability.init_request_ids(app)
    blueprint = Blueprint("network_postback", __name__)
    blueprint.add_url_rule(URL, "postback", answer, methods=["POST"])
    app.register_blueprint(blueprint)
    return app


class NetworkDispatcher:
    """WSGI: ``POST`` :data:`URL` to the network's side, every other request to the portal.

    The network's side first tries the common case below Flask (:meth:`fast`): a postback with a
    length, a valid signature and an event the database function applies whole is answered
    straight from ``postbacks.accept`` — the same check and the same statement as the lean app's
    :func:`answer`, without a request context, app context, URL routing, before/after hooks or a
    Response object (they were a third of the app's CPU per event).  Anything else — a refusal,
    a conflict, an event handed back to the Python path, a chunked or oversized body, an error —
    changed nothing and goes to the lean app with the body as read, which checks it again and
    answers it with the one error shape."""

    def __init__(self, portal_wsgi, network: Flask) -> None:
        self.portal_wsgi, self.network = portal_wsgi, network
        self._engine = None

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == URL:
            body = self.fast(environ)
            if body is None:
                return self.network.wsgi_app(environ, start_response)
            start_response("200 OK", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                (observability.REQUEST_ID_HEADER, observability.request_id(environ.get("HTTP_X_REQUEST_ID")))])
            return [body]
        return self.portal_wsgi(environ, start_response)

    def fast(self, environ) -> bytes | None:
        """The 200 answer's body, or None (then the lean app answers; ``wsgi.input`` is rewound)."""
        config = self.network.config
        length = environ.get("CONTENT_LENGTH") or ""
        if not length.isdigit() or "HTTP_TRANSFER_ENCODING" in environ:
            return None
        length = int(length)
        if length > int(config["POSTBACK_MAX_BYTES"]):
            return None
        try:
            body = environ["wsgi.input"].read(length)
        except OSError:  # the sender went away mid-body: the lean app meets the same stream
            return None
        environ["wsgi.input"] = io.BytesIO(body)
        if len(body) != length:
            return None
        if self._engine is None:
            with self.network.app_context():
                self._engine = db.engine
        try:
            outcome, handed_back = postbacks.accept(self._engine, body, EnvironHeaders(environ), config)
        except Exception:  # noqa: BLE001 — the lean app meets it again, logs it and answers it
            return None
        if outcome is None:
            if handed_back:  # the lean app goes straight to the Python path: the function ran once
                environ[HANDED_BACK] = True
            return None
        return _ANSWER.encode(dict(ok=True, outcome=outcome.outcome, duplicate=outcome.duplicate,
                                   order_id=outcome.order_id)).encode() + b"\n"


#: The 200 answer as ``jsonify`` writes it outside debug mode (keys sorted, compact, a newline).
_ANSWER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
