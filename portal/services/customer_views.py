"""What a customer sees of their own money and activity: read-only queries and the
presentation rules the JSON API and the cabinet pages share.

Everything here is scoped by a ``customer_id`` that the caller got from the logged-in
user (:func:`customer_for_user`): there is no lookup by order or click id from outside,
so one customer can never reach another's rows.

Amounts shown to customers
--------------------------
Each amount is given twice: ``exact`` (the ledger's 6 decimal places, a string) and
``display`` (2 decimal places, **rounded down** with ``money.payable``).  Rounding down is
the one rule for every figure a customer sees: we never show a cent that could not be
paid out ($0.035 shows as $0.03, its exact value stays 0.035000).  RUB figures are the
exact USD amount × the day's rate (``fx.rate_on``; ledger precision), then rounded the
same way; they are absent when no rate is known yet.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.errors import DomainError, Invalid
from portal.i18n import _l
from portal.labels import ENUMS
from portal.models import Click, ClickVisit, Customer, NetworkEvent, Order
from portal.services import fx, ledger, links
from portal.services.clicks import UnknownClick
from portal.services.money import convert, payable

T = TypeVar("T")

#: The balances a customer sees, in this order.
BALANCE_KINDS = ("pending", "available", "on_hold", "receivable")
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class NotACustomer(DomainError):
    """A login without a customer account (staff) asked for customer data."""

    status = 403
    code = "not_a_customer"
    default_message = _l("This part is for customers: log in with a customer account. "
                         "Staff logins have no cashback balance.")


# --- who is asking -------------------------------------------------------------------------------

def customer_for_user(session: Session, user: Any) -> Customer:
    """The customer whose login is ``user`` (a FAB user); ``NotACustomer`` for staff or nobody."""
    user_id = getattr(user, "id", None)
    if user_id is None:
        raise NotACustomer()
    customer = session.execute(sa.select(Customer).where(Customer.user_id == user_id)).scalar_one_or_none()
    if customer is None:
        raise NotACustomer()
    return customer


def customer_id_for_user(session: Session, user: Any) -> int | None:
    """The customer id of ``user``, or None (anonymous, staff): for public pages that adapt."""
    user_id = getattr(user, "id", None)
    if user_id is None:
        return None
    return session.execute(sa.select(Customer.id).where(Customer.user_id == user_id)).scalar_one_or_none()


def link_resolver(config: Mapping[str, Any]) -> links.ShortLinkResolver | None:
    """Follow short links over HTTP only when ``OUTBOUND_HTTP`` is on (off in tests and offline)."""
    return links.HttpShortLinkResolver() if config["OUTBOUND_HTTP"] else None


# --- money for display ---------------------------------------------------------------------------

def display(amount: Decimal, currency: str = "USD") -> Decimal:
    """The figure shown to a customer: rounded down to the minor unit (see the module docstring)."""
    return payable(amount, currency)


def money_text(amount: Decimal, currency: str = "USD") -> str:
    """The displayed figure as text: ``Decimal("0.035")`` -> ``"0.03"``."""
    return f"{display(amount, currency):.2f}"


def fixed(amount: Decimal, places: int) -> str:
    """``amount`` with exactly ``places`` decimals (Decimal formatting: no float on the way)."""
    return f"{amount:.{places}f}"


def money_json(amount: Decimal, currency: str = "USD") -> dict[str, str]:
    """``{"exact": "0.035000", "display": "0.03"}``."""
    return {"exact": fixed(amount, 6), "display": money_text(amount, currency)}


def rate_text(rate: Decimal) -> str:
    """A cashback rate in percent with two places: ``Decimal("7")`` -> ``"7.00"``."""
    return f"{rate.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):.2f}"


@dataclass(frozen=True)
class BalanceView:
    """A customer's balances on ``day``: exact USD, and RUB at that day's rate when known."""

    day: dt.date
    usd: dict[str, Decimal]
    #: RUB per USD (``fx.rate_on(day)``); None when no rate is known yet.
    rate: Decimal | None
    rub: dict[str, Decimal] | None
    minimum: fx.MinimumWithdrawal

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"currency": "USD", "day": self.day.isoformat()}
        body.update({kind: money_json(self.usd[kind]) for kind in BALANCE_KINDS})
        body["rub"] = None if self.rub is None else {
            "rate": f"{self.rate:.6f}", **{kind: money_json(self.rub[kind], "RUB") for kind in BALANCE_KINDS}}
        body["minimum_withdrawal"] = {
            "usd": f"{self.minimum.usd:.2f}",
            "rub": None if self.minimum.rub is None else f"{self.minimum.rub:.2f}",
        }
        return body


def balance(session: Session, customer_id: int, *, minimum_usd: Decimal, day: dt.date) -> BalanceView:
    """Balances as the ledger shows them now, and in RUB at the rate of ``day``."""
    usd = ledger.customer_balances(session, customer_id)
    usd = {kind: usd.get(kind, Decimal("0.000000")) for kind in BALANCE_KINDS}
    try:
        rate: Decimal | None = fx.rate_on(session, day)
    except fx.NoRate:
        rate = None
    rub = None if rate is None else {kind: convert(amount, rate) for kind, amount in usd.items()}
    return BalanceView(day, usd, rate, rub, fx.minimum_withdrawal(session, minimum_usd, day))


# --- pages ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    page_size: int
    #: rows in all pages
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    def meta(self) -> dict[str, int]:
        return {"page": self.page, "page_size": self.page_size, "count": self.total, "pages": self.pages}


def _positive_int(args: Mapping[str, Any], field: str, default: int, errors: list[dict],
                  maximum: int | None = None) -> int:
    raw = args.get(field)
    if raw is None or raw == "":
        return default
    text = str(raw).strip()
    if text.isascii() and text.isdigit() and 1 <= int(text) <= (maximum or 10**9):
        return int(text)
    message = (_l("Expected a whole number from 1 to %(maximum)s.", maximum=maximum) if maximum
               else _l("Expected a whole number from 1 up."))
    errors.append({"field": field, "code": "invalid", "message": message})
    return default


def parse_paging(args: Mapping[str, Any]) -> tuple[int, int]:
    """``page`` (from 1) and ``page_size`` (1–100, default 20) from query arguments; ``Invalid`` lists both."""
    errors: list[dict] = []
    page = _positive_int(args, "page", 1, errors)
    size = _positive_int(args, "page_size", DEFAULT_PAGE_SIZE, errors, MAX_PAGE_SIZE)
    if errors:
        raise Invalid(_l("The page is not valid."), code="invalid_paging", errors=errors)
    return page, size


@dataclass(frozen=True)
class OrderLine:
    order: Order
    #: The order's network events, newest first.
    history: list[NetworkEvent]


def orders_page(session: Session, customer_id: int, page: int = 1,
                page_size: int = DEFAULT_PAGE_SIZE) -> Page[OrderLine]:
    """The customer's orders, newest first, each with its status history (two queries)."""
    total = session.execute(
        sa.select(sa.func.count()).select_from(Order).where(Order.customer_id == customer_id)).scalar_one()
    rows = session.execute(
        sa.select(Order).where(Order.customer_id == customer_id)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .offset((page - 1) * page_size).limit(page_size)
    ).scalars().all()
    history: dict[int, list[NetworkEvent]] = {row.id: [] for row in rows}
    if rows:
        for event in session.execute(
            sa.select(NetworkEvent).where(NetworkEvent.order_id.in_(list(history)))
            .order_by(NetworkEvent.event_time.desc(), NetworkEvent.id.desc())
        ).scalars():
            history[event.order_id].append(event)
    return Page([OrderLine(row, history[row.id]) for row in rows], page, page_size, total)


