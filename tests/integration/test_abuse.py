"""Abuse cases against the portal and its API, on PostgreSQL (issue 8).

Covered elsewhere, not repeated here:

* brute-force login throttling — ``test_throttling.py`` (form and JWT login share a bucket);
* postback forgery, wrong secret, stale/future timestamp, unknown network, exact replay and
  conflicting replay — ``test_postback_api.py``;
* a racing double click with one Idempotency-Key — ``test_payout_api.py``; concurrent
  withdrawals in the service — ``test_payouts.py``; maker-checker in the service — ``test_payouts.py``.

Here: CSRF on every portal POST route (enumerated from the URL map), JSON-only API bodies
against cross-site forms, guessed ids across customers (API and cabinet), staff logins
through the API, timestamp tampering and concurrent replays of a postback, oversized bodies,
ids beyond the database's range, concurrent withdrawals with different keys through the
API, and the maker-checker through the review page.
"""
from __future__ import annotations

import json
import re
import threading
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Claim, Customer, Payout, PayoutApproval, PayoutDetails, PostbackRejection
from portal.services import ledger
from portal.services.postback_signing import sign
from tests.conftest import KEEP_TABLES, build_app, login, provider_settings
from tests.fuzz.conftest import two_customers, victim_snapshot  # noqa: F401  (fixture)
from tests.integration.test_customer_api import assert_error, token
from tests.integration.test_payout_api import PASSWORD, make_customer

D = Decimal
EN = {"Accept-Language": "en"}
ERROR_KEYS = {"ok", "status", "error", "errors"}


def data_fingerprint(app) -> dict[str, str]:
    """An md5 of every data table's rows: any INSERT/UPDATE/DELETE changes it."""
    with app.app_context():
        db.session.remove()
        tables = [t.name for t in db.metadata.sorted_tables if t.name not in KEEP_TABLES]
        with db.engine.connect() as conn:
            return {t: conn.execute(sa.text(f'SELECT md5(coalesce(string_agg(x::text, \'|\' ORDER BY x::text), \'\')) '
                                            f'FROM "{t}" x')).scalar_one() for t in tables}


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def portal_post_routes(app) -> list[str]:
    """Every POST route of the portal's pages (not /api/), with placeholder arguments."""
    adapter = app.url_map.bind("localhost")
    urls = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.rule.startswith(("/api/", "/static")):
            continue
        values = {arg: 1 if "Integer" in type(rule._converters[arg]).__name__ else "x" for arg in rule.arguments}
        urls.append(adapter.build(rule.endpoint, values, method="POST"))
    return sorted(set(urls))


# --- CSRF --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def strict_app(pg_url, app, testbank):
    """The portal with CSRF on, as in production (jobs collected, not run, like ``app``'s)."""
    return build_app(pg_url, WTF_CSRF_ENABLED=True, JOBS_MODE="collect",
                     PAYOUT_PROVIDER_SETTINGS=provider_settings(testbank))


def strict_login(strict_app, username: str, password: str = PASSWORD):
    client = strict_app.test_client()
    page = client.get("/login/").get_data(as_text=True)
    response = client.post("/login/", data={"username": username, "password": password,
                                            "csrf_token": csrf_token(page)})
    assert response.status_code == 302
    return client


@pytest.mark.parametrize("who", ["Admin", "customer"])
def test_every_portal_post_without_a_csrf_token_is_refused_and_changes_nothing(strict_app, two_customers,
                                                                              make_user, who):
    """Each POST route of every page (FAB's model views, our desks, the cabinet) answers 400 to a
    post without a token — before the view runs, so also where a view forgot its form."""
    if who == "Admin":
        make_user("csrf-admin", "Admin")
        client = strict_login(strict_app, "csrf-admin", "pw-" + "x" * 8)
    else:
        client = strict_login(strict_app, "anna@test.local")
    routes = portal_post_routes(strict_app)
    assert len(routes) > 40 and "/cabinet/buy" in routes and "/payouts/review/1/decide" in routes
    before = data_fingerprint(strict_app)
    refused = {}
    for url in routes:
        for data in ({"reason": "x", "decision": "approve", "url": "https://aliexpress.ru/item/1.html"},
                     {"csrf_token": "forged", "reason": "x"}):
            response = client.post(url, data=data, headers=EN)
            refused[(url, "csrf_token" in data)] = response.status_code
    assert {key: status for key, status in refused.items() if status != 400} == {}
    assert data_fingerprint(strict_app) == before


