"""Referral links, first-touch attribution, self-referral reviews and the referral reward (PostgreSQL)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask_babel import force_locale

from portal.models import AuditRecord, Customer, Order, Posting
from portal.models.referrals import ReferralReview
from portal.providers import provider
from portal.services import accounts, clicks, ledger, orders, payouts, referrals, timeline
from portal.services.audit import Actor
from tests.conftest import login

D = Decimal
PASSWORD = "pw-" + "x" * 8
UA = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"
LINK = "https://aliexpress.ru/item/1005001234567890.html"
T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)
ACTOR = Actor.system("test")


def make_customer(app, session, email, *, device=None, code=None) -> Customer:
    device = device or accounts.Device(user_agent=f"UA of {email}", accept_language="ru", ip=f"10.0.0.{len(email)}")
    customer = accounts.register(session, app.appbuilder.sm, email=email, name="", password=PASSWORD, locale="ru",
                                 country=None, referral_code=code, device=device, config=app.config,
                                 base_url="http://localhost")
    session.commit()
    app.extensions.pop("cashback_collected_jobs", None)
    return customer


@pytest.fixture
def reward_on(app):
    app.config["REFERRAL_REWARD_PERCENT"] = D("10")
    yield
    app.config["REFERRAL_REWARD_PERCENT"] = D("0")


# --- links and attribution ---------------------------------------------------------------------------------

def test_referral_link_first_touch(app, client, session):
    """/r/<code> remembers the first code only; the registration is attributed to it (audited)."""
    first = make_customer(app, session, "first@example.com")
    second = make_customer(app, session, "second@example.com")
    assert client.get(f"/r/{first.referral_code.upper()}").status_code == 302
    client.get(f"/register/?ref={second.referral_code}")
    page = client.get("/register/")
    assert b'id="referral-notice"' in page.data
    response = client.post("/register/", data={"email": "friend@example.com", "password": PASSWORD,
                                               "password2": PASSWORD, "locale": "en", "name": "", "country": "de"},
                           headers={"User-Agent": "Friend's browser", "Accept-Language": "de-DE"},
                           environ_base={"REMOTE_ADDR": "192.0.2.200"})
    assert response.status_code == 302
    session.expire_all()
    friend = session.execute(sa.select(Customer).where(Customer.email == "friend@example.com")).scalar_one()
    assert friend.referred_by_id == first.id and friend.referral_flag is None and friend.country == "DE"
    assert session.execute(sa.select(AuditRecord).where(AuditRecord.action == "referral.attributed",
                                                        AuditRecord.object_id == str(friend.id))).first()
    # the timeline shows both sides
    tl = timeline.timeline(session, friend.id, show_pii=False)
    with force_locale("en"):
        assert any(str(e.title) == "Registered through a referral link" and e.details["referrer"].startswith(
            f"#{first.id} ") for e in tl.entries)
        tl = timeline.timeline(session, first.id, show_pii=False)
        assert any(str(e.title) == "Referred a new customer" and "friend@example.com" in e.details["referred"]
                   for e in tl.entries)


def test_unknown_code_is_ignored(app, session):
    """A code nobody has changes nothing; registration still works."""
    customer = make_customer(app, session, "lonely@example.com", code="zzzzzzzzzz")
    assert customer.referred_by_id is None


@pytest.mark.parametrize("email", ["Re.Ferrer+promo@googlemail.com", "referrer+x@gmail.com"])
def test_identity_email(email):
    """Gmail dots and +tags are one mailbox; other domains keep dots."""
    assert referrals.identity_email(email) == "referrer@gmail.com"
    assert referrals.identity_email("a.b+c@example.com") == "a.b@example.com"
    assert referrals.identity_email("ivan.petrov@ya.ru") == referrals.identity_email("ivan-petrov@yandex.ru")


def test_self_referral_same_email_and_device_is_flagged(app, session):
    """Same mailbox and same device: attribution kept, flagged, a review with the evidence."""
    device = accounts.Device(user_agent=UA, accept_language="ru-RU", client_fingerprint="fp-1", ip="192.0.2.1")
    referrer = make_customer(app, session, "ivan.petrov@gmail.com", device=device)
    other = accounts.Device(user_agent=UA, accept_language="ru-RU", client_fingerprint="fp-1", ip="192.0.2.99")
    twin = make_customer(app, session, "ivanpetrov+cb@gmail.com", device=other, code=referrer.referral_code)
    assert twin.referred_by_id == referrer.id
    assert set(twin.referral_flag.split(",")) == {"same_email", "same_device"}
    review = session.execute(sa.select(ReferralReview).where(ReferralReview.customer_id == twin.id)).scalar_one()
    assert review.state == "open" and review.stage == "registration" and review.referrer_id == referrer.id
    assert set(review.reasons) == {"same_email", "same_device"} and review.evidence["email"] == "ivanpetrov@gmail.com"


def test_same_ip_as_referrers_click_is_flagged(app, session):
    """The registration IP seen on the referrer's click visits is evidence too."""
    referrer = make_customer(app, session, "clicker@example.com")
    click = clicks.create_click(session, referrer, LINK, "web", config=app.config).click
    clicks.record_visit(session, click.sub_id, user_agent="x", ip="203.0.113.77", channel="web",
                        secret=app.config["SECRET_KEY"])
    session.commit()
    device = accounts.Device(user_agent="other", ip="203.0.113.77")
    friend = make_customer(app, session, "friend2@example.com", device=device, code=referrer.referral_code)
    assert friend.referral_flag == "same_ip"
    review = session.execute(sa.select(ReferralReview).where(ReferralReview.customer_id == friend.id)).scalar_one()
    assert review.evidence["ip_seen"] == "referrer_click"


