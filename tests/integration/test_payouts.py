"""The payout engine against PostgreSQL and the test provider's real HTTP sandbox.

Jobs are driven by hand here (``JOBS_MODE=collect``); ``test_payout_workers.py`` runs
real ``rq`` worker processes.  After every test the sandbox's own ledger and ours agree.
"""
from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa

from portal import providers
from portal.errors import Invalid, NotFound
from portal.extensions import db
from portal.models import AuditRecord, Customer, Payout, PayoutAttempt, PayoutDetails
from portal.services import fx, ledger, payouts
from portal.services.audit import Actor
from portal.services.ledger import customer_account, system_account, transfer
from portal.tasks import payouts as jobs

D = Decimal
WALLET = "TEST-12345674"
SYSTEM = Actor.system("test")


@pytest.fixture
def world(app, session, customers, testbank, make_user):
    """Customer 1 with $5.00 available, old payout details, a rate of 80 RUB/USD; sandbox clean."""
    testbank.reset()
    app.extensions.pop("cashback_collected_jobs", None)
    fx.correct_rate(session, dt.date.today(), D("80"), SYSTEM, "test rate")
    ledger.post(session, kind="test.fund", reference="fund:1", actor=SYSTEM,
                legs=transfer(system_account("network_receivable"), customer_account(1, "available"), D("5.00")))
    details = PayoutDetails(customer_id=1, provider_code="test", account=WALLET,
                            created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10))
    session.add(details)
    session.commit()
    yield details
    assert_ledgers_agree(session, testbank)


def assert_ledgers_agree(session, testbank):
    """Every transfer the sandbox paid is exactly one succeeded payout of ours, and vice versa."""
    session.rollback()
    session.expire_all()
    paid = [t for t in testbank.ledger.transfers() if t.status in ("succeeded", "processing")]
    keys = [t.handle for t in paid]
    assert len(keys) == len(set(keys))
    ours = session.execute(sa.select(PayoutAttempt).join(Payout).where(Payout.state == "succeeded")).scalars().all()
    succeeded_keys = {a.idempotency_key for a in ours if a.status.endswith("succeeded")}
    assert {t.handle for t in paid if t.status == "succeeded"} <= succeeded_keys | {
        a.idempotency_key for a in session.execute(sa.select(PayoutAttempt)).scalars() if a.status in (
            "pending", "accepted", "unknown", "submitting")}
    per_payout = {}
    for attempt in session.execute(sa.select(PayoutAttempt)).scalars():
        if attempt.idempotency_key in keys:
            per_payout[attempt.payout_id] = per_payout.get(attempt.payout_id, 0) + 1
    assert all(n == 1 for n in per_payout.values()), per_payout
    assert ledger.verify(session).ok


def withdraw(session, app, amount="1.00", key="k1", details_id=None, customer_id=1):
    customer = session.get(Customer, customer_id)
    details_id = details_id or session.execute(sa.select(PayoutDetails.id).where(
        PayoutDetails.customer_id == customer_id)).scalars().first()
    result = payouts.request_withdrawal(session, customer, details_id=details_id, amount_usd=D(amount),
                                        request_key=key, provider=providers.provider("test"),
                                        config=app.config, actor=SYSTEM)
    session.commit()
    return result


def balances(session, cid=1):
    session.expire_all()
    return ledger.customer_balances(session, cid)


def settle(session, payout_id):
    """Run the jobs a worker would: submit, then status checks until nothing is in flight."""
    jobs.submit_payout(payout_id)
    for _ in range(5):
        session.expire_all()
        payout = session.get(Payout, payout_id)
        current = payout.attempts[-1] if payout.attempts else None
        if current is None or current.status not in jobs.IN_FLIGHT:
            break
        jobs.check_attempt(current.id)
    session.expire_all()
    return session.get(Payout, payout_id)


