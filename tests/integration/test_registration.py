"""Self-registration, e-mail confirmation, password reset, blocking: real SMTP, real PostgreSQL.

Mail goes through a real SMTP conversation with an aiosmtpd server on a free port (the
``cashback mail-outbox`` handler writing ``.eml`` files); the tests read those files.
"""
from __future__ import annotations

import os
import re
import uuid

import pytest
import redis
import sqlalchemy as sa

from portal.models import AuditRecord, Customer
from portal.services import accounts, clicks, customers, mail, payouts
from portal.services.audit import Actor
from portal.tasks import resolve
from tests.conftest import TEST_SETTINGS, login, provider_settings

PASSWORD = "pw-" + "x" * 8
NEW_PASSWORD = "a-new-password-1"
UA = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"


@pytest.fixture
def outbox(app, smtp_server, tmp_path):
    """The session's SMTP server writing to this test's directory, the app's MAIL_* pointed at it;
    yields the directory."""
    saved = {k: app.config.get(k) for k in smtp_server.settings}
    app.config.update(smtp_server.settings)
    app.extensions.pop("cashback_collected_jobs", None)
    yield smtp_server.use(tmp_path / "outbox")
    app.config.update(saved)
    app.extensions.pop("cashback_collected_jobs", None)


def run_jobs(app) -> int:
    """Run the jobs the requests queued after their commits (JOBS_MODE=collect), as a worker would."""
    jobs = app.extensions.pop("cashback_collected_jobs", [])
    with app.app_context():
        for job in jobs:
            resolve(job.func)(*job.args)
    return len(jobs)


def mails(outbox) -> list:
    return mail.read_outbox(outbox)


def link_in(message, path: str) -> str:
    found = re.search(r"http://localhost(/" + path + r"/[^\s<\"]+)", mail.message_text(message))
    assert found, mail.message_text(message)
    return found.group(1)


def register(client, email="new@example.com", password=PASSWORD, locale="en", **extra):
    data = {"email": email, "name": "New Customer", "password": password, "password2": password,
            "locale": locale, "country": "", "fingerprint": "1920x1080x24|Europe/Berlin|Linux"}
    data.update(extra)
    return client.post("/register/", data=data, headers={"User-Agent": UA, "Accept-Language": "en-US,en;q=0.9"})


def customer_by_email(app, email):
    from portal.extensions import db

    with app.app_context():
        return db.session.execute(sa.select(Customer).where(Customer.email == email)).scalar_one_or_none()


# --- registration and confirmation ------------------------------------------------------------------------

