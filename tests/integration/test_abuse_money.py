"""Ways one insider, or an outsider facing a default deployment, could create money (issue 15).

Each test replays an attack of the security review and asserts it is now refused:

1. one Finance user turning an unsigned order report into available cashback, then approving
   that customer's payout;
2. one Support agent handing an orphan order's cashback to any customer;
3. a deployment with ``CASHBACK_ENV`` unset running on the public built-in secrets;
4. phone providers in production on the sandbox signer or its public secret;
5. refused postbacks filling the disk, long-lived refresh tokens, /metrics and the extension.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import logging
from decimal import Decimal

import pytest
import sqlalchemy as sa

import config
from portal.app import create_app
from portal.extensions import db
from portal.models import Customer, Order, Payout, PayoutApproval, PayoutAttempt, ReconLine
from portal.observability import Redactor
from portal.services import clicks, fx, ledger, orders
from portal.services.audit import Actor
from tests.conftest import login
from tests.integration.test_customer_api import token
from tests.integration.test_payout_api import make_customer

D = Decimal
EN = {"Accept-Language": "en"}
HEADER = "order_id,sub_id,status,order_amount,currency,commission,event_time,refunded_amount"


def balances(app, customer_id: int) -> dict[str, Decimal]:
    with app.app_context():
        db.session.remove()
        return ledger.customer_balances(db.session, customer_id)


# --- 1. the order report: four eyes on cashback it creates ---------------------------------------------

@pytest.fixture
def victim(app, clean_db):
    """A demo-like customer: $5.56 available, old payout details, one click with a sub-id."""
    person = make_customer(app, "mallory-friend@test.local", fund="5.56")
    with app.app_context():
        fx.correct_rate(db.session, dt.date.today(), D("80"), Actor.system("test"), "test rate")
        result = clicks.create_click(db.session, db.session.get(Customer, person.id),
                                     "https://aliexpress.com/item/1005001234567890.html", "web",
                                     config=dict(app.config))
        db.session.commit()
        person.sub_id = result.click.sub_id
    return person


def report(sub_id: str, order: str, amount: str, commission: str) -> bytes:
    at = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).replace(microsecond=0).isoformat()
    return f"{HEADER}\n{order},{sub_id},confirmed,{amount},USD,{commission},{at},\n".encode()


def upload(client, data: bytes, name: str = "epn.csv") -> int:
    response = client.post("/finance/reconciliation/upload", data={"file": (io.BytesIO(data), name)},
                           content_type="multipart/form-data", headers=EN)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def test_one_finance_user_cannot_turn_a_report_into_available_cashback(app, client, victim, make_user):
    """Attack: one Finance user uploads a row for a customer's click, ``confirmed``, amount
    10,000,000, and applies it: $5.56 became $630,005.56 available.  Now the line is above the
    per-line cap and nothing moves."""
    make_user("fin-maker", "Finance")
    login(client, "fin-maker")
    import_id = upload(client, report(victim.sub_id, "EVIL-1", "10000000", "1000000"))
    response = client.post(f"/finance/reconciliation/{import_id}/apply-all", data={"reason": "network says so"},
                           headers=EN, follow_redirects=True)
    assert "above the per-line cap" in response.get_data(as_text=True)
    assert balances(app, victim.id)["available"] == D("5.56")
    with app.app_context():
        line = db.session.execute(sa.select(ReconLine).where(ReconLine.import_id == import_id)).scalar_one()
        assert (line.applied_at, line.proposed_at) == (None, None)


def test_cashback_from_a_report_needs_a_second_finance_user_who_then_cannot_pay_it_out(app, client, victim,
                                                                                        make_user):
    """Attack: the same person raises the balance and approves the payout.  Now applying a line
    that raises cashback only proposes it; the proposer cannot approve it; a colleague sees the
    total and the cap first, approves, and then neither of them may approve that customer's payout."""
    for name in ("fin-maker", "fin-checker", "fin-third"):
        make_user(name, "Finance")
    login(client, "fin-maker")
    import_id = upload(client, report(victim.sub_id, "BIG-1", "1000.00", "80.00"))
    client.post(f"/finance/reconciliation/{import_id}/apply-all", data={"reason": "network says so"}, headers=EN)
    assert balances(app, victim.id)["available"] == D("5.56")
    mine = client.post(f"/finance/reconciliation/{import_id}/approve", data={"reason": "fine"}, headers=EN)
    assert mine.status_code == 422 and "second Finance user" in mine.get_data(as_text=True)
    assert balances(app, victim.id)["available"] == D("5.56")

    checker = app.test_client()
    login(checker, "fin-checker")
    page = checker.get(f"/finance/reconciliation/{import_id}", headers=EN).get_data(as_text=True)
    assert "Waiting for a second Finance user" in page
    assert "by $70.00 in total" in page and "at most $100.00 per line" in page
    done = checker.post(f"/finance/reconciliation/{import_id}/approve", data={"reason": "checked with epn"}, headers=EN)
    assert done.status_code == 302
    assert balances(app, victim.id)["available"] == D("75.56")

    customer = app.test_client()
    withdrawal = customer.post("/api/v1/me/withdrawals", json={"details_id": victim.details_id, "amount_usd": "60.00"},
                               headers={**token(customer, victim.email), "Idempotency-Key": "cash-out"})
    assert withdrawal.status_code == 201, withdrawal.get_json()
    payout_id = withdrawal.get_json()["id"]
    with app.app_context():
        assert db.session.get(Payout, payout_id).state == "in_review"
    for who in (checker, client):  # the approver of the raise, then its proposer
        refused = who.post(f"/payouts/review/{payout_id}/decide", data={"decision": "approve", "reason": "ok"},
                           headers=EN)
        assert refused.status_code == 422 and "recently raised this customer" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(PayoutApproval)).scalar_one() == 0
    third = app.test_client()
    login(third, "fin-third")
    assert third.post(f"/payouts/review/{payout_id}/decide", data={"decision": "approve", "reason": "ok"},
                      headers=EN).status_code == 302
    with app.app_context():
        assert db.session.get(Payout, payout_id).state != "in_review"