def test_login_form_itself_needs_the_token(strict_app, make_user):
    make_user("csrf-login", "Support")
    client = strict_app.test_client()
    response = client.post("/login/", data={"username": "csrf-login", "password": "pw-" + "x" * 8})
    assert response.status_code == 400
    assert client.get("/cabinet/").status_code in (302, 401)  # still not logged in


def test_api_stays_usable_under_csrf_and_refuses_form_bodies(strict_app, two_customers):
    """The API blueprints are exempt (JWT or session + JSON); a cross-site *form* post with
    the session cookie is refused for not being JSON, and holds nothing."""
    anna = two_customers.anna
    with_session = strict_login(strict_app, "anna@test.local")
    before = victim_snapshot(strict_app, anna.id)
    form_post = with_session.post("/api/v1/me/withdrawals", data={"details_id": anna.details_id, "amount_usd": "1.00"},
                                  headers={"Idempotency-Key": "cross-site", **EN})
    assert_error(form_post, 422, "malformed_body")
    text_plain = with_session.post("/api/v1/me/withdrawals", data=json.dumps(
        {"details_id": anna.details_id, "amount_usd": "1.00"}), content_type="text/plain",
        headers={"Idempotency-Key": "cross-site-2"})
    assert_error(text_plain, 422, "malformed_body")
    assert_error(with_session.post(f"/api/v1/me/withdrawals/{anna.payout_id}/cancel", data={}), 422, "malformed_body")
    assert victim_snapshot(strict_app, anna.id) == before
    # the same with JSON and a JWT works with CSRF on
    jwt = strict_app.test_client()
    response = jwt.post("/api/v1/me/withdrawals", json={"details_id": anna.details_id, "amount_usd": "1.00"},
                        headers={**anna.auth, "Idempotency-Key": "jwt-ok"})
    assert response.status_code == 201, response.get_json()


# --- guessed ids across customers ----------------------------------------------------------------------

def test_anna_cannot_read_or_change_boris_data_through_the_api(app, client, two_customers):
    anna, boris = two_customers.anna, two_customers.boris
    before = victim_snapshot(app, boris.id)
    headers = {**anna.auth, **EN}
    assert_error(client.get(f"/api/v1/me/claims/{boris.claim_id}", headers=headers), 404, "claim_not_found")
    assert_error(client.post(f"/api/v1/me/withdrawals/{boris.payout_id}/cancel", json={}, headers=headers),
                 404, "not_found")
    assert_error(client.post("/api/v1/me/withdrawals", json={"details_id": boris.details_id, "amount_usd": "1.00"},
                             headers={**headers, "Idempotency-Key": "idor"}), 404, "unknown_details")
    # reusing Boris' Idempotency-Key only ever finds Anna's own withdrawals
    response = client.post("/api/v1/me/withdrawals", json={"details_id": anna.details_id, "amount_usd": "1.00"},
                           headers={**headers, "Idempotency-Key": f"seed-{boris.id}"})
    assert response.status_code in (201, 409) and response.get_json().get("id") != boris.payout_id
    lists = {path: client.get(path, headers=headers).get_json()
             for path in ("/api/v1/me/orders", "/api/v1/me/withdrawals", "/api/v1/me/claims", "/api/v1/me/payout-details")}
    assert [o["network_order_id"] for o in lists["/api/v1/me/orders"]["orders"]] == ["A-1"]
    assert boris.payout_id not in [w["id"] for w in lists["/api/v1/me/withdrawals"]["withdrawals"]]
    assert [c["id"] for c in lists["/api/v1/me/claims"]["claims"]] == [anna.claim_id]
    assert [d["id"] for d in lists["/api/v1/me/payout-details"]["details"]] == [anna.details_id]
    assert victim_snapshot(app, boris.id) == before


