"""Reconciliation on PostgreSQL: the network's report against our orders, applying its truth,
and the money-flow CLI commands (import-rates, import-orders, sign-postback)."""
from __future__ import annotations

import datetime as dt
import json
import shlex
from decimal import Decimal

import pytest
import sqlalchemy as sa

from portal import cli_cashback
from portal.errors import Conflict, Invalid
from portal.models import AuditRecord, Customer, FxRate, NetworkEvent, Order, Posting, ReconImport, ReconLine
from portal.services import clicks, fx, ledger, orders, reconciliation
from portal.services.audit import Actor
from portal.services.postback_signing import verify

D = Decimal
T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)
FINANCE = Actor.system("finance-test")
#: The second Finance user who approves what FINANCE proposed (four eyes).
CHECKER = Actor.system("finance-checker")
HEADER = "order_id,sub_id,status,order_amount,currency,commission,event_time,refunded_amount"


def hours(n: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=n)


def link(n: int) -> str:
    return f"https://aliexpress.com/item/10050012345678{n:02d}.html"


def click(session, cfg, customer_id: int, n: int = 1):
    result = clicks.create_click(session, session.get(Customer, customer_id), link(n), "web", config=cfg, now=T0)
    session.commit()
    return result.click


def postback(session, cfg, sub_id, order, status, at, *, amount="100.00", commission="8.00", currency="USD",
             refunded=None):
    body = {"event_id": f"{order}:{status}:{at.isoformat()}", "order_id": order, "sub_id": sub_id,
            "status": status, "order_amount": amount, "currency": currency, "commission": commission,
            "event_time": at.isoformat()}
    if refunded is not None:
        body["refunded_amount"] = refunded
    outcome = orders.receive_event(session, orders.parse_event(body, "epn"), default_rate=cfg["DEFAULT_CASHBACK_RATE"])
    session.commit()
    return outcome


def report(*rows: tuple) -> bytes:
    """A report CSV; each row is (order_id, sub_id, status, amount, currency, commission, time[, refunded])."""
    lines = [HEADER]
    for row in rows:
        cells = [str(c.isoformat() if isinstance(c, dt.datetime) else c) for c in row]
        lines.append(",".join(cells + [""] * (8 - len(cells))))
    return ("\n".join(lines) + "\n").encode()


def balances(session, cid):
    session.expire_all()
    return ledger.customer_balances(session, cid)


def approve(session, recon, reason: str = "checked with the network"):
    result = reconciliation.approve_proposal(session, recon.id, CHECKER, reason)
    session.commit()
    return result


def count(session, model, *where) -> int:
    return session.execute(sa.select(sa.func.count()).select_from(model).where(*where)).scalar_one()


def lines_by_order(session, recon) -> dict[str, ReconLine]:
    return {line.network_order_id: line for line in session.execute(
        sa.select(ReconLine).where(ReconLine.import_id == recon.id)).scalars()}


@pytest.fixture
def cfg(app):
    return dict(app.config)


@pytest.fixture
def world(session, customers, cfg):
    """Our orders, and a report that differs from them in every way there is.

    ========  ==========================  ====================================  ==============
    order     ours                        the report                            kind
    ========  ==========================  ====================================  ==============
    A-1       paid (c1)                   confirmed                             status_drift
    B-1       paid 100/8 (c2)             paid 90/7.20                          amount_drift
    C-1       confirmed (c3)              confirmed, same amounts               match
    D-1       paid (c1), in the span      absent                                missing_there
    E-1       —                           paid, sub-id of c2's 2nd click        missing_here
    F-1       confirmed (c3)              paid, older                           status_drift, behind
    G-1       paid (c2), after the span   absent                                (not reported)
    ========  ==========================  ====================================  ==============
    """
    subs = {name: click(session, cfg, cid, n).sub_id
            for name, cid, n in [("A", 1, 1), ("B", 2, 2), ("C", 3, 3), ("D", 1, 4), ("E", 2, 5), ("F", 3, 6),
                                 ("G", 2, 7)]}
    postback(session, cfg, subs["A"], "A-1", "paid", hours(1))
    postback(session, cfg, subs["B"], "B-1", "paid", hours(1))
    postback(session, cfg, subs["C"], "C-1", "confirmed", hours(2))
    postback(session, cfg, subs["D"], "D-1", "paid", hours(2))
    postback(session, cfg, subs["F"], "F-1", "confirmed", hours(3))
    postback(session, cfg, subs["G"], "G-1", "paid", hours(30))
    data = report(
        ("A-1", subs["A"], "confirmed", "100.00", "USD", "8.00", hours(4)),
        ("B-1", subs["B"], "paid", "90.00", "USD", "7.20", hours(2)),
        ("C-1", subs["C"], "confirmed", "100.00", "USD", "8.00", hours(2)),
        ("E-1", subs["E"], "paid", "50.00", "USD", "4.00", hours(3)),
        ("F-1", subs["F"], "paid", "100.00", "USD", "8.00", hours(1)),
    )
    return subs, data