def test_same_payout_account_is_flagged_and_support_resolves(app, client, session, make_user):
    """New payout details equal to the referrer's: a review; Support dismisses it on the page."""
    referrer = make_customer(app, session, "wallet-owner@example.com")
    friend = make_customer(app, session, "friend3@example.com", code=referrer.referral_code)
    assert friend.referral_flag is None
    test_provider = provider("test")
    payouts.save_details(session, referrer, test_provider, "TEST-12345674", actor=ACTOR)
    session.commit()
    payouts.save_details(session, friend, test_provider, "TEST-12345674", actor=ACTOR)
    session.commit()
    session.expire_all()
    friend = session.get(Customer, friend.id)
    assert friend.referral_flag == "same_payout_account"
    review = session.execute(sa.select(ReferralReview).where(ReferralReview.customer_id == friend.id)).scalar_one()
    assert review.stage == "payout_details" and review.evidence["provider"] == "test"
    make_user("support2", "Support")
    login(client, "support2")
    page = client.get("/support/referrals/")
    assert page.status_code == 200 and f'id="review-{review.id}"'.encode() in page.data
    done = client.post(f"/support/referrals/{review.id}/resolve", data={"decision": "dismissed", "note": "siblings"})
    assert done.status_code == 302
    session.expire_all()
    assert session.get(ReferralReview, review.id).state == "dismissed"
    assert session.get(Customer, friend.id).referral_flag is None
    closed = client.post(f"/support/referrals/{review.id}/resolve", data={"decision": "confirmed"})
    assert closed.status_code == 409


# --- the reward -----------------------------------------------------------------------------------------------

def _order(session, app, customer, status, n, *, refunded=None, order="R-1"):
    body = {"event_id": f"{order}:{status}:{n}", "order_id": order, "sub_id": _order.sub_ids[customer.id],
            "status": status, "order_amount": "100.00", "currency": "USD", "commission": "8.00",
            "event_time": (T0 + dt.timedelta(hours=n)).isoformat()}
    if refunded is not None:
        body["refunded_amount"] = refunded
    outcome = orders.receive_event(session, orders.parse_event(body, "epn"),
                                   default_rate=app.config["DEFAULT_CASHBACK_RATE"])
    session.commit()
    return outcome


_order.sub_ids = {}


def _setup_pair(app, session, referrer_email="boss@example.com", friend_email="pal@example.com", **kw):
    referrer = make_customer(app, session, referrer_email)
    friend = make_customer(app, session, friend_email, code=referrer.referral_code, **kw)
    click = clicks.create_click(session, friend, LINK, "web", config=app.config, now=T0).click
    session.commit()
    _order.sub_ids[friend.id] = click.sub_id
    return referrer, friend


def referral_postings(session):
    return session.execute(sa.select(Posting.kind).where(Posting.kind.like("referral.%"))
                           .order_by(Posting.id)).scalars().all()


