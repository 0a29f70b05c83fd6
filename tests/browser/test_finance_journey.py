"""Journey 3 (Finance), in Chromium with the Russian UI, on the live portal.

* A payout above the second-approver threshold (``SECOND_APPROVAL_USD``): the first Finance
  approval leaves it in review with a visible message, the same user cannot approve twice, a
  second, different Finance user approves it and the in-process worker pays it.
* The kill switch on the providers page (with a reason): an approved payout is held for the
  switched-off provider (page and database), and switching it on again sends it.
"""
from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from portal.models import Payout, PayoutAttempt, ProviderState
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
    expect(page.locator("tr.provider[data-provider='test'] td.switch .label-success")).to_be_visible()
    assert portal_db.wait_for_payout(payout_id) == "succeeded"
    page.reload()
    expect(page.locator("tr.provider[data-provider='test'] td.held")).to_have_text("0")
    screenshot(page, "2-released")
    assert portal_db.scalar(sa.select(Payout.state).where(Payout.id == payout_id)) == "succeeded"
