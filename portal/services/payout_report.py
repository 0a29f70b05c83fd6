"""Finance's per-provider payout report: count, amounts and fees by day (succeeded payouts)."""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class ReportRow:
    day: dt.date
    provider: str
    count: int
    amount_usd: Decimal
    payout_currency: str
    payout_amount: Decimal
    #: our cost at the provider (fees_expense), payout currency
    fees: Decimal


def by_day(session: Session, since: dt.date, until: dt.date) -> list[ReportRow]:
    """Succeeded payouts finished in [since, until], grouped by UTC day and provider, newest first.

    The figures are the Finance dashboard's (one ``GROUP BY`` in the database,
    ``dashboard.payouts_series``); this report only lists them newest first.
    """
    from portal.services.dashboard import Period, payouts_series  # dashboard imports ReportRow from here

    rows = payouts_series(session, Period(since, until))
    return sorted(rows, key=lambda r: (-r.day.toordinal(), r.provider, r.payout_currency))


def to_csv(rows: list[ReportRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["day", "provider", "payouts", "amount_usd", "payout_currency", "payout_amount", "fees"])
    for r in rows:
        writer.writerow([r.day.isoformat(), r.provider, r.count, f"{r.amount_usd:.2f}", r.payout_currency,
                         f"{r.payout_amount:.2f}", f"{r.fees:.2f}"])
    return out.getvalue()
