"""Domain errors and the one JSON error shape of the API.

Every domain error carries an HTTP status, a stable machine code and a translatable
message.  ``set_error_handlers(app)`` turns them, and plain HTTP errors under ``/api/``,
into one shape (pinned by ``tests/unit/test_error_shape.py``)::

    {"ok": false, "status": 409, "error": {"code": "...", "message": "..."}, "errors": [...]}

``errors`` lists field-level problems (``{"field": ..., "code": ..., "message": ...}``)
and is empty when there are none.

Errors that never reach our handlers (FAB's own APIs — ``/api/v1/security/login``,
``/api/v1/_openapi`` — and Flask-JWT-Extended, which answer ``{"message"}`` / ``{"msg"}``)
are reshaped on the way out by an ``after_request`` hook, so a client parses one shape for
every 4xx/5xx under ``/api/``.

``protect_forms`` (called by the factory) turns on Flask-WTF's ``CSRFProtect`` for the whole portal: every
POST of a portal page is checked before its view runs (a view that forgets to validate its
form is still protected); a missing or stale token is 400.  The REST APIs keep FAB's
``csrf_exempt`` (JWT, or a session with a JSON-only body a cross-site form cannot send).
"""
from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from markupsafe import escape
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException

from portal.i18n import _, _l


class DomainError(Exception):
    """Base of every expected, explainable refusal."""

    status: int = 400
    code: str = "error"
    default_message = _l("The request could not be processed.")

    def __init__(self, message: Any = None, *, code: str | None = None,
                 errors: list[dict] | None = None, **details: Any) -> None:
        self.message = message if message is not None else self.default_message
        if code is not None:
            self.code = code
        self.errors = errors or []
        self.details = details
        super().__init__(str(self.message))


class NotFound(DomainError):
    status = 404
    code = "not_found"
    default_message = _l("Not found.")


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Invalid(DomainError):
    status = 422
    code = "invalid"
    default_message = _l("Some fields are not valid.")


def error_body(status: int, code: str, message: Any, errors: list[dict] | None = None) -> dict:
    return {
        "ok": False,
        "status": status,
        "error": {"code": code, "message": str(message)},
        "errors": [{k: str(v) if k == "message" else v for k, v in e.items()} for e in (errors or [])],
    }


#: PostgreSQL's SQLSTATE of "numeric value out of range" (e.g. an id beyond INTEGER).
NUMERIC_OUT_OF_RANGE = "22003"


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def set_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(err: DomainError):
        return jsonify(error_body(err.status, err.code, err.message, err.errors)), err.status

    @app.errorhandler(DataError)
    def _data(err: DataError):
        """Input the database cannot hold is the client's mistake, not a 500: an id beyond the
        column's range (``/claims/99999999999999``) is a row that cannot exist (404); a NUL
        character in a text (``"\\u0000"`` in JSON) is refused (422).  Anything else the
        database refuses stays an error."""
        from portal.extensions import db

        db.session.rollback()
        if getattr(err.orig, "sqlstate", None) == NUMERIC_OUT_OF_RANGE:
            if _wants_json():
                return jsonify(error_body(404, "not_found", NotFound.default_message)), 404
            return error_page(404)
        if "NUL" in str(err.orig):
            message = _("Text may not contain NUL characters.")
            if _wants_json():
                return jsonify(error_body(422, "nul_character", message)), 422
            return error_page(422, message)
        raise err

    @app.errorhandler(CSRFError)
    def _csrf(err: CSRFError):
        message = _("The form has expired. Reload the page and try again.")
        if _wants_json():
            return jsonify(error_body(400, "csrf_failed", message)), 400
        return error_page(400, message)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        if not _wants_json():
            if (err.code or 500) < 400 or err.response is not None:  # routing redirects, ready responses
                return err
            return error_page(err.code or 500, headers=err.get_headers())
        status = err.code or 500
        code = _status_code_name(status, err.name)
        message = err.description or err.name
        if status >= 500:  # never echo internals
            message = _("Something went wrong on our side. Please try again later.")
        response = jsonify(error_body(status, code, message))
        response.status_code = status
        for name, value in err.get_headers():  # Allow (405), Retry-After (429, 503), WWW-Authenticate…
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response

    @app.after_request
    def _one_shape(response: Response) -> Response:
        return reshape_error(response) if _wants_json() else response



