"""The registration journeys in Chromium (Russian UI) on the live portal, with REAL mail.

* A visitor follows a customer's referral link ``/r/<code>``, reaches the registration form
  (directly and again through the login page's "Create an account" link: the first-touch code
  is kept), registers, sees "check your mailbox"; the confirmation mail is a real SMTP message
  caught by a local aiosmtpd server (``mail.OutboxHandler``) the live portal sends to; its link
  confirms the address in the browser.  The referrer's cabinet counts the friend.
* Self-referral: the referrer's own Gmail address in another spelling (dots, ``+tag``) through
  the referrer's link is accepted but flagged (``same_email``), with a review Support sees.
* Password reset: "forgot password" from the login page, the mail, the new password, a login
  with it; the used link then says it is not valid.
* Partner login: with the local CPA partner directory running, a partner logs in on the login
  form; the cabinet and the withdraw page show the partner notice and link instead of figures.

Mail leaves after the commit through the jobs mechanism (``JOBS_MODE=thread`` in the live
portal): the tests poll the outbox directory in a bounded loop.
"""
from __future__ import annotations

import datetime as dt
import re
import time
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask_appbuilder.security.sqla.models import User
from playwright.sync_api import expect
from werkzeug.security import check_password_hash

from portal.models import AuditRecord, Customer, Payout, Posting
from portal.models.referrals import ReferralReview
from portal.services import mail, referrals
from portal.services.accounts import BadToken
from tests.browser.conftest import PASSWORD, POLL_SECONDS, login, translated

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a-new-password-1"
LINK = "https://aliexpress.ru/item/1005001234567890.html"
#: order 100.00 USD × the default rate 7 % = the friend's cashback; the referrer gets REWARD_PERCENT of it
CASHBACK = Decimal("7.00")
REWARD_PERCENT = Decimal("10")
REWARD = Decimal("0.70")
DIRECTORY_TOKEN = "browser-directory-token"


# --- the local mail server and the partner directory ----------------------------------------------------

class Outbox:
    """The messages the live portal sent to the local SMTP server (``.eml`` files in ``directory``)."""

    def __init__(self, directory: Path):
        self.directory = directory

    def messages(self, to: str | None = None) -> list:
        return [m for m in mail.read_outbox(self.directory) if to is None or m["To"] == to]

    def wait_for(self, to: str, count: int = 1):
        """Poll (bounded) until ``to`` has ``count`` messages; the last one."""
        deadline = time.monotonic() + POLL_SECONDS
        found = self.messages(to)
        while len(found) < count and time.monotonic() < deadline:
            time.sleep(0.1)
            found = self.messages(to)
        assert len(found) >= count, f"{len(found)} message(s) to {to} after {POLL_SECONDS}s: {self.messages()}"
        return found[count - 1]


@pytest.fixture
def outbox(live_app, smtp_server, tmp_path):
    """The session's SMTP server writing to this test's directory; the live portal's MAIL_* point
    at it for this test."""
    saved = {k: live_app.config.get(k) for k in smtp_server.settings}
    live_app.config.update(smtp_server.settings)
    yield Outbox(smtp_server.use(tmp_path / "outbox"))
    live_app.config.update(saved)