# --- 2. orphan orders: Support proposes, Finance confirms ----------------------------------------------

def _orphan(app, order_no: str = "ORPHAN-1") -> int:
    """A confirmed order whose sub-id none of our clicks has ($100, $8 commission: $7 cashback)."""
    with app.app_context():
        body = {"event_id": f"{order_no}:confirmed", "order_id": order_no, "sub_id": "sub-nobody-has",
                "status": "confirmed", "order_amount": "100.00", "currency": "USD", "commission": "8.00",
                "event_time": dt.datetime.now(dt.timezone.utc).isoformat()}
        outcome = orders.receive_event(db.session, orders.parse_event(body, "epn"),
                                       default_rate=app.config["DEFAULT_CASHBACK_RATE"])
        db.session.commit()
        return outcome.order_id


def test_one_support_agent_cannot_hand_an_orphan_to_a_customer(app, client, victim, make_user):
    """Attack: one Support agent attached a confirmed orphan to any customer and it became
    available money at once.  Now the attachment is a proposal: nothing is booked, Support
    cannot confirm it, nor can the proposer under another role; a Finance user confirms."""
    order_id = _orphan(app)
    make_user("sup-maker", "Support")
    login(client, "sup-maker")
    client.post(f"/orphanorderview/attach/{order_id}",
                data={"customer": victim.email, "reason": "trust me"}, headers=EN)
    assert balances(app, victim.id)["available"] == D("5.56")
    with app.app_context():
        order = db.session.get(Order, order_id)
        assert (order.customer_id, order.attach_customer_id) == (None, victim.id)
    assert client.post(f"/orders/attachments/{order_id}/decide", data={"decision": "approve"},
                       headers=EN).status_code == 403
    assert balances(app, victim.id)["available"] == D("5.56")

    make_user("fin-confirms", "Finance")
    finance = app.test_client()
    login(finance, "fin-confirms")
    assert finance.post(f"/orders/attachments/{order_id}/decide", data={"decision": "approve"},
                        headers=EN).status_code == 302
    assert balances(app, victim.id)["available"] == D("12.56")


