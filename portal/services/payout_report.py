"""Finance's per-provider payout report: count, amounts and fees by day (succeeded payouts)."""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import Payout


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
    """Succeeded payouts finished in [since, until], grouped by UTC day and provider, newest first."""
    start = dt.datetime.combine(since, dt.time.min, tzinfo=dt.timezone.utc)
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=dt.timezone.utc)
    rows = session.execute(
        sa.select(Payout.finished_at, Payout.provider_code, Payout.payout_currency, Payout.amount_usd,
                  Payout.payout_amount, Payout.fee)
        .where(Payout.state == "succeeded", Payout.finished_at >= start, Payout.finished_at < end)
    ).all()
    groups: dict[tuple[dt.date, str, str], list] = {}
    for finished, code, currency, usd, amount, fee in rows:
        key = (finished.astimezone(dt.timezone.utc).date(), code, currency)
        group = groups.setdefault(key, [0, Decimal(0), Decimal(0), Decimal(0)])
        group[0] += 1
        group[1] += usd
        group[2] += amount
        group[3] += fee or Decimal(0)
    return [ReportRow(day, code, n, usd, currency, amount, fees)
            for (day, code, currency), (n, usd, amount, fees) in sorted(groups.items(), key=lambda kv: (
                -kv[0][0].toordinal(), kv[0][1]))]


def to_csv(rows: list[ReportRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["day", "provider", "payouts", "amount_usd", "payout_currency", "payout_amount", "fees"])
    for r in rows:
        writer.writerow([r.day.isoformat(), r.provider, r.count, f"{r.amount_usd:.2f}", r.payout_currency,
                         f"{r.payout_amount:.2f}", f"{r.fees:.2f}"])
    return out.getvalue()
