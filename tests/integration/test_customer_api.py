"""The customer JSON API (/api/v1/links, /clicks, /me/…) through the Flask test client, on PostgreSQL.

The services behind it are tested in ``test_orders.py`` and ``tests/unit/test_links.py``;
here: JWT and session auth, the one error shape for 401/403/422, the money format, the
scoping of ``/me`` to the customer behind the login, and pagination.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Click, Customer, Order, Promo
from portal.models.types import utcnow
from portal.security import ROLE_DEFINITIONS
from portal.services import customers, fx, orders
from portal.services.audit import Actor
from tests.conftest import login

PASSWORD = "pw-" + "x" * 8
LINK = "https://aliexpress.ru/item/1005001234567890.html?spm=a2g0o"
OTHER_LINK = "https://aliexpress.com/item/1005009999999999.html"
ERROR_KEYS = {"ok", "status", "error", "errors"}
ME_ROUTES = ["/api/v1/me/balance", "/api/v1/me/orders", "/api/v1/me/clicks"]


# --- helpers -----------------------------------------------------------------------------------

def make_customer(app, email: str = "anna@test.local", name: str = "Anna Petrova") -> int:
    with app.app_context():
        customer = customers.create_customer(db.session, app.appbuilder.sm, email=email, name=name,
                                             password=PASSWORD, actor=Actor.system("test"))
        db.session.commit()
        return customer.id


def token(client, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in through FAB's security API; the Authorization header for the access token."""
    response = client.post("/api/v1/security/login",
                           json={"username": username, "password": password, "provider": "db"})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


def assert_error(response, status: int, code: str) -> dict:
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == ERROR_KEYS
    assert body["ok"] is False and body["status"] == status and body["error"]["code"] == code
    assert body["error"]["message"]
    return body


def post_click(client, headers, url: str = LINK, channel: str = "web"):
    return client.post("/api/v1/clicks", json={"url": url, "channel": channel}, headers=headers)


def receive(app, sub_id: str, status: str, *, order: str = "A-1", n: int = 1, amount: str = "100.00",
            commission: str = "8.00", refunded: str | None = None, at: dt.datetime | None = None) -> None:
    """Apply one network event to an order, as a postback would."""
    body = {"event_id": f"{order}:{status}:{n}", "order_id": order, "sub_id": sub_id, "status": status,
            "order_amount": amount, "currency": "USD", "commission": commission,
            "event_time": (at or utcnow() - dt.timedelta(hours=10) + dt.timedelta(minutes=n)).isoformat()}
    if refunded is not None:
        body["refunded_amount"] = refunded
    with app.app_context():
        orders.receive_event(db.session, orders.parse_event(body, "epn"),
                             default_rate=app.config["DEFAULT_CASHBACK_RATE"])
        db.session.commit()


def set_rate(app, rate: str, day: dt.date | None = None) -> None:
    with app.app_context():
        fx.correct_rate(db.session, day or utcnow().date(), Decimal(rate), Actor.system("test"), "test rate")
        db.session.commit()


@pytest.fixture
def anna(app, clean_db):
    """A customer with a login (anna@test.local) and her customer id."""
    return make_customer(app)


@pytest.fixture
def anna_auth(client, anna):
    return token(client, "anna@test.local")


# --- link check (public) -----------------------------------------------------------------------

GOOD_LINKS = [  # (link, product id, the regional site the product stays on)
    (LINK, "1005001234567890", "aliexpress.ru"),
    ("aliexpress.com/item/4000123456789.html", "4000123456789", "aliexpress.com"),
    ("  https://m.aliexpress.us/item/1005001234567890.html\u200b ", "1005001234567890", "aliexpress.us"),
    ("https://aliexpress.ru/store/product/shop/123_1005001111111111.html", "1005001111111111", "aliexpress.ru"),
]

BAD_LINKS = [
    ("", "empty"),
    ("   ", "empty"),
    ("ftp://aliexpress.com/item/1005001234567890.html", "bad_scheme"),
    ("javascript:alert(1)", "bad_scheme"),
    ("https://aliexpress.com.evil.ru/item/1005001234567890.html", "not_aliexpress"),
    ("https://user@aliexpress.com@evil.ru/item/1005001234567890.html", "not_aliexpress"),
    ("https://aliexpress.com/store/1234567", "not_product"),
    ("https://aliexpress.com/item/0123456789.html", "not_product"),
    ("https://s.click.aliexpress.com/e/_DlXyZ12", "short_link_unavailable"),
    ("https://aliexpress.com\\@evil.ru/item/1005001234567890.html", "malformed"),
    ("not a link", "malformed"),
    ("https://aliexpress.com/" + "a" * 2100, "too_long"),
]