def test_register_confirm_over_real_smtp(app, client, outbox):
    """Registration keeps hashes (not raw values), mails a link after the commit; the link confirms once."""
    page = client.get("/register/", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and b'id="register-form"' in page.data and b'id="lang-ru"' in page.data
    response = register(client, email="  New@Example.com ")
    assert response.status_code == 302 and response.headers["Location"].endswith("/register/sent")
    customer = customer_by_email(app, "new@example.com")
    assert customer is not None and customer.locale == "en" and customer.country is None
    assert customer.awaiting_email_confirmation and customer.email_confirmed_at is None
    assert len(customer.registration_fingerprint) == 64 and UA not in customer.registration_fingerprint
    assert len(customer.registration_ip_hash) == 64 and len(customer.referral_code) == 10
    assert mails(outbox) == []  # nothing sent inside the request
    assert run_jobs(app) == 1
    [message] = mails(outbox)
    assert message["To"] == "new@example.com" and "Confirm your e-mail" in message["Subject"]
    confirm = client.get(link_in(message, "register/confirm"))
    assert confirm.status_code == 200 and b'id="confirm-ok"' in confirm.data
    assert customer_by_email(app, "new@example.com").email_confirmed_at is not None
    again = client.get(link_in(message, "register/confirm"))
    assert again.status_code == 200 and b"confirmed already" in again.data
    bad = client.get("/register/confirm/not-a-token")
    assert bad.status_code == 400 and b'id="confirm-failed"' in bad.data
    with app.app_context():
        from portal.extensions import db

        actions = set(db.session.execute(sa.select(AuditRecord.action).where(
            AuditRecord.object_id == str(customer.id))).scalars())
    assert {"customer.created", "customer.registered", "customer.email_confirmed"} <= actions


def test_duplicate_email_is_refused_clearly(app, client, outbox):
    """The same address in another case is refused with a clear message; one customer only."""
    assert register(client, email="dup@example.com").status_code == 302
    response = register(app.test_client(), email="DUP@example.com ")
    assert response.status_code == 409
    assert b"An account with this e-mail already exists." in response.data
    with app.app_context():
        from portal.extensions import db

        assert db.session.execute(sa.select(sa.func.count()).select_from(Customer)).scalar_one() == 1


def test_invalid_registration_shows_field_errors(app, client, outbox):
    """A short password and a bad address are refused with field messages; nothing is created."""
    response = register(client, email="not-an-address", password="short")
    assert response.status_code == 422
    assert b'id="error-email"' in response.data and b'id="error-password"' in response.data
    mismatch = register(client, email="ok@example.com", password2="different-one")
    assert mismatch.status_code == 422 and b"The passwords do not match." in mismatch.data
    assert customer_by_email(app, "ok@example.com") is None
    assert run_jobs(app) == 0


def test_rolled_back_registration_sends_nothing(app, session, outbox):
    """The confirmation mail is queued on the session: a rollback forgets it."""
    device = accounts.Device(user_agent=UA, ip="198.51.100.7")
    accounts.register(session, app.appbuilder.sm, email="gone@example.com", name="", password=PASSWORD, locale="ru",
                      country="KZ", referral_code=None, device=device, config=app.config, base_url="http://localhost")
    session.rollback()
    assert run_jobs(app) == 0 and mails(outbox) == []
    assert session.execute(sa.select(Customer).where(Customer.email == "gone@example.com")).first() is None


def test_unconfirmed_customer_logs_in_but_cannot_withdraw(app, client, outbox):
    """Unconfirmed: the cabinet works, a withdrawal is refused until the address is confirmed."""
    register(client, email="wait@example.com")
    login(client, "wait@example.com", PASSWORD)
    assert client.get("/cabinet/").status_code == 200
    page = client.get("/cabinet/referrals/")
    assert page.status_code == 200 and b'id="confirm-pending"' in page.data
    from portal.extensions import db

    with app.app_context():
        customer = db.session.execute(sa.select(Customer).where(Customer.email == "wait@example.com")).scalar_one()
        with pytest.raises(accounts.EmailNotConfirmed):
            payouts.request_withdrawal(db.session, customer, details_id=1, amount_usd=__import__("decimal").Decimal("1.00"),
                                       request_key="k1", provider=None, config=app.config, actor=Actor.system("test"))
        db.session.rollback()
    # a new link on request
    run_jobs(app)
    assert client.post("/register/confirm/resend").status_code == 302
    assert run_jobs(app) == 1 and len(mails(outbox)) == 2


def test_staff_created_customers_need_no_confirmation(app, session):
    """Customers created by staff or the demo (no registration fingerprint) are vouched for."""
    customer = customers.create_customer(session, app.appbuilder.sm, email="staff-made@example.com", name="S",
                                         password=PASSWORD, actor=Actor.system("test"))
    assert not customer.awaiting_email_confirmation
    accounts.ensure_can_withdraw(customer)


# --- password reset ------------------------------------------------------------------------------------------

def test_password_reset_is_single_use_and_does_not_enumerate(app, client, outbox):
    """Unknown and known addresses get the same answer; the link sets a password once."""
    register(client, email="forgetful@example.com")
    run_jobs(app)
    unknown = app.test_client().post("/password/forgot", data={"email": "nobody@example.com"})
    known = app.test_client().post("/password/forgot", data={"email": "Forgetful@example.com"})
    assert unknown.status_code == known.status_code == 200
    assert b'id="reset-sent"' in unknown.data and unknown.data == known.data
    assert run_jobs(app) == 1  # only the known address gets a mail
    message = mails(outbox)[-1]
    assert message["To"] == "forgetful@example.com"
    path = link_in(message, "password/reset")
    assert client.get(path).status_code == 200
    done = client.post(path, data={"password": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302 and "/login" in done.headers["Location"]
    reused = client.post(path, data={"password": "yet-another-1", "password2": "yet-another-1"})
    assert reused.status_code == 400 and b'id="reset-failed"' in reused.data
    fresh = app.test_client()
    response = fresh.post("/login/", data={"username": "forgetful@example.com", "password": NEW_PASSWORD})
    assert response.status_code == 302 and "/login" not in response.headers["Location"]
    assert customer_by_email(app, "forgetful@example.com").email_confirmed_at is not None


def test_login_page_links_to_registration_and_reset(client):
    """FAB's login form, extended: links to register, forgot password and the languages."""
    page = client.get("/login/")
    assert page.status_code == 200
    for marker in (b'id="link-register"', b'id="link-forgot"', b'id="lang-en"', b'name="username"'):
        assert marker in page.data
    assert client.get("/lang/en").status_code == 302  # anonymous visitors may switch the language


# --- blocking --------------------------------------------------------------------------------------------------

def test_support_blocks_and_unblocks_with_reason(app, client, make_user, session):
    """Support blocks with a reason (audited): new clicks refused, balance untouched; then unblocks."""
    customer = customers.create_customer(session, app.appbuilder.sm, email="bad@example.com", name="B",
                                         password=PASSWORD, actor=Actor.system("test"))
    session.commit()
    cid = customer.id
    make_user("support1", "Support")
    login(client, "support1")
    action = client.post("/customerview/action_post", data={"action": "block", "rowid": cid})  # the show page's action
    assert action.status_code == 302 and action.headers["Location"].endswith(f"/support/customers/{cid}/block")
    assert client.get(f"/support/customers/{cid}/block").status_code == 200
    empty = client.post(f"/support/customers/{cid}/block", data={"reason": "  "})
    assert empty.status_code == 422
    done = client.post(f"/support/customers/{cid}/block", data={"reason": "chargeback fraud"})
    assert done.status_code == 302
    session.expire_all()
    blocked = session.get(Customer, cid)
    assert blocked.is_blocked and blocked.block_reason == "chargeback fraud"
    with pytest.raises(clicks.CustomerBlocked):
        clicks.create_click(session, blocked, "https://aliexpress.ru/item/1005001234567890.html", "web",
                            config=app.config)
    again = client.post(f"/support/customers/{cid}/block", data={"reason": "twice"})
    assert again.status_code == 409
    assert client.post(f"/support/customers/{cid}/unblock", data={"unblock-reason": "resolved"}).status_code == 302
    session.expire_all()
    assert not session.get(Customer, cid).is_blocked
    records = session.execute(sa.select(AuditRecord).where(AuditRecord.object_id == str(cid),
                                                           AuditRecord.action.like("customer.%blocked"))
                              .order_by(AuditRecord.id)).scalars().all()
    assert [(r.action, r.reason, r.actor) for r in records] == [
        ("customer.blocked", "chargeback fraud", "user:support1"), ("customer.unblocked", "resolved", "user:support1")]


def test_block_service_refuses_without_reason(session, customers):
    """The service itself wants a reason and refuses a second block."""
    with pytest.raises(accounts.Invalid):
        accounts.block(session, 1, "", Actor.system("test"))
    accounts.block(session, 1, "spam", Actor.system("test"))
    with pytest.raises(accounts.AlreadyBlocked):
        accounts.block(session, 1, "spam", Actor.system("test"))
    with pytest.raises(accounts.NotBlocked):
        accounts.unblock(session, 2, "why not", Actor.system("test"))


# --- roles ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role, referrals_page, reviews_page, block_page", [
    ("Customer", 200, "denied", "denied"),
    ("Support", "denied", 200, 200),
    ("Finance", "denied", "denied", "denied"),
    ("Developer", "denied", "denied", "denied"),
    ("Admin", 403, 200, 200),  # Admin has every permission but is not a customer
])
def test_role_matrix(app, client, make_user, session, role, referrals_page, reviews_page, block_page):
    """Who may open the referral page, the review list and the block form."""
    customer = customers.create_customer(session, app.appbuilder.sm, email="someone@example.com", name="S",
                                         password=PASSWORD, actor=Actor.system("test"))
    session.commit()
    if role == "Customer":
        login(client, "someone@example.com", PASSWORD)
    else:
        make_user("u-" + role.lower(), role)
        login(client, "u-" + role.lower())
    for path, expected in (("/cabinet/referrals/", referrals_page), ("/support/referrals/", reviews_page),
                           (f"/support/customers/{customer.id}/block", block_page)):
        status = client.get(path).status_code
        if expected == "denied":
            assert status in (302, 403), (path, status)
        else:
            assert status == expected, (path, status)


# --- throttling ---------------------------------------------------------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def limited_app(app, pg_url, testbank):
    from portal.app import create_app

    prefix = f"test-acc-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    limited = create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": pg_url, "JOBS_MODE": "collect",
                          "PAYOUT_PROVIDER_SETTINGS": provider_settings(testbank),
                          "RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": REDIS_URL,
                          "RATELIMIT_KEY_PREFIX": prefix, "REGISTER_RATE_LIMIT": "2 per hour",
                          "ACCOUNT_MAIL_RATE_LIMIT": "2 per hour", "ACCOUNT_LOGIN_RATE_LIMIT": "3 per hour",
                          "LOGIN_RATE_LIMIT": "100 per minute"})
    yield limited
    conn = redis.Redis.from_url(REDIS_URL)
    for key in conn.scan_iter(match=f"*{prefix}*", count=1000):
        conn.delete(key)


