"""One withdrawal per provider, end to end: API-level request, a real `cashback worker` process,
the provider's own sandbox speaking its protocol; the sandbox shows exactly one transfer."""
from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from decimal import Decimal

import pytest
import redis
import sqlalchemy as sa

from payment_providers.phones.sandbox import PhoneSandbox
from payment_providers.qiwi.sandbox import QiwiSandbox
from payment_providers.webmoney.sandbox import WebMoneySandbox
from payment_providers.yoomoney.sandbox import YooMoneySandbox
from portal import providers
from portal.extensions import db
from portal.models import Customer, PayoutDetails
from portal.services import fx, ledger, payouts
from portal.services.audit import Actor
from portal.services.ledger import customer_account, system_account, transfer
from tests.conftest import build_app, provider_settings
from tests.integration.test_payout_workers import REDIS_URL, Workers, wait_for

SYSTEM = Actor.system("test")
PREFIX = f"e2e{os.getpid()}-{uuid.uuid4().hex[:6]}-"
#: provider code -> (customer id, account as a customer types it, what the sandbox records)
CASES = {
    "yoomoney": (11, "4100 1160 7515 6746", "4100116075156746"),
    "mts": (12, "8 (916) 123-45-67", "79161234567"),
    "megafon": (13, "+7 926 765-43-21", "79267654321"),
    "beeline": (14, "9035556677", "79035556677"),
    "qiwi": (15, "+7 (912) 345-67-89", "+79123456789"),
    "webmoney": (16, "P123456789012", "P123456789012"),
}


@pytest.fixture(scope="module")
def sandboxes():
    boxes = {"yoomoney": YooMoneySandbox(settle_after=0.0).start(), "phones": PhoneSandbox(settle_after=0.0).start(),
             "qiwi": QiwiSandbox(settle_after=0.0).start(), "webmoney": WebMoneySandbox().start()}
    yield boxes
    for box in boxes.values():
        box.stop()


@pytest.fixture(scope="module")
def settings(sandboxes, testbank):
    result = provider_settings(testbank)
    result["yoomoney"] = {"base_url": f"{sandboxes['yoomoney'].url}/v3", "read_timeout": 5}
    for code in ("mts", "megafon", "beeline"):
        result[code] = {"base_url": sandboxes["phones"].url, "read_timeout": 5}
    result["qiwi"] = {"base_url": sandboxes["qiwi"].url, "read_timeout": 5}
    result["webmoney"] = {"base_url": sandboxes["webmoney"].url, "read_timeout": 5}
    return result


@pytest.fixture(scope="module")
def e2e_app(pg_url, settings):
    return build_app(pg_url, REDIS_URL=REDIS_URL, JOBS_MODE="rq", QUEUE_PREFIX=PREFIX,
                     PAYOUT_PROVIDER_SETTINGS=settings, PAYOUT_CHECK_SECONDS=[1], PAYOUT_RETRY_SECONDS=[1])


@pytest.fixture
def worker(pg_url, testbank, settings, customers):
    conn = redis.Redis.from_url(REDIS_URL)
    w = Workers(pg_url, testbank)
    w.env.update({"CASHBACK_QUEUE_PREFIX": PREFIX, "CASHBACK_PROVIDER_SETTINGS": json.dumps(settings)})
    yield w
    w.stop()
    for key in conn.scan_iter(match=f"*{PREFIX}*", count=1000):
        conn.delete(key)


def test_each_provider_pays_one_withdrawal_once(e2e_app, worker, sandboxes):
    with e2e_app.app_context():
        session = db.session
        fx.correct_rate(session, dt.date.today(), Decimal("80"), SYSTEM, "test rate")
        # QIWI starts switched off (its licence was revoked); an Admin enables it for this test
        payouts.set_provider_enabled(session, "qiwi", True, actor=SYSTEM, reason="testing the plugin")
        session.commit()
        ids = {}
        for code, (cid, typed, _) in CASES.items():
            ledger.post(session, kind="test.fund", reference=f"fund:{cid}", actor=SYSTEM,
                        legs=transfer(system_account("network_receivable"), customer_account(cid, "available"),
                                      Decimal("5.00")))
            customer = session.get(Customer, cid)
            details = payouts.save_details(session, customer, providers.provider(code), typed, actor=SYSTEM)
            details.created_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)  # not new: no review
            session.commit()
            result = payouts.request_withdrawal(session, customer, details_id=details.id, amount_usd=Decimal("1.00"),
                                                request_key=f"e2e-{code}", provider=providers.provider(code),
                                                config=e2e_app.config, actor=SYSTEM)
            assert result.payout.state == "approved", (code, result.payout.review_reasons)
            session.commit()
            ids[code] = result.payout.id
        session.remove()
    worker.start(1)
    states = wait_for(e2e_app, list(ids.values()))
    assert set(states.values()) == {"succeeded"}, states
    yoo = sandboxes["yoomoney"].ledger.transfers()
    assert [(t.amount, t.account) for t in yoo] == [(Decimal("80.00"), CASES["yoomoney"][2])]
    phone_transfers = sandboxes["phones"].ledger.transfers()
    assert sorted((t.amount, t.account) for t in phone_transfers) == sorted(
        (Decimal("80.00"), CASES[c][2]) for c in ("mts", "megafon", "beeline"))
    for code in ("qiwi", "webmoney"):
        paid = sandboxes[code].ledger.transfers()
        assert [(t.amount, t.account) for t in paid] == [(Decimal("80.00"), CASES[code][2])], (code, paid)
    with e2e_app.app_context():
        assert ledger.verify(db.session).ok
        float_total = sum(ledger.balance(db.session, system_account("provider_float", "USD", code)) for code in CASES)
        assert float_total <= -Decimal(len(CASES))  # a dollar each left our floats (fees on top where charged)
        db.session.remove()
