"""CPA-partner login and partner-linked accounts, on PostgreSQL and a real local partner directory.

The directory (``portal.partner_directory``) serves HTTP on a free port in a thread; the app
of this module points ``PARTNER_DIRECTORY_URL`` at it.  Covered: login through the form and
the JWT API, linking by the directory-confirmed e-mail (never by the typed name), wrong
passwords, a directory that is down or slow (a clear message, no local fallback), the
partner-linked cabinet and withdrawal refusals, the self-referral rule, the role matrix.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
from werkzeug.security import check_password_hash

from portal.extensions import db
from portal.models import AuditRecord, Customer, PayoutDetails
from portal.partner_directory import LocalPartnerDirectory
from portal.services import customers, ledger, partners
from portal.services.audit import Actor
from portal.services.ledger import customer_account, system_account, transfer
from tests.conftest import build_app, login, provider_settings

TOKEN = "test-directory-token"
PASSWORD = "pw-" + "x" * 8
SYSTEM = Actor.system("test")
EN = {"Accept-Language": "en"}
LINK = "https://aliexpress.ru/item/1005001234567890.html"
UNAVAILABLE = "The partner directory is unavailable right now"
NOTICE = "your statistics and withdrawals are in your partner account"


@pytest.fixture(scope="module")
def directory():
    """The local partner directory (seeded demo partners) on a free port."""
    server = LocalPartnerDirectory(token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def app(pg_url, testbank, directory):
    """The portal with partner login on (short timeouts: a slow directory is a refusal, fast)."""
    return build_app(pg_url, PAYOUT_PROVIDER_SETTINGS=provider_settings(testbank), JOBS_MODE="collect",
                     PARTNER_DIRECTORY_URL=directory.url, PARTNER_DIRECTORY_TOKEN=TOKEN,
                     PARTNER_DIRECTORY_CONNECT_TIMEOUT=0.5, PARTNER_DIRECTORY_READ_TIMEOUT=0.5)


@pytest.fixture(autouse=True)
def fresh_directory(directory):
    yield
    directory.reset_faults()
    directory.calls.clear()


def form_login(client, username: str, password: str):
    """POST the login form (English pages); the page it lands on (flashes included)."""
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    response = client.post("/login/", data={"username": username, "password": password})
    assert response.status_code == 302
    return response, client.get(response.headers["Location"], headers=EN).get_data(as_text=True)


def jwt_login(client, username: str, password: str):
    return client.post("/api/v1/security/login", json={"username": username, "password": password, "provider": "db"})


def customer_by_email(app, email: str) -> Customer | None:
    with app.app_context():
        customer = db.session.execute(sa.select(Customer).where(Customer.email == email)).scalar_one_or_none()
        if customer is not None:
            db.session.expunge(customer)
        return customer


def audit_actions(app, customer_id: int) -> list[str]:
    with app.app_context():
        return list(db.session.execute(sa.select(AuditRecord.action).where(
            AuditRecord.object_type == "customer", AuditRecord.object_id == str(customer_id))
            .order_by(AuditRecord.id)).scalars())


def make_customer(app, email: str, password: str = PASSWORD) -> int:
    with app.app_context():
        customer = customers.create_customer(db.session, app.appbuilder.sm, email=email, name="Anna Test",
                                             password=password, actor=SYSTEM)
        db.session.commit()
        return customer.id


# --- login -------------------------------------------------------------------------------------------

def test_form_login_creates_a_partner_linked_customer(app, client, directory):
    """A partner's credentials on the login form: a new partner-linked customer, audited, logged in."""
    response, _ = form_login(client, "partner-demo", "partner-demo")
    assert "/login/" not in response.headers["Location"]
    customer = customer_by_email(app, "partner@demo.cashback.local")
    assert customer is not None and customer.partner_linked and customer.partner_id == "P-1001"
    assert customer.partner_cabinet_url == f"{directory.url}/cabinet/P-1001"
    assert audit_actions(app, customer.id) == ["customer.created", "customer.partner_created"]
    with app.app_context():
        user = db.session.get(Customer, customer.id).user
        assert [r.name for r in user.roles] == ["Customer"]
        assert not check_password_hash(user.password, "partner-demo")  # no usable local password
    assert client.get("/cabinet/").status_code == 200
    # a second login finds the same account (by partner id) and audits nothing new
    client.get("/logout/")
    form_login(client, "PARTNER@demo.cashback.local", "partner-demo")
    with app.app_context():
        assert db.session.query(Customer).count() == 1
    assert audit_actions(app, customer.id) == ["customer.created", "customer.partner_created"]


