"""The base of every REST API of the portal: FAB's BaseApi speaking our one error shape.

FAB answers auth failures and bad input with its own bodies (``{"msg": …}``); these
overrides route them through ``portal.errors.error_body`` so a client parses one shape
(``ok``, ``status``, ``error{code,message}``, ``errors[]``) whatever went wrong.
"""
from __future__ import annotations

from flask import Response, jsonify
from flask_appbuilder.api import BaseApi

from portal.errors import error_body
from portal.i18n import _


class CashbackApi(BaseApi):
    """Subclass this for every API (``resource_name``, ``class_permission_name``, routes)."""

    #: the OpenAPI spec is published by FAB at /api/v1/_openapi
    openapi_spec_tag = None

    def _error(self, status: int, code: str, message) -> Response:
        response = jsonify(error_body(status, code, message))
        response.status_code = status
        return response

    def response_400(self, message=None) -> Response:
        return self._error(400, "bad_request", message or _("The request is not valid."))

    def response_401(self) -> Response:
        return self._error(401, "unauthorized", _("Log in first: the access token is missing or expired."))

    def response_403(self) -> Response:
        return self._error(403, "forbidden", _("You are not allowed to do this."))

    def response_404(self) -> Response:
        return self._error(404, "not_found", _("Not found."))

    def response_422(self, message=None) -> Response:
        return self._error(422, "invalid", message or _("Some fields are not valid."))

    def response_500(self, message=None) -> Response:
        return self._error(500, "internal_error", _("Something went wrong on our side. Please try again later."))