# --- importing --------------------------------------------------------------------------------

def test_import_finds_each_kind_of_difference(session, world):
    """Every kind shows up once, with both snapshots, and only orders in the report's span count as missing."""
    _subs, data = world
    recon = reconciliation.import_report(session, data, "epn-nov.csv", FINANCE, network="epn")
    session.commit()
    lines = lines_by_order(session, recon)
    assert {k: line.kind for k, line in lines.items()} == {
        "A-1": "status_drift", "B-1": "amount_drift", "C-1": "match", "D-1": "missing_there",
        "E-1": "missing_here", "F-1": "status_drift"}
    assert reconciliation.counts(session, recon.id) == {
        "missing_here": 1, "missing_there": 1, "status_drift": 2, "amount_drift": 1, "match": 1}
    assert (recon.rows, recon.errors, recon.filename, recon.imported_by) == (5, [], "epn-nov.csv",
                                                                           "system:finance-test")
    a, b, d, e, f = (lines[k] for k in ("A-1", "B-1", "D-1", "E-1", "F-1"))
    assert (a.line, a.ours["status"], a.theirs["status"], a.theirs["behind"]) == (2, "paid", "confirmed", False)
    assert b.theirs["differs"] == ["amount", "commission"] and b.ours["amount_usd"] == "100.000000"
    assert (b.theirs["order_amount"], b.theirs["commission"]) == ("90.00", "7.20")
    assert (d.line, d.theirs["absent"], d.ours["status"]) == (0, True, "paid")
    assert e.ours is None and e.theirs["sub_id"] == _subs["E"]
    assert (f.theirs["behind"], reconciliation.is_applicable(f)) == (True, False)
    audit = session.execute(sa.select(AuditRecord).where(AuditRecord.action == "recon.import.created")).scalar_one()
    assert audit.after["lines"]["status_drift"] == 2


def test_reimporting_the_same_file_changes_nothing(session, world):
    """The same bytes again return the first import; no line, audit row or order changes."""
    _subs, data = world
    first = reconciliation.import_report(session, data, "a.csv", FINANCE, network="epn")
    session.commit()
    before = (count(session, ReconImport), count(session, ReconLine), count(session, AuditRecord),
              count(session, Posting))
    again = reconciliation.import_report(session, data, "renamed.csv", FINANCE, network="epn")
    session.commit()
    assert again.id == first.id and again.filename == "a.csv"
    assert (count(session, ReconImport), count(session, ReconLine), count(session, AuditRecord),
            count(session, Posting)) == before


def test_bad_lines_are_kept_and_missing_there_is_not_guessed(session, world):
    """A bad line is an error of the import; with one, no order is declared missing (it may be that line)."""
    subs, _data = world
    data = report(("A-1", subs["A"], "confirmed", "100.00", "USD", "8.00", hours(4)),
                  ("D-1", subs["D"], "paid", "lots", "USD", "8.00", hours(2)),
                  ("X-9", "sub", "paid", "10.1234567", "USD", "1.00", hours(2)))
    recon = reconciliation.import_report(session, data, "bad.csv", FINANCE, network="epn")
    session.commit()
    kinds = {line.network_order_id: line.kind for line in recon.lines}
    assert kinds == {"A-1": "status_drift"}
    assert [(e["line"], e["field"]) for e in recon.errors][:2] == [(3, "order_amount"), (4, "order_amount")]
    assert len(recon.errors) == 3 and (recon.errors[-1]["line"], recon.errors[-1]["field"]) == (None, None)


def test_a_file_without_usable_rows_is_refused_and_stores_nothing(session, customers):
    """Wrong header: Invalid with the parser's reasons, no import row."""
    with pytest.raises(Invalid) as info:
        reconciliation.import_report(session, b"id;what\n1;2\n", "x.csv", FINANCE, network="epn")
    assert info.value.code == "unusable_report" and "order_id" in info.value.errors[0]["message"]
    session.rollback()
    assert count(session, ReconImport) == 0