def test_jwt_login_of_a_partner(app, client):
    """The JWT login (provider db; the extension's) lets a partner in and gives a working token."""
    response = jwt_login(client, "webmaster-en", "webmaster-demo")
    assert response.status_code == 200, response.get_json()
    headers = {"Authorization": f"Bearer {response.get_json()['access_token']}", **EN}
    customer = customer_by_email(app, "webmaster@demo.cashback.local")
    assert customer.partner_linked and customer.locale == "en"
    clicked = client.post("/api/v1/clicks", json={"url": LINK, "channel": "extension"}, headers=headers)
    assert clicked.status_code in (200, 201), clicked.get_json()  # partner-linked customers still earn


def test_wrong_partner_password_is_refused(app, client, directory):
    """Wrong partner password: refused on the form and the API, no account made."""
    response, page = form_login(client, "partner-demo", "not-the-password")
    assert "/login/" in response.headers["Location"]
    assert "Invalid login" in page
    assert jwt_login(client, "partner-demo", "nope").status_code == 401
    assert customer_by_email(app, "partner@demo.cashback.local") is None
    assert ("POST", "/api/v1/auth") in directory.calls


def test_existing_customer_is_linked_only_by_the_directory_confirmed_email(app, client, directory):
    """A partner whose directory e-mail is an existing customer's: linked (audited), the local password retired."""
    anna_id = make_customer(app, "anna@test.local")
    directory.add_partner("P-3", login="anna-cpa", password="cpa-secret-1", email="Anna@Test.local",
                          name="Anna CPA", cabinet_url="https://cpa.example/cabinet/P-3")
    try:
        response, _ = form_login(client, "anna-cpa", "cpa-secret-1")
        assert "/login/" not in response.headers["Location"]
        anna = customer_by_email(app, "anna@test.local")
        assert anna.id == anna_id and anna.partner_linked and anna.partner_id == "P-3"
        assert anna.partner_cabinet_url == "https://cpa.example/cabinet/P-3"
        assert audit_actions(app, anna_id)[-1] == "customer.partner_linked"
        with app.app_context():
            record = db.session.execute(sa.select(AuditRecord).where(
                AuditRecord.action == "customer.partner_linked")).scalar_one()
            assert record.before["partner_linked"] is False and record.after["partner_id"] == "P-3"
        client.get("/logout/")
        # the old local password no longer opens the account: only the directory does
        response, _ = form_login(client, "anna@test.local", PASSWORD)
        assert "/login/" in response.headers["Location"]
    finally:
        directory.remove_partner("P-3")