@pytest.mark.parametrize("url,product_id,site", GOOD_LINKS)
def test_link_check_accepts_product_links_without_login(client, url, product_id, site):
    """A product link answers its id, the canonical URL (on the link's own site) and the default rate,
    with no login."""
    response = client.post("/api/v1/links/check", json={"url": url})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"ok": True, "product_id": product_id, "rate": "7.00",
                                   "canonical_url": f"https://{site}/item/{product_id}.html"}


@pytest.mark.parametrize("url,code", BAD_LINKS)
def test_link_check_refuses_with_the_reason(client, url, code):
    """Anything else is 422 in the one error shape with the link checker's code."""
    assert_error(client.post("/api/v1/links/check", json={"url": url}), 422, code)


@pytest.mark.parametrize("kwargs", [{"data": "url=x"}, {"json": ["not", "an", "object"]}, {"json": None}])
def test_link_check_wants_a_json_object(client, kwargs):
    """A form post or a JSON non-object is refused, not guessed at."""
    assert_error(client.post("/api/v1/links/check", **kwargs), 422, "malformed_body")


def test_link_check_messages_follow_accept_language(client):
    """Russian by default; Accept-Language: en gives English."""
    ru = client.post("/api/v1/links/check", json={"url": "https://evil.ru/item/1005001234567890.html"})
    en = client.post("/api/v1/links/check", json={"url": "https://evil.ru/item/1005001234567890.html"},
                     headers={"Accept-Language": "en"})
    assert "This is not an AliExpress link" in en.get_json()["error"]["message"]
    ru_message = ru.get_json()["error"]["message"]
    assert ru_message != en.get_json()["error"]["message"]
    assert any("а" <= ch <= "я" for ch in ru_message.lower())


def test_link_check_quotes_the_customers_own_rate(app, client, anna, anna_auth):
    """A first-order promo is quoted to a logged-in customer without orders, not to anonymous callers."""
    with app.app_context():
        now = utcnow()
        db.session.add(Promo(name="Welcome", rate=Decimal("12.50"), starts_at=now - dt.timedelta(days=1),
                             ends_at=now + dt.timedelta(days=1), first_order_only=True))
        db.session.commit()
    anonymous = client.post("/api/v1/links/check", json={"url": LINK}).get_json()
    own = client.post("/api/v1/links/check", json={"url": LINK}, headers=anna_auth).get_json()
    assert (anonymous["rate"], own["rate"]) == ("7.00", "12.50")
    # a broken token on this public route is simply anonymous
    broken = client.post("/api/v1/links/check", json={"url": LINK}, headers={"Authorization": "Bearer nope"})
    assert broken.status_code == 200 and broken.get_json()["rate"] == "7.00"


# --- clicks ------------------------------------------------------------------------------------

def test_create_click_answers_go_url_and_message(app, client, anna, anna_auth):
    """A click: 201 with an unguessable sub-id, the absolute /go URL, the rate and the info message."""
    response = post_click(client, anna_auth, channel="extension")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["ok"] is True and len(body["sub_id"]) >= 22
    assert body["go_url"] == f"http://localhost/go/{body['sub_id']}"
    assert (body["rate"], body["repeat_count"], body["spam_warning"]) == ("7.00", 1, False)
    assert body["message"]
    with app.app_context():
        click = db.session.execute(sa.select(Click).where(Click.sub_id == body["sub_id"])).scalar_one()
        assert (click.customer_id, click.channel, click.product_id) == (anna, "extension", "1005001234567890")


def test_repeated_clicks_warn_about_spam(client, anna, anna_auth):
    """From the third click on one product within the window the answer warns, in the message too."""
    english = {**anna_auth, "Accept-Language": "en"}
    answers = [post_click(client, english) for _ in range(3)]
    bodies = [a.get_json() for a in answers]
    assert [b["repeat_count"] for b in bodies] == [1, 2, 3]
    assert [b["spam_warning"] for b in bodies] == [False, False, True]
    assert "spam" not in bodies[1]["message"] and "spam" in bodies[2]["message"]
    assert bodies[2]["message"].startswith(bodies[0]["message"])
    assert len({b["sub_id"] for b in bodies}) == 3


