"""The customer's cabinet pages and the /go redirect, through the Flask test client, on PostgreSQL.

The seed's flow: paste a product link -> "Buy with cashback" -> the information message
and a "Continue" link -> /go/<sub_id> logs the visit and redirects to the network.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Click, ClickVisit
from portal.models.types import utcnow
from portal.services import clicks, customers, fx, orders
from portal.services.audit import Actor
from tests.conftest import login

PASSWORD = "pw-" + "x" * 8
LINK = "https://aliexpress.ru/item/1005001234567890.html?spm=a2g0o"
OTHER_LINK = "https://aliexpress.com/item/1005009999999999.html"
EN = {"Accept-Language": "en"}


def make_customer(app, email: str = "anna@test.local", name: str = "Anna") -> int:
    with app.app_context():
        customer = customers.create_customer(db.session, app.appbuilder.sm, email=email, name=name,
                                             password=PASSWORD, actor=Actor.system("test"))
        db.session.commit()
        return customer.id


def english(client) -> None:
    """Pin the session's locale to English (FAB's language menu does the same)."""
    with client.session_transaction() as sess:
        sess["locale"] = "en"


def buy(client, url: str = LINK):
    return client.post("/cabinet/buy", data={"url": url})


def sub_id_of(response) -> str:
    match = re.fullmatch(r".*/cabinet/ready/([A-Za-z0-9_-]+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


def receive(app, sub_id: str, status: str, *, order: str = "A-1", n: int = 1, amount: str = "100.00",
            refunded: str | None = None) -> None:
    body = {"event_id": f"{order}:{status}:{n}", "order_id": order, "sub_id": sub_id, "status": status,
            "order_amount": amount, "currency": "USD", "commission": "8.00",
            "event_time": (utcnow() - dt.timedelta(hours=5) + dt.timedelta(minutes=n)).isoformat()}
    if refunded is not None:
        body["refunded_amount"] = refunded
    with app.app_context():
        orders.receive_event(db.session, orders.parse_event(body, "epn"),
                             default_rate=app.config["DEFAULT_CASHBACK_RATE"])
        db.session.commit()


def count(app, model) -> int:
    with app.app_context():
        return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


@pytest.fixture
def anna(app, client, clean_db):
    """Customer Anna, logged in on ``client`` with English pages."""
    customer_id = make_customer(app)
    login(client, "anna@test.local")
    english(client)
    return customer_id


# --- the flow ----------------------------------------------------------------------------------

def test_paste_link_buy_continue_and_go(app, client, anna):
    """Cabinet -> paste link -> button -> info message -> continue link -> /go logs and redirects."""
    page = client.get("/cabinet/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="url"' in html and "Buy with cashback" in html and 'action="/cabinet/buy"' in html

    response = buy(client)
    assert response.status_code == 302
    sub_id = sub_id_of(response)

    ready = client.get(response.headers["Location"])
    html = ready.get_data(as_text=True)
    assert ready.status_code == 200
    assert "Do not use coupons or promo codes from other sites and turn off ad blockers" in html
    assert 'id="spam-warning"' not in html
    assert f'href="/go/{sub_id}"' in html and "Continue (go to the purchase)" in html
    # the product, on the customer's own site (.ru stays .ru), links through the tracking redirect too
    assert f'<a href="/go/{sub_id}" id="product-link">https://aliexpress.ru/item/1005001234567890.html</a>' in html
    assert "Your cashback rate: 7%" in html

    go = client.get(f"/go/{sub_id}", headers={"User-Agent": "Firefox/130"},
                    environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert go.status_code == 302
    assert go.headers["Location"].startswith("https://alitems.site/")
    assert f"sub={sub_id}" in go.headers["Location"]
    assert "ulp=https%3A%2F%2Faliexpress.ru%2Fitem%2F1005001234567890.html" in go.headers["Location"]  # .ru stays
    assert go.headers["Cache-Control"] == "no-store"
    with app.app_context():
        click = db.session.execute(sa.select(Click).where(Click.sub_id == sub_id)).scalar_one()
        assert (click.customer_id, click.channel) == (anna, "web")
        visit = db.session.execute(sa.select(ClickVisit)).scalar_one()
        assert visit.click_id == click.id and visit.channel == "web" and visit.user_agent == "Firefox/130"
        assert visit.ip_hash == clicks.hash_ip("203.0.113.7", "test-secret")
        assert "203.0.113.7" not in visit.ip_hash and len(visit.ip_hash) == 64


def test_go_takes_the_channel_from_ch_and_is_public(app, client, anna):
    """/go needs no login; ?ch= records the channel, an unknown one falls back to the click's."""
    sub_id = sub_id_of(buy(client))
    anonymous = app.test_client()
    assert anonymous.get(f"/go/{sub_id}?ch=extension").status_code == 302
    assert anonymous.get(f"/go/{sub_id}?ch=fax").status_code == 302
    with app.app_context():
        channels = db.session.execute(sa.select(ClickVisit.channel).order_by(ClickVisit.id)).scalars().all()
    assert channels == ["extension", "web"]