def test_anna_cannot_reach_boris_data_through_the_cabinet(app, client, two_customers):
    boris = two_customers.boris
    before = victim_snapshot(app, boris.id)
    login(client, "anna@test.local", PASSWORD)
    with app.app_context():
        boris_sub = db.session.execute(sa.text("SELECT sub_id FROM click WHERE customer_id = :c"),
                                       {"c": boris.id}).scalar_one()
    assert client.get(f"/cabinet/claims/{boris.claim_id}").status_code == 404
    assert client.get(f"/cabinet/ready/{boris_sub}").status_code == 404
    assert client.post(f"/cabinet/withdraw/{boris.payout_id}/cancel", data={}).status_code == 404
    refused = client.post("/cabinet/withdraw/request", data={"details_id": boris.details_id, "amount_usd": "1.00",
                                                             "request_key": "idor-cabinet"})
    assert refused.status_code in (404, 422)
    assert victim_snapshot(app, boris.id) == before


@pytest.mark.parametrize("path", ["/api/v1/me/claims/99999999999", "/cabinet/claims/99999999999"])
def test_ids_beyond_the_database_range_are_404_not_500(app, client, two_customers, path):
    """Regression: an id past INTEGER made PostgreSQL raise (500); now it is a 404."""
    if path.startswith("/api/"):
        assert_error(client.get(path, headers=two_customers.anna.auth), 404, "not_found")
        assert_error(client.post("/api/v1/me/withdrawals/99999999999/cancel", json={},
                                 headers=two_customers.anna.auth), 404, "not_found")
    else:
        login(client, "anna@test.local", PASSWORD)
        assert client.get(path).status_code == 404


def test_nul_characters_are_refused_not_500(app, client, two_customers):
    """Regression: a JSON "\\u0000" reached PostgreSQL text columns and raised (500)."""
    headers = {**two_customers.anna.auth, **EN}
    response = client.post("/api/v1/me/claims", json={"order_number": "A\u0000B", "order_date": "2026-11-01"},
                           headers=headers)
    assert response.status_code in (422,) and set(response.get_json()) == ERROR_KEYS
    response = client.post("/api/v1/me/payout-details", json={"provider": "test", "account": "TEST-1\u00002345674"},
                           headers=headers)
    assert response.status_code == 422 and set(response.get_json()) == ERROR_KEYS


def test_claim_order_dates_before_the_network_existed_are_refused(app, client, two_customers):
    """Regression: order_date 0001-01-01 overflowed the diagnosis' date arithmetic (500)."""
    response = client.post("/api/v1/me/claims", json={"order_number": "A-2", "order_date": "0001-01-01"},
                           headers={**two_customers.anna.auth, **EN})
    body = assert_error(response, 422, "invalid")
    assert [e["field"] for e in body["errors"]] == ["order_date"]
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Claim)).scalar_one() == 2


def test_claims_can_be_opened_with_a_jwt(app, client, two_customers):
    """Regression: the claims API took its actor from Flask-Login's session user, which is
    anonymous under JWT: every JWT claim was a 500."""
    response = client.post("/api/v1/me/claims", json={"order_number": "A-3", "order_date": "2026-11-01"},
                           headers={**two_customers.anna.auth, **EN})
    assert response.status_code == 201, response.get_json()


# --- staff through the API ---------------------------------------------------------------------------------

CUSTOMER_OPS = [("get", "/api/v1/me/balance"), ("get", "/api/v1/me/orders"), ("get", "/api/v1/me/clicks"),
                ("post", "/api/v1/clicks"), ("get", "/api/v1/me/payout-methods"), ("get", "/api/v1/me/payout-details"),
                ("post", "/api/v1/me/payout-details"), ("get", "/api/v1/me/withdrawals"),
                ("post", "/api/v1/me/withdrawals"), ("post", "/api/v1/me/withdrawals/1/cancel"),
                ("get", "/api/v1/me/claims"), ("get", "/api/v1/me/claims/1"), ("post", "/api/v1/me/claims")]