def test_happy_path_pays_once_with_fee_as_our_expense(app, session, world, testbank):
    """$1.00 at 80 RUB: the sandbox pays 80.00 RUB once; on_hold → provider_float, fee → fees_expense."""
    result = withdraw(session, app)
    assert result.created and result.payout.state == "approved"
    assert balances(session)["on_hold"] == D("1.00") and balances(session)["available"] == D("4.00")
    payout = settle(session, result.payout.id)
    assert payout.state == "succeeded" and payout.payout_amount == D("80.00") and payout.fx_rate == D("80")
    transfers = testbank.ledger.transfers()
    assert [(t.amount, t.account) for t in transfers] == [(D("80.00"), WALLET)]
    b = balances(session)
    assert (b["available"], b["on_hold"]) == (D("4.00"), 0)  # the customer paid no fee
    assert ledger.balance(session, system_account("fees_expense")) == D("0.01")  # 0.80 RUB at 80
    assert session.execute(sa.select(sa.func.count()).select_from(AuditRecord).where(
        AuditRecord.action.like("payout.%"), AuditRecord.object_id == str(payout.id))).scalar_one() >= 3


def test_double_click_creates_one_withdrawal(app, session, world):
    """The same Idempotency-Key twice is one payout; with another amount it is refused."""
    first = withdraw(session, app, key="same")
    second = withdraw(session, app, key="same")
    assert first.created and not second.created and first.payout.id == second.payout.id
    assert balances(session)["on_hold"] == D("1.00")
    with pytest.raises(payouts.RequestKeyConflict):
        withdraw(session, app, amount="2.00", key="same")


@pytest.mark.parametrize("amount,error", [("0.19", payouts.BelowMinimum), ("5.01", ledger.InsufficientBalance),
                                          ("1.005", Invalid)])
def test_bad_withdrawals_move_nothing(app, session, world, amount, error):
    with pytest.raises(error):
        withdraw(session, app, amount=amount)
    session.rollback()
    assert balances(session)["available"] == D("5.00")
    assert session.execute(sa.select(sa.func.count()).select_from(Payout)).scalar_one() == 0


def test_invalid_account_is_explained(session, world):
    with pytest.raises(Invalid) as info:
        payouts.save_details(session, session.get(Customer, 1), providers.provider("test"), "TEST-12345675",
                             actor=SYSTEM)
    assert info.value.errors[0]["code"] == "check_digit"


def test_new_details_and_big_amounts_need_finance(app, session, world, make_user, monkeypatch):
    """New details send a payout to review; above the second threshold two Finance users must approve."""
    ledger.post(session, kind="test.fund", reference="fund:big", actor=SYSTEM,
                legs=transfer(system_account("network_receivable"), customer_account(1, "available"), D("300.00")))
    session.commit()
    fresh = payouts.save_details(session, session.get(Customer, 1), providers.provider("test"), "TEST-76543214",
                                 actor=SYSTEM)
    session.commit()
    small = withdraw(session, app, key="new", details_id=fresh.id).payout
    assert small.state == "in_review" and "new_payout_details" in small.review_reasons
    monkeypatch.setitem(app.config, "SECOND_APPROVAL_USD", D("100.00"))
    big = withdraw(session, app, amount="150.00", key="big").payout
    assert big.state == "in_review" and big.approvals_needed == 2
    f1, f2 = make_user("fin1", "Finance"), make_user("fin2", "Finance")
    payouts.decide(session, big.id, user_id=f1, actor=SYSTEM, approve=True, reason="known customer")
    session.commit()
    assert session.get(Payout, big.id).state == "in_review"
    with pytest.raises(payouts.MakerChecker):
        payouts.decide(session, big.id, user_id=f1, actor=SYSTEM, approve=True, reason="again")
    session.rollback()
    payouts.decide(session, big.id, user_id=f2, actor=SYSTEM, approve=True, reason="checked")
    session.commit()
    assert session.get(Payout, big.id).state == "approved"