def test_go_with_an_unknown_sub_id_is_a_404_page(app, client):
    """An unknown sub-id answers a page (not JSON) that says what to do; nothing is logged."""
    response = client.get("/go/no-such-sub-id", headers=EN)
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Paste the product link again" in response.get_data(as_text=True)
    assert count(app, ClickVisit) == 0


def test_go_head_request_redirects_without_logging(app, client, anna):
    """A HEAD (link preview) is redirected but not counted as a visit."""
    sub_id = sub_id_of(buy(client))
    response = client.head(f"/go/{sub_id}")
    assert response.status_code == 302 and "alitems.site" in response.headers["Location"]
    assert client.head("/go/nope").status_code == 404
    assert count(app, ClickVisit) == 0


def test_a_bad_link_shows_the_reason_and_records_nothing(app, client, anna):
    """A rejected link re-renders the form (422) with the checker's message and the pasted text."""
    response = buy(client, "https://aliexpress.com.evil.ru/item/1005001234567890.html")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="link-error"' in html and "This is not an AliExpress link" in html
    assert 'value="https://aliexpress.com.evil.ru/item/1005001234567890.html"' in html  # kept in the field
    assert count(app, Click) == 0


def test_third_click_on_a_product_shows_the_spam_warning(app, client, anna):
    """The third click on one product within the window shows the spam warning; the first does not."""
    subs = [sub_id_of(buy(client)) for _ in range(3)]
    first = client.get(f"/cabinet/ready/{subs[0]}").get_data(as_text=True)
    third = client.get(f"/cabinet/ready/{subs[2]}").get_data(as_text=True)
    assert 'id="spam-warning"' not in first
    assert 'id="spam-warning"' in third and "3 times within 60 minutes" in third


def test_ready_page_of_someone_elses_click_is_404(app, client, anna):
    """A sub-id of another customer is not shown in this customer's cabinet."""
    make_customer(app, "boris@test.local", "Boris")
    other = app.test_client()
    login(other, "boris@test.local")
    boris_sub = sub_id_of(buy(other, OTHER_LINK))
    response = client.get(f"/cabinet/ready/{boris_sub}")
    assert response.status_code == 404
    assert boris_sub not in response.get_data(as_text=True)


# --- balance, statistics, clicks -----------------------------------------------------------------

def test_cabinet_shows_balance_in_usd_and_rub_and_minimum_in_rub(app, client, anna):
    """Pending and available in USD and in RUB at today's rate; the minimum withdrawal in RUB."""
    with app.app_context():
        fx.correct_rate(db.session, utcnow().date(), Decimal("80.00"), Actor.system("test"), "test")
        db.session.commit()
    sub_id = sub_id_of(buy(client))
    receive(app, sub_id, "paid", order="P-1")
    receive(app, sub_id, "confirmed", order="C-1", amount="50.00")
    html = client.get("/cabinet/").get_data(as_text=True)
    pending = re.search(r'id="balance-pending">(.*?)</tr>', html, re.S).group(1)
    available = re.search(r'id="balance-available">(.*?)</tr>', html, re.S).group(1)
    on_hold = re.search(r'id="balance-on_hold">(.*?)</tr>', html, re.S).group(1)
    assert "$7.00" in pending and "RUB\xa0560.00" in pending
    assert "$3.50" in available and "RUB\xa0280.00" in available
    assert "$0.00" in on_hold
    assert "Minimum withdrawal: RUB\xa016.00 ($0.20)" in html


def test_cabinet_without_an_exchange_rate_shows_usd_only(app, client, anna):
    """With no rate for today the page shows USD and says why RUB is missing."""
    html = client.get("/cabinet/").get_data(as_text=True)
    assert "Minimum withdrawal: $0.20." in html
    assert "no exchange rate for today" in html


def test_statistics_page_lists_own_orders_with_history(app, client, anna):
    """Orders with status, cashback and the dated history; another customer's order is absent."""
    sub_id = sub_id_of(buy(client))
    receive(app, sub_id, "paid", n=1)
    receive(app, sub_id, "confirmed", n=2)
    receive(app, sub_id, "refunded", n=3, refunded="40.00")
    make_customer(app, "boris@test.local", "Boris")
    other = app.test_client()
    login(other, "boris@test.local")
    receive(app, sub_id_of(buy(other, OTHER_LINK)), "paid", order="BORIS-ORDER")

    html = client.get("/cabinet/orders").get_data(as_text=True)
    assert 'data-order="A-1"' in html and "BORIS-ORDER" not in html
    row = re.search(r'data-order="A-1">(.*?)</tr>', html, re.S).group(1)
    history = re.search(r'<ul class="list-unstyled history">(.*?)</ul>', row, re.S).group(1)
    assert [s for s in re.findall(r"(Refunded|Confirmed|Paid)", history)] == ["Refunded", "Confirmed", "Paid"]
    assert "refunded $40.00" in history
    assert "$4.20" in row and "Available" in row  # (100 - 40) × 7 %, booked in available


