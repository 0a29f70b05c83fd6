"""The customer's missing-cashback claims through the JSON API.

* ``GET /api/v1/me/claims`` — the customer's claims, newest first (``can_read``);
* ``GET /api/v1/me/claims/<id>`` — one of them; another customer's id is 404 (``can_read``);
* ``POST /api/v1/me/claims`` ``{"order_number", "order_date": "YYYY-MM-DD", "amount_usd": "12.50",
  "screenshot": "<base64 PNG/JPEG, optional>"}`` — open a claim; it is diagnosed at once
  (201 with the claim) (``can_write``).

Permissions are ``can_read`` / ``can_write`` on ``CustomerClaimApi`` (the ``customer.claims``
set of the Customer role); authentication and the error shape are those of
:class:`portal.api.customer.CustomerApi`.  A customer sees the state and the reply Support
sent, never the internal evidence.
"""
from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify
from flask_appbuilder import AppBuilder
from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import protect

from portal.api.customer import CustomerApi, _current_customer, _current_user, _json_body, token_errors_as_401
from portal.extensions import db
from portal.models import Claim
from portal.models.types import utcnow
from portal.services import claims, customer_views as cv
from portal.services.audit import Actor


def claim_json(claim: Claim) -> dict[str, Any]:
    """A claim as its customer sees it (shared with nothing else: no evidence, no staff notes)."""
    return {
        "id": claim.id,
        "order_number": claim.order_number,
        "order_date": claim.order_date.isoformat(),
        "amount_usd": None if claim.amount_usd is None else cv.money_json(claim.amount_usd),
        "state": claim.state,
        "state_label": cv.label(claims.STATE_LABELS, claim.state),
        "reply": claim.reply_sent,
        "replied_at": claim.replied_at.isoformat() if claim.replied_at else None,
        "has_screenshot": claim.screenshot_type is not None,
        "created_at": claim.created_at.isoformat(),
        "updated_at": claim.updated_at.isoformat(),
    }


class ClaimsApi(CustomerApi):
    """``/api/v1/me/claims`` routes (the other ``/me`` routes are ``MeApi``'s and ``PayoutsApi``'s)."""

    resource_name = "me"
    class_permission_name = "CustomerClaimApi"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"claim_list": "read", "claim_get": "read", "claim_create": "write"}

    @expose("/claims", methods=["GET"])
    @token_errors_as_401
    @protect()
    def claim_list(self) -> Response:
        """The customer's missing-cashback claims.
        ---
        get:
          summary: Claims, newest first, with their state and Support's reply
          responses:
            200: {description: 'claims[]: id, order_number, order_date, amount_usd, state, state_label, reply'}
            401:
              description: Not logged in
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            403:
              description: Not a customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        customer = _current_customer()
        return jsonify(ok=True, claims=[claim_json(c) for c in claims.customer_claims(db.session, customer.id)])

    @expose("/claims/<int:claim_id>", methods=["GET"])
    @token_errors_as_401
    @protect()
    def claim_get(self, claim_id: int) -> Response:
        """One of the customer's claims.
        ---
        get:
          summary: One claim; another customer's id is 404
          parameters:
          - {in: path, name: claim_id, required: true, schema: {type: integer}}
          responses:
            200: {description: 'claim: id, order_number, order_date, amount_usd, state, state_label, reply'}
            401:
              description: Not logged in
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            403:
              description: Not a customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            404:
              description: No such claim of this customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        customer = _current_customer()
        return jsonify(ok=True, claim=claim_json(claims.own_claim(db.session, customer.id, claim_id)))

    @expose("/claims", methods=["POST"])
    @token_errors_as_401
    @protect()
    def claim_create(self) -> Response:
        """Open a missing-cashback claim.
        ---
        post:
          summary: Open a claim for an order whose cashback is missing; it is checked at once
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [order_number, order_date]
                  properties:
                    order_number: {type: string, example: '8100001234567'}
                    order_date: {type: string, format: date, example: '2026-11-20'}
                    amount_usd: {type: string, example: '25.00'}
                    screenshot: {type: string, format: byte, description: 'PNG or JPEG, base64, at most 2 MB'}
          responses:
            201: {description: 'claim: the new claim'}
            401:
              description: Not logged in
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            403:
              description: Not a customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            409:
              description: An unresolved claim for this order exists
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            422:
              description: Bad fields (errors[] lists them) or screenshot
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        body = _json_body()
        customer = _current_customer()
        config = current_app.config
        now = utcnow()
        data = claims.parse_claim(body, now=now, max_screenshot=int(config["CLAIM_SCREENSHOT_MAX_BYTES"]))
        claim = claims.open_claim(db.session, customer, data, actor=Actor.user(_current_user()), opened_by="customer",
                                  channel="api", config=config, now=now)
        db.session.commit()
        response = jsonify(ok=True, claim=claim_json(claim))
        response.status_code = 201
        return response


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_api(ClaimsApi)