def test_nobody_approves_their_own_request_or_wallet(app, session, world, make_user):
    staff = make_user("finself", "Finance")
    session.get(Customer, 1).user_id = staff
    session.commit()
    payout = withdraw(session, app, key="own").payout
    payout.state = "in_review"
    payout.approvals_needed = 1
    session.commit()
    with pytest.raises(payouts.MakerChecker):
        payouts.decide(session, payout.id, user_id=staff, actor=SYSTEM, approve=True, reason="mine")
    session.rollback()
    other = make_user("finother", "Finance")
    # the other approver also keeps this wallet on a customer account of their own
    session.add(Customer(id=99, email="fin@own.local", name="Fin", user_id=other))
    session.add(PayoutDetails(customer_id=99, provider_code="test", account=WALLET))
    session.commit()
    with pytest.raises(payouts.MakerChecker):
        payouts.decide(session, payout.id, user_id=other, actor=SYSTEM, approve=True, reason="wallet")
    session.rollback()
    payouts.decide(session, payout.id, user_id=other, actor=SYSTEM, approve=False, reason="suspicious")
    session.commit()
    assert session.get(Payout, payout.id).state == "rejected" and balances(session)["available"] == D("5.00")


def test_drop_after_commit_ends_unknown_then_resolves_once(app, session, world, testbank):
    """The sandbox pays, then drops the connection: unknown; the status check finds it paid. One transfer."""
    payout = withdraw(session, app).payout
    testbank.inject(drop=1)
    jobs.submit_payout(payout.id)
    session.expire_all()
    assert session.get(Payout, payout.id).state == "unknown"
    assert len(testbank.ledger.transfers()) == 1
    attempt = session.get(Payout, payout.id).attempts[-1]
    jobs.check_attempt(attempt.id)
    session.expire_all()
    assert session.get(Payout, payout.id).state == "succeeded"
    assert len(testbank.ledger.transfers()) == 1 and len(session.get(Payout, payout.id).attempts) == 1


def test_provider_down_then_back(app, session, world, testbank):
    """Down: retryable, back to approved with a later time; up again: a new key pays it, once."""
    payout = withdraw(session, app).payout
    testbank.inject(down=True)
    jobs.submit_payout(payout.id)
    session.expire_all()
    p = session.get(Payout, payout.id)
    assert p.state == "approved" and p.next_attempt_at is not None and p.attempts[-1].error_code == "provider_unavailable"
    testbank.reset_faults()
    p.next_attempt_at = None
    session.commit()
    assert settle(session, payout.id).state == "succeeded"
    assert len(testbank.ledger.transfers()) == 1
    keys = [a.idempotency_key for a in session.get(Payout, payout.id).attempts]
    assert len(keys) == 2 and len(set(keys)) == 2


def test_final_failure_returns_the_money(app, session, world, testbank):
    bad = PayoutDetails(customer_id=1, provider_code="test", account="TEST-99000010",
                        created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10))
    session.add(bad)
    session.commit()
    payout = withdraw(session, app, details_id=bad.id).payout
    assert settle(session, payout.id).state == "failed"
    b = balances(session)
    assert (b["available"], b["on_hold"]) == (D("5.00"), 0)


def test_circuit_breaker_pauses_on_auth_and_keeps_payouts_queued(app, session, world, testbank):
    auth = PayoutDetails(customer_id=1, provider_code="test", account="TEST-99000093",
                         created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10))
    session.add(auth)
    session.commit()
    payout = withdraw(session, app, details_id=auth.id).payout
    jobs.submit_payout(payout.id)
    session.expire_all()
    state = payouts.provider_state(session, "test")
    assert state.breaker == "open" and "auth" in state.pause_reason
    assert session.get(Payout, payout.id).state == "approved"
    other = withdraw(session, app, key="k2").payout
    assert payouts.start_attempt(session, other.id, provider=providers.provider("test")) is None
    session.rollback()
    payouts.resume_provider(session, "test", actor=SYSTEM, reason="credentials rotated")
    session.commit()
    assert settle(session, other.id).state == "succeeded"


