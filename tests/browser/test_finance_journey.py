"""Journey 3 (Finance), in Chromium with the Russian UI, on the live portal.

* A payout above the second-approver threshold (``SECOND_APPROVAL_USD``): the first Finance
  approval leaves it in review with a visible message, the same user cannot approve twice, a
  second, different Finance user approves it and the in-process worker pays it.
* The kill switch on the providers page (with a reason): an approved payout is held for the
  switched-off provider (page and database), and switching it on again sends it.
* A credit Support proposed for a claim: Support cannot open the credits page, an Admin who
  proposed a credit of their own is refused when forcing its approval (four eyes), a Finance
  user approves Support's: the customer's available balance rises by exactly the amount, the
  claim is ``resolved_credit``, Support's timeline shows the posting, and the dashboard draws
  its charts.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from portal.models import Claim, ClaimCredit, Payout, PayoutAttempt, Posting, ProviderState
from tests.browser.conftest import login, translated

pytestmark = pytest.mark.browser

WALLET = "TEST-12345674"


@pytest.fixture
def customer(portal_db):
    """A customer with available cashback and old (not new) Test Bank details; a rate for RUB."""
    portal_db.rate("60.00")  # 210 USD = 12 600 RUB: within Test Bank's 15 000 RUB limit
    customer_id = portal_db.customer("boris@test.local", "Борис")
    portal_db.fund(customer_id, "400.00")
    return customer_id, portal_db.old_details(customer_id, "test", WALLET)


def approve(page, payout_id: int, reason: str) -> None:
    page.goto("/payouts/review/")
    row = page.locator(f"tr.review-row[data-payout='{payout_id}']")
    row.locator("input[name=reason]").fill(reason)
    row.locator("button[value=approve]").click()


def test_two_finance_users_approve_a_large_payout(new_context, portal_db, customer, screenshot):
    customer_id, details_id = customer
    amount = portal_db.live_config("SECOND_APPROVAL_USD") + Decimal("10.00")
    payout_id, state, needed = portal_db.withdrawal(customer_id, details_id, f"{amount:.2f}", "big-1")
    assert (state, needed) == ("in_review", 2)
    portal_db.staff("fin_anna", "Finance")
    portal_db.staff("fin_oleg", "Finance")

    first = new_context().new_page()
    login(first, "fin_anna")
    approve(first, payout_id, "Крупная выплата, клиент проверен")
    message = translated(portal_db.app, "Payout #%(id)s: approval %(done)s of %(needed)s recorded; "
                                        "another approver is needed.", "ru", id=payout_id, done=1, needed=2)
    expect(first.locator(".alert").filter(has_text=message)).to_be_visible()
    row = first.locator(f"tr.review-row[data-payout='{payout_id}']")
    expect(row).to_contain_text("1 / 2")
    expect(row).to_contain_text("fin_anna")
    screenshot(first, "1-first-approval")
    assert portal_db.payout_state(payout_id) == "in_review"

    # the same user cannot be the second approver
    approve(first, payout_id, "Ещё раз")
    refusal = translated(portal_db.app, "You have already decided on this payout: a second approver must be "
                                        "someone else.", "ru")
    expect(first.locator(".alert").filter(has_text=refusal)).to_be_visible()
    screenshot(first, "2-same-user-refused")
    assert portal_db.payout_state(payout_id) == "in_review"

    second = new_context().new_page()
    login(second, "fin_oleg")
    approve(second, payout_id, "Второе одобрение")
    expect(second.locator(f"tr.review-row[data-payout='{payout_id}']")).to_have_count(0)
    approved = translated(portal_db.app, "Payout #%(id)s approved: it goes to the provider now.", "ru",
                          id=payout_id)
    expect(second.locator(".alert").filter(has_text=approved)).to_be_visible()
    screenshot(second, "3-second-approval")

    assert portal_db.wait_for_payout(payout_id) == "succeeded"
    assert portal_db.balances(customer_id)["on_hold"] == Decimal("0")


def test_kill_switch_holds_approved_payouts(new_context, portal_db, customer, screenshot):
    customer_id, details_id = customer
    amount = portal_db.live_config("REVIEW_THRESHOLD_USD") + Decimal("5.00")
    payout_id, state, needed = portal_db.withdrawal(customer_id, details_id, f"{amount:.2f}", "mid-1")
    assert (state, needed) == ("in_review", 1)
    portal_db.staff("fin_vera", "Finance")
    page = new_context().new_page()
    login(page, "fin_vera")

    # switch Test Bank off, with a reason
    page.goto("/payouts/providers/")
    provider = page.locator("tr.provider[data-provider='test']")
    provider.locator("input[name=reason]").fill("Песочница на обслуживании")
    provider.locator("button.btn-danger").click()
    page.locator("#modal-confirm-ok").click()  # the kill switch asks first
    provider = page.locator("tr.provider[data-provider='test']")
    expect(provider.locator(".disabled-reason")).to_have_text("Песочница на обслуживании")
    expect(provider.locator("td.switch .label-danger")).to_be_visible()
    assert portal_db.rows(sa.select(ProviderState.enabled, ProviderState.disabled_reason)
                          .where(ProviderState.code == "test")) == [(False, "Песочница на обслуживании")]

    # approve the payout in review: it is held, nothing is sent
    approve(page, payout_id, "Проверено")
    expect(page.locator(f"tr.review-row[data-payout='{payout_id}']")).to_have_count(0)
    page.goto("/payouts/providers/")
    expect(page.locator("tr.provider[data-provider='test'] td.held")).to_have_text("1")
    screenshot(page, "1-held")
    assert portal_db.payout_state(payout_id) == "approved"
    assert portal_db.scalar(sa.select(sa.func.count()).select_from(PayoutAttempt)
                            .where(PayoutAttempt.payout_id == payout_id)) == 0

    # switch it on again: the held payout is sent and paid
    provider = page.locator("tr.provider[data-provider='test']")
    provider.locator("input[name=reason]").fill("Песочница снова работает")
    provider.locator("button.btn-success").click()
    page.locator("#modal-confirm-ok").click()
    expect(page.locator("tr.provider[data-provider='test'] td.switch .label-success")).to_be_visible()
    assert portal_db.wait_for_payout(payout_id) == "succeeded"
    page.reload()
    expect(page.locator("tr.provider[data-provider='test'] td.held")).to_have_text("0")
    screenshot(page, "2-released")
    assert portal_db.scalar(sa.select(Payout.state).where(Payout.id == payout_id)) == "succeeded"


def test_finance_approves_a_support_credit_with_four_eyes(new_context, portal_db, screenshot):
    now = dt.datetime.now(dt.timezone.utc)
    customer_id = portal_db.customer("sveta@test.local", "Света")
    portal_db.old_details(customer_id, "test", WALLET)
    clicked_at = now - dt.timedelta(hours=3)
    portal_db.click(customer_id, "https://aliexpress.ru/item/1005002222222222.html", clicked_at)
    for username, role in (("sup_ivan", "Support"), ("adm_nina", "Admin"), ("fin_pavel", "Finance")):
        portal_db.staff(username, role)
    claim_id, credit_id = portal_db.claim_with_credit(customer_id, "8100000000201", clicked_at.date(), "4.20",
                                                      "sup_ivan")
    own_claim_id, own_credit_id = portal_db.claim_with_credit(customer_id, "8100000000202", clicked_at.date(),
                                                              "1.10", "adm_nina")
    before = portal_db.balances(customer_id)["available"]

    # Support proposed it, Support cannot decide it: no access to the page nor the action
    support = new_context().new_page()
    login(support, "sup_ivan")
    assert support.goto("/claims/credits/").status == 403
    support.goto("/claims/desk/new")  # a valid CSRF token of this session, from a form Support has
    token = support.locator("input[name=csrf_token]").first.input_value()
    forced = support.request.post(f"/claims/credits/{credit_id}/decide",
                                  form={"csrf_token": token, "decision": "approve", "note": ""})
    assert forced.status == 403

    # an Admin who proposed a credit sees no decision form on it, and forcing one is refused
    admin = new_context().new_page()
    login(admin, "adm_nina")
    admin.goto("/claims/credits/")
    own = admin.locator(f"tr.credit[data-credit='{own_credit_id}']")
    expect(own).to_contain_text(translated(portal_db.app, "You proposed it: another person decides.", "ru"))
    expect(own.locator("form")).to_have_count(0)
    others = admin.locator(f"tr.credit[data-credit='{credit_id}'] form")
    others.evaluate("(form, url) => { form.action = url; }", f"/claims/credits/{own_credit_id}/decide")
    others.locator("button[name=decision][value=approve]").click()
    refusal = translated(portal_db.app, "Credit #%(id)s: %(error)s", "ru", id=own_credit_id,
                         error=translated(portal_db.app, "A credit must be approved by someone other than the "
                                                         "person who proposed it.", "ru"))
    expect(admin.locator(".alert").filter(has_text=refusal)).to_be_visible()
    screenshot(admin, "1-proposer-refused")
    assert portal_db.rows(sa.select(ClaimCredit.state, ClaimCredit.decided_by, ClaimCredit.posting_id)
                          .where(ClaimCredit.id == own_credit_id)) == [("proposed", None, None)]
    assert portal_db.balances(customer_id)["available"] == before

    # Finance approves Support's credit
    finance = new_context().new_page()
    login(finance, "fin_pavel")
    finance.goto("/claims/credits/")
    row = finance.locator(f"tr.credit[data-credit='{credit_id}']")
    expect(row).to_contain_text("sveta@test.local")
    expect(row).to_contain_text("sup_ivan")
    row.locator("input[name=note]").fill("Клик подтверждён")
    row.locator("button[name=decision][value=approve]").click()
    approved = translated(portal_db.app, "Credit #%(id)s approved: the customer's balance is credited.", "ru",
                          id=credit_id)
    expect(finance.locator(".alert").filter(has_text=approved)).to_be_visible()
    expect(finance.locator(f"tr.credit[data-credit='{credit_id}']")).to_have_count(0)
    expect(finance.locator(f"tr.credit[data-credit='{own_credit_id}']")).to_have_count(1)  # still waiting
    screenshot(finance, "2-finance-approved")
    assert portal_db.balances(customer_id)["available"] - before == Decimal("4.20")
    assert portal_db.scalar(sa.select(Claim.state).where(Claim.id == claim_id)) == "resolved_credit"
    assert portal_db.scalar(sa.select(Claim.state).where(Claim.id == own_claim_id)) == "diagnosed"
    credit = portal_db.rows(sa.select(ClaimCredit.state, ClaimCredit.decided_by, ClaimCredit.posting_id)
                            .where(ClaimCredit.id == credit_id))[0]
    assert (credit.state, credit.decided_by) == ("approved", "fin_pavel")
    posting = portal_db.rows(sa.select(Posting.id, Posting.kind).where(Posting.reference == f"claim:{claim_id}:credit"))
    assert posting == [(credit.posting_id, "adjustment.claim")]

    # Support's view of the customer's timeline shows the credit posting (the wallet masked)
    support.goto(f"/support/customers/{customer_id}/timeline")
    entry = support.locator(f"#timeline tr.entry-posting[data-id='{credit.posting_id}']")
    expect(entry).to_contain_text(translated(portal_db.app, "Claim credit", "ru"))  # the kind as a word
    expect(entry.locator(".amount").first).to_contain_text(re.compile(r"4[.,]20"))
    expect(support.locator("#summary-details")).to_contain_text("TEST••••5674")
    assert WALLET not in support.content()
    screenshot(support, "3-timeline-credit")

    # Finance's dashboard draws its charts (inline SVG)
    finance.goto("/finance/dashboard/")
    for section in ("cashback", "payouts", "claims"):
        expect(finance.locator(f"section#{section} figure svg")).to_have_count(1)
    today = finance.locator("section#claims tbody tr").first.locator("td")
    expect(today).to_have_text(["2", "1"])  # opened today, resolved today
    screenshot(finance, "4-dashboard")