def test_reward_when_available_and_clawback(app, session, reward_on):
    """10 % of the friend's available cashback goes to the referrer from promo_expense; a refund takes it back."""
    referrer, friend = _setup_pair(app, session)
    _order(session, app, friend, "paid", 1)
    assert referral_postings(session) == []  # pending cashback earns nothing yet
    _order(session, app, friend, "confirmed", 2)
    session.expire_all()
    assert ledger.customer_balances(session, friend.id)["available"] == D("7.00")
    assert ledger.customer_balances(session, referrer.id)["available"] == D("0.70")
    assert referral_postings(session) == ["referral.reward"]
    # a replayed event posts nothing again
    outcome = _order(session, app, friend, "confirmed", 2)
    assert outcome.duplicate and referral_postings(session) == ["referral.reward"]
    assert referrals.stats(session, referrer).earned_usd == D("0.70")
    assert referrals.stats(session, referrer).referred == 1
    # half refunded: half the reward goes back; cancelled: all of it
    _order(session, app, friend, "refunded", 3, refunded="50.00")
    session.expire_all()
    assert ledger.customer_balances(session, referrer.id)["available"] == D("0.35")
    _order(session, app, friend, "cancelled", 4)
    session.expire_all()
    assert ledger.customer_balances(session, referrer.id)["available"] == D("0")
    assert referral_postings(session) == ["referral.reward", "referral.clawback", "referral.clawback"]
    assert ledger.verify(session).ok


def test_clawback_beyond_balance_goes_to_receivable(app, session, reward_on):
    """The referrer spent the reward: the clawback books the rest to their receivable."""
    referrer, friend = _setup_pair(app, session, "spender@example.com", "pal2@example.com")
    _order(session, app, friend, "confirmed", 1, order="R-2")
    # the referrer's available money leaves (as a withdrawal hold would)
    ledger.post(session, kind="test.move", reference="test:spend", actor=ACTOR,
                legs=ledger.transfer(ledger.customer_account(referrer.id, "available"),
                                     ledger.customer_account(referrer.id, "on_hold"), D("0.70")))
    session.commit()
    _order(session, app, friend, "cancelled", 2, order="R-2")
    session.expire_all()
    bal = ledger.customer_balances(session, referrer.id)
    assert bal["available"] == D("0") and bal["receivable"] == D("0.70")
    assert ledger.verify(session).ok


def test_flagged_referral_earns_no_reward(app, session, reward_on):
    """A self-referral (same device) is flagged and its cashback rewards nobody."""
    device = accounts.Device(user_agent=UA, client_fingerprint="same", ip="192.0.2.5")
    referrer = make_customer(app, session, "self@example.com", device=device)
    friend = make_customer(app, session, "self2@example.com", device=accounts.Device(user_agent=UA,
                           client_fingerprint="same", ip="192.0.2.6"), code=referrer.referral_code)
    assert friend.referral_flag == "same_device"
    click = clicks.create_click(session, friend, LINK, "web", config=app.config, now=T0).click
    session.commit()
    _order.sub_ids[friend.id] = click.sub_id
    _order(session, app, friend, "confirmed", 1, order="R-3")
    assert referral_postings(session) == []
    session.expire_all()
    assert ledger.customer_balances(session, referrer.id)["available"] == D("0")


def test_reward_off_by_default(app, session):
    """With REFERRAL_REWARD_PERCENT 0 (the default) nothing is posted."""
    assert app.config["REFERRAL_REWARD_PERCENT"] == D("0")
    referrer, friend = _setup_pair(app, session, "b2@example.com", "p2@example.com")
    _order(session, app, friend, "confirmed", 1, order="R-4")
    assert referral_postings(session) == []


