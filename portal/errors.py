"""Domain errors and the one JSON error shape of the API.

Every domain error carries an HTTP status, a stable machine code and a translatable
message.  ``set_error_handlers(app)`` turns them, and plain HTTP errors under ``/api/``,
into one shape (pinned by ``tests/unit/test_error_shape.py``)::

    {"ok": false, "status": 409, "error": {"code": "...", "message": "..."}, "errors": [...]}

``errors`` lists field-level problems (``{"field": ..., "code": ..., "message": ...}``)
and is empty when there are none.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from portal.i18n import _l


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


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def set_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(err: DomainError):
        return jsonify(error_body(err.status, err.code, err.message, err.errors)), err.status

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        if not _wants_json():
            return err
        code = (err.name or "error").lower().replace(" ", "_")
        return jsonify(error_body(err.code or 500, code, err.description or err.name)), err.code or 500
