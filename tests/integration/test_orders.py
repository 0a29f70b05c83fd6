"""The cashback path on PostgreSQL: clicks, events in any order, refunds, clawback, orphans, promos."""
from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from portal.errors import Invalid
from portal.models import AuditRecord, Customer, NetworkEvent, Order, PostbackRejection, Posting, Promo
from portal.services import clicks, fx, ledger, orders
from portal.services.audit import Actor
from portal.services.ledger import customer_account, system_account, transfer
from portal.services.postback_signing import sign
from portal.services.postbacks import PostbackRejected, process_postback

D = Decimal
T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)
LINK = "https://aliexpress.ru/item/1005001234567890.html?spm=a2g0o"
SECRET = "dev-postback-secret"


@pytest.fixture
def cfg(app):
    return dict(app.config)


def click_for(session, cfg, customer_id=1, url=LINK, channel="web", at=T0):
    result = clicks.create_click(session, session.get(Customer, customer_id), url, channel, config=cfg, now=at)
    session.commit()
    return result.click


def event(sub_id, status, *, n=1, order="A-1", amount="100.00", commission="8.00", refunded=None,
          at=None, currency="USD", **flags):
    body = {"event_id": f"{order}:{status}:{n}", "order_id": order, "sub_id": sub_id, "status": status,
            "order_amount": amount, "currency": currency, "commission": commission,
            "event_time": (at or T0 + dt.timedelta(hours=n)).isoformat()}
    if refunded is not None:
        body["refunded_amount"] = refunded
    body.update(flags)
    return body


def receive(session, cfg, body):
    outcome = orders.receive_event(session, orders.parse_event(body, "epn"), default_rate=cfg["DEFAULT_CASHBACK_RATE"])
    session.commit()
    return outcome


def balances(session, cid=1):
    session.expire_all()
    return ledger.customer_balances(session, cid)


# --- clicks ----------------------------------------------------------------------------------

def test_click_freezes_rate_and_has_unguessable_sub_id(session, customers, cfg):
    """Each click gets a fresh 128-bit sub-id and the default 7 % frozen on it."""
    a, b = click_for(session, cfg), click_for(session, cfg, at=T0 + dt.timedelta(minutes=1))
    assert a.sub_id != b.sub_id and len(a.sub_id) >= 22
    assert a.rate == D("7.00") and a.canonical_url == "https://aliexpress.ru/item/1005001234567890.html"  # LINK is on .ru
    assert "sub=" + a.sub_id in clicks.affiliate_url(a, cfg["NETWORK_URL_TEMPLATE"])


def test_repeated_clicks_are_counted_and_warned(session, customers, cfg):
    """Clicks on one product within the window are counted; from the threshold on, a warning."""
    results = [clicks.create_click(session, session.get(Customer, 1), LINK, "web", config=cfg,
                                   now=T0 + dt.timedelta(minutes=i)) for i in range(4)]
    assert [r.repeat_count for r in results] == [1, 2, 3, 4]
    assert [r.spam_warning for r in results] == [False, False, True, True]
    later = clicks.create_click(session, session.get(Customer, 1), LINK, "web", config=cfg,
                                now=T0 + dt.timedelta(hours=5))
    assert later.repeat_count == 1


def test_bad_link_and_blocked_customer_are_refused(session, customers, cfg):
    with pytest.raises(Invalid) as info:
        clicks.create_click(session, session.get(Customer, 1), "https://aliexpress.com.evil.ru/item/1.html",
                            "web", config=cfg)
    assert info.value.code == "not_aliexpress"
    customer = session.get(Customer, 2)
    customer.is_blocked = True
    with pytest.raises(clicks.CustomerBlocked):
        clicks.create_click(session, customer, LINK, "web", config=cfg)


def test_promo_rate_and_first_order_only(session, customers, cfg):
    """An active promo raises the frozen rate; a first-order-only promo skips customers with orders."""
    session.add(Promo(name="Black Friday", rate=D("12.00"), starts_at=T0 - dt.timedelta(days=1),
                      ends_at=T0 + dt.timedelta(days=1), first_order_only=True))
    session.commit()
    first = click_for(session, cfg)
    assert first.rate == D("12.00") and first.promo_id is not None
    receive(session, cfg, event(first.sub_id, "paid"))
    assert click_for(session, cfg, at=T0 + dt.timedelta(hours=2)).rate == D("7.00")


# --- money flow -------------------------------------------------------------------------------

def test_paid_then_confirmed_moves_pending_to_available(session, customers, cfg):
    """Paid shows as pending at once; confirmed makes it available. 100 × 7 % = 7."""
    click = click_for(session, cfg)
    assert receive(session, cfg, event(click.sub_id, "paid")).outcome == "applied"
    assert balances(session)["pending"] == D("7.00")
    receive(session, cfg, event(click.sub_id, "confirmed", n=2))
    b = balances(session)
    assert (b["pending"], b["available"]) == (0, D("7.00"))
    assert ledger.verify(session).ok


