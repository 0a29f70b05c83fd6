"""The customer's withdrawals through the JSON API: payout methods, payout details, withdrawals.

* ``GET /api/v1/me/payout-methods`` — the payment methods, their limits and whether they
  take new withdrawals now (``can_read``);
* ``GET /api/v1/me/payout-details`` — the customer's saved details, account masked (``can_read``);
* ``POST /api/v1/me/payout-details`` ``{"provider", "account"}`` — validate and save (``can_write``);
* ``GET /api/v1/me/withdrawals`` — the customer's withdrawals, newest first, paginated (``can_read``);
* ``POST /api/v1/me/withdrawals`` ``{"details_id", "amount_usd": "1.25"}`` with an
  ``Idempotency-Key`` header — 201 with the new withdrawal, 200 with the same one when the
  key was seen before (a double click, a retried request) (``can_write``);
* ``POST /api/v1/me/withdrawals/<id>/cancel`` ``{}`` — cancel one's own withdrawal before it
  is sent; someone else's id is 404 (``can_write``).

Permissions are ``can_read`` / ``can_write`` on ``CustomerPayoutApi`` (the
``customer.payouts`` set of the Customer role); authentication and the error shape are those
of :class:`portal.api.customer.CustomerApi`.  Every POST needs a JSON object body (``{}`` for
cancel): a cross-site form cannot send one, so the session cookie cannot be abused.

Amounts: ``amount_usd`` is sent as a string of dollars and cents; answers give amounts as
``{"exact", "display"}`` like the rest of the customer API.

The helpers under "shared with the cabinet" are also used by ``portal.views.cabinet``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, jsonify, request
from flask_appbuilder import AppBuilder
from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import protect
from flask_babel import get_locale
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from portal import providers
from portal.api.customer import CustomerApi, _current_customer, _current_user, _json_body, token_errors_as_401
from portal.errors import DomainError, Invalid
from portal.extensions import db
from portal.i18n import _l
from portal.labels import ENUMS
from portal.models import Payout, PayoutDetails
from portal.models.payouts import mask
from portal.services import customer_views as cv, payouts
from portal.services.audit import Actor

# --- shared with the cabinet ---------------------------------------------------------------------

#: What a customer reads for each payout state.
STATE_LABELS = ENUMS["payout_state_customer"]
#: Dollars and cents, as a customer types them (``1``, ``1.5``, ``1.25``).
_AMOUNT_RE = re.compile(r"^\d{1,9}(\.\d{1,2})?$")


@dataclass(frozen=True)
class Method:
    """A payment method as a customer sees it."""

    code: str
    name: str
    currency: str
    min_amount: Decimal
    max_amount: Decimal
    enabled: bool
    #: Why it is switched off (the kill switch's reason), when it is.
    disabled_reason: str | None


def request_locale() -> str:
    return str(get_locale() or current_app.config["BABEL_DEFAULT_LOCALE"])


def payout_methods(session: Session, locale: str) -> list[Method]:
    """Every registered provider, with the kill switch and the provider's own flag applied."""
    methods = []
    for code, provider in sorted(providers.all_providers().items()):
        state = payouts.provider_state(session, code)
        enabled = bool(state.enabled and provider.enabled)
        reason = None
        if not enabled:
            reason = (state.disabled_reason if not state.enabled and state.disabled_reason
                      else str(_l("This payment method is switched off for now.")))
        methods.append(Method(code, provider.display_name(locale), provider.currency, provider.limits.min_amount,
                              provider.limits.max_amount, enabled, reason))
    return methods


def saved_details(session: Session, customer_id: int) -> list[PayoutDetails]:
    """The customer's active payout details, oldest first."""
    return list(session.execute(sa.select(PayoutDetails).where(
        PayoutDetails.customer_id == customer_id, PayoutDetails.is_active.is_(True))
        .order_by(PayoutDetails.id)).scalars())


