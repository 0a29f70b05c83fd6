"""Access and form checks in Chromium (Russian UI) on the live portal.

* Role matrix: each staff role (Support, Finance, Developer) and a Customer reaches its own
  pages (200) and gets FAB's access-denied answer on a sample of the others' pages.  What FAB
  5.3's ``has_access`` does: a signed-in user without the permission gets a plain 403 (no
  redirect); an anonymous visitor is redirected to the login form with the flash
  "Access is Denied".
* Forms that refuse bad input show a visible message and change nothing in the database:
  the cabinet's link form (not an AliExpress link), payout details (a mistyped wallet) and a
  withdrawal above the available balance.
"""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from portal.models import Click, Payout, PayoutDetails
from tests.browser.conftest import login, translated

pytestmark = pytest.mark.browser

#: role -> (pages it reaches, pages of other roles it must not reach)
MATRIX = {
    "Support": (["/customerview/list/", "/orderview/list/", "/payoutview/list/"],
                ["/payouts/review/", "/payouts/providers/", "/postingview/list/", "/postbackrejectionview/list/",
                 "/cabinet/", "/cabinet/withdraw/"]),
    "Finance": (["/payouts/review/", "/payouts/providers/", "/postingview/list/", "/payouts/attention/"],
                ["/postbackrejectionview/list/", "/payouttechview/list/", "/auditlogview/list/", "/cabinet/",
                 "/cabinet/withdraw/"]),
    "Developer": (["/postbackrejectionview/list/", "/payouttechview/list/", "/payouts/providers/"],
                  ["/payouts/review/", "/payouts/attention/", "/payoutview/list/", "/customerview/list/",
                   "/orderview/list/", "/cabinet/withdraw/"]),
    "Customer": (["/cabinet/", "/cabinet/withdraw/", "/cabinet/orders"],
                 ["/customerview/list/", "/payouts/review/", "/payouts/providers/", "/postbackrejectionview/list/",
                  "/payoutview/list/", "/postingview/list/"]),
}


@pytest.mark.parametrize("role", sorted(MATRIX))
def test_each_role_reaches_only_its_pages(role, page, portal_db, screenshot):
    if role == "Customer":
        portal_db.customer("vika@test.local", "Вика")
        username = "vika@test.local"
    else:
        username = f"{role.lower()}_user"
        portal_db.staff(username, role)
    login(page, username)
    allowed, denied = MATRIX[role]
    reached = {url: page.goto(url).status for url in allowed}
    assert reached == dict.fromkeys(allowed, 200)
    refused = {}
    for url in denied:
        response = page.goto(url)
        refused[url] = (response.status, page.url.removeprefix(portal_db.base_url))
    # FAB answers a signed-in user without the permission with 403, on the same address
    assert refused == {url: (403, url) for url in denied}
    screenshot(page, "denied")


def test_developer_sees_providers_without_the_switches(page, portal_db, screenshot):
    """Developers read the provider switchboard (providers.read) but get no kill-switch buttons."""
    portal_db.staff("dev_ivan", "Developer")
    login(page, "dev_ivan")
    page.goto("/payouts/providers/")
    expect(page.locator("tr.provider[data-provider='test']")).to_be_visible()
    expect(page.locator("tr.provider form")).to_have_count(0)
    screenshot(page, "read-only")


def test_anonymous_visitor_is_sent_to_login_with_a_message(page, portal_db, screenshot):
    page.goto("/payouts/review/")
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    denied = translated(portal_db.app, "Access is Denied", "ru")
    expect(page.locator(".alert").filter(has_text=denied)).to_be_visible()
    expect(page.locator("#username")).to_be_visible()
    screenshot(page, "login")


# --- forms that refuse bad input ------------------------------------------------------------

@pytest.fixture
def customer(portal_db, page):
    """A signed-in customer (Russian UI) with 1.00 USD available and Test Bank details."""
    portal_db.rate("80.00")
    customer_id = portal_db.customer("gleb@test.local", "Глеб")
    portal_db.fund(customer_id, "1.00")
    portal_db.old_details(customer_id, "test", "TEST-12345674")
    login(page, "gleb@test.local")
    return customer_id


def test_cabinet_refuses_a_link_that_is_not_aliexpress(page, portal_db, customer, screenshot):
    page.goto("/cabinet/")
    page.locator("input[name=url]").fill("https://aliexpress.com.evil.ru/item/1005001234567890.html")
    page.get_by_role("button", name="Купить с кэшбэком").click()
    message = translated(portal_db.app, "This is not an AliExpress link: we accept only links to aliexpress.com,"
                                        " aliexpress.ru and aliexpress.us. Paste a link to a product page on"
                                        " AliExpress, for example %(example)s", "ru",
                         example="https://aliexpress.com/item/1005001234567890.html")
    expect(page.locator("#link-error")).to_have_text(message)
    expect(page.locator("input[name=url]")).to_have_value("https://aliexpress.com.evil.ru/item/1005001234567890.html")
    screenshot(page, "refused")
    assert portal_db.scalar(sa.select(sa.func.count()).select_from(Click)) == 0


def test_payout_details_refuse_a_mistyped_wallet(page, portal_db, customer, screenshot):
    page.goto("/cabinet/withdraw/")
    form = page.locator("#details-form")
    form.locator("select[name=provider]").select_option("test")
    form.locator("input[name=account]").fill("TEST-12345675")  # the check digit should be 4
    form.get_by_role("button").click()
    message = translated(portal_db.app, "This wallet number has a typo: please check the digits.", "ru")
    expect(page.locator("#details-form .help-block.error")).to_have_text(message)
    screenshot(page, "refused")
    assert portal_db.rows(sa.select(PayoutDetails.account).where(PayoutDetails.customer_id == customer)) == [
        ("TEST-12345674",)]


def test_withdrawal_above_the_balance_is_refused(page, portal_db, customer, screenshot):
    page.goto("/cabinet/withdraw/")
    form = page.locator("#withdraw-form")
    form.locator("input[name=amount]").fill("5.00")
    form.get_by_role("button").click()
    message = translated(portal_db.app, "There is not enough available cashback for this withdrawal.", "ru")
    expect(page.locator("#withdraw-error")).to_have_text(message)
    expect(page.locator("#no-withdrawals")).to_be_visible()
    screenshot(page, "refused")
    assert portal_db.scalar(sa.select(sa.func.count()).select_from(Payout)) == 0
    balances = portal_db.balances(customer)
    assert (balances["available"], balances["on_hold"]) == (Decimal("1.00"), Decimal("0"))