def test_a_partner_cannot_take_over_another_account(app, client, make_user, directory):
    """Typing someone else's login with one's partner password opens nothing; a staff e-mail is never linked."""
    boris_id = make_customer(app, "boris@test.local")
    directory.add_partner("P-4", login="mallory", password="mallory-pw-1", email="mallory@test.local")
    directory.add_partner("P-5", login="eve", password="eve-pw-123", email="support@test.local")
    make_user("support", "Support")
    try:
        response, _ = form_login(client, "boris@test.local", "mallory-pw-1")
        assert "/login/" in response.headers["Location"]
        assert not customer_by_email(app, "boris@test.local").partner_linked
        # her own login gives her her own account, not Boris's
        form_login(client, "mallory", "mallory-pw-1")
        assert customer_by_email(app, "mallory@test.local").partner_id == "P-4"
        assert customer_by_email(app, "boris@test.local").partner_id is None
        client.get("/logout/")
        # the directory vouches for support@test.local, a staff login's e-mail: refused, clearly
        response, page = form_login(client, "eve", "eve-pw-123")
        assert "/login/" in response.headers["Location"] and "belongs to a staff login" in page
        refused = jwt_login(client, "eve", "eve-pw-123")
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "partner_login_refused"
        assert customer_by_email(app, "support@test.local") is None
        with app.app_context():
            staff = app.appbuilder.sm.find_user(username="support")
            assert [r.name for r in staff.roles] == ["Support"]
        # a staff login with a wrong password never reaches the directory
        directory.calls.clear()
        response, _ = form_login(client, "support", "wrong-password")
        assert "/login/" in response.headers["Location"] and directory.calls == []
        assert boris_id
    finally:
        directory.remove_partner("P-4")
        directory.remove_partner("P-5")


def test_directory_down_or_slow_is_a_clear_refusal_without_local_fallback(app, client, directory):
    """Down or slow directory: "unavailable, try later" on the form and the API; a local password does not help."""
    form_login(client, "partner-demo", "partner-demo")
    client.get("/logout/")
    customer = customer_by_email(app, "partner@demo.cashback.local")
    with app.app_context():  # even a local password set on the partner-linked login is not a way in
        app.appbuilder.sm.reset_password(customer.user_id, "local-password-1")
    directory.inject(down=True)
    response, page = form_login(client, "partner-demo", "partner-demo")
    assert "/login/" in response.headers["Location"] and UNAVAILABLE in page and "Invalid login" not in page
    response, page = form_login(client, "partner@demo.cashback.local", "local-password-1")
    assert "/login/" in response.headers["Location"] and UNAVAILABLE in page
    api = client.post("/api/v1/security/login", headers=EN,
                      json={"username": "partner-demo", "password": "partner-demo", "provider": "db"})
    assert api.status_code == 503
    assert api.get_json()["error"]["code"] == "partner_directory_unavailable"
    assert UNAVAILABLE in api.get_json()["error"]["message"]
    # a new partner while the directory is down: the same message, nothing created
    response, page = form_login(client, "webmaster-en", "webmaster-demo")
    assert UNAVAILABLE in page and customer_by_email(app, "webmaster@demo.cashback.local") is None
    directory.reset_faults()
    directory.inject(latency=2.0)  # longer than the 0.5 s read timeout
    response, page = form_login(client, "partner-demo", "partner-demo")
    assert "/login/" in response.headers["Location"] and UNAVAILABLE in page
    directory.reset_faults()
    response, _ = form_login(client, "partner-demo", "partner-demo")
    assert "/login/" not in response.headers["Location"]


def test_directory_client_treats_protocol_violations_as_unavailable(directory):
    """A wrong service token, a garbled answer, a 5xx: DirectoryUnavailable; 401 and 404 are answers."""
    good = partners.PartnerDirectory(directory.url, TOKEN, connect_timeout=0.5, read_timeout=0.5)
    assert good.authenticate("partner-demo", "wrong") is None
    assert good.by_referral("no-such-code") is None
    assert good.by_referral("cpapartner").email == "partner@demo.cashback.local"
    with pytest.raises(partners.DirectoryUnavailable):
        partners.PartnerDirectory(directory.url, "bad-token").authenticate("partner-demo", "partner-demo")
    directory.inject(garble=1)
    with pytest.raises(partners.DirectoryUnavailable):
        good.authenticate("partner-demo", "partner-demo")
    directory.inject(errors=1, error_status=502)
    with pytest.raises(partners.DirectoryUnavailable):
        good.by_referral("cpapartner")
    assert partners.PartnerDirectory.from_config({"PARTNER_DIRECTORY_URL": ""}) is None
    # a cabinet link that is not http(s) would become a script in the cabinet's href: refused
    directory.add_partner("P-6", login="xss", password="xss-pw-123", email="xss@test.local",
                          cabinet_url="javascript:alert(1)")
    try:
        with pytest.raises(partners.DirectoryUnavailable):
            good.authenticate("xss", "xss-pw-123")
    finally:
        directory.remove_partner("P-6")


