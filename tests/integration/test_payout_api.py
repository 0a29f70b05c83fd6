"""The customer's withdrawals: the JSON API (/api/v1/me/payout-methods, payout-details,
withdrawals) and the cabinet's withdraw page, through the Flask test client, on PostgreSQL
and the Test Bank sandbox.

The engine behind them is tested in ``test_payouts.py``; here: auth and scoping, the error
shape for each refusal, the Idempotency-Key (a double request is one payout and one hold,
also when the two race), the masked accounts, and the cabinet's forms.
"""
from __future__ import annotations

import datetime as dt
import re
import threading
from decimal import Decimal
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from portal import providers
from portal.extensions import db
from portal.models import Customer, Payout, PayoutDetails, Posting
from portal.services import customers, fx, ledger, payouts
from portal.services.audit import Actor
from portal.services.ledger import customer_account, system_account, transfer
from tests.conftest import login
from tests.integration.test_customer_api import assert_error, token
from tests.integration.test_payouts import settle

D = Decimal
PASSWORD = "pw-" + "x" * 8
WALLET = "TEST-12345674"
NEW_WALLET = "TEST-76543214"
SYSTEM = Actor.system("test")
EN = {"Accept-Language": "en"}


# --- fixtures and helpers ------------------------------------------------------------------------

def make_customer(app, email: str, *, fund: str = "5.00", wallet: str | None = WALLET) -> SimpleNamespace:
    """A customer with a login, ``fund`` available and (old) saved details for ``wallet``."""
    with app.app_context():
        session = db.session
        customer = customers.create_customer(session, app.appbuilder.sm, email=email, name=email.split("@")[0],
                                             password=PASSWORD, actor=SYSTEM)
        ledger.post(session, kind="test.fund", reference=f"fund:{customer.id}", actor=SYSTEM,
                    legs=transfer(system_account("network_receivable"), customer_account(customer.id, "available"),
                                  D(fund)))
        details_id = None
        if wallet:
            details = PayoutDetails(customer_id=customer.id, provider_code="test", account=wallet,
                                    created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10))
            session.add(details)
            session.flush()
            details_id = details.id
        session.commit()
        return SimpleNamespace(id=customer.id, email=email, details_id=details_id)


@pytest.fixture
def world(app, clean_db, testbank):
    """Anna ($5.00 available, old details) and Boris (same), a rate of 80 RUB/USD, sandbox clean."""
    testbank.reset()
    app.extensions.pop("cashback_collected_jobs", None)
    with app.app_context():
        fx.correct_rate(db.session, dt.date.today(), D("80"), SYSTEM, "test rate")
        db.session.commit()
    return SimpleNamespace(anna=make_customer(app, "anna@test.local"),
                           boris=make_customer(app, "boris@test.local", wallet="TEST-11111116"))


@pytest.fixture
def anna_auth(client, world):
    return {**token(client, "anna@test.local"), **EN}


@pytest.fixture
def boris_auth(client, world):
    return {**token(client, "boris@test.local"), **EN}


def withdraw(client, headers, details_id, amount="1.00", key: str | None = "key-1"):
    extra = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/api/v1/me/withdrawals", json={"details_id": details_id, "amount_usd": amount},
                       headers={**headers, **extra})


def balances(app, customer_id: int) -> dict[str, Decimal]:
    with app.app_context():
        return ledger.customer_balances(db.session, customer_id)


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.execute(sa.select(sa.func.count()).select_from(model).where(*where)).scalar_one()


def switch_provider(app, enabled: bool, reason: str = "licence revoked") -> None:
    with app.app_context():
        payouts.set_provider_enabled(db.session, "test", enabled, actor=SYSTEM, reason=reason)
        db.session.commit()


# --- payout methods ------------------------------------------------------------------------------

