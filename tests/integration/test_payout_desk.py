"""The payout desk with the Flask test client: Finance reviews, fixes and switches providers;
Support and Developers read what they may; on PostgreSQL and the Test Bank sandbox.

Jobs are driven by hand (``JOBS_MODE=collect``): the submit jobs an action queues are
looked up in what would have been sent and run here.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from portal import providers
from portal.extensions import db
from portal.models import AuditRecord, Customer, Payout, PayoutDetails, ProviderState
from portal.services import fx, ledger, payouts
from portal.services.audit import Actor
from portal.services.ledger import customer_account, system_account, transfer
from portal.tasks import payouts as jobs
from tests.conftest import login
from tests.integration.test_payouts import settle

D = Decimal
WALLET = "TEST-12345674"
SYSTEM = Actor.system("test")


# --- fixtures and helpers ------------------------------------------------------------------------

@pytest.fixture
def desk(app, client, clean_db, testbank, make_user):
    """Customer 1 with $500 available, old details (and new ones, id 2); rate 80; Finance users
    fin1, fin2; ``as_user(name)`` logs ``client`` in (English pages)."""
    testbank.reset()
    app.extensions.pop("cashback_collected_jobs", None)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    with app.app_context():
        session = db.session
        session.add(Customer(id=1, email="anna@test.local", name="Anna"))
        session.flush()
        fx.correct_rate(session, dt.date.today(), D("80"), SYSTEM, "test rate")
        ledger.post(session, kind="test.fund", reference="fund:1", actor=SYSTEM,
                    legs=transfer(system_account("network_receivable"), customer_account(1, "available"), D("500")))
        session.add(PayoutDetails(id=1, customer_id=1, provider_code="test", account=WALLET,
                                  created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10)))
        session.add(PayoutDetails(id=2, customer_id=1, provider_code="test", account="TEST-76543214"))
        session.commit()
        session.execute(sa.text("SELECT setval('payout_details_id_seq', 2)"))
        session.commit()
    users = {"fin1": make_user("fin1", "Finance"), "fin2": make_user("fin2", "Finance")}

    def as_user(name: str, role: str | None = None) -> int:
        if name not in users:
            users[name] = make_user(name, role)
        client.get("/logout/")
        login(client, name)
        return users[name]

    return as_user


def withdraw(app, amount="1.00", key="k1", details_id=1, customer_id=1) -> int:
    with app.app_context():
        result = payouts.request_withdrawal(db.session, db.session.get(Customer, customer_id), details_id=details_id,
                                            amount_usd=D(amount), request_key=key,
                                            provider=providers.provider("test"), config=app.config, actor=SYSTEM)
        db.session.commit()
        return result.payout.id


def in_review(app, amount="1.00", key="r1") -> int:
    """A payout to the new details: the risk rules send it to review."""
    payout_id = withdraw(app, amount, key, details_id=2)
    assert state(app, payout_id) == "in_review"
    return payout_id


def state(app, payout_id: int) -> str:
    with app.app_context():
        return db.session.get(Payout, payout_id).state


def balances(app) -> dict[str, Decimal]:
    with app.app_context():
        return ledger.customer_balances(db.session, 1)


def submits(app) -> list[int]:
    """Payout ids of the submit jobs queued so far."""
    return [job.args[0] for job in app.extensions.get("cashback_collected_jobs", []) if job.func == jobs.SUBMIT]


def text(response) -> str:
    return response.get_data(as_text=True)


def decide(client, payout_id: int, decision: str = "approve", reason: str = "checked the customer", **kwargs):
    return client.post(f"/payouts/review/{payout_id}/decide", data={"decision": decision, "reason": reason},
                       **kwargs)


# --- review ----------------------------------------------------------------------------------------

def test_finance_approves_a_payout_in_review(app, client, desk):
    """The queue lists it with its reasons; approving sends it to the provider; audited with the user."""
    payout_id = in_review(app)
    desk("fin1")
    page = text(client.get("/payouts/review/"))
    assert f'data-payout="{payout_id}"' in page and "New payout details" in page and "anna@test.local" in page
    response = decide(client, payout_id, follow_redirects=True)
    assert response.status_code == 200
    assert f"Payout #{payout_id} approved" in text(response)
    assert state(app, payout_id) == "approved" and payout_id in submits(app)
    with app.app_context():
        record = db.session.execute(sa.select(AuditRecord).where(AuditRecord.action == "payout.approved")).scalar_one()
        assert (record.actor, record.reason) == ("user:fin1", "checked the customer")
        assert settle(db.session, payout_id).state == "succeeded"


def test_reject_needs_a_reason_and_returns_the_money(app, client, desk):
    payout_id = in_review(app, "10.00")
    desk("fin1")
    refused = decide(client, payout_id, "reject", "")
    assert refused.status_code == 422 and "Say why." in text(refused)
    assert state(app, payout_id) == "in_review"
    assert decide(client, payout_id, "reject", "wallet looks stolen").status_code == 302
    assert state(app, payout_id) == "rejected" and balances(app)["available"] == D("500")


def test_second_approver_required_above_the_threshold(app, client, desk, monkeypatch):
    """Above SECOND_APPROVAL_USD: fin1's approval is one of two; fin1 again is refused; fin2 completes it."""
    monkeypatch.setitem(app.config, "SECOND_APPROVAL_USD", D("100.00"))
    payout_id = withdraw(app, "150.00", "big")
    assert state(app, payout_id) == "in_review"
    desk("fin1")
    first = decide(client, payout_id, follow_redirects=True)
    assert f"Payout #{payout_id}: approval 1 of 2 recorded; another approver is needed." in text(first)
    assert state(app, payout_id) == "in_review" and payout_id not in submits(app)
    again = decide(client, payout_id)
    assert again.status_code == 422 and "a second approver must be someone else" in text(again)
    desk("fin2")
    assert "fin1: checked the customer" in text(client.get("/payouts/review/"))
    assert decide(client, payout_id, reason="second look").status_code == 302
    assert state(app, payout_id) == "approved" and payout_id in submits(app)