def withdrawals_page(session: Session, customer_id: int, page: int = 1,
                     page_size: int = cv.DEFAULT_PAGE_SIZE) -> cv.Page[Payout]:
    """The customer's withdrawals, newest first (with their attempts, for :func:`can_cancel`)."""
    total = session.execute(sa.select(sa.func.count()).select_from(Payout)
                            .where(Payout.customer_id == customer_id)).scalar_one()
    rows = session.execute(
        sa.select(Payout).where(Payout.customer_id == customer_id).options(selectinload(Payout.attempts))
        .order_by(Payout.created_at.desc(), Payout.id.desc())
        .offset((page - 1) * page_size).limit(page_size)).scalars().all()
    return cv.Page(list(rows), page, page_size, total)


def can_cancel(payout: Payout) -> bool:
    """The rule of ``payouts.cancel_by_customer``: nothing sent yet."""
    return payout.state in ("in_review", "approved") and not payout.attempts


def state_label(state: str) -> str:
    return cv.label(STATE_LABELS, state)


def provider_name(code: str, locale: str) -> str:
    provider = providers.provider(code)
    return provider.display_name(locale) if provider is not None else code


def parse_amount_usd(raw: Any) -> Decimal:
    """A positive-looking string of dollars and cents as a Decimal; ``Invalid`` (422) otherwise.

    The minimum, the balance and the cents rule are the service's (``request_withdrawal``).
    """
    text = raw.strip().replace(",", ".") if isinstance(raw, str) else None
    if not text or not _AMOUNT_RE.match(text):
        message = _l("Enter the amount in dollars and cents, e.g. 1.25.")
        raise Invalid(message, code="bad_amount",
                      errors=[{"field": "amount_usd", "code": "bad_amount", "message": message}])
    return Decimal(text)


def request_withdrawal(session: Session, customer, *, details_id: int, amount_usd: Decimal, request_key: str,
                       actor: Actor) -> payouts.WithdrawalResult:
    """``payouts.request_withdrawal`` and the commit, answering a racing double click with the
    withdrawal the other request created.

    Two requests with one key can both find no payout and both insert one; the unique key
    makes the second wait for the first and fail.  It is rolled back and asked again: now it
    finds the first one's payout (or a ``RequestKeyConflict`` for other data).
    """
    details = session.get(PayoutDetails, details_id)
    provider = providers.provider(details.provider_code) if details is not None else None
    config = current_app.config
    for last_try in (False, True):
        try:
            result = payouts.request_withdrawal(session, customer, details_id=details_id, amount_usd=amount_usd,
                                                request_key=request_key, provider=provider, config=config,
                                                actor=actor)
            session.commit()
            return result
        except IntegrityError:
            session.rollback()
            if last_try:
                raise
        except DomainError:
            session.rollback()
            raise
    raise AssertionError("unreachable")


# --- JSON ----------------------------------------------------------------------------------------

def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def method_json(method: Method) -> dict[str, Any]:
    return {"code": method.code, "name": method.name, "currency": method.currency,
            "min_amount": cv.fixed(method.min_amount, 2), "max_amount": cv.fixed(method.max_amount, 2),
            "enabled": method.enabled, "disabled_reason": method.disabled_reason}


def details_json(details: PayoutDetails, locale: str, enabled: dict[str, bool] | None = None) -> dict[str, Any]:
    body = {"id": details.id, "provider": details.provider_code,
            "provider_name": provider_name(details.provider_code, locale),
            "account_masked": mask(details.account), "created_at": _iso(details.created_at)}
    if enabled is not None:
        body["provider_enabled"] = enabled.get(details.provider_code, False)
    return body


def payout_json(payout: Payout, locale: str) -> dict[str, Any]:
    return {
        "id": payout.id,
        "state": payout.state,
        "state_label": state_label(payout.state),
        "amount_usd": cv.money_json(payout.amount_usd),
        "payout_amount": cv.money_json(payout.payout_amount, payout.payout_currency),
        "payout_currency": payout.payout_currency,
        "fx_rate": None if payout.fx_rate is None else cv.fixed(payout.fx_rate, 6),
        "provider": payout.provider_code,
        "provider_name": provider_name(payout.provider_code, locale),
        "details_id": payout.details_id,
        "account_masked": mask(payout.account),
        "can_cancel": can_cancel(payout),
        "created_at": _iso(payout.created_at),
        "finished_at": _iso(payout.finished_at),
    }