@pytest.mark.parametrize("body,code", [
    ({"url": "https://aliexpress.com.evil.ru/item/1005001234567890.html"}, "not_aliexpress"),
    ({"url": ""}, "empty"),
    ({"url": LINK, "channel": "fax"}, "bad_channel"),
])
def test_create_click_refuses_bad_input(app, client, anna, anna_auth, body, code):
    """A bad link or channel is 422 and records no click."""
    assert_error(client.post("/api/v1/clicks", json=body, headers=anna_auth), 422, code)
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Click)).scalar_one() == 0


def test_blocked_customer_cannot_click(app, client, anna, anna_auth):
    """A blocked customer gets 403 customer_blocked from the click service."""
    with app.app_context():
        db.session.get(Customer, anna).is_blocked = True
        db.session.commit()
    assert_error(post_click(client, anna_auth), 403, "customer_blocked")


# --- balance -----------------------------------------------------------------------------------

def test_new_customer_has_zero_balance_and_no_rub_without_a_rate(client, anna, anna_auth):
    """Zeros in both precisions; RUB is null while no exchange rate is known."""
    body = client.get("/api/v1/me/balance", headers=anna_auth).get_json()
    zero = {"exact": "0.000000", "display": "0.00"}
    assert body["ok"] is True and body["currency"] == "USD"
    assert [body[k] for k in ("pending", "available", "on_hold", "receivable")] == [zero] * 4
    assert body["rub"] is None
    assert body["minimum_withdrawal"] == {"usd": "0.20", "rub": None}


def test_balance_follows_postbacks_pending_then_available(app, client, anna, anna_auth):
    """Paid shows as pending, confirmed as available; RUB at today's rate, minimum in RUB rounded up."""
    set_rate(app, "80.1234")
    sub_id = post_click(client, anna_auth).get_json()["sub_id"]
    receive(app, sub_id, "paid")
    body = client.get("/api/v1/me/balance", headers=anna_auth).get_json()
    assert body["pending"] == {"exact": "7.000000", "display": "7.00"}
    assert body["available"]["exact"] == "0.000000"
    assert body["rub"]["rate"] == "80.123400"
    assert body["rub"]["pending"] == {"exact": "560.863800", "display": "560.86"}
    assert body["minimum_withdrawal"] == {"usd": "0.20", "rub": "16.03"}  # 16.02468 rounded up
    receive(app, sub_id, "confirmed", n=2)
    body = client.get("/api/v1/me/balance", headers=anna_auth).get_json()
    assert body["pending"]["exact"] == "0.000000"
    assert body["available"] == {"exact": "7.000000", "display": "7.00"}


def test_fraction_of_a_cent_is_exact_and_displayed_rounded_down(app, client, anna, anna_auth):
    """$0.50 at 7 % is 0.035 exactly; the display never shows a cent that cannot be paid."""
    sub_id = post_click(client, anna_auth).get_json()["sub_id"]
    receive(app, sub_id, "paid", amount="0.50")
    assert client.get("/api/v1/me/balance", headers=anna_auth).get_json()["pending"] == \
        {"exact": "0.035000", "display": "0.03"}


# --- orders --------------------------------------------------------------------------------------

def test_orders_show_amounts_cashback_and_status_history(app, client, anna, anna_auth):
    """Each order: network id, status, amounts, cashback and where it is booked, history newest first."""
    sub_id = post_click(client, anna_auth).get_json()["sub_id"]
    receive(app, sub_id, "paid", n=1)
    receive(app, sub_id, "confirmed", n=2)
    receive(app, sub_id, "refunded", n=3, refunded="40.00")
    body = client.get("/api/v1/me/orders", headers={**anna_auth, "Accept-Language": "en"}).get_json()
    assert (body["ok"], body["count"], body["page"], body["pages"]) == (True, 1, 1, 1)
    order = body["orders"][0]
    assert (order["network"], order["network_order_id"], order["status"]) == ("epn", "A-1", "confirmed")
    assert order["status_label"] == "Confirmed"
    assert order["amount"] == {"currency": "USD", "exact": "100.000000", "display": "100.00"}
    assert order["refunded"]["display"] == "40.00"
    assert order["rate"] == "7.00"
    assert order["booked_cashback"] == {"exact": "4.200000", "display": "4.20"}  # (100 - 40) × 7 %
    assert order["booked_in"] == "available"
    assert [h["status"] for h in order["history"]] == ["refunded", "confirmed", "paid"]
    assert [h["refunded_amount"] for h in order["history"]] == ["40.000000", None, None]
    times = [h["time"] for h in order["history"]]
    assert times == sorted(times, reverse=True)
    assert order["paid_at"] and order["confirmed_at"] and order["cancelled_at"] is None