def test_kill_switch_refuses_new_holds_queued_and_lets_customers_switch(app, session, world, testbank):
    queued = withdraw(session, app).payout
    payouts.set_provider_enabled(session, "test", False, actor=SYSTEM, reason="licence revoked")
    session.commit()
    with pytest.raises(payouts.ProviderDisabled):
        withdraw(session, app, key="k2")
    session.rollback()
    assert jobs.submit_payout(queued.id) == "skipped"
    payouts.cancel_by_customer(session, queued.id, session.get(Customer, 1), actor=SYSTEM)
    session.commit()
    assert balances(session)["available"] == D("5.00")
    payouts.set_provider_enabled(session, "test", True, actor=SYSTEM, reason="back")
    session.commit()
    held = withdraw(session, app, key="k3").payout
    assert jobs.janitor()["submits"] >= 1
    assert settle(session, held.id).state == "succeeded"


def test_reversal_after_success_returns_money_and_tells_finance(app, session, world, testbank):
    payout = settle(session, withdraw(session, app).payout.id)
    key = payout.attempts[-1].idempotency_key
    testbank.ledger.reverse(key)
    attempt = payout.attempts[-1]
    attempt.status = "pending"  # a notification made us look again
    session.commit()
    jobs.check_attempt(attempt.id)
    session.expire_all()
    p = session.get(Payout, payout.id)
    assert p.state == "reversed" and p.needs_attention
    assert balances(session)["available"] == D("5.00")


def test_fix_state_needs_a_reason_and_only_from_unknown(app, session, world, testbank):
    payout = withdraw(session, app).payout
    with pytest.raises(payouts.IllegalTransition):
        payouts.fix_state(session, payout.id, to="succeeded", actor=SYSTEM, reason="x")
    session.rollback()
    testbank.inject(drop=1)
    jobs.submit_payout(payout.id)
    with pytest.raises(Invalid):
        payouts.fix_state(session, payout.id, to="succeeded", actor=SYSTEM, reason=" ")
    session.rollback()
    payouts.fix_state(session, payout.id, to="succeeded", actor=SYSTEM, reason="provider statement line 42")
    session.commit()
    assert session.get(Payout, payout.id).state == "succeeded"


def test_concurrent_withdrawals_never_overspend(app, session, world):
    """Ten requests of $0.60 from $5.00 at once, each with its own key: exactly 8 get through."""
    barrier = threading.Barrier(10)
    outcomes = []

    def go(i):
        with app.app_context():
            barrier.wait()
            try:
                withdraw(db.session, app, amount="0.60", key=f"race-{i}")
                outcomes.append("ok")
            except ledger.InsufficientBalance:
                db.session.rollback()
                outcomes.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes).count("ok") == 8 and outcomes.count("refused") == 2
    b = balances(session)
    assert (b["available"], b["on_hold"]) == (D("0.20"), D("4.80"))


def test_reversed_payout_is_acknowledged_off_the_attention_list(app, session, world, testbank, client, make_user):
    """Finance acknowledges a reversal with a reason (audited); without a reason nothing changes."""
    from tests.conftest import login

    payout = settle(session, withdraw(session, app).payout.id)
    testbank.ledger.reverse(payout.attempts[-1].idempotency_key)
    attempt = payout.attempts[-1]
    attempt.status = "pending"
    session.commit()
    jobs.check_attempt(attempt.id)
    make_user("fin_ack", "Finance")
    login(client, "fin_ack")
    page = client.get("/payouts/attention/")
    assert page.status_code == 200 and b"ack-form" in page.data
    assert client.post(f"/payouts/attention/{payout.id}/acknowledge", data={"reason": " "}).status_code == 422
    session.expire_all()
    assert session.get(Payout, payout.id).needs_attention
    answer = client.post(f"/payouts/attention/{payout.id}/acknowledge", data={"reason": "customer informed"})
    assert answer.status_code == 302
    session.expire_all()
    assert not session.get(Payout, payout.id).needs_attention
    assert session.execute(sa.select(AuditRecord).where(AuditRecord.action == "payout.acknowledged")).scalar_one()


