"""The Finance dashboard: per-day series from real postings, payouts and claims; the page,
its SVG charts, the CSV exports, the period form and who may see it.

Data is made through the services (orders, withdrawals settled by the Test Bank sandbox);
only timestamps are moved afterwards, to put postings and payouts on chosen days.
"""
from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
import sqlalchemy as sa

from portal import providers
from portal.extensions import db
from portal.models import Customer, Payout, PayoutDetails, Posting
from portal.models.claims import Claim
from portal.services import dashboard, ledger, payouts
from portal.services.dashboard import CashbackDay, ClaimsDay, Period
from portal.services.ledger import customer_account, system_account, transfer
from portal.services.payout_report import ReportRow
from tests.conftest import login
from tests.integration.test_orders import cfg, click_for, event, receive  # noqa: F401 (fixture)
from tests.integration.test_payouts import SYSTEM, settle, withdraw, world  # noqa: F401 (fixture)

D = Decimal
UTC = dt.timezone.utc
Z = D("0.000000")
SVG_NS = {"svg": "http://www.w3.org/2000/svg"}


def today() -> dt.date:
    return dt.datetime.now(UTC).date()


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=UTC)


def last_posting_id(session) -> int:
    return session.execute(sa.select(sa.func.coalesce(sa.func.max(Posting.id), 0))).scalar_one()


def move_postings(session, after_id: int, when: dt.datetime) -> None:
    """Put every posting made since ``after_id`` at ``when``."""
    session.execute(sa.update(Posting).where(Posting.id > after_id).values(created_at=when))
    session.commit()


# --- the service ------------------------------------------------------------------------------

def test_cashback_series_from_the_ledger_by_utc_day(session, customers, cfg):
    """Paid orders count as booked to pending on their posting's UTC day, a confirmation as made
    available; other postings (a plain funding) do not count; days without postings are zero."""
    d1, d2 = today() - dt.timedelta(days=2), today() - dt.timedelta(days=1)
    click = click_for(session, cfg)
    mark = last_posting_id(session)
    receive(session, cfg, event(click.sub_id, "paid", order="A-1"))  # 7 % of 100 = 7.00
    receive(session, cfg, event(click.sub_id, "paid", order="B-1", amount="50.00", commission="4.00"))  # 3.50
    move_postings(session, mark, at(d1, 23, 30))
    mark = last_posting_id(session)
    receive(session, cfg, event(click.sub_id, "confirmed", n=2, order="B-1", amount="50.00", commission="4.00"))
    move_postings(session, mark, at(d2, 23, 45))
    ledger.post(session, kind="test.fund", reference="fund:dash", actor=SYSTEM,
                legs=transfer(system_account("network_receivable"), customer_account(2, "available"), D("5")))
    session.commit()

    period = Period(today() - dt.timedelta(days=3), today())
    expected = [CashbackDay(today() - dt.timedelta(days=3), Z, Z, Z), CashbackDay(d1, D("10.50"), Z, Z),
                CashbackDay(d2, Z, D("3.50"), Z), CashbackDay(today(), Z, Z, Z)]
    assert dashboard.cashback_series(session, period) == expected
    # the database session's own time zone does not move the buckets
    session.execute(sa.text("SET LOCAL TIME ZONE 'Asia/Vladivostok'"))
    assert dashboard.cashback_series(session, period) == expected
    session.rollback()
    assert dashboard.to_csv(dashboard.csv_rows(session, "cashback", period)) == (
        "day,pending_usd,available_usd,paid_usd\r\n"
        f"{period.since},0.000000,0.000000,0.000000\r\n"
        f"{d1},10.500000,0.000000,0.000000\r\n"
        f"{d2},0.000000,3.500000,0.000000\r\n"
        f"{today()},0.000000,0.000000,0.000000\r\n")


def test_day_buckets_on_both_backends(ledger_session):
    """The same postings fall on the same UTC days on PostgreSQL and SQLite, to the micro-unit."""
    session = ledger_session
    day = dt.date(2026, 3, 1)
    for n, (cid, amount, when) in enumerate([(1, "0.000001", at(day, 0, 0)), (2, "1.25", at(day, 23, 59)),
                                             (1, "2.5", at(day + dt.timedelta(days=1), 0, 0))]):
        mark = last_posting_id(session)
        ledger.post(session, kind="cashback.pending", reference=f"dash:{n}", actor=SYSTEM,
                    legs=transfer(system_account("network_receivable"), customer_account(cid, "pending"), D(amount)))
        session.execute(sa.update(Posting).where(Posting.id > mark).values(created_at=when))
        session.commit()
    series = dashboard.cashback_series(session, Period(day - dt.timedelta(days=1), day + dt.timedelta(days=1)))
    assert [(r.day, r.pending) for r in series] == [
        (day - dt.timedelta(days=1), Z), (day, D("1.250001")), (day + dt.timedelta(days=1), D("2.500000"))]