def test_rub_rows_compare_in_usd_at_the_days_rate(session, customers, cfg):
    """An RUB order compares equal at its day's rate; without a rate the row is an error, not a guess."""
    fx.correct_rate(session, T0.date(), D("80.00"), FINANCE, "test rate")
    session.commit()
    sub = click(session, cfg, 1).sub_id
    postback(session, cfg, sub, "R-1", "paid", hours(1), amount="8000.00", commission="640.00", currency="RUB")
    same = report(("R-1", sub, "paid", "8000.00", "RUB", "640.00", hours(1)))
    recon = reconciliation.import_report(session, same, "rub.csv", FINANCE, network="epn")
    assert [line.kind for line in recon.lines] == ["match"]
    later = report(("R-1", sub, "confirmed", "8000.00", "RUB", "640.00", hours(-24 * 40)))
    recon = reconciliation.import_report(session, later, "rub-old.csv", FINANCE, network="epn")
    error = recon.errors[0]
    assert recon.lines == [] and (error["line"], error["field"]) == (2, "event_time")
    assert hours(-24 * 40).date().isoformat() in error["message"]


# --- applying -----------------------------------------------------------------------------------

def test_applying_a_line_moves_the_ledger_exactly_as_the_postback_would(session, customers, cfg):
    """Two twin orders: one confirmed by postback, one by a report line; the money ends the same."""
    sub1, sub2 = click(session, cfg, 1, 1).sub_id, click(session, cfg, 2, 2).sub_id
    postback(session, cfg, sub1, "T-1", "paid", hours(1))
    postback(session, cfg, sub2, "T-2", "paid", hours(1))
    postback(session, cfg, sub1, "T-1", "confirmed", hours(5))
    recon = reconciliation.import_report(
        session, report(("T-1", sub1, "confirmed", "100.00", "USD", "8.00", hours(5)),
                        ("T-2", sub2, "confirmed", "100.00", "USD", "8.00", hours(5))), "t.csv", FINANCE, network="epn")
    session.commit()
    line = lines_by_order(session, recon)["T-2"]
    result = reconciliation.apply_line(session, line.id, FINANCE, "the report is the truth")
    session.commit()
    assert result.outcome == "proposed" and balances(session, 2)["available"] == 0  # raises cashback: four eyes
    assert [r.outcome for r in approve(session, recon).applied] == ["applied"]
    assert balances(session, 2) == balances(session, 1)
    assert balances(session, 2)["available"] == D("7.00")

    def legs(order_no):
        posting = session.execute(sa.select(Posting).where(Posting.memo == f"order epn:{order_no}",
                                                           Posting.kind == "cashback.available")).scalar_one()
        rows = session.execute(sa.text("SELECT a.kind, e.amount FROM ledger_entry e JOIN ledger_account a "
                                       "ON a.id = e.account_id WHERE e.posting_id = :p ORDER BY a.kind"),
                               {"p": posting.id}).all()
        return posting, [tuple(r) for r in rows]

    (p1, legs1), (p2, legs2) = legs("T-1"), legs("T-2")
    assert legs1 == legs2
    digest = recon.digest[:16]
    assert p2.reference == f"event:epn:recon:{digest}:{line.line}" and p2.actor == "system:finance-checker"
    event = session.execute(sa.select(NetworkEvent).where(NetworkEvent.event_id == f"recon:{digest}:3")).scalar_one()
    assert (event.source, event.outcome) == ("reconciliation", "applied")
    assert ledger.verify(session).ok


def test_applying_twice_is_a_noop_even_if_the_line_forgot(session, world):
    """A second apply says already_applied; the event id is deterministic, so even a reset line moves no money."""
    _subs, data = world
    recon = reconciliation.import_report(session, data, "w.csv", FINANCE, network="epn")
    session.commit()
    line = lines_by_order(session, recon)["A-1"]
    reconciliation.apply_line(session, line.id, FINANCE, "confirmed at the network")
    session.commit()
    approve(session, recon)
    state = (count(session, Posting), count(session, AuditRecord), count(session, NetworkEvent), balances(session, 1))
    assert reconciliation.apply_line(session, line.id, FINANCE, "again").outcome == "already_applied"
    session.commit()
    assert (count(session, Posting), count(session, AuditRecord), count(session, NetworkEvent),
            balances(session, 1)) == state
    line.applied_at = None  # as if the line had lost its mark
    session.commit()
    assert reconciliation.apply_line(session, line.id, FINANCE, "third time").outcome == "duplicate"
    session.commit()
    assert (count(session, Posting), balances(session, 1)) == (state[0], state[3])