def test_orders_are_paginated_newest_first(app, client, anna, anna_auth):
    """Five orders in pages of two: 2 + 2 + 1, newest first; an empty page past the end."""
    sub_id = post_click(client, anna_auth).get_json()["sub_id"]
    for i in range(5):
        receive(app, sub_id, "paid", order=f"O-{i}")
    seen = []
    for page in (1, 2, 3):
        body = client.get(f"/api/v1/me/orders?page={page}&page_size=2", headers=anna_auth).get_json()
        assert (body["count"], body["pages"], body["page"], body["page_size"]) == (5, 3, page, 2)
        seen += [o["network_order_id"] for o in body["orders"]]
    assert seen == ["O-4", "O-3", "O-2", "O-1", "O-0"]
    assert client.get("/api/v1/me/orders?page=4&page_size=2", headers=anna_auth).get_json()["orders"] == []
    assert len(client.get("/api/v1/me/orders", headers=anna_auth).get_json()["orders"]) == 5


@pytest.mark.parametrize("query,fields", [
    ("page=0", {"page"}), ("page=-1", {"page"}), ("page=x", {"page"}), ("page_size=0", {"page_size"}),
    ("page_size=101", {"page_size"}), ("page=1.5&page_size=abc", {"page", "page_size"}),
])
def test_bad_paging_is_422_listing_the_fields(client, anna, anna_auth, query, fields):
    """Bad page arguments are 422 invalid_paging with one error per bad field, on both lists."""
    for route in ("/api/v1/me/orders", "/api/v1/me/clicks"):
        body = assert_error(client.get(f"{route}?{query}", headers=anna_auth), 422, "invalid_paging")
        assert {e["field"] for e in body["errors"]} == fields


# --- clicks list -------------------------------------------------------------------------------

def test_clicks_list_with_repeat_and_visit_counts(app, client, anna, anna_auth):
    """Clicks newest first with their repeat counts, spam flag and /go visits; paginated."""
    subs = [post_click(client, anna_auth).get_json()["sub_id"] for _ in range(3)]
    subs.append(post_click(client, anna_auth, url=OTHER_LINK).get_json()["sub_id"])
    client.get(f"/go/{subs[0]}")
    client.get(f"/go/{subs[0]}?ch=extension")
    body = client.get("/api/v1/me/clicks?page_size=3", headers=anna_auth).get_json()
    assert (body["count"], body["pages"]) == (4, 2)
    assert [c["sub_id"] for c in body["clicks"]] == subs[::-1][:3]
    assert [c["repeat_count"] for c in body["clicks"]] == [1, 3, 2]
    assert [c["spam_warning"] for c in body["clicks"]] == [False, True, False]
    last = client.get("/api/v1/me/clicks?page=2&page_size=3", headers=anna_auth).get_json()["clicks"]
    assert [(c["sub_id"], c["visits"], c["repeat_count"]) for c in last] == [(subs[0], 2, 1)]
    assert last[0]["go_url"].endswith(f"/go/{subs[0]}") and last[0]["product_id"] == "1005001234567890"


# --- who sees what ---------------------------------------------------------------------------------

def test_a_customer_sees_only_their_own_orders_and_clicks(app, client, anna, anna_auth):
    """Boris's order and click never show in Anna's answers, nor hers in his; his money is his."""
    boris = make_customer(app, "boris@test.local", "Boris")
    boris_auth = token(client, "boris@test.local")
    anna_sub = post_click(client, anna_auth).get_json()["sub_id"]
    boris_sub = post_click(client, boris_auth, url=OTHER_LINK).get_json()["sub_id"]
    receive(app, anna_sub, "paid", order="ANNA-1")
    receive(app, boris_sub, "confirmed", order="BORIS-1", amount="200.00", commission="20.00")

    def ids(auth):
        got = client.get("/api/v1/me/orders", headers=auth).get_json()["orders"]
        return [o["network_order_id"] for o in got]

    def subs(auth):
        return [c["sub_id"] for c in client.get("/api/v1/me/clicks", headers=auth).get_json()["clicks"]]

    assert ids(anna_auth) == ["ANNA-1"] and ids(boris_auth) == ["BORIS-1"]
    assert subs(anna_auth) == [anna_sub] and subs(boris_auth) == [boris_sub]
    anna_balance = client.get("/api/v1/me/balance", headers=anna_auth).get_json()
    assert (anna_balance["pending"]["exact"], anna_balance["available"]["exact"]) == ("7.000000", "0.000000")
    boris_balance = client.get("/api/v1/me/balance", headers=boris_auth).get_json()
    assert boris_balance["available"]["exact"] == "14.000000"
    with app.app_context():
        assert db.session.execute(sa.select(Order.customer_id).where(Order.network_order_id == "BORIS-1")
                                  ).scalar_one() == boris