def test_payout_methods_in_the_request_locale_with_limits(client, anna_auth):
    """The test provider: its name in the request's language, currency, limits, enabled."""
    body = client.get("/api/v1/me/payout-methods", headers=anna_auth).get_json()
    assert body["ok"] is True
    assert {"code": "test", "name": "Test Bank (sandbox)", "currency": "RUB", "min_amount": "1.00",
            "max_amount": "15000.00", "enabled": True, "disabled_reason": None} in body["methods"]
    ru = client.get("/api/v1/me/payout-methods", headers={**anna_auth, "Accept-Language": "ru"}).get_json()
    assert [m["name"] for m in ru["methods"] if m["code"] == "test"] == ["Тестовый банк (песочница)"]


def test_payout_methods_show_the_kill_switch_and_its_reason(app, client, anna_auth):
    switch_provider(app, False, "maintenance until Monday")
    methods = client.get("/api/v1/me/payout-methods", headers=anna_auth).get_json()["methods"]
    method = next(m for m in methods if m["code"] == "test")
    assert (method["enabled"], method["disabled_reason"]) == (False, "maintenance until Monday")


# --- payout details ------------------------------------------------------------------------------

def test_add_details_answers_them_masked_and_once(app, client, anna_auth, world):
    """Valid details: 201 with the account masked; the same again is the same row; the list shows both."""
    response = client.post("/api/v1/me/payout-details", json={"provider": "test", "account": "test 7654 3214"},
                           headers=anna_auth)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["ok"] and body["provider"] == "test" and body["account_masked"] == "TEST••••3214"
    assert NEW_WALLET not in response.get_data(as_text=True)
    again = client.post("/api/v1/me/payout-details", json={"provider": "test", "account": NEW_WALLET},
                        headers=anna_auth).get_json()
    assert again["id"] == body["id"]
    listed = client.get("/api/v1/me/payout-details", headers=anna_auth).get_json()["details"]
    assert [(d["id"], d["account_masked"], d["provider_enabled"]) for d in listed] == [
        (world.anna.details_id, "TEST••••5674", True), (body["id"], "TEST••••3214", True)]
    assert count(app, PayoutDetails, PayoutDetails.customer_id == world.anna.id) == 2


@pytest.mark.parametrize("data,code,field_code,message", [
    ({"provider": "test", "account": "TEST-12345675"}, "invalid_account", "check_digit", "has a typo"),
    ({"provider": "test", "account": "12345674"}, "invalid_account", "format", "TEST- followed by 8 digits"),
    ({"provider": "test", "account": ""}, "invalid_account", "empty", "Enter the wallet number."),
    ({"provider": "test"}, "invalid_account", "empty", "Enter the account number."),
])
def test_invalid_details_are_explained_per_field(app, client, anna_auth, data, code, field_code, message):
    """The provider's customer-readable reason is in ``errors[]``; nothing is saved."""
    body = assert_error(client.post("/api/v1/me/payout-details", json=data, headers=anna_auth), 422, code)
    assert body["errors"][0]["field"] == "account" and body["errors"][0]["code"] == field_code
    assert message in body["errors"][0]["message"]
    assert count(app, PayoutDetails) == 2


def test_unknown_provider_and_switched_off_provider_refuse_details(app, client, anna_auth):
    assert_error(client.post("/api/v1/me/payout-details", json={"provider": "nope", "account": NEW_WALLET},
                             headers=anna_auth), 422, "unknown_provider")
    switch_provider(app, False)
    assert_error(client.post("/api/v1/me/payout-details", json={"provider": "test", "account": NEW_WALLET},
                             headers=anna_auth), 409, "provider_disabled")


# --- withdrawals ---------------------------------------------------------------------------------

