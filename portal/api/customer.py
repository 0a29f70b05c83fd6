"""The customer JSON API: link check, clicks, and the customer's own balance, orders and clicks.

* ``POST /api/v1/links/check`` — is this an AliExpress product link, at what rate (public);
* ``POST /api/v1/clicks`` — create a tracked click, answer its ``go_url`` (``can_write``);
* ``GET /api/v1/me/balance`` — pending / available / on hold / receivable, USD and RUB (``can_read``);
* ``GET /api/v1/me/orders`` — orders with their status history, paginated (``can_read``);
* ``GET /api/v1/me/clicks`` — clicks with repeat and visit counts, paginated (``can_read``).

Authentication: FAB's JWT (``Authorization: Bearer <access_token>`` from
``POST /api/v1/security/login`` with ``{"username", "password", "provider": "db"}``) or the
portal's session cookie.  Permissions are ``can_read`` / ``can_write`` on ``CustomerApi``
(the ``customer.self`` set of the Customer role).  There are no routes taking an order or
click id: everything is ``/me``, scoped to the customer behind the login, so another
customer's rows cannot be reached by guessing ids.  A staff login gets 403
``not_a_customer``; no or a bad token gets 401 ``unauthorized`` — both in the one error
shape.  POST bodies must be ``application/json`` (no form posts: the API is exempt from
CSRF tokens, and a cross-site page cannot send JSON without a CORS preflight).

Amounts are ``{"exact": "<6 places>", "display": "<2 places, rounded down>"}`` (see
``portal.services.customer_views``).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from flask import Response, current_app, jsonify, request, url_for
from flask_appbuilder import AppBuilder
from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import protect
from flask_jwt_extended import verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import PyJWTError

from portal.api.base import CashbackApi
from portal.errors import Invalid
from portal.extensions import db
from portal.i18n import _
from portal.models.types import utcnow
from portal.services import clicks, customer_views as cv, links, partners
from portal.services.customer_views import NotACustomer

#: Exceptions Flask-JWT-Extended raises for a missing, malformed, expired or revoked token.
JWT_ERRORS = (JWTExtendedException, PyJWTError)


def token_errors_as_401(view: Callable[..., Response]) -> Callable[..., Response]:
    """Answer JWT failures with ``response_401`` (our shape) instead of JWT-Extended's ``{"msg"}``.

    Put it above ``@protect()``: ``protect`` calls ``verify_jwt_in_request``, which raises.
    """

    @functools.wraps(view)
    def wrapper(self: CashbackApi, *args: Any, **kwargs: Any) -> Response:
        try:
            return view(self, *args, **kwargs)
        except JWT_ERRORS:
            return self.response_401()

    return wrapper


def _json_body() -> dict[str, Any]:
    """The JSON object of the request; ``Invalid`` (422) for anything else."""
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict):
        raise Invalid(_("Send a JSON object with Content-Type: application/json."), code="malformed_body")
    return body


def _current_user() -> Any:
    return current_app.appbuilder.sm.current_user


def _current_customer():
    return cv.customer_for_user(db.session, _current_user())


def go_url(sub_id: str) -> str:
    """The absolute ``/go/<sub_id>`` address the customer follows to the shop."""
    return url_for("GoView.visit", sub_id=sub_id, _external=True)


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def order_json(line: cv.OrderLine) -> dict[str, Any]:
    order = line.order
    return {
        "network": order.network,
        "network_order_id": order.network_order_id,
        "status": order.status,
        "status_label": cv.label(cv.ORDER_STATUS_LABELS, order.status),
        "amount": {"currency": "USD", **cv.money_json(order.amount_usd)},
        "refunded": {"currency": "USD", **cv.money_json(order.refunded_usd)},
        "reported": {"amount": cv.fixed(order.reported_amount, 6), "currency": order.reported_currency},
        "rate": cv.rate_text(order.rate),
        "booked_cashback": cv.money_json(order.booked_cashback),
        "booked_in": order.booked_in,
        "booked_in_label": cv.label(cv.BOOKED_IN_LABELS, order.booked_in),
        "created_at": _iso(order.created_at),
        "paid_at": _iso(order.paid_at),
        "confirmed_at": _iso(order.confirmed_at),
        "cancelled_at": _iso(order.cancelled_at),
        "history": [
            {"status": event.status, "status_label": cv.label(cv.ORDER_STATUS_LABELS, event.status),
             "time": _iso(event.event_time),
             "refunded_amount": None if event.refunded_amount is None else cv.fixed(event.refunded_amount, 6),
             "currency": event.currency}
            for event in line.history
        ],
    }


def click_json(line: cv.ClickLine) -> dict[str, Any]:
    click = line.click
    return {
        "sub_id": click.sub_id,
        "go_url": go_url(click.sub_id),
        "product_id": click.product_id,
        "url": click.canonical_url,
        "channel": click.channel,
        "rate": cv.rate_text(click.rate),
        "repeat_count": click.repeat_count,
        "spam_warning": cv.is_spam(click.repeat_count, current_app.config),
        "visits": line.visits,
        "created_at": _iso(click.created_at),
    }


class LinksApi(CashbackApi):
    """Public: the browser extension checks a product link before the customer logs in."""

    resource_name = "links"
    openapi_spec_tag = "Customer"

    @expose("/check", methods=["POST"])
    def check(self) -> Response:
        """Check a pasted product link and quote the cashback rate.
        ---
        post:
          summary: Is this an AliExpress product link, and at what cashback rate?
          security: []
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [url]
                  properties:
                    url: {type: string, example: 'https://aliexpress.ru/item/1005001234567890.html'}
          responses:
            200:
              description: A product link; ``rate`` is the logged-in customer's (or the default), percent.
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      ok: {type: boolean}
                      product_id: {type: string}
                      canonical_url: {type: string}
                      rate: {type: string, example: '7.00'}
            422:
              description: Not a product link; ``error.code`` says why (empty, not_aliexpress, not_product, …).
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/ErrorBody'}
        """
        body = _json_body()
        try:
            link = links.check_link(body.get("url"), resolver=cv.link_resolver(current_app.config))
        except links.LinkError as err:
            return self._error(422, str(err.code), err.message)
        customer_id = cv.customer_id_for_user(db.session, self._optional_user())
        offer = clicks.rate_for(db.session, customer_id, utcnow(), current_app.config["DEFAULT_CASHBACK_RATE"])
        return jsonify(ok=True, product_id=link.product_id, canonical_url=link.canonical_url,
                       rate=cv.rate_text(offer.rate))

    @staticmethod
    def _optional_user() -> Any:
        """The session's or a valid token's user, else None (a bad token counts as none here)."""
        try:
            verify_jwt_in_request(optional=True)
        except JWT_ERRORS:
            return None
        return _current_user()

    def add_apispec_components(self, api_spec) -> None:
        super().add_apispec_components(api_spec)
        from portal.api.postback import ERROR_BODY_SCHEMA

        if "ErrorBody" not in api_spec.components.schemas:
            api_spec.components.schema("ErrorBody", ERROR_BODY_SCHEMA)


class CustomerApi(CashbackApi):
    """Base of the logged-in customer's APIs: one FAB permission view, ``CustomerApi``."""

    class_permission_name = "CustomerApi"
    #: Declared, not inferred: the classes sharing ``CustomerApi`` must declare the same set,
    #: or FAB's permission sync drops the permissions one class has and the other lacks.
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"create_click": "write", "balance": "read", "orders": "read",
                              "click_list": "read"}
    #: Session cookies work too (the cabinet's pages may call the API).
    allow_browser_login = True
    openapi_spec_tag = "Customer"

    def response_403(self) -> Response:
        err = NotACustomer()
        return self._error(err.status, err.code, err.message)