@pytest.mark.parametrize("role", ["Support", "Finance", "Developer"])
def test_staff_get_403_on_customer_routes(client, make_user, role):
    """A staff login has no customer permissions: 403 not_a_customer, in the one shape."""
    make_user(f"staff_{role.lower()}", role)
    auth = token(client, f"staff_{role.lower()}")
    for route in ME_ROUTES:
        assert_error(client.get(route, headers=auth), 403, "not_a_customer")
    assert_error(post_click(client, auth), 403, "not_a_customer")


def test_admin_without_a_customer_row_gets_403(client, make_user):
    """Admin holds every permission but has no cashback account: 403 with the clear message."""
    make_user("root", "Admin")
    auth = token(client, "root")
    body = assert_error(client.get("/api/v1/me/balance", headers={**auth, "Accept-Language": "en"}),
                        403, "not_a_customer")
    assert "customer account" in body["error"]["message"]
    assert_error(post_click(client, auth), 403, "not_a_customer")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic x"}])
def test_unauthenticated_gets_401_in_the_one_shape(client, anna, headers):
    """No token, a garbage token or the wrong scheme: 401 unauthorized, never JWT-Extended's {"msg"}."""
    for route in ME_ROUTES:
        assert_error(client.get(route, headers=headers), 401, "unauthorized")
    assert_error(client.post("/api/v1/clicks", json={"url": LINK}, headers=headers), 401, "unauthorized")


def test_expired_token_gets_401(app, client, anna):
    """An expired access token is 401 in the one shape too."""
    from flask_jwt_extended import create_access_token

    with app.test_request_context():
        user = app.appbuilder.sm.find_user(username="anna@test.local")
        expired = create_access_token(identity=str(user.id), expires_delta=dt.timedelta(seconds=-60))
    assert_error(client.get("/api/v1/me/balance", headers={"Authorization": f"Bearer {expired}"}),
                 401, "unauthorized")


def test_session_cookie_works_too(client, anna):
    """The portal's login cookie authenticates the API as well (the cabinet's pages may call it)."""
    login(client, "anna@test.local")
    response = client.get("/api/v1/me/balance")
    assert response.status_code == 200 and response.get_json()["ok"] is True


def test_only_the_customer_role_holds_customer_permissions(app_ctx, clean_db, caplog):
    """Staff roles get neither the customer API nor the cabinet; Customer gets both, stably."""
    from portal.security import sync_roles

    sm = app_ctx.appbuilder.sm
    with caplog.at_level("WARNING"):
        sync_roles(app_ctx.appbuilder)
    # a permission view name shared by a view and a menu makes FAB drop and re-add permissions
    assert not [r for r in caplog.records if "Refused to delete" in r.getMessage()]
    customer = {(pv.permission.name, pv.view_menu.name) for pv in sm.find_role("Customer").permissions}
    assert {("can_read", "CustomerApi"), ("can_write", "CustomerApi"), ("can_read", "CustomerCabinet"),
            ("can_write", "CustomerCabinet"), ("menu_access", "Cabinet")} <= customer
    for role in ROLE_DEFINITIONS:
        views = {pv.view_menu.name for pv in sm.find_role(role).permissions}
        assert ({"CustomerApi", "CustomerCabinet", "Cabinet"} <= views) is (role == "Customer"), role
        if role != "Customer":
            assert not views & {"CustomerApi", "CustomerCabinet", "Cabinet"}, role


def test_openapi_documents_the_customer_api(client, make_user):
    """Every route is in FAB's OpenAPI spec; the link check needs no auth, the others answer 401/403."""
    make_user("docs", "Admin")
    login(client, "docs")
    spec = client.get("/api/v1/_openapi").get_json()
    assert spec["paths"]["/api/v1/links/check"]["post"]["security"] == []
    for path, method in [("/api/v1/clicks", "post"), ("/api/v1/me/balance", "get"),
                         ("/api/v1/me/orders", "get"), ("/api/v1/me/clicks", "get")]:
        operation = spec["paths"][path][method]
        assert {"401", "403"} <= set(operation["responses"]), path
        assert operation.get("security") != [], path
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["ok", "status", "error", "errors"]