def test_statistics_page_is_paginated(app, client, anna):
    """Three orders in pages of two, newest first, with a link to the next page."""
    sub_id = sub_id_of(buy(client))
    for i in range(3):
        receive(app, sub_id, "paid", order=f"O-{i}")
    first = client.get("/cabinet/orders?page_size=2").get_data(as_text=True)
    second = client.get("/cabinet/orders?page=2&page_size=2").get_data(as_text=True)
    assert re.findall(r'data-order="([^"]+)"', first) == ["O-2", "O-1"]
    assert re.findall(r'data-order="([^"]+)"', second) == ["O-0"]
    assert "Page 1 of 2" in first and "/cabinet/orders?page=2&amp;page_size=2" in first


def test_clicks_page_shows_repeat_counts(app, client, anna):
    """Clicks newest first with their repeat counts and /go links."""
    for _ in range(2):
        buy(client)
    html = client.get("/cabinet/clicks").get_data(as_text=True)
    assert re.findall(r'<td class="repeat-count">(\d+)</td>', html) == ["2", "1"]
    assert html.count("/go/") == 2
    assert "No clicks yet" not in html


def test_empty_statistics_and_clicks(client, anna):
    """A new customer sees friendly empty states."""
    assert "No orders yet" in client.get("/cabinet/orders").get_data(as_text=True)
    assert "No clicks yet" in client.get("/cabinet/clicks").get_data(as_text=True)


# --- who may enter -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/cabinet/", "/cabinet/orders", "/cabinet/clicks"])
def test_anonymous_is_sent_to_login(client, path):
    """Cabinet pages redirect an anonymous visitor to the login form."""
    response = client.get(path)
    assert response.status_code == 302 and "/login/" in response.headers["Location"]


def test_anonymous_cannot_buy(app, client, clean_db):
    """The buy form needs a login and records nothing without one."""
    response = client.post("/cabinet/buy", data={"url": LINK})
    assert response.status_code == 302 and "/login/" in response.headers["Location"]
    assert count(app, Click) == 0


@pytest.mark.parametrize("role", ["Support", "Finance", "Developer"])
def test_staff_get_403(client, make_user, role):
    """Staff roles have no cabinet permission: 403 on the pages and the form."""
    make_user(f"staff_{role.lower()}", role)
    login(client, f"staff_{role.lower()}")
    assert client.get("/cabinet/").status_code == 403
    assert client.post("/cabinet/buy", data={"url": LINK}).status_code == 403


def test_admin_without_a_customer_row_sees_a_clear_403(app, client, make_user):
    """Admin passes the permission check but has no customer row: a 403 page that says so."""
    make_user("root", "Admin")
    login(client, "root")
    english(client)
    response = client.get("/cabinet/")
    assert response.status_code == 403
    assert "log in with a customer account" in response.get_data(as_text=True)
    assert client.post("/cabinet/buy", data={"url": LINK}).status_code == 403
    assert count(app, Click) == 0


def test_customer_menu_links_to_the_cabinet(client, anna):
    """The Customer role's menu links the cabinet's statistics and clicks pages."""
    html = client.get("/cabinet/").get_data(as_text=True)
    assert 'href="/cabinet/orders"' in html and 'href="/cabinet/clicks"' in html


# --- CSRF ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def strict_app(pg_url, app):
    """The portal with CSRF protection on, as in production."""
    from tests.conftest import build_app

    return build_app(pg_url, WTF_CSRF_ENABLED=True)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def test_the_buy_form_needs_its_csrf_token(strict_app, clean_db):
    """With CSRF on, a post without the token is refused (400) and records nothing; with it, it works."""
    make_customer(strict_app)
    client = strict_app.test_client()
    token = csrf_token(client.get("/login/").get_data(as_text=True))
    assert client.post("/login/", data={"username": "anna@test.local", "password": PASSWORD,
                                        "csrf_token": token}).status_code == 302
    english(client)
    refused = client.post("/cabinet/buy", data={"url": LINK})
    assert refused.status_code == 400
    assert "The form has expired" in refused.get_data(as_text=True)
    assert count(strict_app, Click) == 0
    forged = client.post("/cabinet/buy", data={"url": LINK, "csrf_token": "forged"})
    assert forged.status_code == 400 and count(strict_app, Click) == 0
    page = client.get("/cabinet/").get_data(as_text=True)
    accepted = client.post("/cabinet/buy", data={"url": LINK, "csrf_token": csrf_token(page)})
    assert accepted.status_code == 302 and count(strict_app, Click) == 1
