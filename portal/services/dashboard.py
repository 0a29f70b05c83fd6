"""Finance's dashboard: per-day series and headline figures, aggregated in SQL.

Sources of truth (each series is a ``GROUP BY`` UTC day, on PostgreSQL and SQLite alike):

* **Cashback** — the ledger, because it is what the customers were credited, whatever
  the orders say later.  Per day of the posting (``ledger_posting.created_at``):

  - ``pending``: credits to customers' ``pending`` accounts by ``cashback.pending``
    postings (cashback booked when the network reported a paid order);
  - ``available``: credits to customers' ``available`` and ``receivable`` accounts by
    ``cashback.available`` postings (cashback that became withdrawable; the part that paid
    back an open receivable counts, it was the customer's too);
  - ``paid``: debits of customers' ``on_hold`` accounts by ``payout.succeeded`` postings
    (what left for the providers; a later reversal is not subtracted).

  Only gross credits count: reductions (refunds, cancellations, ``cashback.reversed``)
  do not make a day's bar negative.  USD entries only (the ledger's customer currency).
* **Payouts per provider** — the ``payout`` table (``finished_at`` of payouts in
  ``succeeded``), as ``payout_report.by_day`` reads it, with its ``ReportRow``: count,
  amount in USD, amount and fees (our cost) in the provider's currency.
* **Claims** — the ``claim`` table: opened by ``created_at``, resolved (``resolved_credit``
  or ``resolved_rejected``) by ``state_since`` (a resolved claim keeps its state, so that
  is the day it was resolved).

Days are UTC days (:class:`utc_day`); a period is inclusive at both ends, 30 days ending
today by default, 366 at most.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from portal.errors import Invalid
from portal.i18n import _l
from plugins import PayoutProvider
from portal.models import Account, AccountBalance, Entry, Payout, Posting
from portal.models.types import Money
from portal.services import payouts
from portal.services.payout_report import ReportRow

from portal.models.claims import Claim

DEFAULT_DAYS = 30
MAX_DAYS = 366
RESOLVED_CLAIM_STATES = ("resolved_credit", "resolved_rejected")
ZERO = Decimal("0.000000")


# --- day bucketing ------------------------------------------------------------------------

class utc_day(FunctionElement):
    """The UTC calendar day of a timestamp column, as a ``DATE`` on every backend.

    PostgreSQL stores ``timestamptz``: converted to UTC first (the session's time zone
    must not matter).  SQLite stores our UTC wall time as text: ``DATE()`` of it.
    """

    type = sa.Date()
    name = "utc_day"
    inherit_cache = True


@compiles(utc_day)
def _utc_day_default(element, compiler, **kw):
    return "CAST((%s AT TIME ZONE 'UTC') AS DATE)" % compiler.process(element.clauses, **kw)


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element, compiler, **kw):
    return "DATE(%s)" % compiler.process(element.clauses, **kw)


def _as_date(value) -> dt.date:
    """A bucket as a ``date`` (drivers answer ``date`` or, on SQLite, sometimes text)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


# --- the period -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """UTC days ``since`` … ``until``, both included."""

    since: dt.date
    until: dt.date

    @classmethod
    def default(cls, today: dt.date | None = None) -> "Period":
        today = today or dt.datetime.now(dt.timezone.utc).date()
        return cls(today - dt.timedelta(days=DEFAULT_DAYS - 1), today)

    @classmethod
    def checked(cls, since: dt.date, until: dt.date) -> "Period":
        """The period, or ``Invalid`` (422) when it runs backwards or is too long."""
        if since > until:
            raise Invalid(_l("The start of the period must not be after its end."), code="period_backwards")
        if (until - since).days + 1 > MAX_DAYS:
            raise Invalid(_l("The period can be %(days)s days at most.", days=MAX_DAYS), code="period_too_long")
        return cls(since, until)

    @property
    def days(self) -> list[dt.date]:
        return [self.since + dt.timedelta(days=i) for i in range((self.until - self.since).days + 1)]

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.since, dt.time.min, tzinfo=dt.timezone.utc)

    @property
    def end(self) -> dt.datetime:
        """Exclusive: midnight after ``until``."""
        return dt.datetime.combine(self.until + dt.timedelta(days=1), dt.time.min, tzinfo=dt.timezone.utc)