#: The portal's error pages: (title, what happened) per status; other statuses use 400's or 500's.
ERROR_PAGES: dict[int, tuple[Any, Any]] = {
    400: (_l("Bad request"), _l("The request could not be processed.")),
    403: (_l("Access denied"), _l("Your login may not open this page. If you need it, ask an administrator.")),
    404: (_l("Page not found"), _l("There is no such page: the address may be mistyped, or the page was removed.")),
    405: (_l("Not allowed"), _l("This page cannot be used that way.")),
    413: (_l("Too large"), _l("The file or form is larger than we accept.")),
    422: (_l("Not accepted"), _l("Some fields are not valid.")),
    429: (_l("Too many attempts"), _l("Too many requests in a short time. Wait a little and try again.")),
    500: (_l("Something went wrong"), _l("Something went wrong on our side. Please try again later.")),
}


def error_page(status: int, message: Any = None, headers: Any = ()) -> Response:
    """An error as a page of the portal (its layout, navbar and language) with a way back:
    the start page, the previous page, and the login form for an anonymous visitor."""
    from flask import current_app, render_template, url_for
    from flask_login import current_user

    title, text = ERROR_PAGES.get(status) or ERROR_PAGES[500 if status >= 500 else 400]
    appbuilder = current_app.appbuilder
    if status >= 500:
        from portal.extensions import db

        db.session.rollback()  # whatever failed must not break the page's own queries
    try:
        anonymous = not (current_user and current_user.is_authenticated)
        body = render_template("errors/page.html", base_template=appbuilder.base_template, appbuilder=appbuilder,
                               status=status, title=title, message=message or text,
                               home_url=url_for("HomeView.index"),
                               login_url=appbuilder.get_url_for_login if anonymous else None)
    except Exception:  # the layout itself failed (database down…): a bare page, still in the user's language
        body = (f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(str(title))}</title></head>'
                f'<body><h1>{status} · {escape(str(title))}</h1><p>{escape(str(message or text))}</p>'
                f'<p><a href="/">{escape(_("To the start page"))}</a></p></body></html>')
    response = Response(body, status=status, mimetype="text/html")
    for name, value in headers:  # Allow (405), Retry-After (429, 503)…
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def _status_code_name(status: int, name: str | None = None) -> str:
    """``not_found``, ``method_not_allowed``… from the HTTP status (its reason phrase)."""
    from werkzeug.http import HTTP_STATUS_CODES

    known = {401: "unauthorized", 403: "forbidden", 404: "not_found", 413: "body_too_large", 422: "invalid",
             500: "internal_error"}
    phrase = name or HTTP_STATUS_CODES.get(status) or "error"
    return known.get(status) or phrase.lower().replace(" ", "_").replace("-", "_")


def _is_error_body(body: Any, status: int) -> bool:
    return (isinstance(body, dict) and set(body) == {"ok", "status", "error", "errors"} and body["ok"] is False
            and body["status"] == status and isinstance(body["error"], dict))


def reshape_error(response: Response) -> Response:
    """A 4xx/5xx under ``/api/`` not in the one shape (FAB's ``{"message"}``, JWT-Extended's
    ``{"msg"}``, an HTML page) rebuilt in it; other responses untouched.

    FAB's marshmallow errors (``{"message": {"field": ["…"]}}``) become ``errors[]``.
    """
    status = response.status_code
    if status < 400 or response.direct_passthrough:
        return response
    body = response.get_json(silent=True) if response.is_json else None
    if _is_error_body(body, status):
        return response
    raw = body.get("message", body.get("msg")) if isinstance(body, dict) else None
    errors: list[dict] = []
    if isinstance(raw, dict):
        errors = [{"field": str(field), "code": "invalid",
                   "message": "; ".join(map(str, problems)) if isinstance(problems, list) else str(problems)}
                  for field, problems in raw.items()]
        raw = None
    if status >= 500 or not isinstance(raw, str) or not raw.strip():
        from werkzeug.http import HTTP_STATUS_CODES

        raw = (_("Something went wrong on our side. Please try again later.") if status >= 500
               else _("Some fields are not valid.") if errors else HTTP_STATUS_CODES.get(status, "Error"))
    new = jsonify(error_body(status, _status_code_name(status), raw, errors))
    new.status_code = status
    for name, value in response.headers.items():  # keep Allow, Retry-After, WWW-Authenticate, rate limits…
        if name.lower() not in ("content-type", "content-length"):
            new.headers[name] = value
    return new


def protect_forms(app: Flask) -> None:
    """CSRF checked on every portal POST; the APIs FAB marks ``csrf_exempt`` stay exempt."""
    csrf = app.extensions.get("csrf") or CSRFProtect(app)
    appbuilder = app.extensions.get("appbuilder") or getattr(app, "appbuilder", None)
    for view in getattr(appbuilder, "baseviews", []):
        if getattr(view, "csrf_exempt", False) and getattr(view, "blueprint", None) is not None:
            csrf.exempt(view.blueprint)