def test_apply_audits_with_the_reason_and_marks_the_line(session, world):
    _subs, data = world
    recon = reconciliation.import_report(session, data, "w.csv", FINANCE, network="epn")
    session.commit()
    line = lines_by_order(session, recon)["B-1"]
    reconciliation.apply_line(session, line.id, Actor.system("finance-ann"), "  network corrected the amount ")
    session.commit()
    session.refresh(line)
    assert line.applied_by == "system:finance-ann" and line.applied_at is not None
    record = session.execute(sa.select(AuditRecord).where(AuditRecord.action == "recon.line.applied")).scalar_one()
    assert (record.object_type, record.object_id, record.reason) == ("recon_line", str(line.id),
                                                                     "network corrected the amount")
    assert record.before["kind"] == "amount_drift" and D(record.after["booked_cashback"]) == D("6.3")  # 90 × 7 %
    assert balances(session, 2)["pending"] == D("13.30")  # B-1 now 6.30, G-1 7.00


def test_missing_there_cancels_our_order_and_takes_the_cashback_back(session, world):
    """Absent from the report: applying cancels through the order logic; amounts stay ours."""
    _subs, data = world
    recon = reconciliation.import_report(session, data, "w.csv", FINANCE, network="epn")
    session.commit()
    assert balances(session, 1)["pending"] == D("14.00")  # A-1 and D-1
    line = lines_by_order(session, recon)["D-1"]
    reconciliation.apply_line(session, line.id, FINANCE, "not in the network's report")
    session.commit()
    order = session.execute(sa.select(Order).where(Order.network_order_id == "D-1")).scalar_one()
    assert (order.status, order.booked_in, order.amount_usd) == ("cancelled", "none", D("100"))
    assert balances(session, 1)["pending"] == D("7.00")
    event = session.execute(sa.select(NetworkEvent).where(NetworkEvent.order_id == order.id,
                                                          NetworkEvent.source == "reconciliation")).scalar_one()
    assert event.event_id == f"recon:{recon.digest[:16]}:absent:D-1" and event.event_time == hours(4)
    assert ledger.verify(session).ok


def test_missing_there_is_refused_when_the_order_moved_since(session, world, cfg):
    """A newer event after the report's end means the network has spoken since: no blind cancellation."""
    subs, data = world
    recon = reconciliation.import_report(session, data, "w.csv", FINANCE, network="epn")
    session.commit()
    postback(session, cfg, subs["D"], "D-1", "confirmed", hours(8))
    with pytest.raises(Conflict) as info:
        reconciliation.apply_line(session, lines_by_order(session, recon)["D-1"].id, FINANCE, "absent")
    assert info.value.code == "order_changed"
    session.rollback()
    assert session.execute(sa.select(Order.status).where(Order.network_order_id == "D-1")).scalar_one() == "confirmed"


def test_missing_here_creates_the_order_for_the_click(session, world):
    subs, data = world
    recon = reconciliation.import_report(session, data, "w.csv", FINANCE, network="epn")
    session.commit()
    reconciliation.apply_line(session, lines_by_order(session, recon)["E-1"].id, FINANCE, "postback lost")
    session.commit()
    assert count(session, Order, Order.network_order_id == "E-1") == 0  # proposed: it would raise c2's cashback
    approve(session, recon)
    order = session.execute(sa.select(Order).where(Order.network_order_id == "E-1")).scalar_one()
    assert (order.customer_id, order.sub_id, order.status, order.booked_cashback) == (2, subs["E"], "paid", D("3.5"))


def test_a_refund_in_the_report_is_an_amount_drift_applied_pro_rata(session, customers, cfg):
    """A "refunded" row says nothing about the status; its refund is applied like a refund postback."""
    sub = click(session, cfg, 1).sub_id
    postback(session, cfg, sub, "Q-1", "confirmed", hours(1))
    recon = reconciliation.import_report(
        session, report(("Q-1", sub, "refunded", "100.00", "USD", "8.00", hours(2), "40.00")), "q.csv", FINANCE,
        network="epn")
    line = recon.lines[0]
    assert (line.kind, line.theirs["differs"], line.theirs["behind"]) == ("amount_drift", ["refunded"], False)
    reconciliation.apply_line(session, line.id, FINANCE, "refund in the monthly report")
    session.commit()
    assert balances(session, 1)["available"] == D("4.20")  # (100 - 40) × 7 %
    assert session.execute(sa.select(Order.status).where(Order.network_order_id == "Q-1")).scalar_one() == "confirmed"