# --- series ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CashbackDay:
    day: dt.date
    pending: Decimal
    available: Decimal
    paid: Decimal


def _money_sum(expression) -> sa.ColumnElement:
    """``SUM`` of micro-unit integers, read back as an exact ``Decimal``."""
    return sa.type_coerce(sa.func.sum(expression), Money())


def cashback_series(session: Session, period: Period) -> list[CashbackDay]:
    """Cashback booked to pending, made available and paid out, per UTC day (every day, oldest first)."""
    day = utc_day(Posting.created_at).label("day")
    credit = Entry.amount > 0

    def part(posting_kind: str, account_kinds: tuple[str, ...], amount) -> sa.ColumnElement:
        return _money_sum(sa.case((sa.and_(Posting.kind == posting_kind, Account.kind.in_(account_kinds)), amount)))

    rows = session.execute(
        sa.select(day,
                  part("cashback.pending", ("pending",), sa.case((credit, Entry.amount))),
                  part("cashback.available", ("available", "receivable"), sa.case((credit, Entry.amount))),
                  part("payout.succeeded", ("on_hold",), -Entry.amount))
        .select_from(Entry).join(Posting, Posting.id == Entry.posting_id).join(Account, Account.id == Entry.account_id)
        .where(Posting.created_at >= period.start, Posting.created_at < period.end,
               Posting.kind.in_(("cashback.pending", "cashback.available", "payout.succeeded")),
               Account.customer_id.is_not(None), Entry.currency == "USD")
        .group_by(day)
    ).all()
    found = {_as_date(d): (p or ZERO, a or ZERO, paid or ZERO) for d, p, a, paid in rows}
    return [CashbackDay(d, *found.get(d, (ZERO, ZERO, ZERO))) for d in period.days]


def payouts_series(session: Session, period: Period) -> list[ReportRow]:
    """Succeeded payouts per UTC day of ``finished_at`` and provider (oldest first, then provider)."""
    day = utc_day(Payout.finished_at).label("day")
    rows = session.execute(
        sa.select(day, Payout.provider_code, sa.func.count(), _money_sum(Payout.amount_usd), Payout.payout_currency,
                  _money_sum(Payout.payout_amount), _money_sum(sa.func.coalesce(Payout.fee, 0)))
        .where(Payout.state == "succeeded", Payout.finished_at >= period.start, Payout.finished_at < period.end)
        .group_by(day, Payout.provider_code, Payout.payout_currency)
        .order_by(day, Payout.provider_code, Payout.payout_currency)
    ).all()
    return [ReportRow(_as_date(d), code, int(n), usd or ZERO, currency, amount or ZERO, fees or ZERO)
            for d, code, n, usd, currency, amount, fees in rows]


@dataclass(frozen=True)
class ProviderDays:
    """One provider's payouts on every day of the period (for its chart series)."""

    provider: str
    currency: str
    count: list[int]
    amount_usd: list[Decimal]
    fees: list[Decimal]


def by_provider(rows: Iterable[ReportRow], period: Period) -> list[ProviderDays]:
    """``payouts_series`` rows as one zero-filled series per provider (and currency)."""
    index = {d: i for i, d in enumerate(period.days)}
    out: dict[tuple[str, str], ProviderDays] = {}
    for r in rows:
        series = out.setdefault((r.provider, r.payout_currency), ProviderDays(
            r.provider, r.payout_currency, [0] * len(index), [ZERO] * len(index), [ZERO] * len(index)))
        i = index[r.day]
        series.count[i] += r.count
        series.amount_usd[i] += r.amount_usd
        series.fees[i] += r.fees
    return [out[k] for k in sorted(out)]


@dataclass(frozen=True)
class ClaimsDay:
    day: dt.date
    opened: int
    resolved: int