def test_an_admin_cannot_confirm_the_attachment_they_proposed(app, client, victim, make_user):
    """Someone with both Support's and Finance's rights is still one person."""
    order_id = _orphan(app, "ORPHAN-2")
    make_user("boss", "Admin")
    login(client, "boss")
    client.post(f"/orphanorderview/attach/{order_id}", data={"customer": victim.email, "reason": "mine"}, headers=EN)
    refused = client.post(f"/orders/attachments/{order_id}/decide", data={"decision": "approve"}, headers=EN)
    assert refused.status_code == 422 and "another person" in refused.get_data(as_text=True)
    assert balances(app, victim.id)["available"] == D("5.56")


# --- 3. a deployment that fails closed -----------------------------------------------------------------

SECRETS_ENV = ("CASHBACK_ENV", "SECRET_KEY", "CASHBACK_POSTBACK_SECRETS", "CASHBACK_PUBLIC_URL", "CASHBACK_HOST")


@pytest.fixture
def bare_env(monkeypatch):
    """An environment that sets nothing, as on a fresh server."""
    for name in SECRETS_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_unset_env_does_not_start_on_the_public_secrets(bare_env):
    """Attack: CASHBACK_ENV unset used to mean development, so the app served with the public
    SECRET_KEY (forge an admin session or any JWT) and postback secret (forge credits)."""
    assert config.load()["CASHBACK_ENV"] == "production"
    with pytest.raises(config.ConfigError, match="SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    bare_env.setenv("SECRET_KEY", "a-long-random-production-key")
    with pytest.raises(config.ConfigError, match="POSTBACK"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "cashback.example"])