@pytest.fixture(scope="module")
def directory():
    """The local partner directory (its seeded demo partners) on a free port."""
    from portal.partner_directory import LocalPartnerDirectory

    server = LocalPartnerDirectory(token=DIRECTORY_TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def partner_login(live_app, directory):
    """Partner login on in the live portal for this test (off again afterwards)."""
    keys = ("PARTNER_DIRECTORY_URL", "PARTNER_DIRECTORY_TOKEN")
    saved = {k: live_app.config.get(k) for k in keys}
    live_app.config.update(PARTNER_DIRECTORY_URL=directory.url, PARTNER_DIRECTORY_TOKEN=DIRECTORY_TOKEN)
    yield directory
    live_app.config.update(saved)


@pytest.fixture
def reward_on(live_app):
    """The referral reward switched on (REWARD_PERCENT %) in the live portal for this test."""
    saved = live_app.config.get("REFERRAL_REWARD_PERCENT")
    live_app.config["REFERRAL_REWARD_PERCENT"] = REWARD_PERCENT
    yield REWARD_PERCENT
    live_app.config["REFERRAL_REWARD_PERCENT"] = saved


# --- helpers -------------------------------------------------------------------------------------------------

def link_in(message, base_url: str, path: str) -> str:
    """The path of the portal link ``/<path>/<token>`` in a mail's text (it names the live portal)."""
    text = mail.message_text(message)
    found = re.search(re.escape(base_url) + r"(/" + path + r"/[^\s<\"]+)", text)
    assert found, text
    return found.group(1)


def mail_subject(portal_db, msgid: str, locale: str = "ru") -> str:
    """An account mail's subject as the portal writes it in ``locale`` (``%(app)s``: APP_NAME)."""
    from flask_babel import force_locale, gettext

    with portal_db.app.test_request_context("/"), force_locale(locale):
        return gettext(msgid, app=portal_db.live_config("APP_NAME"))


def referral_code(portal_db, customer_id: int) -> str:
    """The customer's referral code (made on first use, as the cabinet's referral page does)."""
    from portal.extensions import db

    with portal_db.app.app_context():
        customer = db.session.get(Customer, customer_id)
        code = referrals.ensure_code(db.session, customer)
        db.session.commit()
        return code


def customer_row(portal_db, email: str):
    return portal_db.rows(sa.select(Customer.id, Customer.email_confirmed_at, Customer.referred_by_id,
                                    Customer.referral_flag, Customer.locale, Customer.registration_fingerprint)
                          .where(Customer.email == email))


def shown(amount: Decimal) -> re.Pattern:
    """The figure as a page may show it: ``0.70`` or ``0,70`` (the locale's separator)."""
    whole, cents = f"{amount:.2f}".split(".")
    return re.compile(rf"(?<![\d.,]){whole}[.,]{cents}(?!\d)")


def earn_cashback(portal_db, customer_id: int, order: str) -> None:
    """The customer buys (a click an hour ago) and the network reports the order paid, then confirmed."""
    sub_id = portal_db.click(customer_id, LINK, dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    for n, status in enumerate(("paid", "confirmed"), 1):
        answer = portal_db.postback(sub_id, status, order=order, n=n)
        assert answer.status_code == 200, answer.text
    assert portal_db.balances(customer_id)["available"] == CASHBACK


def reward_postings(portal_db) -> int:
    return portal_db.scalar(sa.select(sa.func.count()).select_from(Posting)
                            .where(Posting.kind == referrals.KIND_REWARD))


def register(page, email: str, name: str = "Борис") -> None:
    """Fill and send the registration form the page shows."""
    form = page.locator("#register-form")
    expect(form).to_be_visible()
    form.locator("#email").fill(email)
    form.locator("#name").fill(name)
    form.locator("#password").fill(PASSWORD)
    form.locator("#password2").fill(PASSWORD)
    page.locator("#register-submit").click()
    page.wait_for_url(re.compile(r"/register/sent$"))


# --- 1. registration through a referral link, confirmation ----------------------------------------------

def test_referred_visitor_registers_and_confirms(page, new_context, portal_db, outbox, live_server, reward_on,
                                                 screenshot):
    referrer_id = portal_db.customer("referrer@test.local", name="Ирина")
    code = referral_code(portal_db, referrer_id)
    email = "friend@test.local"

    # --- the referral link lands on the registration form, which says who invited
    page.goto(f"/r/{code}")
    page.wait_for_url(re.compile(r"/register/$"))
    expect(page.locator("#referral-notice")).to_be_visible()
    expect(page.get_by_role("heading", level=2)).to_have_text(translated(portal_db.app, "Create your cashback account"))
    # the login page's "Create an account" leads back to it; the remembered code is kept
    page.goto("/login/")
    page.locator("#link-register").click()
    page.wait_for_url(re.compile(r"/register/$"))
    expect(page.locator("#referral-notice")).to_be_visible()
    expect(page.locator("#locale")).to_have_value("ru")  # the browser's language is the default
    screenshot(page, "1-register-form")

    # --- register: "check your mailbox"; nothing confirmed yet
    register(page, email)
    expect(page.locator("#register-sent")).to_be_visible()
    expect(page.get_by_text(translated(portal_db.app, "Your account is created. We sent a confirmation link to "
                                                      "%(email)s.", email=email))).to_be_visible()
    screenshot(page, "2-check-mailbox")
    [(customer_id, confirmed_at, referred_by, flag, locale, fingerprint)] = customer_row(portal_db, email)
    assert confirmed_at is None and referred_by == referrer_id and flag is None and locale == "ru"
    assert fingerprint and len(fingerprint) == 64  # a keyed hash, not the raw device data

    # --- the real confirmation mail, in Russian (the customer's language), with the live portal's link
    message = outbox.wait_for(email)
    assert message["Subject"] == mail_subject(portal_db, "Confirm your e-mail address for %(app)s")
    confirm_path = link_in(message, live_server, "register/confirm")
    page.goto(confirm_path)
    expect(page.locator("#confirm-ok")).to_have_text(translated(
        portal_db.app, "Thank you: your e-mail address %(email)s is confirmed.", email=email))
    screenshot(page, "3-confirmed")

    # --- the database: confirmed, attributed to the referrer, no self-referral review, audited
    [(_, confirmed_at, referred_by, flag, _, _)] = customer_row(portal_db, email)
    assert confirmed_at is not None and referred_by == referrer_id and flag is None
    assert portal_db.scalar(sa.select(sa.func.count()).select_from(ReferralReview)) == 0
    actions = {a for (a,) in portal_db.rows(sa.select(AuditRecord.action)
                                            .where(AuditRecord.object_id == str(customer_id)))}
    assert {"customer.registered", "referral.attributed", "customer.email_confirmed"} <= actions
    assert "referral.flagged" not in actions
    assert len(outbox.messages(email)) == 1

    # --- the referrer's cabinet (a second browser) counts the friend; no reward yet
    referrer_page = new_context().new_page()
    login(referrer_page, "referrer@test.local")
    referrer_page.goto("/cabinet/referrals/")
    expect(referrer_page.locator("#referral-link")).to_have_text(f"{live_server}/r/{code}")
    expect(referrer_page.locator("#referral-count td")).to_have_text("1")
    expect(referrer_page.locator("#referral-earned td")).to_have_text(shown(Decimal("0")))
    expect(referrer_page.locator("#confirm-pending")).to_have_count(0)  # staff-created: vouched for
    screenshot(referrer_page, "4-referrer-cabinet")
    assert reward_postings(portal_db) == 0

    # --- the friend earns cashback: the referrer is rewarded (REWARD_PERCENT % of it, available)
    earn_cashback(portal_db, customer_id, "AE-2001")
    referrer_page.reload()
    expect(referrer_page.locator("#referral-earned td")).to_have_text(shown(REWARD))
    screenshot(referrer_page, "5-referrer-rewarded")
    assert reward_postings(portal_db) == 1
    assert portal_db.balances(referrer_id)["available"] == REWARD

    # --- the link works once: a second visit says "confirmed already"
    page.goto(confirm_path)
    expect(page.locator("#confirm-ok")).to_have_text(translated(
        portal_db.app, "Your e-mail address %(email)s was confirmed already.", email=email))


# --- 2. self-referral: the referrer's own mailbox in another spelling -------------------------------------

def test_self_referral_through_own_link_is_flagged(page, new_context, portal_db, outbox, reward_on, screenshot):
    referrer_id = portal_db.customer("ivan.petrov@gmail.com", name="Иван")
    code = referral_code(portal_db, referrer_id)
    twin = "IvanPetrov+cashback@gmail.com"
    assert referrals.identity_email(twin) == referrals.identity_email("ivan.petrov@gmail.com")

    page.goto(f"/r/{code}")
    page.wait_for_url(re.compile(r"/register/$"))
    expect(page.locator("#referral-notice")).to_be_visible()
    register(page, twin, name="Иван")
    # the service keeps the attribution and flags it (no refusal, nothing said to the visitor)
    expect(page.locator("#register-sent")).to_be_visible()
    screenshot(page, "1-registered")
    [(customer_id, _, referred_by, flag, _, _)] = customer_row(portal_db, twin.lower())
    assert referred_by == referrer_id and flag == "same_email"
    reviews = portal_db.rows(sa.select(ReferralReview.id, ReferralReview.referrer_id, ReferralReview.stage,
                                       ReferralReview.state, ReferralReview.reasons, ReferralReview.evidence)
                             .where(ReferralReview.customer_id == customer_id))
    assert len(reviews) == 1
    review_id, review_referrer, stage, state, reasons, evidence = reviews[0]
    assert (review_referrer, stage, state, reasons) == (referrer_id, "registration", "open", ["same_email"])
    assert evidence["email"] == "ivanpetrov@gmail.com" and evidence["referrer_id"] == referrer_id
    assert portal_db.scalar(sa.select(sa.func.count()).select_from(AuditRecord).where(
        AuditRecord.action == "referral.flagged", AuditRecord.object_id == str(customer_id))) == 1
    outbox.wait_for(twin.lower())  # the confirmation mail still goes out

    # --- Support sees the review with its evidence
    portal_db.staff("support1", "Support")
    support = new_context().new_page()
    login(support, "support1")
    support.goto("/support/referrals/")
    row = support.locator(f"#review-{review_id}")
    expect(row).to_be_visible()
    expect(row).to_contain_text(twin.lower())
    expect(row).to_contain_text("ivan.petrov@gmail.com")
    expect(row).to_contain_text(translated(portal_db.app, "Same e-mail address after normalization"))
    screenshot(support, "2-support-review")

    # --- the twin earns cashback: no reward while the flag stands
    earn_cashback(portal_db, customer_id, "AE-2002")
    assert reward_postings(portal_db) == 0
    assert portal_db.balances(referrer_id)["available"] == Decimal("0")


# --- 3. password reset -------------------------------------------------------------------------------------

def test_forgotten_password_is_reset_by_mail(page, new_context, portal_db, outbox, live_server, screenshot):
    email = "forgetful@test.local"
    customer_id = portal_db.customer(email, name="Ольга")

    page.goto("/login/")
    page.locator("#link-forgot").click()
    page.wait_for_url(re.compile(r"/password/forgot$"))
    page.locator("#forgot-form #email").fill(email.upper())
    page.locator("#forgot-submit").click()
    expect(page.locator("#reset-sent")).to_be_visible()
    screenshot(page, "1-reset-sent")

    message = outbox.wait_for(email)
    assert message["Subject"] == mail_subject(portal_db, "A new password for %(app)s")
    reset_path = link_in(message, live_server, "password/reset")
    page.goto(reset_path)
    form = page.locator("#reset-form")
    expect(form).to_be_visible()
    form.locator("#password").fill(NEW_PASSWORD)
    form.locator("#password2").fill(NEW_PASSWORD)
    screenshot(page, "2-reset-form")
    page.locator("#reset-submit").click()
    page.wait_for_url(re.compile(r"/login/"))
    expect(page.get_by_text(translated(portal_db.app, "Your new password is set. Log in with it."))).to_be_visible()

    # --- the new password logs in; the old one does not
    fresh = new_context().new_page()
    fresh.goto("/login/")
    fresh.fill("#username", email)
    fresh.fill("#password", PASSWORD)
    fresh.locator("input[type=submit]").click()
    fresh.wait_for_load_state()
    assert "/login/" in fresh.url
    login(fresh, email, NEW_PASSWORD)
    fresh.goto("/cabinet/")
    expect(fresh.locator("#balance-available")).to_be_visible()
    screenshot(fresh, "3-logged-in")

    # --- the used link says so
    page.goto(reset_path)
    expect(page.locator("#reset-failed")).to_have_text(translated(portal_db.app, str(BadToken.default_message)))
    expect(page.locator("#reset-form")).to_have_count(0)
    screenshot(page, "4-link-used")

    # --- the database: the new hash, the reset audited, one mail only
    password_hash = portal_db.scalar(sa.select(User.password).join(Customer, Customer.user_id == User.id)
                                     .where(Customer.id == customer_id))
    assert check_password_hash(password_hash, NEW_PASSWORD) and not check_password_hash(password_hash, PASSWORD)
    assert portal_db.scalar(sa.select(sa.func.count()).select_from(AuditRecord).where(
        AuditRecord.action == "customer.password_reset", AuditRecord.object_id == str(customer_id))) == 1
    assert len(outbox.messages(email)) == 1


# --- 4. partner login ------------------------------------------------------------------------------------------

def test_partner_logs_in_and_withdraws_in_the_partner_account(page, portal_db, partner_login, screenshot):
    directory = partner_login
    cabinet_url = f"{directory.url}/cabinet/P-1001"
    notice = translated(portal_db.app, "You logged in with your CPA partner account: your statistics and "
                                       "withdrawals are in your partner account.")

    login(page, "partner-demo", "partner-demo")
    page.goto("/cabinet/")
    expect(page.locator("#partner-linked")).to_contain_text(notice)
    expect(page.locator("#partner-cabinet-link")).to_have_attribute("href", cabinet_url)
    expect(page.locator("#balance-available")).to_have_count(0)
    screenshot(page, "1-partner-cabinet")

    page.goto("/cabinet/withdraw/")
    expect(page.locator("#partner-linked")).to_contain_text(notice)
    expect(page.locator("#partner-cabinet-link")).to_have_attribute("href", cabinet_url)
    expect(page.locator("#withdraw-form")).to_have_count(0)
    screenshot(page, "2-partner-withdraw")

    # the link opens the partner's own cabinet (the local directory's page)
    page.locator("#partner-cabinet-link").click()
    page.wait_for_url(cabinet_url)

    rows = portal_db.rows(sa.select(Customer.id, Customer.partner_linked, Customer.partner_id,
                                    Customer.partner_cabinet_url)
                          .where(Customer.email == "partner@demo.cashback.local"))
    assert [r[1:] for r in rows] == [(True, "P-1001", cabinet_url)]
    assert portal_db.scalar(sa.select(sa.func.count()).select_from(Payout)) == 0
    assert portal_db.scalar(sa.select(sa.func.count()).select_from(AuditRecord).where(
        AuditRecord.action == "customer.partner_created", AuditRecord.object_id == str(rows[0][0]))) == 1


def test_registering_through_ones_own_partner_link_is_refused(page, portal_db, partner_login, screenshot):
    """The FAQ's rule: not through the referral link of one's own partner account (any spelling of its address)."""
    from portal.services.partners import SelfReferral

    page.goto("/r/cpapartner")  # partner-demo's referral code in the directory
    page.wait_for_url(re.compile(r"/register/$"))
    form = page.locator("#register-form")
    form.locator("#email").fill("Partner+cashback@demo.cashback.local")
    form.locator("#password").fill(PASSWORD)
    form.locator("#password2").fill(PASSWORD)
    page.locator("#register-submit").click()
    expect(page.locator("#register-error")).to_have_text(translated(portal_db.app, str(SelfReferral.default_message)))
    assert page.url.endswith("/register/")
    screenshot(page, "1-refused")
    assert portal_db.scalar(sa.select(sa.func.count()).select_from(Customer)) == 0
    assert portal_db.scalar(sa.select(sa.func.count()).select_from(ReferralReview)) == 0

    # someone else through the same link registers normally (no local referrer: no attribution)
    form.locator("#email").fill("neighbour@test.local")
    form.locator("#password").fill(PASSWORD)
    form.locator("#password2").fill(PASSWORD)
    page.locator("#register-submit").click()
    page.wait_for_url(re.compile(r"/register/sent$"))
    assert [r[2:4] for r in customer_row(portal_db, "neighbour@test.local")] == [(None, None)]