class ClicksApi(CustomerApi):
    resource_name = "clicks"

    @expose("", methods=["POST"])
    @token_errors_as_401
    @protect()
    def create_click(self) -> Response:
        """Create a tracked click for a product link.
        ---
        post:
          summary: Create a tracked click; follow ``go_url`` to buy with cashback
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [url]
                  properties:
                    url: {type: string, example: 'https://aliexpress.ru/item/1005001234567890.html'}
                    channel: {type: string, enum: [web, extension, app], default: web}
          responses:
            201:
              description: The click; ``message`` is what to tell the customer before they go.
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      ok: {type: boolean}
                      sub_id: {type: string}
                      go_url: {type: string}
                      rate: {type: string}
                      repeat_count: {type: integer}
                      spam_warning: {type: boolean}
                      message: {type: string}
            401:
              description: Not logged in
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            403:
              description: Not a customer or blocked
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            422:
              description: Bad link or channel
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        body = _json_body()
        customer = _current_customer()
        config = current_app.config
        result = clicks.create_click(db.session, customer, body.get("url"), body.get("channel") or "web",
                                     config=config, resolver=cv.link_resolver(current_app.config))
        db.session.commit()
        response = jsonify(ok=True, sub_id=result.click.sub_id, go_url=go_url(result.click.sub_id),
                           rate=cv.rate_text(result.click.rate), repeat_count=result.repeat_count,
                           spam_warning=result.spam_warning,
                           message=cv.click_message(result.repeat_count, result.spam_warning, config))
        response.status_code = 201
        return response


class MeApi(CustomerApi):
    resource_name = "me"

    @expose("/balance", methods=["GET"])
    @token_errors_as_401
    @protect()
    def balance(self) -> Response:
        """The customer's balances.
        ---
        get:
          summary: Pending, available, on hold and receivable, in USD and in RUB at today's rate
          description: >-
            Each amount is {exact (6 places), display (2 places, rounded down)}. ``rub`` is null
            while no exchange rate is known; ``minimum_withdrawal.rub`` likewise.
          responses:
            200: {description: Balances}
            401:
              description: Not logged in
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            403:
              description: Not a customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            409:
              description: 'A partner-linked account (partner_linked), whose statistics are in the CPA partner account'
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        customer = _current_customer()
        partners.ensure_statistics_here(customer)  # shown in the partner account
        view = cv.balance(db.session, customer.id, minimum_usd=current_app.config["MIN_WITHDRAWAL_USD"],
                          day=utcnow().date())
        return jsonify(ok=True, **view.as_json())

    @expose("/orders", methods=["GET"])
    @token_errors_as_401
    @protect()
    def orders(self) -> Response:
        """The customer's orders ("statistics by transactions").
        ---
        get:
          summary: Orders, newest first, each with its status history (newest first)
          parameters:
          - {in: query, name: page, schema: {type: integer, minimum: 1, default: 1}}
          - {in: query, name: page_size, schema: {type: integer, minimum: 1, maximum: 100, default: 20}}
          responses:
            200: {description: 'A page: page, page_size, count, pages, orders[]'}
            401:
              description: Not logged in
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            403:
              description: Not a customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            409:
              description: 'A partner-linked account (partner_linked), whose statistics are in the CPA partner account'
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            422:
              description: Bad page arguments
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        customer = _current_customer()
        partners.ensure_statistics_here(customer)  # shown in the partner account
        page, size = cv.parse_paging(request.args)
        result = cv.orders_page(db.session, customer.id, page, size)
        return jsonify(ok=True, **result.meta(), orders=[order_json(line) for line in result.items])

    @expose("/clicks", methods=["GET"])
    @token_errors_as_401
    @protect()
    def click_list(self) -> Response:
        """The customer's clicks.
        ---
        get:
          summary: Clicks, newest first, with repeat and visit counts
          parameters:
          - {in: query, name: page, schema: {type: integer, minimum: 1, default: 1}}
          - {in: query, name: page_size, schema: {type: integer, minimum: 1, maximum: 100, default: 20}}
          responses:
            200: {description: 'A page: page, page_size, count, pages, clicks[]'}
            401:
              description: Not logged in
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            403:
              description: Not a customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            409:
              description: 'A partner-linked account (partner_linked), whose statistics are in the CPA partner account'
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            422:
              description: Bad page arguments
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        customer = _current_customer()
        partners.ensure_statistics_here(customer)  # shown in the partner account
        page, size = cv.parse_paging(request.args)
        result = cv.clicks_page(db.session, customer.id, page, size)
        return jsonify(ok=True, **result.meta(), clicks=[click_json(line) for line in result.items])


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_api(LinksApi)
    appbuilder.add_api(ClicksApi)
    appbuilder.add_api(MeApi)