def test_development_with_public_secrets_is_refused_off_loopback(bare_env, host):
    """Attack: CASHBACK_ENV=development on a reachable address is the same forgery vector."""
    bare_env.setenv("CASHBACK_ENV", "development")
    bare_env.setenv("CASHBACK_HOST", host)
    with pytest.raises(config.ConfigError, match="loopback"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    bare_env.setenv("SECRET_KEY", "a-long-random-key")
    with pytest.raises(config.ConfigError, match="CASHBACK_POSTBACK_SECRETS"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_explicit_development_on_loopback_still_runs_the_demo(bare_env, host):
    bare_env.setenv("CASHBACK_ENV", "development")
    bare_env.setenv("CASHBACK_HOST", host)
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["CASHBACK_ENV"] == "development" and app.config["BIND_HOST"] == host


# --- 4. phone providers in production ---------------------------------------------------------------

@pytest.fixture
def production_env(bare_env, tmp_path):
    for name, value in (("CASHBACK_ENV", "production"), ("SECRET_KEY", "a-long-random-production-key"),
                        ("CASHBACK_POSTBACK_SECRETS", "epn:a-real-network-key"),
                        ("CASHBACK_PUBLIC_URL", "https://cashback.example"),
                        ("DATABASE_URL", f"sqlite:///{tmp_path / 'prod.db'}"), ("CASHBACK_INSTANCE_DIR", str(tmp_path))):
        bare_env.setenv(name, value)
    return bare_env


REAL_MTS = {"certificate_name": "/business/cashback", "signing_secret": "from-the-secret-store"}


@pytest.mark.parametrize("mts", [
    # the signer defaults to "test": answers would be checked against the public sandbox-deposit-secret
    {"base_url": "https://mts.example", "credentials": REAL_MTS},
    {"base_url": "https://mts.example", "signer": "test",
     "credentials": {**REAL_MTS, "server_secret": "also-from-the-store"}},
    {"base_url": "https://mts.example", "signer": "test",
     "credentials": {**REAL_MTS, "server_secret": "sandbox-deposit-secret"}},
])
def test_production_refuses_a_phone_provider_on_the_sandbox_signer_or_secret(production_env, mts):
    """Attack: MTS configured with real certificate names but the sandbox signer: anyone signs an
    errorDepositionNotification with the public secret, a paid payout turns ``reversed`` and is
    paid again.  Now production does not start."""
    production_env.setenv("CASHBACK_PROVIDER_SETTINGS", json.dumps({"mts": mts}))
    with pytest.raises(config.ConfigError, match="mts: signer 'test'"):
        create_app()


def test_production_refuses_any_provider_on_a_shipped_sandbox_secret(production_env):
    production_env.setenv("CASHBACK_PROVIDER_SETTINGS", json.dumps(
        {"yoomoney": {"credentials": {"shop_id": "real-shop", "secret_key": "test_sandbox-secret"}}}))
    with pytest.raises(config.ConfigError, match="yoomoney: credential 'secret_key'"):
        create_app()
    production_env.setenv("CASHBACK_PROVIDER_SETTINGS", json.dumps(
        {"yoomoney": {"credentials": {"shop_id": "real-shop", "secret_key": "live_from-the-store"}}}))
    assert "yoomoney" in create_app().extensions["payout_providers"]


def test_attempt_keys_never_reach_the_logs_in_full(app, victim, caplog):
    """The random part of an attempt key is what a forged notification would have to guess."""
    from portal.tasks import payouts as jobs

    customer = app.test_client()
    made = customer.post("/api/v1/me/withdrawals", json={"details_id": victim.details_id, "amount_usd": "1.00"},
                         headers={**token(customer, victim.email), "Idempotency-Key": "small"})
    assert made.status_code == 201, made.get_json()
    with app.app_context(), caplog.at_level(logging.INFO, logger="portal.tasks.payouts"):
        jobs.submit_payout(made.get_json()["id"])
        key = db.session.execute(sa.select(PayoutAttempt.idempotency_key)).scalar_one()
    assert caplog.records and key[:-12] in caplog.text
    assert key not in caplog.text
    assert key not in Redactor()(f"provider said: no such clientOrderId {key}")


# --- 5. refused postbacks, refresh tokens, /metrics, the extension ------------------------------------

def test_unauthenticated_postback_refusals_are_sampled_not_all_stored(app, client, clean_db, monkeypatch):
    """Attack: unknown-network/bad-signature postbacks at the 1,000/s per-IP limit each stored a
    2 KB excerpt (a disk-filling vector).  Now only a bounded sample, with a short excerpt."""
    from portal import observability
    from portal.models import PostbackRejection
    from portal.services import postbacks

    monkeypatch.setitem(app.config, "POSTBACK_REJECTION_SAMPLE", 5)
    monkeypatch.setattr(postbacks, "SAMPLE", postbacks._Sample())
    counted = observability.POSTBACK_REJECTIONS.labels(reason="unknown_network")._value.get()
    body = b'{"event_id": "' + b"x" * 10_000 + b'"}'
    for n in range(40):
        response = client.post("/api/v1/network/postback", data=body, content_type="application/json",
                               headers={"X-Cashback-Network": f"nobody-{n}"})
        assert response.status_code == 401
    with app.app_context():
        excerpts = db.session.execute(sa.select(PostbackRejection.body_excerpt)).scalars().all()
    assert 1 <= len(excerpts) <= 5
    assert all(len(e) <= postbacks.UNAUTHENTICATED_EXCERPT for e in excerpts)
    assert observability.POSTBACK_REJECTIONS.labels(reason="unknown_network")._value.get() - counted == 40


def _jwt_login(client, username: str) -> dict:
    from tests.integration.test_payout_api import PASSWORD

    response = client.post("/api/v1/security/login",
                           json={"username": username, "password": PASSWORD, "provider": "db", "refresh": True})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_tokens_minted_before_a_password_change_are_refused(app, victim):
    """Attack: a stolen refresh token lived 30 days and survived the victim's password reset.
    Now it has a shorter lifetime and dies with the password."""
    import jwt as pyjwt

    from portal.services import accounts
    from tests.integration.test_payout_api import PASSWORD

    api = app.test_client()
    stolen = _jwt_login(api, victim.email)
    claims = pyjwt.decode(stolen["refresh_token"], options={"verify_signature": False})
    assert dt.timedelta(seconds=claims["exp"] - claims["iat"]) == app.config["JWT_REFRESH_TOKEN_EXPIRES"]
    assert app.config["JWT_REFRESH_TOKEN_EXPIRES"] <= dt.timedelta(days=7)
    assert api.get("/api/v1/me/balance", headers={"Authorization": f"Bearer {stolen['access_token']}"}
                   ).status_code == 200
    with app.app_context():
        customer = db.session.get(Customer, victim.id)
        customer.tokens_valid_after = None
        accounts.change_password(db.session, app.config, customer, PASSWORD, PASSWORD + "-new")
        db.session.commit()
    refreshed = api.post("/api/v1/security/refresh", headers={"Authorization": f"Bearer {stolen['refresh_token']}"})
    assert refreshed.status_code == 401
    assert api.get("/api/v1/me/balance", headers={"Authorization": f"Bearer {stolen['access_token']}"}
                   ).status_code == 401
    fresh = api.post("/api/v1/security/login", json={"username": victim.email, "password": PASSWORD + "-new",
                                                     "provider": "db", "refresh": True}).get_json()
    assert api.post("/api/v1/security/refresh",
                    headers={"Authorization": f"Bearer {fresh['refresh_token']}"}).status_code == 200


def test_metrics_need_a_token_in_production_even_from_loopback(app, pg_url, testbank):
    """Attack: behind a proxy on the same host every visitor is "loopback" and read /metrics."""
    from tests.conftest import TEST_SETTINGS, provider_settings

    prod = create_app({**TEST_SETTINGS, "CASHBACK_ENV": "production", "SQLALCHEMY_DATABASE_URI": pg_url,
                       "PUBLIC_URL": "https://cashback.example", "POSTBACK_SECRETS": {"epn": "a-real-key"},
                       "PAYOUT_PROVIDER_SETTINGS": provider_settings(testbank), "METRICS_TOKEN": ""})
    assert prod.test_client().get("/metrics").status_code == 403  # the test client is 127.0.0.1
    prod.config["METRICS_TOKEN"] = "scrape-token-456"
    assert prod.test_client().get("/metrics", headers={"Authorization": "Bearer scrape-token-456"}).status_code == 200


def test_a_proxy_on_this_host_without_trusted_proxies_is_warned_about(app, client, caplog):
    from portal import observability

    observability._PROXY_WARNED.clear()
    with caplog.at_level(logging.WARNING, logger="portal.observability"):
        client.get("/health", headers={"X-Forwarded-For": "203.0.113.9"})
    assert "CASHBACK_TRUSTED_PROXIES=0" in caplog.text


def test_the_extension_accepts_only_https_portals_loopback_aside():
    """Attack: the extension sent the customer's password and tokens to a plain-http portal."""
    import shutil
    import subprocess
    from pathlib import Path

    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed")
    lib = (Path(__file__).resolve().parents[2] / "extension" / "lib.js").as_uri()
    cases = ["http://portal.example", "http://127.0.0.1.evil.example", "https://u:p@portal.example",
             "https://portal.example/", "http://127.0.0.1:5000", "http://localhost:5000", "http://[::1]:5000"]
    script = (f"import {{ normaliseBase }} from {json.dumps(lib)};"
              f"console.log(JSON.stringify({json.dumps(cases)}.map(normaliseBase)));")
    out = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [None, None, None, "https://portal.example", "http://127.0.0.1:5000",
                                      "http://localhost:5000", "http://[::1]:5000"]