def test_behind_and_match_lines_have_nothing_to_apply(session, world):
    _subs, data = world
    recon = reconciliation.import_report(session, data, "w.csv", FINANCE, network="epn")
    session.commit()
    lines = lines_by_order(session, recon)
    for order_no, code in (("F-1", "network_behind"), ("C-1", "nothing_to_apply")):
        with pytest.raises(Conflict) as info:
            reconciliation.apply_line(session, lines[order_no].id, FINANCE, "try")
        assert info.value.code == code
        session.rollback()
    assert session.execute(sa.select(Order.status).where(Order.network_order_id == "F-1")).scalar_one() == "confirmed"
    assert count(session, ReconLine, ReconLine.applied_at.is_not(None)) == 0


def test_a_reason_is_required(session, world):
    _subs, data = world
    recon = reconciliation.import_report(session, data, "w.csv", FINANCE, network="epn")
    session.commit()
    with pytest.raises(Invalid) as info:
        reconciliation.apply_line(session, lines_by_order(session, recon)["A-1"].id, FINANCE, "   ")
    assert info.value.code == "reason_required"
    with pytest.raises(Invalid):
        reconciliation.apply_all(session, recon.id, FINANCE, "")
    session.rollback()
    assert count(session, ReconLine, ReconLine.applied_at.is_not(None)) == 0


def test_apply_all_applies_each_open_line_and_skips_behind(session, world):
    """Four applicable lines: those taking cashback away applied at once, those raising it (A-1
    confirmed, E-1 created) proposed and applied on a second person's approval, each audited;
    the behind line and the match stay open."""
    _subs, data = world
    recon = reconciliation.import_report(session, data, "w.csv", FINANCE, network="epn")
    session.commit()
    result = reconciliation.apply_all(session, recon.id, FINANCE, "monthly reconciliation")
    session.commit()
    assert (len(result.applied), len(result.proposed), result.skipped, result.failed) == (2, 2, 1, [])
    assert {line.network_order_id for line in recon.lines if line.applied_at} == {"B-1", "D-1"}
    pending = reconciliation.proposal(session, recon.id)
    assert ({line.network_order_id for line in pending.lines}, pending.total_usd) == ({"A-1", "E-1"}, D("10.50"))
    with pytest.raises(reconciliation.FourEyes):
        reconciliation.approve_proposal(session, recon.id, FINANCE, "my own")
    session.rollback()
    assert len(approve(session, recon, "monthly reconciliation").applied) == 2
    records = session.execute(sa.select(AuditRecord).where(AuditRecord.action == "recon.line.applied")).scalars().all()
    assert len(records) == 4 and {r.reason for r in records} == {"monthly reconciliation"}
    assert {line.network_order_id for line in recon.lines if line.applied_at} == {"A-1", "B-1", "D-1", "E-1"}
    # again: nothing left to do
    assert reconciliation.apply_all(session, recon.id, FINANCE, "again").applied == []
    # importing the same report now: what was applied matches
    assert ledger.verify(session).ok


def test_apply_all_goes_on_after_a_failing_line(session, customers, cfg):
    """An RUB line without a rate fails alone (savepoint); the other line is applied and committed."""
    sub = click(session, cfg, 1).sub_id
    postback(session, cfg, sub, "K-1", "paid", hours(1))
    data = report(("K-1", sub, "confirmed", "100.00", "USD", "8.00", hours(2)),
                  ("K-2", "unknown-sub", "paid", "800.00", "RUB", "64.00", hours(2)))
    recon = reconciliation.import_report(session, data, "k.csv", FINANCE, network="epn")
    session.commit()
    result = reconciliation.apply_all(session, recon.id, FINANCE, "bulk")
    session.commit()
    assert len(result.proposed) == 1 and len(result.failed) == 1
    assert len(approve(session, recon).applied) == 1
    k2 = lines_by_order(session, recon)["K-2"]
    assert result.failed[0][:2] == (k2.id, "no_rate") and k2.applied_at is None
    assert balances(session, 1)["available"] == D("7.00")
    assert count(session, Order, Order.network_order_id == "K-2") == 0
    assert ledger.verify(session).ok


