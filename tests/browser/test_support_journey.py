"""Journey 2 (Support), in Chromium with the Russian UI, on the live portal.

A customer who never clicked through us before the order: the Support agent opens a claim
for them by e-mail on the Support desk, reads the verdict (``no_click``) and its evidence,
edits and sends the templated reply, which the customer then reads in the cabinet.  A second
order, where our click exists but the network never reported it (``not_reported``): the
agent proposes a credit, which waits for Finance (Support cannot open the credits page).
The agent reads the customer's timeline with the wallet masked.

The role matrix of the claims, timeline, dashboard and developer desk pages is here too.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from portal.models import AuditRecord, Claim, ClaimCredit
from tests.browser.conftest import login, translated

pytestmark = pytest.mark.browser

WALLET = "TEST-12345674"
MASKED = "TEST••••5674"
NO_CLICK_ORDER = "8100000000101"
HIJACKED_ORDER = "8100000000102"
PRODUCT = "https://aliexpress.ru/item/1005001111111111.html"


def open_claim(page, email: str, order: str, day: dt.date, amount: str) -> int:
    """Support's "open a claim for a customer" form; the claim's id from the page it lands on."""
    page.goto("/claims/desk/new")
    form = page.locator("#staff-claim-form")
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=order_number]").fill(order)
    form.locator("input[name=order_date]").fill(day.isoformat())
    form.locator("input[name=amount_usd]").fill(amount)
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/claims/desk/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def evidence(page) -> dict:
    return json.loads(page.locator("#claim-evidence").text_content())  # the raw JSON, in a collapsed <details>


def test_support_answers_a_no_click_claim_and_proposes_a_credit(new_context, portal_db, screenshot):
    now = dt.datetime.now(dt.timezone.utc)
    customer_id = portal_db.customer("lena@test.local", "Лена")
    portal_db.old_details(customer_id, "test", WALLET)
    portal_db.staff("sup_maria", "Support")
    support = new_context().new_page()
    login(support, "sup_maria")

    # --- claim 1: no click before the order
    claim_id = open_claim(support, "lena@test.local", NO_CLICK_ORDER, (now - dt.timedelta(days=2)).date(), "23.40")
    opened = translated(portal_db.app, "Claim #%(id)s opened for %(email)s.", "ru", id=claim_id,
                        email="lena@test.local")
    expect(support.locator(".alert").filter(has_text=opened)).to_be_visible()
    expect(support.locator("#claim-reason")).to_have_attribute("data-reason", "no_click")
    expect(support.locator("#claim-reason")).to_contain_text(translated(portal_db.app, "No click before the order"))
    expect(support.locator("#claim-state")).to_have_text(translated(portal_db.app, "Checked"))
    shown = evidence(support)
    assert (shown["rule"], shown["order_number"]) == ("no_click", NO_CLICK_ORDER)
    assert (shown["clicks_before"], shown["clicks_after"], shown["orders"], shown["events"]) == ([], [], [], [])
    screenshot(support, "1-no-click-verdict")
    claim = portal_db.rows(sa.select(Claim.customer_id, Claim.state, Claim.reason_code, Claim.opened_by, Claim.channel)
                           .where(Claim.id == claim_id))
    assert claim == [(customer_id, "diagnosed", "no_click", "sup_maria", "staff")]

    # --- the templated reply, edited and sent
    reply = support.locator("#reply-form textarea[name=reply]")
    suggested = reply.input_value()
    assert NO_CLICK_ORDER in suggested and "Лена" in suggested
    edited = suggested + "\n\nP.S. Начинайте каждую покупку с нашей ссылки."
    reply.fill(edited)
    support.locator("#reply-form button[type=submit]").click()
    sent = translated(portal_db.app, "The reply is sent: the customer sees it in the cabinet.", "ru")
    expect(support.locator(".alert").filter(has_text=sent)).to_be_visible()
    expect(support.locator("#reply-sent")).to_contain_text("P.S. Начинайте каждую покупку с нашей ссылки.")
    screenshot(support, "2-reply-sent")
    stored = portal_db.scalar(sa.select(Claim.reply_sent).where(Claim.id == claim_id))
    assert stored.replace("\r\n", "\n") == edited  # a textarea sends CRLF line breaks
    assert portal_db.rows(sa.select(AuditRecord.actor).where(AuditRecord.action == "claim.replied",
                                                             AuditRecord.object_id == str(claim_id))) == [
        ("user:sup_maria",)]

    # --- the customer reads it in the cabinet
    customer = new_context().new_page()
    login(customer, "lena@test.local")
    customer.goto("/cabinet/claims/")
    row = customer.locator("#claims tr.claim").filter(has_text=NO_CLICK_ORDER)
    expect(row.locator(".claim-state")).to_have_text(translated(portal_db.app, "Checked"))
    row.get_by_role("link", name=str(claim_id)).click()
    customer.wait_for_url(re.compile(rf"/cabinet/claims/{claim_id}$"))
    expect(customer.locator("#claim-reply")).to_contain_text(NO_CLICK_ORDER)
    expect(customer.locator("#claim-reply")).to_contain_text("P.S. Начинайте каждую покупку с нашей ссылки.")
    screenshot(customer, "3-customer-reads-reply")

    # --- claim 2: our click is there, the network never reported the order: propose a credit
    clicked_at = now - dt.timedelta(hours=3)
    sub_id = portal_db.click(customer_id, PRODUCT, clicked_at)
    second_id = open_claim(support, "lena@test.local", HIJACKED_ORDER, clicked_at.date(), "57.10")
    expect(support.locator("#claim-reason")).to_have_attribute("data-reason", "not_reported")
    shown = evidence(support)
    assert shown["rule"] == "not_reported"
    assert [c["sub_id"] for c in shown["clicks_before"]] == [sub_id]
    propose = support.locator("#propose-form")
    propose.locator("input[name=amount_usd]").fill("3.50")
    propose.locator("textarea[name=reason]").fill("Клик есть в наших логах; компенсация.")
    propose.locator("button[type=submit]").click()
    proposed = translated(portal_db.app, "The credit is proposed: Finance approves it.", "ru")
    expect(support.locator(".alert").filter(has_text=proposed)).to_be_visible()
    credit_row = support.locator("#claim-credits tr")
    expect(credit_row).to_have_count(1)
    expect(credit_row).to_contain_text(translated(portal_db.app, "Awaiting Finance"))
    expect(credit_row).to_contain_text("sup_maria")
    screenshot(support, "4-credit-proposed")
    assert portal_db.rows(sa.select(ClaimCredit.amount_usd, ClaimCredit.state, ClaimCredit.proposed_by)
                          .where(ClaimCredit.claim_id == second_id)) == [(Decimal("3.50"), "proposed", "sup_maria")]
    assert portal_db.scalar(sa.select(Claim.state).where(Claim.id == second_id)) == "diagnosed"
    assert portal_db.balances(customer_id)["available"] == Decimal("0")

    # Support cannot decide it: Finance's credits page is closed to them
    assert support.goto("/claims/credits/").status == 403

    # --- the customer's timeline: both claims, the wallet masked for Support
    support.goto(f"/support/customers/{customer_id}/timeline")
    expect(support.locator("#summary-email")).to_have_text("lena@test.local")
    expect(support.locator("#summary-details")).to_contain_text(MASKED)
    expect(support.locator("#summary-claims")).to_have_text("2")
    expect(support.locator("#timeline")).to_be_visible()
    assert WALLET not in support.content()
    screenshot(support, "5-timeline-masked")


#: role -> (pages it reaches, pages it must not reach): claims, timeline, dashboard, developer desk
MATRIX = {
    "Support": (["/claims/desk/", "/claims/desk/new", "/claims/desk/breaching", "/support/customers/search"],
                ["/claims/credits/", "/finance/dashboard/", "/developers/", "/developers/sandbox", "/cabinet/claims/"]),
    "Finance": (["/claims/credits/", "/claims/desk/", "/finance/dashboard/", "/support/customers/search"],
                ["/claims/desk/new", "/developers/", "/developers/failed-jobs", "/cabinet/claims/"]),
    "Developer": (["/developers/", "/developers/failed-jobs", "/developers/sandbox"],
                  ["/claims/desk/", "/claims/credits/", "/finance/dashboard/", "/support/customers/search",
                   "/cabinet/claims/"]),
    "Customer": (["/cabinet/claims/"],
                 ["/claims/desk/", "/claims/credits/", "/finance/dashboard/", "/developers/",
                  "/support/customers/search"]),
}


@pytest.mark.parametrize("role", sorted(MATRIX))
def test_claims_timeline_dashboard_and_desk_role_matrix(role, page, portal_db):
    if role == "Customer":
        portal_db.customer("oleg@test.local", "Олег")
        username = "oleg@test.local"
    else:
        username = f"{role.lower()}_m"
        portal_db.staff(username, role)
    login(page, username)
    allowed, denied = MATRIX[role]
    assert {url: page.goto(url).status for url in allowed} == dict.fromkeys(allowed, 200)
    refused = {}
    for url in denied:
        response = page.goto(url)
        refused[url] = (response.status, page.url.removeprefix(portal_db.base_url))
    assert refused == {url: (403, url) for url in denied}
