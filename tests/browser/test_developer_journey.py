"""Journey 4 (Developer), in Chromium with the Russian UI, on the live portal.

* The Test Bank sandbox's fault switchboard (``POST /__sandbox__/faults``) answers the next
  requests 429; approved withdrawals are sent by the in-process worker (``JOBS_MODE=thread``,
  the same ``submit_payout`` job RQ runs) until the circuit breaker pauses the provider; the
  developer desk shows Test Bank paused, until when and why.
* Requeue a failed job: the live harness runs jobs on a thread, so this test points the live
  portal's desk at a real Redis under a unique ``QUEUE_PREFIX`` (the ``rq_queues`` fixture);
  a job that raised sits in the failed registry, the developer presses "Requeue" and the job
  is back on its queue (RQ's API) with an audit record.  Only this run's keys are removed.
* The sandbox page: a test payout fired at the Test Bank sandbox, the provider's answer on the
  page, a transfer in the sandbox's ledger and no payout, attempt or ledger posting of ours.
"""
from __future__ import annotations

import os
import time
import uuid
from decimal import Decimal

import pytest
import redis
import requests
import sqlalchemy as sa
from playwright.sync_api import expect
from rq import Queue

from payment_providers.testbank.provider import luhn_check_digit
from portal.models import AuditRecord, Payout, PayoutAttempt, Posting, ProviderState
from portal.tasks import QUEUE_PAYOUTS
from tests.browser.conftest import POLL_SECONDS, login, translated
from tests.conftest import run_burst

pytestmark = pytest.mark.browser

WALLET = "TEST-12345674"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
#: this run's queues: other runs sharing the Redis never see them
PREFIX = f"devjourney{os.getpid()}-{uuid.uuid4().hex[:6]}-"


def boom(payout_id: int) -> None:
    """A job that fails (its message carries a wallet-like number, which the desk masks)."""
    raise RuntimeError(f"boom for payout {payout_id} to 41001614575714")


def _forget_this_runs_keys(conn) -> None:
    for key in conn.scan_iter(match=f"*{PREFIX}*", count=1000):
        conn.delete(key)


@pytest.fixture
def rq_queues(live_app):
    """The live portal's desk reads a real Redis under this run's prefix (jobs still run on the
    thread: ``JOBS_MODE`` stays ``thread``); the settings come back afterwards."""
    conn = redis.Redis.from_url(REDIS_URL)
    _forget_this_runs_keys(conn)
    saved = {key: live_app.config.get(key) for key in ("REDIS_URL", "QUEUE_PREFIX")}
    live_app.config.update(REDIS_URL=REDIS_URL, QUEUE_PREFIX=PREFIX)
    live_app.extensions.pop("cashback_redis", None)
    yield conn
    live_app.config.update(saved)
    live_app.extensions.pop("cashback_redis", None)
    _forget_this_runs_keys(conn)
    conn.close()


def wait_for_breaker(portal_db, code: str) -> str | None:
    """Poll the provider's breaker (bounded loop) until it opens; the last state seen."""
    deadline = time.monotonic() + POLL_SECONDS
    query = sa.select(ProviderState.breaker).where(ProviderState.code == code)
    state = portal_db.scalar(query)
    while state != "open" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = portal_db.scalar(query)
    return state


def test_developer_sees_the_provider_paused_by_sandbox_faults(page, portal_db, testbank, screenshot):
    threshold = int(portal_db.live_config("BREAKER_THRESHOLD"))
    portal_db.rate("80.00")
    # one small withdrawal each from customers with old details (none of them goes to review)
    senders = []
    for n in range(threshold):
        customer_id = portal_db.customer(f"kira{n}@test.local", "Кира")
        portal_db.fund(customer_id, "5.00")
        body = f"{1234500 + n}"
        wallet = f"TEST-{body}{luhn_check_digit(body)}"
        senders.append((customer_id, portal_db.old_details(customer_id, "test", wallet)))
    testbank.reset()  # an empty sandbox ledger (earlier journeys paid through it)
    # the next `threshold` requests: 429, not processed (a retry is due only long after this test)
    answer = requests.post(f"{testbank.url}/__sandbox__/faults", json={"rate_limit": threshold, "retry_after": 300},
                           timeout=30)
    assert answer.status_code == 200 and answer.json()["rate_limit"] == threshold
    try:
        payout_ids = []
        for n, (customer_id, details_id) in enumerate(senders):
            payout_id, state, _needed = portal_db.withdrawal(customer_id, details_id, "2.00", f"fault-{n}")
            assert state == "approved"  # old details, a small amount: sent at once
            payout_ids.append(payout_id)
        assert wait_for_breaker(portal_db, "test") == "open"
        state = portal_db.rows(sa.select(ProviderState.enabled, ProviderState.pause_reason, ProviderState.paused_until)
                               .where(ProviderState.code == "test"))[0]
        assert (state.enabled, state.pause_reason) == (True, f"{threshold} failures in a row")
        assert state.paused_until is not None
        attempts = portal_db.rows(sa.select(PayoutAttempt.payout_id, PayoutAttempt.status, PayoutAttempt.error_code)
                                  .order_by(PayoutAttempt.payout_id))
        assert attempts == [(pid, "failed_retryable", "rate_limited") for pid in payout_ids]
        assert portal_db.rows(sa.select(AuditRecord.actor, AuditRecord.reason)
                              .where(AuditRecord.action == "provider.paused")) == [
            ("system:breaker", f"{threshold} failures in a row")]
        assert testbank.transfers() == []  # nothing was processed: no money moved

        portal_db.staff("dev_anton", "Developer")
        login(page, "dev_anton")
        page.goto("/developers/")
        status = page.locator("tr.plugin[data-provider='test'] td.status")
        expect(status).to_have_attribute("data-status", "paused")
        expect(status).to_contain_text(translated(portal_db.app, "paused by the circuit breaker", "ru"))
        expect(status.locator(".status-reason")).to_have_text(f"{threshold} failures in a row")
        expect(status.locator(".paused-until")).to_contain_text(translated(portal_db.app, "until", "ru"))
        expect(page.locator("tr.plugin[data-provider='yoomoney'] td.status")).to_have_attribute("data-status",
                                                                                              "enabled")
        screenshot(page, "paused")
        assert {s for (s,) in portal_db.rows(sa.select(Payout.state).where(Payout.id.in_(payout_ids)))} == {"approved"}
    finally:
        testbank.reset()  # faults off and the sandbox's ledger empty for the next tests