# --- the CLI ----------------------------------------------------------------------------------

CBR_XML = ('<?xml version="1.0" encoding="windows-1251"?>\n<ValCurs Date="20.11.2026" name="Foreign Currency Market">'
           '<Valute ID="R01235"><NumCode>840</NumCode><CharCode>USD</CharCode><Nominal>1</Nominal>'
           '<Name>Доллар США</Name><Value>78,1234</Value></Valute>'
           '<Valute ID="R01239"><NumCode>978</NumCode><CharCode>EUR</CharCode><Nominal>1</Nominal>'
           '<Name>Евро</Name><Value>90,4012</Value></Valute></ValCurs>').encode("cp1251")


def test_cli_import_rates(app, clean_db, tmp_path):
    """import-rates stores USD and EUR and says so; a second run changes nothing; a bad file exits 1."""
    path = tmp_path / "XML_daily.asp"
    path.write_bytes(CBR_XML)
    runner = app.test_cli_runner()
    first = runner.invoke(cli_cashback.import_rates_command, [str(path)])
    assert first.exit_code == 0, first.output
    assert "rates of 2026-11-20: 2 created, 0 updated, 0 unchanged" in first.output
    assert "0 created, 0 updated, 2 unchanged" in runner.invoke(cli_cashback.import_rates_command, [str(path)]).output
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<html>maintenance</html>")
    refused = runner.invoke(cli_cashback.import_rates_command, [str(bad)])
    assert refused.exit_code == 1 and "ValCurs" in refused.output
    from portal.extensions import db

    with app.app_context():
        assert {(r.base, r.rate) for r in db.session.query(FxRate)} == {("USD", D("78.1234")), ("EUR", D("90.4012"))}


def test_cli_import_orders_prints_differences_and_applies(app, session, world, tmp_path):
    """import-orders lists the differences; --apply applies them with the reason "CLI import"."""
    _subs, data = world
    path = tmp_path / "epn.csv"
    path.write_bytes(data)
    runner = app.test_cli_runner()
    result = runner.invoke(cli_cashback.import_orders_command, [str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "5 rows" in out and "missing_here 1" in out and "match 1" in out
    assert "behind (left alone)" in out and "C-1" not in out  # matches are counted, not listed
    session.expire_all()
    assert count(session, ReconLine, ReconLine.applied_at.is_not(None)) == 0
    again = runner.invoke(cli_cashback.import_orders_command, [str(path), "--apply"])
    assert again.exit_code == 0, again.output
    assert "imported before" in again.output and "applied 2 line(s), proposed 2 that raise cashback" in again.output
    session.expire_all()
    assert count(session, ReconImport) == 1
    reasons = session.execute(sa.select(AuditRecord.reason).where(AuditRecord.action == "recon.line.applied")).scalars()
    assert set(reasons) == {"CLI import"}
    assert runner.invoke(args=["verify-ledger"]).exit_code == 0


def test_cli_import_orders_refuses_an_unusable_file(app, clean_db, tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"")
    result = app.test_cli_runner().invoke(cli_cashback.import_orders_command, [str(path)])
    assert result.exit_code == 1 and result.output.startswith("Error: x.csv: ")


def test_cli_sign_postback_prints_a_curl_that_verifies(app, tmp_path):
    """The printed curl carries a body and headers that the endpoint's verify() accepts."""
    body = json.dumps({"event_id": "e-1", "order_id": "A-1", "note": "it's \"quoted\""}).encode()
    path = tmp_path / "body.json"
    path.write_bytes(body)
    result = app.test_cli_runner().invoke(cli_cashback.sign_postback_command,
                                          [str(path), "--timestamp", "1800000000", "--url", "http://x/pb"])
    assert result.exit_code == 0, result.output
    words = shlex.split(result.output)
    assert words[:5] == ["curl", "-sS", "-X", "POST", "http://x/pb"]
    headers = dict(words[i + 1].split(": ", 1) for i, w in enumerate(words) if w == "-H")
    sent = words[words.index("--data-raw") + 1].encode()
    assert sent == body and headers["X-Cashback-Network"] == "epn"
    verify(app.config["POSTBACK_SECRETS"]["epn"].encode(), sent, headers, now=1_800_000_000)
    unknown = app.test_cli_runner().invoke(cli_cashback.sign_postback_command, [str(path), "--network", "nope"])
    assert unknown.exit_code == 1 and "no postback secret" in unknown.output
