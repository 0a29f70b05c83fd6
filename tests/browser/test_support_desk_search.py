"""Issue 16 point 8 in Chromium (Russian UI): Support searches claims by the customer's name,
opens the customer's timeline from the list, and finds the customer by a wallet's start."""
from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login

pytestmark = pytest.mark.browser


def test_support_finds_claims_and_customers(new_context, portal_db, screenshot):
    portal_db.rate("80.00")
    customer_id = portal_db.customer("zoya@test.local", "Зоя Петрова")
    portal_db.old_details(customer_id, "test", "TEST-12345674")
    portal_db.staff("sup_kira", "Support")
    portal_db.claim_with_credit(customer_id, "8100000777", dt.date.today(), "1.00", "sup_kira")
    page = new_context().new_page()
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, "sup_kira")

    page.goto("/claims/desk/")
    page.fill("#f-q", "петрова")
    page.locator("#claim-filters button[type=submit]").click()
    rows = page.locator("#desk-claims tr.claim")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("8100000777")
    screenshot(page, "1-claims-search")
    rows.first.locator("a.timeline-link").click()
    page.wait_for_url(f"**/support/customers/{customer_id}/timeline")

    page.goto("/support/customers/search?q=TEST-1234")
    expect(page.locator("body")).to_contain_text("zoya@test.local")
    screenshot(page, "2-wallet-prefix")