def test_two_first_logins_of_one_partner_at_once_make_one_account(app, client):
    """Two simultaneous first logins of a partner both get in; one account exists."""
    import threading

    results = []

    def log_in():
        with app.test_client() as other:
            results.append(other.post("/login/", data={"username": "partner-demo", "password": "partner-demo"}))

    threads = [threading.Thread(target=log_in) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [302, 302]
    assert all("/login/" not in r.headers["Location"] for r in results)
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Customer).where(
            Customer.partner_id == "P-1001")).scalar_one() == 1


# --- partner-linked accounts -----------------------------------------------------------------------

def fund_and_add_details(app, email: str) -> int:
    with app.app_context():
        customer = db.session.execute(sa.select(Customer).where(Customer.email == email)).scalar_one()
        ledger.post(db.session, kind="test.fund", reference=f"fund:{customer.id}", actor=SYSTEM,
                    legs=transfer(system_account("network_receivable"), customer_account(customer.id, "available"),
                                  Decimal("5.00")))
        details = PayoutDetails(customer_id=customer.id, provider_code="test", account="TEST-12345674",
                                created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10))
        db.session.add(details)
        db.session.commit()
        return details.id


def test_cabinet_shows_the_partner_notice_instead_of_figures(app, client, directory):
    """Balance, statistics, clicks, withdraw: the notice and the link to the partner account; buying still works."""
    form_login(client, "partner-demo", "partner-demo")
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    fund_and_add_details(app, "partner@demo.cashback.local")
    cabinet_url = f"{directory.url}/cabinet/P-1001"
    for url in ("/cabinet/", "/cabinet/orders", "/cabinet/clicks", "/cabinet/withdraw/"):
        page = client.get(url)
        html = page.get_data(as_text=True)
        assert page.status_code == 200, url
        assert 'id="partner-linked"' in html and NOTICE in html and f'href="{cabinet_url}"' in html, url
        assert 'id="balance-available"' not in html and "$5.00" not in html, url
    assert 'action="/cabinet/buy"' in client.get("/cabinet/").get_data(as_text=True)
    bought = client.post("/cabinet/buy", data={"url": LINK})
    assert bought.status_code == 302 and "/cabinet/ready/" in bought.headers["Location"]
    # the partner's cabinet link works (the local directory's page)
    import requests

    assert requests.get(cabinet_url, timeout=30).status_code == 200