def test_approver_cannot_approve_their_own_payout(app, client, desk):
    """A Finance user who is also the customer: refused with the maker-checker message."""
    fin = desk("fin1")
    with app.app_context():
        db.session.get(Customer, 1).user_id = fin
        db.session.commit()
    payout_id = in_review(app)
    page = text(client.get("/payouts/review/"))
    assert '<span class="label label-warning">you</span>' in page
    response = decide(client, payout_id)
    assert response.status_code == 422 and "You cannot decide on your own withdrawal." in text(response)
    assert state(app, payout_id) == "in_review"


def test_bulk_approve_reports_each_payout(app, client, desk):
    """Three selected: two approved, the own one refused; one line per payout."""
    fin = desk("fin1")
    first, second = in_review(app, key="a"), in_review(app, key="b")
    with app.app_context():
        db.session.add(Customer(id=2, email="fin1@own.local", name="Fin", user_id=fin))
        db.session.flush()
        ledger.post(db.session, kind="test.fund", reference="fund:2", actor=SYSTEM,
                    legs=transfer(system_account("network_receivable"), customer_account(2, "available"), D("5")))
        db.session.add(PayoutDetails(id=3, customer_id=2, provider_code="test", account="TEST-11111116"))
        db.session.commit()
    own = withdraw(app, "1.00", "own", details_id=3, customer_id=2)
    assert state(app, own) == "in_review"
    response = client.post("/payouts/review/bulk-approve", data={"ids": [first, second, own], "reason": "batch"},
                           follow_redirects=True)
    html = text(response)
    assert "2 of 3 selected payouts approved." in html
    assert f"Payout #{first} approved" in html and f"Payout #{second} approved" in html
    assert f"Payout #{own}: You cannot decide on your own withdrawal." in html
    assert [state(app, i) for i in (first, second, own)] == ["approved", "approved", "in_review"]
    nothing = client.post("/payouts/review/bulk-approve", data={"reason": "batch"})
    assert nothing.status_code == 422 and "Select the payouts to approve." in text(nothing)


