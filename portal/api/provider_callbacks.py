"""Provider notifications: ``POST /api/v1/providers/<code>/callback``.

A callback is only a hint.  The provider plugin verifies it (``parse_callback``: signature,
shape) and names the idempotency key it is about; we then queue a status check of that
attempt — the same path the janitor takes — and never settle money from the callback's
own words.  Unknown providers, unverifiable bodies and unknown keys answer 400/404 and
change nothing.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import Response, jsonify, request
from flask_appbuilder import AppBuilder
from flask_appbuilder.api import expose

from portal import providers
from portal.api.base import CashbackApi
from portal.extensions import db
from portal.i18n import _
from portal.models import PayoutAttempt
from portal.tasks import QUEUE_STATUS, enqueue_after_commit
from portal.tasks.payouts import CHECK, IN_FLIGHT

MAX_BODY = 64 * 1024


class ProviderCallbackApi(CashbackApi):
    """Payout providers tell us something changed; we ask them about it."""

    resource_name = "providers"
    openapi_spec_tag = "Provider callbacks"
    allow_browser_login = False
    csrf_exempt = True

    @expose("/<code>/callback", methods=["POST"])
    def callback(self, code: str) -> Response:
        """A provider's notification about one payout (a hint to check its status).
        ---
        post:
          summary: Receive a provider notification; verified by the provider plugin
          security: []
          parameters:
          - {in: path, name: code, required: true, schema: {type: string}, description: 'The provider code, e.g. yoomoney'}
          requestBody:
            required: true
            description: >-
              The provider's own notification, at most 64 KiB, verified byte for byte by the
              provider plugin (its signature scheme and shape).
            content:
              application/json: {schema: {type: object}}
              application/x-www-form-urlencoded: {schema: {type: object}}
          responses:
            200:
              description: The status check of that payout is queued
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      ok: {type: boolean}
                      payout_id: {type: integer}
            400:
              description: The body could not be verified
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            404:
              description: Unknown provider or payout
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            413:
              description: The body is larger than 64 KiB
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        provider = providers.provider(code)
        if provider is None or not provider.supports_callbacks:
            return self._error(404, "unknown_provider", _("No such provider accepts callbacks."))
        body = request.stream.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return self._error(413, "body_too_large", _("The notification is too large."))
        try:
            key = provider.parse_callback(request.headers, body)
        except Exception:  # a plugin's parser must not turn bad input into a 500
            key = None
        if not key:
            return self._error(400, "unverified", _("The notification could not be verified."))
        attempt = db.session.execute(sa.select(PayoutAttempt).where(
            PayoutAttempt.idempotency_key == key)).scalar_one_or_none()
        if attempt is None:
            return self._error(404, "unknown_payout", _("No payout attempt has this key."))
        if attempt.status in ("succeeded", *IN_FLIGHT):  # a succeeded payout may come back: look again
            enqueue_after_commit(db.session, QUEUE_STATUS, CHECK, attempt.id, True,
                                 job_id=f"callback-check-{attempt.id}-{attempt.checks + 1}")
        db.session.commit()
        return jsonify(ok=True, payout_id=attempt.payout_id)


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_api(ProviderCallbackApi)