def test_a_provider_can_start_switched_off_with_its_reason(app, session, world, monkeypatch):
    """A plugin declaring default_enabled=False (QIWI) starts with the kill switch off and says why."""
    provider = providers.provider("test")
    monkeypatch.setattr(type(provider), "default_enabled", False)
    monkeypatch.setattr(type(provider), "disabled_reason", {"ru": "Лицензия отозвана", "en": "Licence revoked"})
    session.execute(sa.text("DELETE FROM provider_state"))
    session.commit()
    state = payouts.provider_state(session, "test")
    assert (state.enabled, state.disabled_reason) == (False, "Лицензия отозвана")
    with pytest.raises(payouts.ProviderDisabled):
        withdraw(session, app, key="off")


def test_janitor_polls_balances_and_flags_a_low_one(app, session, world, testbank, monkeypatch, client, make_user):
    """The janitor keeps provider balances fresh; under the provider's low_balance it alerts Finance."""
    from tests.conftest import login

    from types import MappingProxyType

    provider = providers.provider("test")
    monkeypatch.setattr(provider, "settings", MappingProxyType({**provider.settings, "low_balance": "1000000"}))
    counts = jobs.janitor()
    assert counts["balances"] >= 1
    session.expire_all()
    state = payouts.provider_state(session, "test")
    assert state.balance == testbank.ledger.balance and state.balance_checked_at is not None
    assert session.execute(sa.select(AuditRecord).where(AuditRecord.action == "provider.balance.low")).scalar_one()
    make_user("fin_bal", "Finance")
    login(client, "fin_bal")
    assert b"low-balance" in client.get("/payouts/providers/").data
    assert jobs.janitor()["balances"] == 0  # fresh enough: not asked again


def test_report_by_provider_and_day_with_csv(app, session, world, client, make_user):
    """Finance sees succeeded payouts per provider and day with our fees, and exports them; Support cannot."""
    from tests.conftest import login

    for key in ("r1", "r2"):
        settle(session, withdraw(session, app, key=key).payout.id)
    make_user("fin_rep", "Finance")
    login(client, "fin_rep")
    page = client.get("/payouts/report/")
    assert page.status_code == 200 and b"payout-report" in page.data
    csv_text = client.get("/payouts/report/export.csv").data.decode()
    header, row = csv_text.strip().splitlines()
    assert header.startswith("day,provider,payouts")
    assert row.split(",")[1:] == ["test", "2", "2.00", "RUB", "160.00", "1.60"]
    client.get("/logout/")
    make_user("sup_rep", "Support")
    login(client, "sup_rep")
    assert client.get("/payouts/report/").status_code == 403


def test_provider_callback_is_a_hint_that_triggers_a_status_check(app, session, world, testbank, client):
    """A verified callback queues a status check of that key; a forged one changes nothing."""
    payout = settle(session, withdraw(session, app).payout.id)
    attempt = payout.attempts[-1]
    testbank.ledger.reverse(attempt.idempotency_key)
    headers, body = testbank.build_callback(testbank.ledger.get(attempt.idempotency_key))
    app.extensions.pop("cashback_collected_jobs", None)
    forged = client.post("/api/v1/providers/test/callback", data=body + b" ", headers=dict(headers))
    assert forged.status_code == 400 and forged.get_json()["error"]["code"] == "unverified"
    assert not app.extensions.get("cashback_collected_jobs")
    answer = client.post("/api/v1/providers/test/callback", data=body, headers=dict(headers))
    assert answer.status_code == 200
    queued = app.extensions["cashback_collected_jobs"]
    assert [(j.func, j.args) for j in queued] == [(jobs.CHECK, (attempt.id, True))]
    session.expire_all()
    assert session.get(Payout, payout.id).state == "succeeded"  # the callback alone settles nothing
    jobs.check_attempt(*queued[0].args)  # what the worker does with it
    session.expire_all()
    assert session.get(Payout, payout.id).state == "reversed" and balances(session)["available"] == D("5.00")
    assert client.post("/api/v1/providers/nope/callback", data=b"{}").status_code == 404