SECURITY_OPS = [("get", "/api/v1/_openapi"), ("get", "/api/v1/security/users/"), ("get", "/api/v1/security/roles/"),
                ("post", "/api/v1/security/roles/"), ("get", "/api/v1/security/permissions/")]


@pytest.mark.parametrize("role", ["Support", "Finance", "Developer"])
def test_staff_cannot_use_customer_or_security_apis(app, client, two_customers, make_user, role):
    make_user(f"api-{role.lower()}", role)
    headers = {**token(client, f"api-{role.lower()}"), **EN}
    before = victim_snapshot(app, two_customers.boris.id)
    for method, path in CUSTOMER_OPS:
        response = getattr(client, method)(path, json={}, headers={**headers, "Idempotency-Key": "k"})
        assert_error(response, 403, "not_a_customer")
    for method, path in SECURITY_OPS:
        response = getattr(client, method)(path, json={}, headers=headers)
        assert response.status_code in (403, 404, 405), (path, response.status_code)
        assert set(response.get_json()) == ERROR_KEYS, (path, response.get_json())
    assert victim_snapshot(app, two_customers.boris.id) == before


def test_customers_cannot_use_security_apis_or_the_spec(client, two_customers):
    for method, path in SECURITY_OPS:
        response = getattr(client, method)(path, json={}, headers=two_customers.anna.auth)
        assert response.status_code in (403, 404, 405), (path, response.status_code)
        assert set(response.get_json()) == ERROR_KEYS, (path, response.get_json())


@pytest.mark.parametrize("kwargs,status,code", [
    ({"json": {"username": "nobody", "password": "wrong", "provider": "db"}}, 401, "unauthorized"),
    ({"json": {"username": "nobody"}}, 400, None),
    ({"data": "not json", "content_type": "text/plain"}, 400, None),
])
def test_fab_security_login_errors_are_in_the_one_shape(client, kwargs, status, code):
    """FAB answers its own login API with ``{"message"}``: reshaped on the way out."""
    response = client.post("/api/v1/security/login", **kwargs)
    body = response.get_json()
    assert response.status_code == status and set(body) == ERROR_KEYS, body
    assert body["status"] == status and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic eDp5"}])
def test_jwt_layer_errors_on_fab_endpoints_are_in_the_one_shape(client, headers):
    response = client.post("/api/v1/security/refresh", headers=headers)
    body = response.get_json()
    assert 400 <= response.status_code < 500 and set(body) == ERROR_KEYS, body


def test_method_not_allowed_keeps_allow_header_and_shape(client):
    response = client.delete("/api/v1/me/balance")
    assert response.status_code == 405 and set(response.get_json()) == ERROR_KEYS
    assert "GET" in response.headers["Allow"]


# --- postbacks ---------------------------------------------------------------------------------------------

POSTBACK = "/api/v1/network/postback"
SECRET = b"dev-postback-secret"


def _event(sub_id: str, event_id: str = "P-1:paid") -> bytes:
    return json.dumps({"event_id": event_id, "order_id": "P-1", "sub_id": sub_id, "status": "paid",
                       "order_amount": "100.00", "currency": "USD", "commission": "8.00",
                       "event_time": "2026-11-24T10:00:00+00:00"}).encode()


def _signed(raw: bytes, ts: int | None = None) -> dict[str, str]:
    return {**sign(SECRET, raw, int(time.time()) if ts is None else ts), "X-Cashback-Network": "epn",
            "Content-Type": "application/json"}


def _anna_sub(app, anna_id: int) -> str:
    with app.app_context():
        return db.session.execute(sa.text("SELECT sub_id FROM click WHERE customer_id = :c"), {"c": anna_id}).scalar_one()


def test_postback_with_a_moved_timestamp_is_refused_and_recorded(app, client, two_customers):
    """A captured postback replayed with a fresh timestamp header: the signature covers it."""
    raw = _event(_anna_sub(app, two_customers.anna.id))
    headers = _signed(raw, ts=int(time.time()) - 600)
    headers["X-Cashback-Timestamp"] = str(int(time.time()))
    before = victim_snapshot(app, two_customers.anna.id)
    assert_error(client.post(POSTBACK, data=raw, headers=headers), 401, "bad_signature")
    assert victim_snapshot(app, two_customers.anna.id) == before
    with app.app_context():
        assert db.session.execute(sa.select(PostbackRejection.reason)).scalars().all() == ["bad_signature"]