def test_developer_requeues_a_failed_job(page, portal_db, rq_queues, screenshot):
    conn = rq_queues
    payouts = Queue(f"{PREFIX}{QUEUE_PAYOUTS}", connection=conn)
    job = payouts.enqueue(f"{__name__}.boom", 7, failure_ttl=600)
    run_burst([payouts], conn)
    assert job.id in payouts.failed_job_registry and job.id not in payouts.job_ids

    portal_db.staff("dev_lev", "Developer")
    login(page, "dev_lev")
    page.goto("/developers/")
    expect(page.locator(f"#queues tr.queue[data-queue='{QUEUE_PAYOUTS}'] td.failed")).to_have_text("1")
    page.goto("/developers/failed-jobs")
    row = page.locator(f"tr.failed-job[data-job='{job.id}']")
    expect(row).to_contain_text(f"{__name__}.boom")
    expect(row.locator(".error")).to_have_text("RuntimeError: boom for payout 7 to 4100••••5714")
    assert "41001614575714" not in page.content()
    screenshot(page, "1-failed")

    row.get_by_role("button").click()
    back = translated(portal_db.app, "Job %(id)s is back on the %(queue)s queue.", "ru", id=job.id,
                      queue=QUEUE_PAYOUTS)
    expect(page.locator(".alert").filter(has_text=back)).to_be_visible()
    expect(page.locator(f"tr.failed-job[data-job='{job.id}']")).to_have_count(0)
    screenshot(page, "2-requeued")
    assert job.id in payouts.job_ids and job.id not in payouts.failed_job_registry
    audit = portal_db.rows(sa.select(AuditRecord.actor, AuditRecord.object_type, AuditRecord.after)
                           .where(AuditRecord.action == "job.requeued", AuditRecord.object_id == job.id))
    assert [(a.actor, a.object_type, a.after["queue"], a.after["args"]) for a in audit] == [
        ("user:dev_lev", "rq_job", QUEUE_PAYOUTS, "7")]


def test_developer_fires_a_sandbox_payout(page, portal_db, testbank, screenshot):
    testbank.reset()
    portal_db.staff("dev_mila", "Developer")
    login(page, "dev_mila")
    page.goto("/developers/sandbox")
    expect(page.locator("#sandbox-targets tr[data-provider='test']")).to_be_visible()
    form = page.locator("form[action$='/developers/sandbox/fire']")
    form.locator("select[name=provider]").select_option("test")
    form.locator("input[name=amount]").fill("12.50")
    form.locator("input[name=account]").fill(WALLET)
    form.locator("button[type=submit]").click()
    outcome = page.locator("#sandbox-outcome")
    expect(outcome).to_be_visible()
    expect(outcome.locator("td.result-status").nth(1)).to_have_attribute("data-status", "succeeded")
    key = outcome.locator("code.key").inner_text()
    assert key.startswith("sandbox-")
    expect(outcome).to_contain_text(WALLET)
    screenshot(page, "answer")

    [transfer] = testbank.transfers()
    assert (transfer.handle, transfer.account, transfer.amount) == (key, WALLET, Decimal("12.50"))
    counts = [portal_db.scalar(sa.select(sa.func.count()).select_from(model))
              for model in (Posting, Payout, PayoutAttempt)]
    assert counts == [0, 0, 0]  # no payout, no attempt, no ledger posting
    fired = portal_db.rows(sa.select(AuditRecord.actor, AuditRecord.object_id, AuditRecord.after)
                           .where(AuditRecord.action == "sandbox.payout_fired"))
    assert [(a.actor, a.object_id, a.after["idempotency_key"], a.after["account"]) for a in fired] == [
        ("user:dev_mila", "test", key, "TEST••••5674")]