def test_queue_filters_by_reason_and_amount(app, client, desk, monkeypatch):
    monkeypatch.setitem(app.config, "REVIEW_THRESHOLD_USD", D("50.00"))
    small = in_review(app, "1.00", "s")
    big = withdraw(app, "60.00", "b")  # old details, above the threshold
    desk("fin1")

    def listed(query: str) -> set[int]:
        html = text(client.get(f"/payouts/review/{query}"))
        return {int(i) for i in re.findall(r'class="review-row" data-payout="(\d+)"', html)}

    assert listed("") == {small, big}
    assert listed("?reason=amount_above_threshold") == {big}
    assert listed("?reason=new_payout_details") == {small}
    assert listed("?min=10") == {big} and listed("?max=10") == {small}
    assert listed("?provider=test&min=1&max=60") == {small, big}
    assert "Not an amount: lots" in text(client.get("/payouts/review/?min=lots"))
    # the reason filter runs in the query, before the page limit: a match behind a full page
    # of other payouts is still listed
    from portal.views import payouts_desk

    monkeypatch.setattr(payouts_desk, "PAGE_LIMIT", 1)
    assert listed("?reason=amount_above_threshold") == {big}


# --- who may do what --------------------------------------------------------------------------------

def test_support_gets_403_on_approve_fix_and_kill_switch(app, client, desk):
    payout_id = in_review(app)
    desk("sup", "Support")
    assert client.get("/payouts/review/").status_code == 403
    assert decide(client, payout_id).status_code == 403
    assert client.post("/payouts/review/bulk-approve", data={"ids": [payout_id], "reason": "x"}).status_code == 403
    assert client.get("/payouts/attention/").status_code == 403
    assert client.post(f"/payouts/attention/{payout_id}/fix", data={"to": "failed", "reason": "x"}).status_code == 403
    assert client.get("/payouts/providers/").status_code == 403
    assert client.post("/payouts/providers/test/disable", data={"reason": "x"}).status_code == 403
    assert client.post("/payouts/providers/test/balance").status_code == 403
    assert state(app, payout_id) == "in_review"
    with app.app_context():
        assert payouts.provider_state(db.session, "test").enabled


def test_accounts_masked_for_support_full_for_finance(app, client, desk):
    payout_id = withdraw(app)
    desk("sup", "Support")
    for url in ("/payoutview/list/", f"/payoutview/show/{payout_id}"):
        html = text(client.get(url))
        assert "TEST••••5674" in html and WALLET not in html, url
    desk("fin1")
    for url in ("/payoutview/list/", f"/payoutview/show/{payout_id}"):
        html = text(client.get(url))
        assert WALLET in html and "TEST••••5674" not in html, url
    assert f'/payoutview/show/{payout_id}"' in text(client.get("/payoutview/list/?_flt_0_customer=ANNA@"))
    assert f'/payoutview/show/{payout_id}"' not in text(client.get("/payoutview/list/?_flt_0_customer=boris"))


def test_developer_reads_payouts_without_customer_data_and_providers_read_only(app, client, desk):
    payout_id = withdraw(app)
    desk("dev", "Developer")
    assert client.get("/payoutview/list/").status_code == 403
    for url in ("/payouttechview/list/", f"/payouttechview/show/{payout_id}"):
        response = client.get(url)
        assert response.status_code == 200, url
        html = text(response)
        assert "anna@test.local" not in html and "5674" not in html, url
    providers_page = client.get("/payouts/providers/")
    assert providers_page.status_code == 200 and "Switch off" not in text(providers_page)
    assert client.post("/payouts/providers/test/disable", data={"reason": "x"}).status_code == 403
    assert client.get("/payouts/review/").status_code == 403


# --- providers ---------------------------------------------------------------------------------------

def test_kill_switch_holds_approved_payouts_then_lets_them_go(app, client, desk):
    """Finance switches the provider off: queued payouts stay approved (held); on again, they are sent."""
    queued = withdraw(app)
    desk("fin1")
    refused = client.post("/payouts/providers/test/disable", data={"reason": ""})
    assert refused.status_code == 422
    response = client.post("/payouts/providers/test/disable", data={"reason": "licence revoked"},
                           follow_redirects=True)
    html = text(response)
    assert "Test Bank (sandbox) is switched off" in html and "licence revoked" in html
    assert re.search(r'<td class="held">\s*1\s*</td>', html)
    with app.app_context():
        assert jobs.submit_payout(queued) == "skipped"
    assert state(app, queued) == "approved"
    with pytest.raises(payouts.ProviderDisabled):
        withdraw(app, key="k2")
    app.extensions.pop("cashback_collected_jobs", None)
    assert client.post("/payouts/providers/test/enable", data={"reason": "licence back"}).status_code == 302
    assert submits(app) == [queued]
    with app.app_context():
        assert settle(db.session, queued).state == "succeeded"
        actions = db.session.execute(sa.select(AuditRecord.action, AuditRecord.actor).where(
            AuditRecord.object_type == "provider").order_by(AuditRecord.id)).all()
    assert [tuple(a) for a in actions] == [("provider.disabled", "user:fin1"), ("provider.enabled", "user:fin1")]