@pytest.mark.parametrize("raw", [b"\x00", b'{"event_id": "N-1\\u0000", "order_id": "N-1"}'])
def test_postback_with_a_nul_character_is_refused_and_recorded(app, client, two_customers, raw):
    """Regression: a NUL (raw byte, or ``\\u0000`` in a signed event) made the refusal's own
    record fail in PostgreSQL (500, nothing logged for Developers)."""
    headers = _signed(raw)
    headers["X-Cashback-Network"] = "epn"
    assert_error(client.post(POSTBACK, data=raw, headers=headers), 400, "malformed_body")
    nul_network = {**_signed(b"{}"), "X-Cashback-Network": "e\x00pn"}
    assert_error(client.post(POSTBACK, data=b"{}", headers=nul_network), 401, "unknown_network")
    with app.app_context():
        rows = db.session.execute(sa.select(PostbackRejection).order_by(PostbackRejection.id)).scalars().all()
        assert [(r.reason, r.http_status) for r in rows] == [("malformed_body", 400), ("unknown_network", 401)]
        assert all("\x00" not in (r.body_excerpt or "") + (r.network or "") for r in rows)


def test_concurrent_replays_of_one_postback_book_once(app, two_customers):
    anna = two_customers.anna
    raw = _event(_anna_sub(app, anna.id))
    pending_before = ledger_balance(app, anna.id)["pending"]
    results: list[tuple[int, bool]] = []
    barrier = threading.Barrier(6)

    def replay():
        client = app.test_client()
        barrier.wait()
        response = client.post(POSTBACK, data=raw, headers=_signed(raw))
        results.append((response.status_code, (response.get_json() or {}).get("duplicate")))

    threads = [threading.Thread(target=replay) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(results) == sorted([(200, False)] + [(200, True)] * 5), results
    assert ledger_balance(app, anna.id)["pending"] == pending_before + D("7.00")


def ledger_balance(app, customer_id: int) -> dict[str, Decimal]:
    with app.app_context():
        return ledger.customer_balances(db.session, customer_id)


# --- oversized bodies ------------------------------------------------------------------------------------

def test_oversized_api_body_is_413_in_the_error_shape(app, client, two_customers):
    too_big = b'{"order_number": "' + b"1" * (app.config["MAX_CONTENT_LENGTH"] + 1) + b'"}'
    response = client.post("/api/v1/me/claims", data=too_big, content_type="application/json",
                           headers={**two_customers.anna.auth, **EN})
    assert_error(response, 413, "body_too_large")


def test_oversized_form_upload_is_413(app, client, two_customers):
    login(client, "anna@test.local", PASSWORD)
    too_big = b"\x89PNG" + b"0" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    import io

    response = client.post("/cabinet/claims/new", data={"order_number": "A-9", "order_date": "2026-11-01",
                                                        "screenshot": (io.BytesIO(too_big), "big.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 413
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Claim)).scalar_one() == 2


# --- withdrawal race through the API ----------------------------------------------------------------------

def test_ten_concurrent_withdrawals_with_different_keys_never_overspend(app, clean_db, testbank):
    """$5.00 available, ten $1.00 requests at once, each with its own key: at most five hold."""
    testbank.reset()
    from portal.services import fx
    from portal.services.audit import Actor
    import datetime as dt

    with app.app_context():
        fx.correct_rate(db.session, dt.date.today(), D("80"), Actor.system("test"), "test rate")
        db.session.commit()
    anna = make_customer(app, "racer@test.local")
    auth = token(app.test_client(), "racer@test.local")
    statuses: list[int] = []
    barrier = threading.Barrier(10)

    def withdraw(n: int):
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/v1/me/withdrawals", json={"details_id": anna.details_id, "amount_usd": "1.00"},
                               headers={**auth, "Idempotency-Key": f"race-{n}"})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=withdraw, args=(n,)) for n in range(10)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(set(statuses)) <= [201, 409] and statuses.count(201) == 5, statuses
    balances = ledger_balance(app, anna.id)
    assert balances["available"] == D("0") and balances["available"] >= 0
    with app.app_context():
        held = db.session.execute(sa.select(sa.func.coalesce(sa.func.sum(Payout.amount_usd), 0))
                                  .where(Payout.customer_id == anna.id)).scalar_one()
    assert held == D("5.00")