def test_fraction_of_a_cent(session, customers, cfg):
    """$0.50 at 7 % is $0.035 exactly."""
    click = click_for(session, cfg)
    receive(session, cfg, event(click.sub_id, "paid", amount="0.50", commission="0.04"))
    assert balances(session)["pending"] == D("0.035")


def test_replay_is_a_noop_and_other_data_conflicts(session, customers, cfg):
    click = click_for(session, cfg)
    body = event(click.sub_id, "paid")
    receive(session, cfg, body)
    again = receive(session, cfg, body)
    assert again.duplicate
    assert session.execute(sa.select(sa.func.count()).select_from(Posting)).scalar_one() == 1
    with pytest.raises(orders.EventConflict):
        receive(session, cfg, {**body, "order_amount": "101.00"})


def test_commission_caps_cashback_unless_promo_pays(session, customers, cfg):
    """A 12 % promo on an order with a 5 % commission pays 5 %, or 12 % with the difference from promo_expense."""
    for pays, cid in ((False, 1), (True, 2)):
        promo = Promo(name=f"p{cid}", rate=D("12.00"), starts_at=T0 - dt.timedelta(days=1),
                      ends_at=T0 + dt.timedelta(days=1), pays_difference=pays, cap_usd=D("50"))
        session.add(promo)
        session.commit()
        click = click_for(session, cfg, customer_id=cid)
        receive(session, cfg, event(click.sub_id, "paid", order=f"O-{cid}", commission="5.00"))
        promo.is_active = False
        session.commit()
    assert balances(session, 1)["pending"] == D("5.00")
    assert balances(session, 2)["pending"] == D("12.00")
    assert ledger.balance(session, system_account("promo_expense")) == D("7.00")
    assert ledger.verify(session).ok


def test_partial_refund_is_pro_rata(session, customers, cfg):
    click = click_for(session, cfg)
    receive(session, cfg, event(click.sub_id, "confirmed"))
    receive(session, cfg, event(click.sub_id, "refunded", n=2, refunded="40.00"))
    assert balances(session)["available"] == D("4.20")  # (100 - 40) × 7 %
    receive(session, cfg, event(click.sub_id, "refunded", n=3, refunded="25.00"))  # older, smaller: ignored
    assert balances(session)["available"] == D("4.20")


def test_clawback_after_withdrawal_goes_to_receivable_and_nets(session, customers, cfg):
    """Cancelled after the money was withdrawn: the customer owes it; the next cashback pays it back."""
    click = click_for(session, cfg)
    receive(session, cfg, event(click.sub_id, "confirmed"))
    ledger.post(session, kind="withdrawal.hold", reference="w1", actor=Actor.system("test"),
                legs=transfer(customer_account(1, "available"), customer_account(1, "on_hold"), D("5.00")))
    session.commit()
    receive(session, cfg, event(click.sub_id, "cancelled", n=2))
    b = balances(session)
    assert (b["available"], b["receivable"], b["on_hold"]) == (0, D("5.00"), D("5.00"))
    second = click_for(session, cfg, url="https://aliexpress.com/item/1005009999999999.html")
    receive(session, cfg, event(second.sub_id, "confirmed", order="B-1", amount="200.00", commission="20.00"))
    b = balances(session)
    assert (b["available"], b["receivable"]) == (D("9.00"), 0)  # 14.00 - 5.00 netted
    assert ledger.verify(session).ok


def test_rub_order_converts_at_the_days_rate(session, customers, cfg):
    fx.correct_rate(session, T0.date(), D("80.00"), Actor.system("test"), "test rate")
    session.commit()
    click = click_for(session, cfg)
    receive(session, cfg, event(click.sub_id, "paid", amount="8000.00", commission="640.00", currency="RUB"))
    assert balances(session)["pending"] == D("7.00")
    with pytest.raises(fx.NoRate):
        receive(session, cfg, event(click.sub_id, "paid", order="R-0", amount="1.00", currency="RUB",
                                    at=T0 - dt.timedelta(days=30)))


# --- orphans ------------------------------------------------------------------------------------

def test_orphan_is_kept_then_attached_with_audit(session, customers, cfg):
    """An unknown sub-id keeps the order for Support; attaching (proposed by Support, confirmed by
    someone else) books its cashback and audits."""
    outcome = receive(session, cfg, event("no-such-sub", "confirmed"))
    assert outcome.outcome == "orphan"
    assert balances(session)["available"] == 0
    order = session.get(Order, outcome.order_id)
    orders.propose_attach(session, order.id, 3, actor=Actor.system("support"), reason="screenshot of the order")
    session.commit()
    assert balances(session, 3)["available"] == 0  # proposed: nothing booked yet
    with pytest.raises(orders.AttachFourEyes):
        orders.decide_attach(session, order.id, approve=True, actor=Actor.system("support"))
    session.rollback()
    orders.decide_attach(session, order.id, approve=True, actor=Actor.system("finance"))
    session.commit()
    assert balances(session, 3)["available"] == D("7.00")
    assert session.execute(sa.select(AuditRecord).where(AuditRecord.action == "order.orphan.attached")).scalar_one()
    with pytest.raises(Exception):
        orders.propose_attach(session, order.id, 4, actor=Actor.system("support"), reason="again")