def test_registration_and_reset_are_throttled(limited_app, clean_db):
    """Registrations per IP and reset mails per address are limited (429 with Retry-After)."""
    one = limited_app.test_client()
    one.environ_base["REMOTE_ADDR"] = "203.0.113.50"
    assert register(one, email="t1@example.com").status_code == 302
    assert register(one, email="t2@example.com").status_code == 302
    third = register(one, email="t3@example.com")
    assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 1
    # per address, from changing IPs
    for n, ip in enumerate(("203.0.113.61", "203.0.113.62", "203.0.113.63")):
        c = limited_app.test_client()
        c.environ_base["REMOTE_ADDR"] = ip
        status = c.post("/password/forgot", data={"email": "t1@example.com"}).status_code
        assert status == (200 if n < 2 else 429)


def test_login_is_throttled_per_account(limited_app, make_user, clean_db):
    """Guessing one account's password from many IPs hits the per-account limit."""
    make_user("target", "Support")
    statuses = []
    for n in range(4):
        c = limited_app.test_client()
        c.environ_base["REMOTE_ADDR"] = f"198.51.100.{10 + n}"
        statuses.append(c.post("/login/", data={"username": "target", "password": "guess"}).status_code)
    assert statuses == [302, 302, 302, 429]
    other = limited_app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.99"
    assert other.post("/login/", data={"username": "someone-else", "password": "guess"}).status_code == 302


def test_per_account_login_limit_holds_for_extra_fields_and_the_jwt_login(limited_app, make_user, clean_db):
    """Review finding: an extra ``email`` form field moved each guess to a fresh bucket, and the JWT
    login had no per-account limit.  Both now count against the one account FAB authenticates."""
    make_user("target2", "Support")
    statuses = []
    for n in range(2):  # the form, each guess with a random decoy field
        c = limited_app.test_client()
        c.environ_base["REMOTE_ADDR"] = f"198.51.100.{120 + n}"
        statuses.append(c.post("/login/", data={"username": "target2", "password": "guess",
                                                 "email": f"decoy{n}@example.com"}).status_code)
    for n in range(2):  # then the JWT login, from other addresses
        c = limited_app.test_client()
        c.environ_base["REMOTE_ADDR"] = f"198.51.100.{140 + n}"
        statuses.append(c.post("/api/v1/security/login", json={"username": "target2", "password": "guess",
                                                                "provider": "db"}).status_code)
    assert statuses == [302, 302, 401, 429]
