"""Status checks claimed from the database: a worker's own follow-up check and the janitor's
job for the same attempt ask the provider once between them (``claim_check``'s conditional
UPDATE and its lease), while Finance's "check now" and a callback's check are never held back."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from portal.models import PayoutAttempt
from portal.models.types import utcnow
from portal.tasks import payouts as jobs
from tests.integration.test_payouts import world, withdraw  # noqa: F401  (fixture)


def pending_attempt(session, app) -> PayoutAttempt:
    """A payout submitted to the Test Bank, which answers "pending" (settled at the first read)."""
    payout_id = withdraw(session, app).payout.id
    jobs.submit_payout(payout_id)
    session.expire_all()
    attempt = session.execute(sa.select(PayoutAttempt).where(PayoutAttempt.payout_id == payout_id)).scalar_one()
    assert attempt.status == "pending" and attempt.next_check_at is not None
    return attempt


def make_due(session, attempt_id: int) -> None:
    session.execute(sa.update(PayoutAttempt).where(PayoutAttempt.id == attempt_id)
                    .values(next_check_at=utcnow() - dt.timedelta(seconds=1)))
    session.commit()


def test_a_due_check_is_asked_once_between_a_worker_and_the_janitor(app, session, world, testbank):
    attempt_id = pending_attempt(session, app).id
    make_due(session, attempt_id)
    app.extensions.pop("cashback_collected_jobs", None)
    assert jobs.janitor()["checks"] == 1
    queued = app.extensions.pop("cashback_collected_jobs")
    checks = [j for j in queued if j.func == jobs.CHECK]
    assert [j.args for j in checks] == [(attempt_id, False, True)]  # the janitor's check: only if due

    claimed = jobs.claim_check(attempt_id, False, True)  # a worker claims it first
    assert isinstance(claimed, jobs.ClaimedCheck)
    assert jobs.check_attempt(*checks[0].args) == "nothing to do"  # the janitor's job finds it leased
    assert jobs.janitor()["checks"] == 0  # leased: not due while the provider is asked
    assert jobs.finish_check(claimed, jobs.call_check(claimed)) == "succeeded"
    session.expire_all()
    attempt = session.get(PayoutAttempt, attempt_id)
    assert attempt.status == "succeeded" and attempt.checks == 1 and attempt.next_check_at is None
    assert len(testbank.ledger.transfers()) == 1


def test_a_check_not_due_waits_unless_asked_for_now(app, session, world, testbank):
    """A worker's follow-up (``due_only``) before its time does nothing; Finance's "check now"
    (no ``due_only``) asks at once."""
    attempt_id = pending_attempt(session, app).id
    assert jobs.claim_check(attempt_id, False, True) == "nothing to do"
    session.expire_all()
    assert session.get(PayoutAttempt, attempt_id).checks == 0
    assert jobs.check_attempt(attempt_id) == "succeeded"
    session.expire_all()
    assert session.get(PayoutAttempt, attempt_id).checks == 1


def test_a_lost_check_is_due_again_once_its_lease_has_passed(app, session, world, testbank):
    """A worker that claimed a check and died leaves the attempt leased; the janitor asks once
    the lease (``PAYOUT_STALE_SUBMIT_SECONDS``) has passed, and the payout is paid once."""
    attempt_id = pending_attempt(session, app).id
    make_due(session, attempt_id)
    assert isinstance(jobs.claim_check(attempt_id, False, True), jobs.ClaimedCheck)  # ... and the worker dies
    session.expire_all()
    leased = session.get(PayoutAttempt, attempt_id).next_check_at
    assert leased > utcnow() + dt.timedelta(seconds=int(app.config["PAYOUT_STALE_SUBMIT_SECONDS"]) - 60)
    assert jobs.janitor()["checks"] == 0
    make_due(session, attempt_id)  # the lease has passed
    app.extensions.pop("cashback_collected_jobs", None)
    assert jobs.janitor()["checks"] == 1
    assert jobs.check_attempt(attempt_id, False, True) == "succeeded"
    session.expire_all()
    assert session.get(PayoutAttempt, attempt_id).checks == 2
    assert len(testbank.ledger.transfers()) == 1


def test_a_throttled_status_read_does_not_pause_the_provider(app, session, world, testbank):
    """A status read refused by a rate limit (QIWI's history budget spent: "not called", or its
    423 history block) says nothing about sending: however many, the provider's breaker stays
    closed and its payouts keep going; the same answer to a submit still counts."""
    from plugins import ErrorCode, Result
    from portal.services import payouts

    attempt_id = pending_attempt(session, app).id
    throttled = Result.unknown(ErrorCode.RATE_LIMITED, "budget spent; not called", retry_after=dt.timedelta(seconds=5))
    for _ in range(int(app.config["BREAKER_THRESHOLD"]) + 1):
        payouts.apply_result(session, attempt_id, throttled, config=app.config, status_read=True)
        session.commit()
    state = payouts.provider_state(session, "test")
    assert state.breaker == "closed" and state.consecutive_failures == 0
    payouts.apply_result(session, attempt_id, throttled, config=app.config)  # a submit's answer
    session.commit()
    session.expire_all()
    assert payouts.provider_state(session, "test").consecutive_failures == 1
    assert jobs.check_attempt(attempt_id) == "succeeded"  # resolved by the same key: paid once