# --- maker-checker through the review page --------------------------------------------------------------

def _in_review(app, payout_id: int) -> None:
    with app.app_context():
        payout = db.session.get(Payout, payout_id)
        payout.state, payout.approvals_needed = "in_review", 1
        db.session.commit()


def test_approver_cannot_approve_a_payout_to_their_own_wallet_on_the_page(app, client, two_customers, make_user):
    """A Finance user who is also a customer keeping Boris' wallet cannot approve Boris' payout."""
    boris = two_customers.boris
    _in_review(app, boris.payout_id)
    fin = make_user("fin-wallet", "Finance")
    with app.app_context():
        session = db.session
        own = Customer(email="fin-wallet@own.local", name="Fin", user_id=fin)
        session.add(own)
        session.flush()
        session.add(PayoutDetails(customer_id=own.id, provider_code="test", account="TEST-11111116"))
        session.commit()
    login(client, "fin-wallet")
    response = client.post(f"/payouts/review/{boris.payout_id}/decide",
                           data={"decision": "approve", "reason": "looks fine"}, headers=EN)
    assert response.status_code == 422
    assert "own wallet" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Payout, boris.payout_id).state == "in_review"
        assert db.session.execute(sa.select(sa.func.count()).select_from(PayoutApproval)).scalar_one() == 0


def test_approver_cannot_approve_their_own_withdrawal_even_in_bulk(app, client, two_customers, make_user):
    anna = two_customers.anna
    _in_review(app, anna.payout_id)
    fin = make_user("fin-self", "Finance")
    with app.app_context():
        db.session.get(Customer, anna.id).user_id = fin
        db.session.commit()
    login(client, "fin-self")
    response = client.post("/payouts/review/bulk-approve", data={"ids": [str(anna.payout_id)], "reason": "ok"},
                           headers=EN, follow_redirects=True)
    assert "your own withdrawal" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Payout, anna.payout_id).state == "in_review"
        assert db.session.execute(sa.select(sa.func.count()).select_from(PayoutApproval)).scalar_one() == 0


def test_finance_cannot_fix_their_own_unknown_payout_by_hand(app, client, two_customers, make_user):
    """Regression: ``fix_state`` had no maker-checker — a Finance user could mark their own
    payout (or one to their own wallet) in ``unknown`` as failed and get the money back
    while the provider may have paid it.  Now refused like ``decide``; a colleague may."""
    anna = two_customers.anna
    with app.app_context():
        payout = db.session.get(Payout, anna.payout_id)
        payout.state = "unknown"
        db.session.commit()
    fin = make_user("fin-fix-self", "Finance")
    with app.app_context():
        db.session.get(Customer, anna.id).user_id = fin
        db.session.commit()
    before = ledger_balance(app, anna.id)
    login(client, "fin-fix-self")
    response = client.post(f"/payouts/attention/{anna.payout_id}/fix", data={"to": "failed", "reason": "never paid"},
                           headers=EN)
    assert response.status_code == 422
    assert "your own withdrawal" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Payout, anna.payout_id).state == "unknown"
    assert ledger_balance(app, anna.id) == before
    make_user("fin-colleague", "Finance")
    colleague = app.test_client()
    login(colleague, "fin-colleague")
    done = colleague.post(f"/payouts/attention/{anna.payout_id}/fix", data={"to": "failed", "reason": "never paid"})
    assert done.status_code == 302
    with app.app_context():
        assert db.session.get(Payout, anna.payout_id).state == "failed"
    assert ledger_balance(app, anna.id)["available"] == before["available"] + D("1.00")