def test_withdrawal_with_idempotency_key_twice_is_one_payout_and_one_hold(app, client, anna_auth, world):
    """201, then 200 with the same payout; one hold; the same key with another amount is 409."""
    first = withdraw(client, anna_auth, world.anna.details_id)
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert body["created"] is True and body["state"] == "approved"
    assert body["amount_usd"] == {"exact": "1.000000", "display": "1.00"}
    assert body["payout_amount"]["display"] == "80.00" and body["payout_currency"] == "RUB"
    assert body["fx_rate"] == "80.000000" and body["provider"] == "test"
    assert body["account_masked"] == "TEST••••5674" and WALLET not in first.get_data(as_text=True)
    assert body["created_at"] and body["can_cancel"] is True

    second = withdraw(client, anna_auth, world.anna.details_id)
    assert second.status_code == 200 and second.get_json()["id"] == body["id"]
    assert second.get_json()["created"] is False
    assert count(app, Payout) == 1
    assert count(app, Posting, Posting.kind == "withdrawal.hold") == 1
    b = balances(app, world.anna.id)
    assert (b["available"], b["on_hold"]) == (D("4.00"), D("1.00"))
    assert_error(withdraw(client, anna_auth, world.anna.details_id, amount="2.00"), 409, "idempotency_key_reused")


