"""The money-flow staff pages with the Flask test client: Finance (rates, reconciliation, promos),
Support (orders, orphans), Developers (postback rejections), and who may open what."""
from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import AuditRecord, Customer, FxRate, Order, PostbackRejection, Promo, ReconImport, ReconLine
from portal.services import clicks, ledger, orders
from tests.conftest import login
from tests.integration.test_reconciliation import CBR_XML, hours, report

D = Decimal


@pytest.fixture
def staff(app, client, make_user, customers):
    """Log ``client`` in as a fresh user of ``role`` (pages answer in English)."""
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"

    def as_role(role: str) -> str:
        username = f"u_{role.lower()}"
        make_user(username, role)
        login(client, username)
        return username

    return as_role


def q(app, statement):
    with app.app_context():
        return db.session.execute(statement)


def count(app, model, *where) -> int:
    return q(app, sa.select(sa.func.count()).select_from(model).where(*where)).scalar_one()


def make_order(app, *, customer_id: int | None, order_no: str, status: str = "paid", n: int = 1) -> int:
    """An order through the postback logic; ``customer_id=None`` makes an orphan."""
    with app.app_context():
        session = db.session
        sub = "no-such-sub"
        if customer_id is not None:
            sub = clicks.create_click(session, session.get(Customer, customer_id),
                                      f"https://aliexpress.com/item/10050012345678{n:02d}.html", "web",
                                      config=dict(app.config), now=hours(0)).click.sub_id
        body = {"event_id": f"{order_no}:{status}", "order_id": order_no, "sub_id": sub, "status": status,
                "order_amount": "100.00", "currency": "USD", "commission": "8.00",
                "event_time": hours(1).isoformat()}
        outcome = orders.receive_event(session, orders.parse_event(body, "epn"),
                                       default_rate=app.config["DEFAULT_CASHBACK_RATE"])
        session.commit()
        return outcome.order_id


def text(response) -> str:
    return response.get_data(as_text=True)


# --- exchange rates -------------------------------------------------------------------------------

def test_finance_uploads_cbr_rates_and_sees_them(app, client, staff):
    """The upload page imports the file, flashes the summary, and the list shows the rates."""
    staff("Finance")
    assert client.get("/fxrateview/upload/").status_code == 200
    response = client.post("/fxrateview/upload/", data={"file": (io.BytesIO(CBR_XML), "XML_daily.asp")},
                           content_type="multipart/form-data", follow_redirects=True)
    assert response.status_code == 200
    page = text(response)
    assert "Rates of Nov 20, 2026: 2 added, 0 updated, 0 unchanged." in page
    assert "<td>78.1234</td>" in "".join(page.split()) and "<td>90.4012</td>" in "".join(page.split())
    assert count(app, FxRate) == 2