def test_cabinet_referral_page(app, client, session, reward_on):
    """The customer sees their link, the count of referred friends and the rewards."""
    referrer, friend = _setup_pair(app, session, "cab@example.com", "cabfriend@example.com")
    _order(session, app, friend, "confirmed", 1, order="R-5")
    login(client, "cab@example.com", PASSWORD)
    page = client.get("/cabinet/referrals/", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    html = page.data.decode()
    assert f"/r/{referrer.referral_code}" in html and 'id="referral-count"' in html
    assert "$0.70" in html


@pytest.mark.slow
def test_seed_demo_has_a_referral_and_a_flagged_self_referral(app, clean_db, reward_on):
    """seed-demo: customer 3 referred by 1 (rewarded), 19 by 4 from one device (open review); idempotent."""
    from portal.extensions import db

    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    with app.app_context():
        session = db.session
        by_email = {c.email: c for c in session.execute(sa.select(Customer)).scalars()}
        one, three = by_email["customer1@demo.cashback.local"], by_email["customer3@demo.cashback.local"]
        four, nineteen = by_email["customer4@demo.cashback.local"], by_email["customer19@demo.cashback.local"]
        assert three.referred_by_id == one.id and three.referral_flag is None
        assert nineteen.referred_by_id == four.id and nineteen.referral_flag == "same_device"
        assert not four.awaiting_email_confirmation and not nineteen.awaiting_email_confirmation
        reviews = session.execute(sa.select(ReferralReview)).scalars().all()
        assert [(r.customer_id, r.state) for r in reviews] == [(nineteen.id, "open")]
        assert all(c.referral_code for c in by_email.values())
        earned = referrals.stats(session, one).earned_usd
        three_available_cashback = session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(Order.booked_cashback), 0))
            .where(Order.customer_id == three.id, Order.booked_in == "available")).scalar_one()
        assert earned > 0 and earned == (D(three_available_cashback) * D("0.10")).quantize(D("0.000001"))
        assert ledger.verify(session).ok


def test_a_paid_reward_follows_its_cashback_at_the_share_it_was_paid(app, session, reward_on):
    """Review findings: a flag raised later (or the reward switched off) kept the whole remaining
    cashback as reward on a partial refund, and a changed percent re-priced old orders (a refund
    *paid* more).  A paid reward now shrinks with its cashback at its own share, whatever the
    setting or the flag says later."""
    referrer, friend = _setup_pair(app, session, "boss3@example.com", "pal3@example.com")
    _order(session, app, friend, "confirmed", 1, order="R-5")
    session.expire_all()
    assert ledger.customer_balances(session, referrer.id)["available"] == D("0.70")
    app.config["REFERRAL_REWARD_PERCENT"] = D("50")  # a later change of the setting…
    friend = session.get(type(friend), friend.id)
    friend.referral_flag = "same_email"  # …and a flag raised later
    session.commit()
    _order(session, app, friend, "refunded", 2, order="R-5", refunded="95.00")  # 5 % of the order stays
    session.expire_all()
    assert ledger.customer_balances(session, friend.id)["available"] == D("0.35")
    assert ledger.customer_balances(session, referrer.id)["available"] == D("0.035")  # 10 % of 0.35
    assert referral_postings(session) == ["referral.reward", "referral.clawback"]
    assert ledger.verify(session).ok


def test_no_reward_after_the_fact_for_cashback_already_available(app, session, reward_on):
    """An order whose cashback became available while the reward was off earns nothing later,
    even when the percent is switched on before its next event."""
    app.config["REFERRAL_REWARD_PERCENT"] = D("0")
    referrer, friend = _setup_pair(app, session, "boss4@example.com", "pal4@example.com")
    _order(session, app, friend, "confirmed", 1, order="R-6")
    app.config["REFERRAL_REWARD_PERCENT"] = D("10")
    _order(session, app, friend, "refunded", 2, order="R-6", refunded="10.00")
    session.expire_all()
    assert referral_postings(session) == []
    assert ledger.customer_balances(session, referrer.id)["available"] == D("0")


@pytest.mark.parametrize("had,previous,available,percent,flagged,want", [
    ("0", "0", "7", "10", False, "0.7"),        # becomes available: granted
    ("0", "7", "6", "10", False, "0"),          # already available before: never after the fact
    ("0", "0", "7", "10", True, "0"),           # flagged: nothing
    ("0.7", "7", "3.5", "50", False, "0.35"),   # half refunded: half the reward, whatever the percent
    ("0.7", "7", "7.7", "10", True, "0.7"),     # flagged later: never grows
    ("0.7", "7", "0", "10", False, "0"),        # cancelled: all of it
])
def test_wanted_reward_rules(had, previous, available, percent, flagged, want):
    assert referrals.wanted_reward(had=D(had), previous_available=D(previous), available=D(available),
                                   percent=D(percent), flagged=flagged) == D(want)