def test_refresh_balance_stores_it_and_shows_failures(app, client, desk, testbank):
    desk("fin1")
    response = client.post("/payouts/providers/test/balance", follow_redirects=True)
    assert response.status_code == 200 and "Balance at Test Bank (sandbox):" in text(response)
    with app.app_context():
        row = db.session.get(ProviderState, "test")
        assert row.balance == testbank.ledger.balance and row.balance_checked_at is not None
    testbank.inject(down=True)
    try:
        failed = client.post("/payouts/providers/test/balance")
    finally:
        testbank.reset_faults()
    assert failed.status_code == 422 and "The balance of Test Bank (sandbox) could not be read" in text(failed)
    assert client.post("/payouts/providers/nope/balance").status_code == 404


def test_paused_provider_shows_why_and_resumes(app, client, desk):
    """An auth failure opens the breaker; the page shows the reason; Resume closes it and sends held payouts."""
    with app.app_context():
        db.session.add(PayoutDetails(id=4, customer_id=1, provider_code="test", account="TEST-99000093",
                                     created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10)))
        db.session.commit()
    broken = withdraw(app, key="auth", details_id=4)
    with app.app_context():
        jobs.submit_payout(broken)
    desk("fin1")
    html = text(client.get("/payouts/providers/"))
    assert "auth:" in html and "/payouts/providers/test/resume" in html
    assert client.post("/payouts/providers/test/resume", data={"reason": ""}).status_code == 422
    app.extensions.pop("cashback_collected_jobs", None)
    assert client.post("/payouts/providers/test/resume", data={"reason": "credentials rotated"}).status_code == 302
    with app.app_context():
        assert payouts.provider_state(db.session, "test").breaker == "closed"
    assert broken in submits(app)


# --- attention ---------------------------------------------------------------------------------------

def unknown_payout(app, testbank, **faults) -> int:
    """A payout whose answer was lost (by default: paid, then the connection dropped): ``unknown``."""
    payout_id = withdraw(app)
    testbank.inject(**(faults or {"drop": 1}))
    with app.app_context():
        jobs.submit_payout(payout_id)
    assert state(app, payout_id) == "unknown"
    return payout_id


def test_fix_state_requires_a_reason(app, client, desk, testbank):
    payout_id = unknown_payout(app, testbank)
    desk("fin1")
    page = text(client.get("/payouts/attention/"))
    assert f'data-payout="{payout_id}" data-state="unknown"' in page and "cb-" in page and "Fix state" in page
    refused = client.post(f"/payouts/attention/{payout_id}/fix", data={"to": "succeeded", "reason": "  "})
    assert refused.status_code == 422 and "Say why." in text(refused)
    assert state(app, payout_id) == "unknown"
    done = client.post(f"/payouts/attention/{payout_id}/fix",
                       data={"to": "succeeded", "reason": "provider statement line 42"}, follow_redirects=True)
    assert f"Payout #{payout_id}: Paid out." in text(done)  # the state as a word
    assert state(app, payout_id) == "succeeded"
    assert f'data-payout="{payout_id}"' not in text(done)


def test_fix_state_as_failed_returns_the_money_and_only_from_unknown(app, client, desk, testbank):
    payout_id = unknown_payout(app, testbank, errors=1, errors_after_commit=False)  # a 500, nothing paid
    approved = withdraw(app, key="k2")
    desk("fin1")
    refused = client.post(f"/payouts/attention/{approved}/fix", data={"to": "failed", "reason": "x"})
    assert refused.status_code == 422 and "Only a payout in an unknown state can be fixed by hand." in text(refused)
    assert client.post(f"/payouts/attention/{payout_id}/fix",
                       data={"to": "failed", "reason": "provider says never arrived"}).status_code == 302
    assert state(app, payout_id) == "failed"
    b = balances(app)
    assert (b["available"], b["on_hold"]) == (D("499.00"), D("1.00"))  # the other one is still held