@pytest.mark.parametrize("upload,message", [
    ((io.BytesIO(b"<html>down for maintenance</html>"), "XML_daily.asp"), "The rates file was refused"),
    (None, "Choose a file."),
])
def test_a_bad_rates_file_is_refused_visibly(app, client, staff, upload, message):
    staff("Finance")
    response = client.post("/fxrateview/upload/", data={"file": upload} if upload else {},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and message in text(response)
    assert count(app, FxRate) == 0


def test_correct_rate_is_saved_and_audited(app, client, staff):
    staff("Finance")
    response = client.post("/fxrateview/correct/", data={
        "day": "2026-11-20", "base": "USD", "rate": "79.5", "reason": "CBR published a correction"})
    assert response.status_code == 302
    with app.app_context():
        row = db.session.execute(sa.select(FxRate)).scalar_one()
        assert (row.day, row.base, row.rate, row.source) == (dt.date(2026, 11, 20), "USD", D("79.5"), "manual")
        record = db.session.execute(sa.select(AuditRecord).where(AuditRecord.action == "fx.rate.corrected")).scalar_one()
        assert (record.actor, record.reason, record.after["rate"]) == ("user:u_finance", "CBR published a correction",
                                                                       "79.500000")


@pytest.mark.parametrize("data,message", [
    ({"day": "2026-11-20", "base": "USD", "rate": "79.5", "reason": ""}, "Say why."),
    ({"day": "2026-11-20", "base": "USD", "rate": "-3", "reason": "x"}, "The rate must be a positive number."),
    ({"day": "2026-11-20", "base": "USD", "rate": "NaN", "reason": "x"}, "at most 6 decimal places"),
    ({"day": "20.11.2026", "base": "USD", "rate": "79.5", "reason": "x"}, "Not a valid date value."),
])
def test_correct_rate_rejects_bad_input(app, client, staff, data, message):
    staff("Finance")
    response = client.post("/fxrateview/correct/", data=data)
    assert response.status_code == 422 and message in text(response)
    assert count(app, FxRate) == 0 and count(app, AuditRecord) == 0


def test_forms_need_the_csrf_token_when_protection_is_on(app, client, staff, monkeypatch):
    """With CSRF on (as in production) a post without the page's token changes nothing; with it, it works."""
    staff("Finance")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    data = {"day": "2026-11-20", "base": "USD", "rate": "79.5", "reason": "correction"}
    assert client.post("/fxrateview/correct/", data=data).status_code == 400  # refused before the view
    assert count(app, FxRate) == 0
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', text(client.get("/fxrateview/correct/")))
    assert client.post("/fxrateview/correct/", data={**data, "csrf_token": token.group(1)}).status_code == 302
    assert count(app, FxRate) == 1


# --- reconciliation -------------------------------------------------------------------------------

@pytest.fixture
def report_file(app):
    """Orders A-1 (paid, report: confirmed), B-1 (match), C-1 (orphan here, report: confirmed)."""
    make_order(app, customer_id=1, order_no="A-1", n=1)
    make_order(app, customer_id=2, order_no="B-1", n=2)
    with app.app_context():
        subs = dict(db.session.execute(sa.select(Order.network_order_id, Order.sub_id)).all())
    return report(("A-1", subs["A-1"], "confirmed", "100.00", "USD", "8.00", hours(3)),
                  ("B-1", subs["B-1"], "paid", "100.00", "USD", "8.00", hours(1)),
                  ("N-1", "someone-else", "paid", "20.00", "USD", "1.60", hours(2)))


def upload_report(client, data: bytes, name: str = "epn.csv"):
    return client.post("/finance/reconciliation/upload", data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data", follow_redirects=True)


def test_finance_reconciles_through_the_pages(app, client, staff, report_file, make_user):
    """Upload, see the differences, filter by kind, propose the line raising cashback (a second
    Finance user approves it), then apply all; the ledger follows."""
    staff("Finance")
    response = upload_report(client, report_file)
    page = text(response)
    assert response.status_code == 200
    assert "Report imported: 3 rows, 2 differences, 0 errors." in page
    assert "A-1" in page and "N-1" in page and "Status differs" in page
    recon_id = q(app, sa.select(ReconImport.id)).scalar_one()
    filtered = text(client.get(f"/finance/reconciliation/{recon_id}?kind=missing_here"))
    assert "N-1" in filtered and "A-1" not in filtered
    assert "epn.csv" in text(client.get("/finance/reconciliation/"))

    line_a = q(app, sa.select(ReconLine.id).where(ReconLine.network_order_id == "A-1")).scalar_one()
    refused = client.post(f"/finance/reconciliation/line/{line_a}/apply", data={"reason": ""})
    assert refused.status_code == 422 and "was not applied: say why" in text(refused)
    assert count(app, ReconLine, ReconLine.applied_at.is_not(None)) == 0

    proposed = client.post(f"/finance/reconciliation/line/{line_a}/apply", data={"reason": "confirmed by EPN"},
                           follow_redirects=True)
    assert "Order A-1 would raise a customer&#39;s cashback: proposed" in text(proposed)
    assert "Waiting for a second Finance user" in text(proposed)
    with app.app_context():
        assert ledger.customer_balances(db.session, 1)["available"] == D("0")
    make_user("u_checker", "Finance")
    checker = app.test_client()
    checker.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    login(checker, "u_checker")
    assert checker.post(f"/finance/reconciliation/{recon_id}/approve", data={"reason": ""}).status_code == 422
    approved = checker.post(f"/finance/reconciliation/{recon_id}/approve", data={"reason": "EPN confirms"},
                            follow_redirects=True)
    assert "1 proposed lines approved and applied, 0 failed." in text(approved)
    with app.app_context():
        assert ledger.customer_balances(db.session, 1)["available"] == D("7.00")
        record = db.session.execute(sa.select(AuditRecord).where(AuditRecord.action == "recon.line.applied")).scalar_one()
        assert (record.actor, record.reason) == ("user:u_checker", "EPN confirms")

    assert client.post(f"/finance/reconciliation/{recon_id}/apply-all", data={"reason": ""}).status_code == 422
    done = client.post(f"/finance/reconciliation/{recon_id}/apply-all", data={"reason": "month end"},
                       follow_redirects=True)
    assert "1 lines applied, 0 left alone" in text(done)
    assert count(app, Order, Order.network_order_id == "N-1", Order.customer_id.is_(None)) == 1  # an orphan now
    with app.app_context():
        assert ledger.verify(db.session).ok


@pytest.mark.parametrize("data,message", [
    (b"", "The file has no usable order lines."),
    (b"order;sub\n1;2\n", "Required column order_id is missing from the header."),
])
def test_a_bad_report_is_refused_visibly(app, client, staff, data, message):
    staff("Finance")
    response = client.post("/finance/reconciliation/upload", data={"file": (io.BytesIO(data), "x.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and message in text(response)
    assert count(app, ReconImport) == 0


def test_uploading_the_same_report_twice_changes_nothing(app, client, staff, report_file):
    staff("Finance")
    upload_report(client, report_file, "one.csv")
    before = (count(app, ReconImport), count(app, ReconLine), count(app, AuditRecord))
    again = upload_report(client, report_file, "two.csv")
    assert "This file was imported before" in text(again)
    assert (count(app, ReconImport), count(app, ReconLine), count(app, AuditRecord)) == before


# --- promos ---------------------------------------------------------------------------------------

PROMO = {"name": "Black Friday", "rate": "12.5", "starts_at": "2026-11-27T00:00", "ends_at": "2026-11-30T23:59",
         "first_order_only": "y", "cap_usd": "25", "is_active": "y"}


def test_finance_adds_and_edits_a_promo_audited(app, client, staff):
    staff("Finance")
    assert client.post("/promoview/add", data=PROMO).status_code == 302
    with app.app_context():
        promo = db.session.execute(sa.select(Promo)).scalar_one()
        assert (promo.rate, promo.cap_usd, promo.first_order_only, promo.pays_difference) == (
            D("12.5"), D("25"), True, False)
        assert promo.starts_at == dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc)
        promo_id = promo.id
    assert client.post(f"/promoview/edit/{promo_id}", data={**PROMO, "rate": "15"}).status_code == 302
    with app.app_context():
        actions = db.session.execute(sa.select(AuditRecord.action, AuditRecord.before, AuditRecord.after)
                                     .order_by(AuditRecord.id)).all()
    assert [a for a, _b, _c in actions] == ["promo.created", "promo.updated"]
    assert actions[1][1:] == ({"rate": "12.500000"}, {"rate": "15"})


@pytest.mark.parametrize("change,message", [
    ({"ends_at": "2026-11-01T00:00"}, "The end must be after the start."),
    ({"rate": "0"}, "Enter a rate between 0.01 and 100."),
    ({"rate": "1.0000001"}, "at most 6 decimal places"),
])
def test_promo_form_rejects_bad_input(app, client, staff, change, message):
    staff("Finance")
    response = client.post("/promoview/add", data={**PROMO, **change})
    assert message in text(response)
    assert count(app, Promo) == 0


# --- support ---------------------------------------------------------------------------------------

def test_support_finds_orders_by_number_sub_id_and_email(app, client, staff):
    make_order(app, customer_id=1, order_no="S-100", n=1)
    make_order(app, customer_id=2, order_no="S-200", n=2)
    staff("Support")
    sub = q(app, sa.select(Order.sub_id).where(Order.network_order_id == "S-200")).scalar_one()
    for query in ("_flt_3_network_order_id=S-200", f"_flt_3_sub_id={sub}", "_flt_0_customer=C2@TEST"):
        page = text(client.get(f"/orderview/list/?{query}"))
        assert "S-200" in page and "S-100" not in page, query
    assert "c1@test.local" in text(client.get("/orderview/list/"))


def test_support_attaches_an_orphan_through_the_page(app, client, staff, make_user):
    """Support proposes the customer; Finance confirms on its queue, and only then is cashback booked."""
    order_id = make_order(app, customer_id=None, order_no="O-1", status="confirmed")
    make_order(app, customer_id=1, order_no="P-1")  # not an orphan: not listed
    staff("Support")
    listing = text(client.get("/orphanorderview/list/"))
    assert "O-1" in listing and "P-1" not in listing and f"/orphanorderview/attach/{order_id}" in listing
    assert "O-1" in text(client.get(f"/orphanorderview/attach/{order_id}"))

    for data, message in (({"customer": "c3@test.local", "reason": ""}, "Say why."),
                          ({"customer": "nobody@test.local", "reason": "screenshot"}, "No such customer.")):
        refused = client.post(f"/orphanorderview/attach/{order_id}", data=data)
        assert refused.status_code == 422 and message in text(refused)
        assert q(app, sa.select(Order.customer_id).where(Order.id == order_id)).scalar_one() is None

    response = client.post(f"/orphanorderview/attach/{order_id}",
                           data={"customer": " C3@test.local ", "reason": "order screenshot matches"},
                           follow_redirects=True)
    assert "Order O-1 proposed for c3@test.local: Finance confirms it" in text(response)
    with app.app_context():
        assert db.session.get(Order, order_id).customer_id is None  # nothing booked before Finance confirms
        assert ledger.customer_balances(db.session, 3)["available"] == D("0")
    again = client.post(f"/orphanorderview/attach/{order_id}", data={"customer": "c4@test.local", "reason": "no, c4"})
    assert again.status_code == 422 and "already waiting for Finance" in text(again)

    make_user("u_fin_attach", "Finance")
    finance = app.test_client()
    finance.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    login(finance, "u_fin_attach")
    queue = text(finance.get("/orders/attachments/"))
    assert "O-1" in queue and "c3@test.local" in queue and "order screenshot matches" in queue
    done = finance.post(f"/orders/attachments/{order_id}/decide", data={"decision": "approve", "note": ""},
                        follow_redirects=True)
    assert "Order O-1 now belongs to c3@test.local." in text(done)
    with app.app_context():
        assert db.session.get(Order, order_id).customer_id == 3
        assert ledger.customer_balances(db.session, 3)["available"] == D("7.00")
        record = db.session.execute(sa.select(AuditRecord).where(AuditRecord.action == "order.orphan.attached")).scalar_one()
        assert (record.actor, record.reason, record.before["proposed_by"]) == (
            "user:u_fin_attach", "order screenshot matches", "user:u_support")
    assert "O-1" not in text(client.get("/orphanorderview/list/"))


def test_network_events_are_listed_for_support(app, client, staff):
    make_order(app, customer_id=1, order_no="E-77")
    staff("Support")
    assert "E-77:paid" in text(client.get("/networkeventview/list/"))


# --- developers ------------------------------------------------------------------------------------

def test_developer_sees_postback_rejections_newest_first(app, client, staff):
    with app.app_context():
        db.session.add_all([
            PostbackRejection(network="epn", reason="bad_signature", message="first", http_status=401),
            PostbackRejection(network="epn", reason="stale_timestamp", message="second", http_status=401)])
        db.session.commit()
    staff("Developer")
    page = text(client.get("/postbackrejectionview/list/"))
    # the reasons read as words (portal.labels), newest first
    assert "Bad signature" in page and page.index("Timestamp too old") < page.index("Bad signature")
    assert "bad_signature" not in page


# --- who may open what -------------------------------------------------------------------------------

MATRIX = [
    # Support: orders and orphans, no finance actions, no developer pages
    ("Support", "GET", "/orderview/list/", 200),
    ("Support", "GET", "/orphanorderview/list/", 200),
    ("Support", "GET", "/networkeventview/list/", 200),
    ("Support", "GET", "/fxrateview/list/", 403),
    ("Support", "POST", "/fxrateview/upload/", 403),
    ("Support", "POST", "/fxrateview/correct/", 403),
    ("Support", "GET", "/finance/reconciliation/", 403),
    ("Support", "POST", "/finance/reconciliation/upload", 403),
    ("Support", "POST", "/finance/reconciliation/1/apply-all", 403),
    ("Support", "GET", "/promoview/list/", 403),
    ("Support", "POST", "/promoview/add", 403),
    ("Support", "GET", "/postbackrejectionview/list/", 403),
    # Finance: reads orders, runs the money pages, cannot attach orphans
    ("Finance", "GET", "/orderview/list/", 200),
    ("Finance", "GET", "/orphanorderview/list/", 200),
    ("Finance", "GET", "/orphanorderview/attach/1", 403),
    ("Finance", "POST", "/orphanorderview/attach/1", 403),
    ("Finance", "GET", "/orders/attachments/", 200),
    ("Support", "GET", "/orders/attachments/", 403),
    ("Support", "POST", "/orders/attachments/1/decide", 403),
    ("Developer", "GET", "/orders/attachments/", 403),
    ("Finance", "GET", "/fxrateview/list/", 200),
    ("Finance", "GET", "/finance/reconciliation/", 200),
    ("Finance", "GET", "/promoview/list/", 200),
    ("Finance", "GET", "/promoview/add", 200),
    ("Finance", "GET", "/postbackrejectionview/list/", 403),
    # Developer: rejections only, no customer data
    ("Developer", "GET", "/postbackrejectionview/list/", 200),
    ("Developer", "GET", "/orderview/list/", 403),
    ("Developer", "GET", "/orphanorderview/list/", 403),
    ("Developer", "GET", "/networkeventview/list/", 403),
    ("Developer", "GET", "/customerview/list/", 403),
    ("Developer", "GET", "/fxrateview/list/", 403),
    ("Developer", "GET", "/finance/reconciliation/", 403),
    # Customer: none of it
    ("Customer", "GET", "/orderview/list/", 403),
    ("Customer", "GET", "/postbackrejectionview/list/", 403),
    ("Admin", "GET", "/finance/reconciliation/", 200),
    ("Admin", "GET", "/orphanorderview/list/", 200),
]


@pytest.mark.parametrize("role,method,url,status", MATRIX)
def test_money_pages_permission_matrix(client, staff, role, method, url, status):
    staff(role)
    assert client.open(url, method=method).status_code == status


def test_finance_sees_no_attach_button_support_does(app, client, staff):
    """The attach link is shown only to those who may use it."""
    order_id = make_order(app, customer_id=None, order_no="O-9")
    staff("Finance")
    page = text(client.get("/orphanorderview/list/"))
    assert "O-9" in page and f"/orphanorderview/attach/{order_id}" not in page