# --- every order of events ------------------------------------------------------------------------

STEPS = [("paid", None), ("confirmed", None), ("refunded", "30.00"), ("cancelled", None)]


def expected(steps):
    statuses = [s for s, _ in steps if s != "refunded"]
    final = max(statuses or ["paid"], key=orders.RANK.get)
    refunded = max((D(r) for s, r in steps if r), default=D(0))
    cashback = (D("100.00") - refunded) * D("0.07")
    return {"paid": ("pending", cashback), "confirmed": ("available", cashback), "cancelled": (None, 0)}[final]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.permutations(STEPS).flatmap(lambda p: st.integers(1, len(p)).map(lambda k: p[:k])),
       st.booleans())
def test_any_event_order_ends_in_the_same_place(app, customers, steps, replay):
    """Whatever subset and order of paid/confirmed/refunded/cancelled arrives, the ledger ends right."""
    from portal.extensions import db

    with app.app_context():
        session = db.session
        cid = 5
        click = clicks.create_click(session, session.get(Customer, cid), LINK, "web", config=dict(app.config)).click
        session.commit()
        order_no = f"P-{click.sub_id}"
        for n, (status, refunded) in enumerate(steps):
            body = event(click.sub_id, status, n=n, order=order_no, refunded=refunded)
            receive(session, app.config, body)
            if replay:
                assert receive(session, app.config, body).duplicate
        where, amount = expected(steps)
        b = balances(session, cid)
        order = session.execute(sa.select(Order).where(Order.network_order_id == order_no)).scalar_one()
        assert order.booked_cashback == (amount if where else 0)
        # the order's booking is what the ledger holds for it
        assert order.booked_in == (where or "none")
        assert ledger.verify(session).ok
        # clean this example's money out so the next example starts from zero
        for kind in ("pending", "available", "receivable"):
            value = b[kind]
            if value:
                legs = transfer(customer_account(cid, kind), system_account("adjustments"), value) \
                    if kind != "receivable" else transfer(system_account("adjustments"), customer_account(cid, kind), value)
                ledger.post(session, kind="test.reset", reference=f"reset:{order_no}:{kind}", legs=legs,
                            actor=Actor.system("test"))
        session.commit()
        session.remove()


# --- the postback command -----------------------------------------------------------------------

def signed(body: dict, *, secret=SECRET, ts=None, network="epn"):
    raw = json.dumps(body).encode()
    headers = sign(secret.encode(), raw, ts if ts is not None else 1_800_000_000)
    headers["X-Cashback-Network"] = network
    return raw, headers


def post(session, cfg, raw, headers, now=1_800_000_000):
    return process_postback(session, body=raw, headers=headers, remote_ip="10.0.0.1", config=cfg, now=now)


@pytest.mark.parametrize("mutate,status,code", [
    (lambda raw, h: (raw.replace(b"100.00", b"900.00"), h), 401, "bad_signature"),
    (lambda raw, h: (raw, {**h, "X-Cashback-Network": "nope"}), 401, "unknown_network"),
    (lambda raw, h: (raw, {k: v for k, v in h.items() if k != "X-Cashback-Signature"}), 401, "missing_signature"),
    (lambda raw, h: signed({"x": 1}), 400, "invalid_event"),
    (lambda raw, h: (b"not json", {**h, **sign(SECRET.encode(), b"not json", 1_800_000_000)}), 400, "malformed_body"),
    (lambda raw, h: (b" " * 20000, h), 413, "body_too_large"),
])
def test_bad_postbacks_change_nothing_and_are_logged(session, customers, cfg, mutate, status, code):
    click = click_for(session, cfg)
    raw, headers = mutate(*signed(event(click.sub_id, "paid")))
    with pytest.raises(PostbackRejected) as info:
        post(session, cfg, raw, headers)
    assert (info.value.status, info.value.code) == (status, code)
    assert session.execute(sa.select(sa.func.count()).select_from(NetworkEvent)).scalar_one() == 0
    assert session.execute(sa.select(sa.func.count()).select_from(Posting)).scalar_one() == 0
    rejection = session.execute(sa.select(PostbackRejection)).scalar_one()
    assert rejection.reason == code and rejection.http_status == status


def test_stale_timestamp_is_refused(session, customers, cfg):
    click = click_for(session, cfg)
    raw, headers = signed(event(click.sub_id, "paid"), ts=1_800_000_000 - 301)
    with pytest.raises(PostbackRejected) as info:
        post(session, cfg, raw, headers)
    assert info.value.code == "stale_timestamp"


def test_signed_postback_is_applied_once(session, customers, cfg):
    click = click_for(session, cfg)
    raw, headers = signed(event(click.sub_id, "paid"))
    assert post(session, cfg, raw, headers).outcome == "applied"
    assert post(session, cfg, raw, headers).duplicate
    assert balances(session)["pending"] == D("7.00")
    raw2, headers2 = signed({**event(click.sub_id, "paid"), "order_amount": "5.00"})
    with pytest.raises(PostbackRejected) as info:
        post(session, cfg, raw2, headers2)
    assert info.value.status == 409