def test_payouts_per_provider_and_paid_cashback(app, session, world, testbank):
    """Succeeded payouts by day of finishing, with our fees; the same amounts show as paid out."""
    yesterday = today() - dt.timedelta(days=1)
    first = settle(session, withdraw(session, app, "1.00", "k1").payout.id)
    session.execute(sa.update(Payout).where(Payout.id == first.id).values(finished_at=at(yesterday, 12)))
    session.execute(sa.update(Posting).where(Posting.reference == f"payout:{first.id}:paid")
                    .values(created_at=at(yesterday, 12)))
    session.commit()
    second = settle(session, withdraw(session, app, "2.00", "k2").payout.id)
    assert (first.state, second.state) == ("succeeded", "succeeded")

    period = Period(yesterday, today())
    rows = dashboard.payouts_series(session, period)
    assert rows == [ReportRow(yesterday, "test", 1, D("1.00"), "RUB", D("80.00"), D("0.80")),
                    ReportRow(today(), "test", 1, D("2.00"), "RUB", D("160.00"), D("1.60"))]
    assert [(r.day, r.paid) for r in dashboard.cashback_series(session, period)] == [
        (yesterday, D("1.00")), (today(), D("2.00"))]
    (series,) = dashboard.by_provider(rows, period)
    assert (series.provider, series.count, series.amount_usd) == ("test", [1, 1], [D("1.00"), D("2.00")])
    assert dashboard.to_csv(dashboard.csv_rows(session, "payouts", period)) == (
        "day,provider,payouts,amount_usd,payout_currency,payout_amount,fees\r\n"
        f"{yesterday},test,1,1.000000,RUB,80.000000,0.800000\r\n"
        f"{today()},test,1,2.000000,RUB,160.000000,1.600000\r\n")


def test_headline_balances_queues_and_provider_balances(app, session, world, testbank):
    """Totals owed to customers, payouts waiting for Finance and the last known provider balance."""
    session.add(PayoutDetails(customer_id=1, provider_code="test", account="TEST-76543214"))
    session.commit()
    new_details = session.execute(sa.select(PayoutDetails.id).where(
        PayoutDetails.account == "TEST-76543214")).scalar_one()
    assert withdraw(session, app, "0.50", "r1", details_id=new_details).payout.state == "in_review"
    balance = payouts.refresh_balance(session, "test", providers.provider("test"), actor=SYSTEM)
    session.commit()

    figures = dashboard.headline(session, {"test": providers.provider("test"), "other": None})
    assert figures.balances == {"pending": Z, "available": D("4.50"), "on_hold": D("0.50")}
    assert (figures.payouts_in_review, figures.payouts_unknown, figures.payouts_needing_attention) == (1, 0, 0)
    by_code = {p.code: p for p in figures.providers}
    assert (by_code["test"].balance, by_code["test"].currency, by_code["test"].enabled) == (balance, "RUB", True)
    assert by_code["other"].balance is None and by_code["other"].checked_at is None and by_code["other"].enabled


def test_claims_opened_and_resolved_per_day(session, customers):
    """Claims count on the day they were opened, and as resolved on the day they entered a resolved state."""
    d1, d2 = today() - dt.timedelta(days=1), today()
    rows = [("open", at(d1, 1), at(d1, 1)), ("resolved_credit", at(d1, 2), at(d2, 3)),
            ("resolved_rejected", at(d2, 4), at(d2, 5)), ("escalated", at(d2, 6), at(d2, 7)),
            ("resolved_credit", at(d1 - dt.timedelta(days=5), 8), at(d1, 9))]
    session.add_all([Claim(customer_id=1, order_number=f"N-{i}", order_date=d1, state=state, created_at=created,
                           state_since=since) for i, (state, created, since) in enumerate(rows)])
    session.commit()
    period = Period(d1, d2)
    assert dashboard.claims_series(session, period) == [ClaimsDay(d1, 2, 1), ClaimsDay(d2, 2, 2)]
    assert dashboard.to_csv(dashboard.csv_rows(session, "claims", period)) == (
        f"day,opened,resolved\r\n{d1},2,1\r\n{d2},2,2\r\n")