def claims_series(session: Session, period: Period) -> list[ClaimsDay]:
    """Claims opened and resolved per UTC day (every day, oldest first)."""
    opened_day = utc_day(Claim.created_at).label("day")
    opened = session.execute(
        sa.select(opened_day, sa.func.count())
        .where(Claim.created_at >= period.start, Claim.created_at < period.end).group_by(opened_day)).all()
    resolved_day = utc_day(Claim.state_since).label("day")
    resolved = session.execute(
        sa.select(resolved_day, sa.func.count())
        .where(Claim.state.in_(RESOLVED_CLAIM_STATES), Claim.state_since >= period.start,
               Claim.state_since < period.end).group_by(resolved_day)).all()
    opened_by = {_as_date(d): int(n) for d, n in opened}
    resolved_by = {_as_date(d): int(n) for d, n in resolved}
    return [ClaimsDay(d, opened_by.get(d, 0), resolved_by.get(d, 0)) for d in period.days]


# --- headline figures -----------------------------------------------------------------------

@dataclass(frozen=True)
class ProviderBalance:
    code: str
    currency: str
    #: Last balance the provider reported (``None``: never asked).
    balance: Decimal | None
    checked_at: dt.datetime | None
    enabled: bool
    breaker: str


@dataclass(frozen=True)
class Headline:
    #: What we owe customers, USD: ``pending``, ``available``, ``on_hold``.
    balances: dict[str, Decimal]
    payouts_in_review: int
    payouts_unknown: int
    payouts_needing_attention: int
    providers: list[ProviderBalance] = field(default_factory=list)


def headline(session: Session, known: Mapping[str, PayoutProvider | None]) -> Headline:
    """Totals now: customer balances, payouts waiting for Finance, provider balances.

    ``known`` (code → provider) lists the providers this app knows, so one that was never
    switched or asked still shows, switched on or off as its plugin starts it
    (``payouts.provider_states``, the same answer as the providers page).
    """
    kinds = ("pending", "available", "on_hold")
    sums = dict(session.execute(
        sa.select(Account.kind, _money_sum(AccountBalance.balance))
        .join(AccountBalance, AccountBalance.account_id == Account.id)
        .where(Account.customer_id.is_not(None), Account.kind.in_(kinds), Account.currency == "USD")
        .group_by(Account.kind)).all())
    states = dict(session.execute(
        sa.select(Payout.state, sa.func.count()).where(Payout.state.in_(("in_review", "unknown")))
        .group_by(Payout.state)).all())
    attention = session.execute(
        sa.select(sa.func.count()).select_from(Payout)
        .where(sa.or_(Payout.state == "unknown", Payout.needs_attention.is_(True)))).scalar_one()
    providers = [
        ProviderBalance(code, getattr(known.get(code), "currency", ""), state.balance, state.balance_checked_at,
                        state.enabled, state.breaker)
        for code, state in payouts.provider_states(session, known).items()]
    return Headline({k: sums.get(k) or ZERO for k in kinds}, int(states.get("in_review", 0)),
                    int(states.get("unknown", 0)), int(attention), providers)


# --- CSV ------------------------------------------------------------------------------------

#: The series ``csv_rows`` exports (``/finance/dashboard/<name>.csv``).
SERIES = ("cashback", "payouts", "claims")


def _exact(value: Decimal) -> str:
    """A ledger amount as text, every stored digit, never through float (``1.750000``)."""
    return f"{value:f}"


def csv_rows(session: Session, name: str, period: Period) -> list[list[str]] | None:
    """A series as CSV rows, header first; ``None`` for an unknown series."""
    if name == "cashback":
        return [["day", "pending_usd", "available_usd", "paid_usd"]] + [
            [r.day.isoformat(), _exact(r.pending), _exact(r.available), _exact(r.paid)]
            for r in cashback_series(session, period)]
    if name == "payouts":
        return [["day", "provider", "payouts", "amount_usd", "payout_currency", "payout_amount", "fees"]] + [
            [r.day.isoformat(), r.provider, str(r.count), _exact(r.amount_usd), r.payout_currency,
             _exact(r.payout_amount), _exact(r.fees)] for r in payouts_series(session, period)]
    if name == "claims":
        return [["day", "opened", "resolved"]] + [[r.day.isoformat(), str(r.opened), str(r.resolved)]
                                                  for r in claims_series(session, period)]
    return None


def to_csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()