def test_racing_double_click_is_one_withdrawal(app, world):
    """Six requests with one key at once: one 201, the rest 200 with the same payout, one hold."""
    clients = [app.test_client() for _ in range(6)]
    headers = {**token(clients[0], "anna@test.local"), **EN}
    barrier = threading.Barrier(len(clients))
    answers = []

    def go(c):
        barrier.wait()
        response = withdraw(c, headers, world.anna.details_id, key="race")
        answers.append((response.status_code, response.get_json().get("id")))

    threads = [threading.Thread(target=go, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(status for status, _ in answers) == [200] * 5 + [201], answers
    assert len({payout_id for _, payout_id in answers}) == 1
    assert count(app, Payout) == 1 and count(app, Posting, Posting.kind == "withdrawal.hold") == 1
    assert balances(app, world.anna.id)["on_hold"] == D("1.00")


def test_the_approved_withdrawal_is_paid_and_listed(app, client, anna_auth, world, testbank):
    """The submit job pays it through the sandbox; the list shows it paid and no longer cancellable."""
    payout_id = withdraw(client, anna_auth, world.anna.details_id).get_json()["id"]
    with app.app_context():
        assert settle(db.session, payout_id).state == "succeeded"
    listed = client.get("/api/v1/me/withdrawals", headers=anna_auth).get_json()["withdrawals"]
    assert [(w["id"], w["state"], w["state_label"], w["can_cancel"]) for w in listed] == [
        (payout_id, "succeeded", "Paid", False)]
    assert [t.amount for t in testbank.ledger.transfers()] == [D("80.00")]
    assert_error(client.post(f"/api/v1/me/withdrawals/{payout_id}/cancel", json={}, headers=anna_auth),
                 409, "illegal_transition")


@pytest.mark.parametrize("amount,status,code,message", [
    ("0.19", 422, "below_minimum", "The minimum withdrawal is $0.20 (16.00 ₽ at today's rate)."),
    ("5.01", 409, "insufficient_balance", "not enough available cashback"),
    ("1.005", 422, "bad_amount", "dollars and cents"),
    ("-1", 422, "bad_amount", "dollars and cents"),
    ("NaN", 422, "bad_amount", "dollars and cents"),
    (1.25, 422, "bad_amount", "dollars and cents"),
    ("", 422, "bad_amount", "dollars and cents"),
])
def test_refused_withdrawals_move_nothing(app, client, anna_auth, world, amount, status, code, message):
    """Below the minimum, above the available balance, or not an amount: the error shape, nothing held."""
    body = assert_error(withdraw(client, anna_auth, world.anna.details_id, amount=amount), status, code)
    assert message.lower() in body["error"]["message"].lower()
    assert count(app, Payout) == 0 and balances(app, world.anna.id)["available"] == D("5.00")


def test_a_switched_off_provider_refuses_with_a_clear_message(app, client, anna_auth, world):
    switch_provider(app, False)
    body = assert_error(withdraw(client, anna_auth, world.anna.details_id), 409, "provider_disabled")
    assert "choose other payout details" in body["error"]["message"]
    assert count(app, Payout) == 0


def test_missing_key_and_fields_are_listed_together(client, anna_auth, world):
    """No Idempotency-Key: 422; with a bad amount too, both fields are in ``errors[]``."""
    body = assert_error(withdraw(client, anna_auth, world.anna.details_id, key=None), 422,
                        "idempotency_key_required")
    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert_error(withdraw(client, anna_auth, world.anna.details_id, key="x" * 81), 422, "idempotency_key_required")
    body = assert_error(client.post("/api/v1/me/withdrawals", json={"details_id": "1", "amount_usd": "x"},
                                    headers=anna_auth), 422, "invalid")
    assert {e["field"] for e in body["errors"]} == {"details_id", "amount_usd", "Idempotency-Key"}
    assert_error(client.post("/api/v1/me/withdrawals", data="details_id=1", headers=anna_auth), 422,
                 "malformed_body")


def test_someone_elses_details_are_not_found(app, client, anna_auth, world):
    assert_error(withdraw(client, anna_auth, world.boris.details_id), 404, "unknown_details")
    assert_error(withdraw(client, anna_auth, 999999), 404, "unknown_details")
    assert count(app, Payout) == 0


def test_withdrawals_are_listed_newest_first_and_paginated(client, anna_auth, world):
    ids = [withdraw(client, anna_auth, world.anna.details_id, amount="0.50", key=f"k{i}").get_json()["id"]
           for i in range(3)]
    page1 = client.get("/api/v1/me/withdrawals?page_size=2", headers=anna_auth).get_json()
    assert (page1["count"], page1["pages"], [w["id"] for w in page1["withdrawals"]]) == (3, 2, ids[::-1][:2])
    page2 = client.get("/api/v1/me/withdrawals?page_size=2&page=2", headers=anna_auth).get_json()
    assert [w["id"] for w in page2["withdrawals"]] == ids[:1]
    assert_error(client.get("/api/v1/me/withdrawals?page=0", headers=anna_auth), 422, "invalid_paging")


def test_cancel_own_withdrawal_returns_the_money(app, client, anna_auth, world):
    payout_id = withdraw(client, anna_auth, world.anna.details_id).get_json()["id"]
    response = client.post(f"/api/v1/me/withdrawals/{payout_id}/cancel", json={}, headers=anna_auth)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "cancelled"
    b = balances(app, world.anna.id)
    assert (b["available"], b["on_hold"]) == (D("5.00"), 0)
    assert_error(client.post(f"/api/v1/me/withdrawals/{payout_id}/cancel", json={}, headers=anna_auth),
                 409, "illegal_transition")


def test_cancel_needs_a_json_body(client, anna_auth, world):
    """A cross-site form post (no JSON) cannot cancel with the session cookie."""
    payout_id = withdraw(client, anna_auth, world.anna.details_id).get_json()["id"]
    assert_error(client.post(f"/api/v1/me/withdrawals/{payout_id}/cancel", headers=anna_auth), 422,
                 "malformed_body")


def test_another_customers_withdrawal_is_404(app, client, anna_auth, boris_auth, world):
    """Boris cannot cancel or see Anna's withdrawal: 404, and it stays as it was."""
    payout_id = withdraw(client, anna_auth, world.anna.details_id).get_json()["id"]
    assert_error(client.post(f"/api/v1/me/withdrawals/{payout_id}/cancel", json={}, headers=boris_auth),
                 404, "not_found")
    assert_error(client.post("/api/v1/me/withdrawals/999999/cancel", json={}, headers=boris_auth), 404, "not_found")
    assert client.get("/api/v1/me/withdrawals", headers=boris_auth).get_json()["withdrawals"] == []
    with app.app_context():
        assert db.session.get(Payout, payout_id).state == "approved"


def test_auth_is_required_and_staff_are_not_customers(client, make_user, world):
    for method, path in [("get", "/api/v1/me/payout-methods"), ("get", "/api/v1/me/payout-details"),
                         ("post", "/api/v1/me/payout-details"), ("get", "/api/v1/me/withdrawals"),
                         ("post", "/api/v1/me/withdrawals"), ("post", "/api/v1/me/withdrawals/1/cancel")]:
        assert_error(getattr(client, method)(path, json={}), 401, "unauthorized")
    make_user("fin", "Finance")
    staff = token(client, "fin")
    assert_error(client.get("/api/v1/me/withdrawals", headers=staff), 403, "not_a_customer")
    assert_error(withdraw(client, staff, world.anna.details_id), 403, "not_a_customer")


def test_openapi_documents_the_withdrawal_api(client, make_user):
    make_user("docs", "Admin")
    login(client, "docs")
    spec = client.get("/api/v1/_openapi").get_json()
    for path, method in [("/api/v1/me/payout-methods", "get"), ("/api/v1/me/payout-details", "get"),
                         ("/api/v1/me/payout-details", "post"), ("/api/v1/me/withdrawals", "get"),
                         ("/api/v1/me/withdrawals", "post"), ("/api/v1/me/withdrawals/{payout_id}/cancel", "post")]:
        operation = spec["paths"][path][method]
        assert {"401", "403"} <= set(operation["responses"]), path
    create = spec["paths"]["/api/v1/me/withdrawals"]["post"]
    assert {"200", "201", "409", "422"} <= set(create["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])


def test_only_customers_hold_the_withdrawal_permissions(app_ctx, clean_db):
    from portal.security import ROLE_DEFINITIONS

    sm = app_ctx.appbuilder.sm
    for role in ROLE_DEFINITIONS:
        views = {pv.view_menu.name for pv in sm.find_role(role).permissions}
        assert bool(views & {"CustomerPayoutApi", "CustomerWithdrawals"}) is (role == "Customer"), role


# --- the cabinet's withdraw page -----------------------------------------------------------------

@pytest.fixture
def anna_page(client, world):
    """Anna logged in on ``client`` with English pages."""
    login(client, "anna@test.local")
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    return world


def request_key(html: str) -> str:
    match = re.search(r'name="request_key" type="hidden" value="([^"]+)"', html) or \
        re.search(r'id="request_key" name="request_key" type="hidden" value="([^"]+)"', html)
    assert match, "no request key in the page"
    return match.group(1)


def text(response) -> str:
    return response.get_data(as_text=True)


def test_withdraw_page_shows_balance_minimum_details_and_forms(client, anna_page):
    html = text(client.get("/cabinet/withdraw/"))
    assert "Available for withdrawal:" in html and "$5.00</strong>" in html
    assert "Minimum withdrawal: RUB\xa016.00 ($0.20)." in html
    assert "TEST••••5674" in html and WALLET not in html
    assert 'action="/cabinet/withdraw/details"' in html and 'action="/cabinet/withdraw/request"' in html
    assert request_key(html) and "No withdrawals yet." in html
    assert 'href="/cabinet/withdraw/"' in html  # the Cabinet menu links it


def test_add_details_in_the_cabinet(app, client, anna_page):
    response = client.post("/cabinet/withdraw/details", data={"provider": "test", "account": NEW_WALLET},
                           follow_redirects=True)
    assert response.status_code == 200
    assert "Payout details saved: Test Bank (sandbox) TEST••••3214." in text(response)
    refused = client.post("/cabinet/withdraw/details", data={"provider": "test", "account": "TEST-12345675"})
    assert refused.status_code == 422 and "This wallet number has a typo" in text(refused)
    assert count(app, PayoutDetails, PayoutDetails.customer_id == anna_page.anna.id) == 2


def test_double_clicked_withdraw_button_is_one_withdrawal(app, client, anna_page):
    """Two posts of one form (one request key): one payout, one hold; then it is listed and cancelled."""
    key = request_key(text(client.get("/cabinet/withdraw/")))
    form = {"details": anna_page.anna.details_id, "amount": "1.25", "request_key": key}
    assert client.post("/cabinet/withdraw/request", data=form).status_code == 302
    second = client.post("/cabinet/withdraw/request", data=form, follow_redirects=True)
    assert second.status_code == 200
    html = text(second)
    assert re.search(r"Withdrawal #\d+ of \$1.25: Waiting to be sent.", html)
    assert count(app, Payout) == 1 and count(app, Posting, Posting.kind == "withdrawal.hold") == 1
    assert balances(app, anna_page.anna.id)["on_hold"] == D("1.25")
    assert request_key(html) != key  # the next form has a new key
    with app.app_context():
        payout_id = db.session.execute(sa.select(Payout.id)).scalar_one()
    assert f'action="/cabinet/withdraw/{payout_id}/cancel"' in html and "Waiting to be sent" in html
    cancelled = client.post(f"/cabinet/withdraw/{payout_id}/cancel", follow_redirects=True)
    assert "the money is back on your balance" in text(cancelled)
    assert balances(app, anna_page.anna.id)["available"] == D("5.00")
    assert f'action="/cabinet/withdraw/{payout_id}/cancel"' not in text(cancelled)


@pytest.mark.parametrize("amount,message", [
    ("0.10", "The minimum withdrawal is $0.20"),
    ("9.00", "There is not enough available cashback"),
    ("one dollar", "Enter the amount in dollars and cents"),
])
def test_refused_withdrawal_in_the_cabinet_shows_why(app, client, anna_page, amount, message):
    response = client.post("/cabinet/withdraw/request", data={
        "details": anna_page.anna.details_id, "amount": amount, "request_key": "k"})
    assert response.status_code == 422 and message in text(response)
    assert count(app, Payout) == 0


def test_cabinet_cannot_use_or_cancel_someone_elses(app, client, anna_page):
    response = client.post("/cabinet/withdraw/request", data={
        "details": anna_page.boris.details_id, "amount": "1.00", "request_key": "k"})
    assert response.status_code == 422 and count(app, Payout) == 0  # not one of her choices
    with app.app_context():
        boris = db.session.get(Customer, anna_page.boris.id)
        payout = payouts.request_withdrawal(db.session, boris, details_id=anna_page.boris.details_id,
                                            amount_usd=D("1.00"), request_key="b", provider=providers.provider("test"),
                                            config=app.config, actor=SYSTEM).payout
        db.session.commit()
        payout_id = payout.id
    assert client.post(f"/cabinet/withdraw/{payout_id}/cancel").status_code == 404
    with app.app_context():
        assert db.session.get(Payout, payout_id).state == "approved"


def test_withdraw_forms_need_the_csrf_token(app, client, anna_page, monkeypatch):
    """With CSRF on (as in production) a post without the page's token is 400 and creates nothing."""
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    html = text(client.get("/cabinet/withdraw/"))
    form = {"details": anna_page.anna.details_id, "amount": "1.00", "request_key": request_key(html)}
    refused = client.post("/cabinet/withdraw/request", data=form)
    assert refused.status_code == 400 and "The form has expired" in text(refused)
    assert count(app, Payout) == 0
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    assert client.post("/cabinet/withdraw/request", data={**form, "csrf_token": csrf}).status_code == 302
    assert count(app, Payout) == 1


@pytest.mark.parametrize("role", ["Support", "Finance", "Developer"])
def test_staff_get_403_on_the_withdraw_page(client, make_user, world, role):
    make_user(f"staff_{role.lower()}", role)
    login(client, f"staff_{role.lower()}")
    assert client.get("/cabinet/withdraw/").status_code == 403
    assert client.post("/cabinet/withdraw/request", data={"amount": "1"}).status_code == 403