def test_partner_linked_withdrawal_is_refused_in_the_api_and_the_cabinet(app, client):
    """POST /api/v1/me/withdrawals: 409 partner_linked with the message; the cabinet form: the same message."""
    token = jwt_login(client, "partner-demo", "partner-demo").get_json()["access_token"]
    details_id = fund_and_add_details(app, "partner@demo.cashback.local")
    response = client.post("/api/v1/me/withdrawals", json={"details_id": details_id, "amount_usd": "1.00"},
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k-1", **EN})
    body = response.get_json()
    assert response.status_code == 409 and body["error"]["code"] == "partner_linked", body
    assert "Your statistics and withdrawals are in your partner account" in body["error"]["message"]
    assert "/cabinet/P-1001" in body["error"]["message"]
    form_login(client, "partner-demo", "partner-demo")
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    page = client.post("/cabinet/withdraw/request", data={"details": details_id, "amount": "1.00",
                                                          "request_key": "form-key-1"})
    assert page.status_code == 422
    assert "withdraw there" in page.get_data(as_text=True)
    customer = customer_by_email(app, "partner@demo.cashback.local")
    with app.app_context():
        assert ledger.customer_balances(db.session, customer.id)["available"] == Decimal("5.00")


# --- self-referral -------------------------------------------------------------------------------------

def test_registering_through_ones_own_partner_referral_link_is_refused(app, session, directory):
    """The FAQ's rule: the partner's own referral code (directory or a local partner-linked account) is refused."""
    client_ = partners.PartnerDirectory.from_config(app.config)
    assert partners.partner_self_referral(session, "Partner@demo.cashback.local", "cpapartner", client_) \
        == str(partners.SelfReferral.default_message)
    assert partners.partner_self_referral(session, "someone@else.test", "cpapartner", client_) is None
    assert partners.partner_self_referral(session, "partner@demo.cashback.local", "cpawebmstr", client_) is None
    assert partners.partner_self_referral(session, "partner@demo.cashback.local", None, client_) is None
    # a local partner-linked customer's own code, with a +tag variation of the address
    linked = partners.login_partner(session, app.appbuilder.sm, partners.PartnerInfo(
        partner_id="P-9", email="pat@test.local", name="Pat", locale="en", cabinet_url="https://cpa.example/P-9"))
    linked.referral_code = "patcode234"
    session.flush()
    assert partners.partner_self_referral(session, "pat+cashback@test.local", "patcode234", None)
    assert partners.partner_self_referral(session, "other@test.local", "patcode234", None) is None
    # through the registration service
    from portal.services import accounts

    with pytest.raises(partners.SelfReferral) as refused:
        accounts.register(session, app.appbuilder.sm, email="partner@demo.cashback.local", name="P",
                          password="long-password-1", locale="en", country=None, referral_code="cpapartner",
                          device=accounts.Device(), config=app.config, base_url="http://localhost")
    assert refused.value.status == 409 and refused.value.code == "partner_self_referral"
    session.rollback()
    assert session.execute(sa.select(Customer).where(Customer.email == "partner@demo.cashback.local")).first() is None
    directory.inject(down=True)
    with pytest.raises(partners.DirectoryUnavailable):
        partners.partner_self_referral(session, "x@test.local", "cpapartner", client_)


def test_the_registration_form_refuses_ones_own_partner_referral_link(app, client):
    """/register/?ref=<own partner code>, then the form with the partner's e-mail: refused with the rule."""
    assert client.get("/register/?ref=cpapartner", headers=EN).status_code == 200
    page = client.post("/register/", headers=EN, data={
        "email": "partner@demo.cashback.local", "name": "Pavel", "password": "long-password-1",
        "password2": "long-password-1", "locale": "en", "country": ""})
    assert page.status_code in (409, 422)
    assert str(partners.SelfReferral.default_message) in page.get_data(as_text=True)
    assert customer_by_email(app, "partner@demo.cashback.local") is None
    # someone else through the same link registers normally
    other = client.post("/register/", headers=EN, data={
        "email": "friend@test.local", "name": "Friend", "password": "long-password-1",
        "password2": "long-password-1", "locale": "en", "country": ""})
    assert other.status_code == 302
    assert customer_by_email(app, "friend@test.local") is not None


# --- roles and the demo ----------------------------------------------------------------------------------

@pytest.mark.parametrize("role,status", [("Customer", 200), ("Support", 403), ("Developer", 403)])
def test_partner_cabinet_role_matrix(app, client, make_user, role, status):
    """The partner notice is the Customer role's cabinet page; staff roles get 403 or the login redirect."""
    if role == "Customer":
        form_login(client, "partner-demo", "partner-demo")
    else:
        make_user(f"u_{role.lower()}", role)
        login(client, f"u_{role.lower()}")
    response = client.get("/cabinet/")
    if status == 200:
        assert response.status_code == 200 and 'id="partner-linked"' in response.get_data(as_text=True)
    else:
        assert response.status_code in (302, 403)
        assert 'id="partner-linked"' not in response.get_data(as_text=True)


def test_seed_demo_links_customer_20_and_the_cli_command_exists(app, clean_db):
    """seed-demo makes customer 20 partner-linked (idempotent); `cashback partner-directory` is registered."""
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    linked = customer_by_email(app, "customer20@demo.cashback.local")
    assert linked.partner_linked and linked.partner_id == "P-1020"
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    assert audit_actions(app, linked.id).count("customer.partner_linked") == 1
    help_ = runner.invoke(args=["partner-directory", "--help"])
    assert help_.exit_code == 0 and "--port" in help_.output


def test_partner_linked_statistics_are_refused_in_the_customer_api(app, client):
    """The app/extension's balance, orders and clicks: 409 partner_linked pointing at the partner
    account (the cabinet shows the same notice); a click still works — the customer still earns."""
    token = jwt_login(client, "partner-demo", "partner-demo").get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", **EN}
    for path in ("/api/v1/me/balance", "/api/v1/me/orders", "/api/v1/me/clicks"):
        response = client.get(path, headers=headers)
        body = response.get_json()
        assert response.status_code == 409 and body["error"]["code"] == "partner_linked", (path, body)
        assert "/cabinet/P-1001" in body["error"]["message"]
    click = client.post("/api/v1/clicks", json={"url": "https://aliexpress.ru/item/1005004000000101.html",
                                                "channel": "extension"}, headers=headers)
    assert click.status_code in (200, 201), click.get_json()


def test_an_unconfirmed_registration_with_the_partners_email_is_never_linked(app, client, directory):
    """Review finding: someone registers the partner's e-mail (never confirming it) and keeps the
    session; the real partner's first login used to link that account to the partner — handing the
    squatter's session the partner's account.  Now the login is refused and nothing changes."""
    squatter_id = make_customer(app, "victim@test.local")
    with app.app_context():
        squatter = db.session.get(Customer, squatter_id)
        squatter.registration_fingerprint = "f" * 64  # self-registered…
        squatter.email_confirmed_at = None  # …and the mailbox never proven
        db.session.commit()
    directory.add_partner("P-9", login="victim-cpa", password="cpa-secret-9", email="victim@test.local",
                          name="Victim", cabinet_url="https://cpa.example/cabinet/P-9")
    try:
        response, _ = form_login(client, "victim-cpa", "cpa-secret-9")
        assert "/login/" in response.headers["Location"]  # refused
        api = client.post("/api/v1/security/login", headers=EN,
                          json={"username": "victim-cpa", "password": "cpa-secret-9", "provider": "db"})
        assert api.status_code == 403 and api.get_json()["error"]["code"] == "partner_login_refused"
        assert "never confirmed" in api.get_json()["error"]["message"]
        squatter = customer_by_email(app, "victim@test.local")
        assert not squatter.partner_linked and squatter.partner_id is None
    finally:
        directory.remove_partner("P-9")


def test_linking_to_a_partner_revokes_the_tokens_of_the_old_password(app, client, directory):
    """Issue 15: a refresh token minted with the local password survived the partner re-link
    (the local password is retired, the token was not).  Now it is refused; the partner's works."""
    make_customer(app, "boris-link@test.local")
    api = app.test_client()
    old = api.post("/api/v1/security/login", json={"username": "boris-link@test.local", "password": PASSWORD,
                                                   "provider": "db", "refresh": True}).get_json()
    directory.add_partner("P-9", login="boris-cpa", password="cpa-secret-9", email="boris-link@test.local",
                          name="Boris CPA", cabinet_url="https://cpa.example/cabinet/P-9")
    try:
        fresh = jwt_login(client, "boris-cpa", "cpa-secret-9")
        assert fresh.status_code == 200, fresh.get_json()
        assert customer_by_email(app, "boris-link@test.local").partner_linked
        assert api.post("/api/v1/security/refresh",
                        headers={"Authorization": f"Bearer {old['refresh_token']}"}).status_code == 401
        assert api.get("/api/v1/me/balance", headers={"Authorization": f"Bearer {old['access_token']}"}
                       ).status_code == 401
        # the partner's own token is accepted: the API answers, pointing at the partner account
        answer = api.get("/api/v1/me/balance", headers={"Authorization": f"Bearer {fresh.get_json()['access_token']}"})
        assert (answer.status_code, answer.get_json()["error"]["code"]) == (409, "partner_linked")
    finally:
        directory.remove_partner("P-9")