@pytest.mark.parametrize("since,until,code", [
    (dt.date(2026, 1, 2), dt.date(2026, 1, 1), "period_backwards"),
    (dt.date(2024, 12, 31), dt.date(2026, 1, 1), "period_too_long"),  # 367 days
])
def test_period_is_checked(since, until, code):
    """A period runs forwards and spans 366 days at most."""
    with pytest.raises(dashboard.Invalid) as info:
        Period.checked(since, until)
    assert info.value.code == code and info.value.status == 422
    assert len(Period.checked(dt.date(2024, 1, 1), dt.date(2024, 12, 31)).days) == 366  # a leap year fits
    assert len(Period.default(dt.date(2026, 3, 1)).days) == dashboard.DEFAULT_DAYS


# --- the pages --------------------------------------------------------------------------------

@pytest.fixture
def finance(app, client, make_user):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    make_user("fin", "Finance")
    login(client, "fin")
    return client


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", html, flags=re.S)]


def test_page_shows_figures_charts_and_tables(app, finance, cfg):
    """The default period: three well-formed charts with one bar per day and series, amounts formatted."""
    with app.app_context():
        db.session.add(Customer(id=1, email="anna@test.local", name="Anna"))
        db.session.commit()
        click = click_for(db.session, cfg)
        receive(db.session, cfg, event(click.sub_id, "paid", order="A-1"))
    response = finance.get("/finance/dashboard/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    charts = svgs(html)
    assert [c.find("svg:title", SVG_NS).text for c in charts] == [
        "Cashback per day, USD", "Payouts per provider per day, USD", "Claims per day"]
    cashback_bars = charts[0].findall(".//svg:rect[@class='bar']", SVG_NS)
    assert len(cashback_bars) == 3 * dashboard.DEFAULT_DAYS
    assert len(charts[2].findall(".//svg:rect[@class='bar']", SVG_NS)) == 2 * dashboard.DEFAULT_DAYS
    assert any(b.find("svg:title", SVG_NS).text.endswith("Booked to pending: $7.00") for b in cashback_bars)
    assert html.count("$7.00") >= 2  # headline pending total and the table row
    assert "/finance/dashboard/cashback.csv?since=" in html


def test_csv_export_is_an_exact_attachment(app, finance):
    """``cashback.csv`` for a chosen period: header row, one line per day, attachment."""
    response = finance.get("/finance/dashboard/cashback.csv?since=2026-01-01&until=2026-01-02")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == "attachment; filename=cashback-2026-01-01-2026-01-02.csv"
    assert response.get_data(as_text=True) == (
        "day,pending_usd,available_usd,paid_usd\r\n2026-01-01,0.000000,0.000000,0.000000\r\n"
        "2026-01-02,0.000000,0.000000,0.000000\r\n")
    assert finance.get("/finance/dashboard/secrets.csv").status_code == 404


@pytest.mark.parametrize("query,message", [
    ("since=2026-02-01&until=2026-01-01", "must not be after its end"),
    ("since=2024-12-31&until=2026-01-01", "366 days at most"),
    ("since=yesterday", "From:"),
])
def test_bad_period_is_refused_visibly(finance, query, message):
    """A backwards, too long or unreadable period answers 422 with the reason on the page (and for CSV)."""
    response = finance.get(f"/finance/dashboard/?{query}")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="period-errors"' in html and message in html and "<svg" not in html
    assert finance.get(f"/finance/dashboard/payouts.csv?{query}").status_code == 422


@pytest.mark.parametrize("role,status", [("Finance", 200), ("Admin", 200), ("Support", 403), ("Developer", 403),
                                         ("Customer", 403)])
def test_role_matrix(client, make_user, role, status):
    """Finance and Admin see the dashboard and its exports; Support, Developers and customers do not."""
    make_user(f"u_{role.lower()}", role)
    login(client, f"u_{role.lower()}")
    assert client.get("/finance/dashboard/").status_code == status
    assert client.get("/finance/dashboard/payouts.csv").status_code == status


def test_anonymous_is_sent_to_login(client):
    response = client.get("/finance/dashboard/")
    assert response.status_code == 302 and "/login/" in response.headers["Location"]