def _paid_rows(session, payout_id):
    """What a success wrote: attempt, payout, audit record, posting legs (ids and times left out)."""
    session.expire_all()
    payout = session.get(Payout, payout_id)
    attempt = payout.attempts[-1]
    audit_rows = session.execute(sa.select(AuditRecord).where(
        AuditRecord.object_type == "payout", AuditRecord.object_id == str(payout_id),
        AuditRecord.action.in_(("payout.submitting", "payout.succeeded"))).order_by(AuditRecord.id)).scalars().all()
    from portal.models import Account, Entry, Posting

    legs = session.execute(sa.select(Account.name, Entry.amount).join(Entry, Entry.account_id == Account.id)
                           .join(Posting, Posting.id == Entry.posting_id)
                           .where(Posting.reference == f"payout:{payout_id}:paid").order_by(Account.name)).all()
    key = attempt.idempotency_key
    assert key.startswith(f"cb-{payout_id}-1-") and len(key) == len(f"cb-{payout_id}-1-") + 16
    return ((attempt.number, attempt.status, attempt.error_code, attempt.raw_message, bool(attempt.provider_reference),
             attempt.checks, attempt.next_check_at, attempt.created_at is not None),
            (payout.state, payout.fee, payout.needs_attention, payout.finished_at is not None),
            [(a.action, a.actor, a.actor_id, a.before, {k: "KEY" if v == key else v for k, v in (a.after or {}).items()},
              a.reason) for a in audit_rows],
            [(name.replace(f":{payout.customer_id}:", ":C:"), amount) for name, amount in legs])


def test_the_one_round_trip_claim_and_success_write_what_the_python_path_writes(app, session, world, testbank,
                                                                                monkeypatch):
    """payout_claim() and payout_apply_success() (PostgreSQL) leave the rows that start_attempt()
    and apply_result() leave for a claim and a "succeeded"."""
    testbank.settle_at_once = True
    try:
        seen, real, claims, real_claim = [], payouts.apply_success, [], payouts._claim_postgres
        monkeypatch.setattr(payouts, "apply_success", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
        monkeypatch.setattr(payouts, "_claim_postgres", lambda *a: claims.append(real_claim(*a)) or claims[-1])
        fast = withdraw(session, app, key="fast").payout.id
        assert jobs.submit_payout(fast) == "succeeded"
        assert seen == [True] and isinstance(claims[0], payouts.ClaimedAttempt)  # PostgreSQL: the functions did it
        monkeypatch.setattr(payouts, "apply_success", lambda *a, **k: False)
        monkeypatch.setattr(payouts, "_claim_postgres", lambda *a: None)
        slow = withdraw(session, app, key="slow").payout.id
        assert jobs.submit_payout(slow) == "succeeded"
    finally:
        testbank.settle_at_once = False
    assert _paid_rows(session, fast) == _paid_rows(session, slow)
    assert _paid_rows(session, fast)[1][1] is not None  # the provider's fee was kept


def test_the_one_round_trip_success_leaves_an_uncommon_case_to_python(app, session, world, testbank):
    """A breaker that counted a failure: the function writes nothing; apply_result decides (and resets it)."""
    from plugins import PayoutStatus, Result

    testbank.settle_at_once = True
    try:
        payout_id = withdraw(session, app, key="k1").payout.id
        claimed = jobs.claim_submit(payout_id)
        state = payouts.provider_state(session, "test", lock=True)
        state.consecutive_failures = 1
        session.commit()
        result = Result(status=PayoutStatus.SUCCEEDED, raw_message="paid")
        assert payouts.apply_success(session, claimed.attempt_id, result, claimed.facts) is False
        assert session.get(PayoutAttempt, claimed.attempt_id).status == "submitting"  # nothing written
        session.rollback()
        result = jobs.call_submit(claimed)
        assert jobs.finish_submit(claimed, result) == "succeeded"
        session.expire_all()
        assert payouts.provider_state(session, "test").consecutive_failures == 0
    finally:
        testbank.settle_at_once = False