def _created(body: dict[str, Any], status: int = 201) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def _withdrawal_input(body: dict[str, Any]) -> tuple[int, Decimal, str]:
    """``details_id``, ``amount_usd`` and the ``Idempotency-Key``; every problem in one ``Invalid``."""
    errors: list[dict[str, Any]] = []
    details_id = body.get("details_id")
    if isinstance(details_id, bool) or not isinstance(details_id, int) or details_id < 1:
        errors.append({"field": "details_id", "code": "invalid",
                       "message": _l("Choose saved payout details (their id).")})
    amount = None
    try:
        amount = parse_amount_usd(body.get("amount_usd"))
    except Invalid as err:
        errors.extend(err.errors)
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 80:
        errors.append({"field": "Idempotency-Key", "code": "idempotency_key_required",
                       "message": _l("Send an Idempotency-Key header of 1 to 80 characters.")})
    if errors:
        code = errors[0]["code"] if len(errors) == 1 else "invalid"
        raise Invalid(errors[0]["message"] if len(errors) == 1 else _l("Some fields are not valid."),
                      code=code, errors=errors)
    return details_id, amount, key


# --- the API -------------------------------------------------------------------------------------

class PayoutsApi(CustomerApi):
    """``/api/v1/me/…`` routes of withdrawals (the other ``/me`` routes are ``MeApi``'s)."""

    resource_name = "me"
    class_permission_name = "CustomerPayoutApi"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"methods": "read", "details_list": "read", "details_create": "write",
                              "withdrawal_list": "read", "withdrawal_create": "write",
                              "withdrawal_cancel": "write"}

    @expose("/payout-methods", methods=["GET"])
    @token_errors_as_401
    @protect()
    def methods(self) -> Response:
        """Payment methods for withdrawals.
        ---
        get:
          summary: Payment methods, their limits (in their currency) and whether they take withdrawals now
          responses:
            200: {description: 'methods[]: code, name, currency, min_amount, max_amount, enabled, disabled_reason'}
            401:
              description: Not logged in
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            403:
              description: Not a customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        _current_customer()
        methods = payout_methods(db.session, request_locale())
        return jsonify(ok=True, methods=[method_json(m) for m in methods])

    @expose("/payout-details", methods=["GET"])
    @token_errors_as_401
    @protect()
    def details_list(self) -> Response:
        """The customer's saved payout details.
        ---
        get:
          summary: Saved payout details, account masked
          responses:
            200: {description: 'details[]: id, provider, provider_name, account_masked, provider_enabled, created_at'}
            401:
              description: Not logged in
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            403:
              description: Not a customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        customer = _current_customer()
        locale = request_locale()
        enabled = {m.code: m.enabled for m in payout_methods(db.session, locale)}
        return jsonify(ok=True, details=[details_json(d, locale, enabled)
                                         for d in saved_details(db.session, customer.id)])

    @expose("/payout-details", methods=["POST"])
    @token_errors_as_401
    @protect()
    def details_create(self) -> Response:
        """Save payout details.
        ---
        post:
          summary: Validate and save payout details (the same ones twice are one row)
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [provider, account]
                  properties:
                    provider: {type: string, example: test}
                    account: {type: string, example: TEST-12345674}
          responses:
            201: {description: 'The details: id, provider, provider_name, account_masked, created_at'}
            401:
              description: Not logged in
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            403:
              description: Not a customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            409:
              description: The payment method is switched off
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            422:
              description: 'Unknown method or invalid account: errors[] says why'
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        body = _json_body()
        customer = _current_customer()
        code, account = body.get("provider"), body.get("account")
        if not isinstance(account, str):
            message = _l("Enter the account number.")
            raise Invalid(message, code="invalid_account",
                          errors=[{"field": "account", "code": "empty", "message": message}])
        provider = providers.provider(code) if isinstance(code, str) else None
        try:
            details = payouts.save_details(db.session, customer, provider, account,
                                           actor=Actor.user(_current_user()))
            db.session.commit()
        except DomainError:
            db.session.rollback()
            raise
        return _created({"ok": True, **details_json(details, request_locale())})

    @expose("/withdrawals", methods=["GET"])
    @token_errors_as_401
    @protect()
    def withdrawal_list(self) -> Response:
        """The customer's withdrawals.
        ---
        get:
          summary: Withdrawals, newest first
          parameters:
          - {in: query, name: page, schema: {type: integer, minimum: 1, default: 1}}
          - {in: query, name: page_size, schema: {type: integer, minimum: 1, maximum: 100, default: 20}}
          responses:
            200: {description: 'A page: page, page_size, count, pages, withdrawals[]'}
            401:
              description: Not logged in
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            403:
              description: Not a customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            422:
              description: Bad page arguments
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        customer = _current_customer()
        page, size = cv.parse_paging(request.args)
        result = withdrawals_page(db.session, customer.id, page, size)
        locale = request_locale()
        return jsonify(ok=True, **result.meta(), withdrawals=[payout_json(p, locale) for p in result.items])

    @expose("/withdrawals", methods=["POST"])
    @token_errors_as_401
    @protect()
    def withdrawal_create(self) -> Response:
        """Request a withdrawal.
        ---
        post:
          summary: Withdraw available cashback to saved payout details (send an Idempotency-Key)
          description: >-
            The amount moves from available to on hold at once.  The same Idempotency-Key again
            answers 200 with the same withdrawal (nothing new is held); with other data, 409.
          parameters:
          - {in: header, name: Idempotency-Key, required: true, schema: {type: string, maxLength: 80},
             example: 'withdrawal-7f3c2a'}
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [details_id, amount_usd]
                  properties:
                    details_id: {type: integer, example: 1}
                    amount_usd: {type: string, example: '1.25'}
          responses:
            200: {description: The withdrawal this key created before}
            201:
              description: >-
                The new withdrawal: id, state, amount_usd, payout_amount, payout_currency, fx_rate,
                provider, account_masked, created_at
            401:
              description: Not logged in
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            403:
              description: Not a customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            404:
              description: No such payout details
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            409:
              description: >-
                Not enough available (insufficient_balance), method switched off (provider_disabled),
                key reused with other data (idempotency_key_reused), a partner-linked account whose
                withdrawals are in the CPA partner account (partner_linked)
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            422:
              description: 'Bad amount, below the minimum, missing Idempotency-Key'
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        body = _json_body()
        customer = _current_customer()
        details_id, amount, key = _withdrawal_input(body)
        result = request_withdrawal(db.session, customer, details_id=details_id, amount_usd=amount,
                                    request_key=key, actor=Actor.user(_current_user()))
        return _created({"ok": True, "created": result.created, **payout_json(result.payout, request_locale())},
                        201 if result.created else 200)

    @expose("/withdrawals/<int:payout_id>/cancel", methods=["POST"])
    @token_errors_as_401
    @protect()
    def withdrawal_cancel(self, payout_id: int) -> Response:
        """Cancel a withdrawal.
        ---
        post:
          summary: Cancel one's own withdrawal before it is sent; the money goes back to available
          parameters:
          - {in: path, name: payout_id, required: true, schema: {type: integer}}
          requestBody:
            required: true
            content: {application/json: {schema: {type: object}}}
          responses:
            200: {description: The cancelled withdrawal}
            401:
              description: Not logged in
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            403:
              description: Not a customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            404:
              description: No such withdrawal of this customer
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            409:
              description: Already sent or finished
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
            422:
              description: The body is not a JSON object (send {})
              content: {application/json: {schema: {$ref: '#/components/schemas/ErrorBody'}}}
        """
        _json_body()
        customer = _current_customer()
        try:
            payout = payouts.cancel_by_customer(db.session, payout_id, customer, actor=Actor.user(_current_user()))
            db.session.commit()
        except DomainError:
            db.session.rollback()
            raise
        return jsonify(ok=True, **payout_json(payout, request_locale()))


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_api(PayoutsApi)