@dataclass(frozen=True)
class ClickLine:
    click: Click
    #: Passes through ``/go/<sub_id>``.
    visits: int


def clicks_page(session: Session, customer_id: int, page: int = 1,
                page_size: int = DEFAULT_PAGE_SIZE) -> Page[ClickLine]:
    """The customer's clicks, newest first, with their visit counts."""
    total = session.execute(
        sa.select(sa.func.count()).select_from(Click).where(Click.customer_id == customer_id)).scalar_one()
    visits = (sa.select(sa.func.count()).select_from(ClickVisit)
              .where(ClickVisit.click_id == Click.id).correlate(Click).scalar_subquery())
    rows = session.execute(
        sa.select(Click, visits).where(Click.customer_id == customer_id)
        .order_by(Click.created_at.desc(), Click.id.desc())
        .offset((page - 1) * page_size).limit(page_size)
    ).all()
    return Page([ClickLine(click, count) for click, count in rows], page, page_size, total)


def own_click(session: Session, customer_id: int, sub_id: str) -> Click:
    """The customer's click with this sub-id; ``UnknownClick`` (404) if it is not theirs."""
    click = session.execute(
        sa.select(Click).where(Click.sub_id == sub_id, Click.customer_id == customer_id)
    ).scalar_one_or_none()
    if click is None:
        raise UnknownClick()
    return click


def click_by_sub_id(session: Session, sub_id: str) -> Click:
    """Any click by its sub-id (``/go`` is public: the sub-id itself is the secret)."""
    click = session.execute(sa.select(Click).where(Click.sub_id == sub_id)).scalar_one_or_none()
    if click is None:
        raise UnknownClick()
    return click


# --- words ---------------------------------------------------------------------------------------

CLICK_INFO = _l("To get cashback, go to AliExpress through this link and place the order in the same "
                "browser. Do not use coupons or promo codes from other sites and turn off ad blockers: "
                "otherwise the purchase may not be tracked.")


def is_spam(repeat_count: int, config: Mapping[str, Any]) -> bool:
    """The rule of ``clicks.create_click``, for a click read back later."""
    return repeat_count >= int(config["CLICK_SPAM_THRESHOLD"])


def spam_warning_text(repeat_count: int, config: Mapping[str, Any]):
    return _l("You have opened the link to this product %(count)s times within %(minutes)s minutes. "
              "Too many clicks may be flagged by the network as spam, and then no cashback is paid.",
              count=repeat_count, minutes=int(config["CLICK_REPEAT_WINDOW_MINUTES"]))


def click_message(repeat_count: int, spam_warning: bool, config: Mapping[str, Any]) -> str:
    """The information shown after a click is created (in the request's locale)."""
    text = str(CLICK_INFO)
    if spam_warning:
        text += " " + str(spam_warning_text(repeat_count, config))
    return text


ORDER_STATUS_LABELS = ENUMS["order_status"]
BOOKED_IN_LABELS = ENUMS["booked_in"]


def label(labels: Mapping[str, Any], code: str | None) -> str:
    return str(labels.get(code or "", code or ""))
