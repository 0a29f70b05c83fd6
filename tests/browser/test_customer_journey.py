"""Journey 1, the customer, in Chromium with the Russian UI, end to end on the live portal.

Log in -> paste a product link -> "Купить с кэшбэком" -> the ready page -> "Continue" -> /go/… ->
the network -> the (local) AliExpress product page; the network's signed postbacks make the
cashback pending, then available; payout details (Test Bank) and a withdrawal; new details send
it to review, a Finance user approves it in a second browser context; the in-process worker
pays it through the Test Bank sandbox and the withdraw page shows it paid.
"""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from portal.models import Click, ClickVisit, Payout, PayoutDetails
from tests.browser.conftest import login, translated

pytestmark = pytest.mark.browser

LINK = "https://aliexpress.ru/item/1005001234567890.html?spm=a2g0o.productlist"
PRODUCT_ID = "1005001234567890"
PRODUCT_PAGE = f"https://aliexpress.ru/item/{PRODUCT_ID}.html"  # LINK is on .ru: the product stays there
WALLET = "TEST-12345674"  # a valid Test Bank wallet (Luhn check digit 4)
#: order 100.00 USD × the default rate 7 % (below the network's 8.00 commission) = the customer's cashback
CASHBACK = Decimal("7.00")
WITHDRAW = Decimal("2.50")


def shown(amount: Decimal) -> re.Pattern:
    """The figure as a page may show it: ``0.56`` or ``0,56`` (the locale's separator)."""
    whole, cents = f"{amount:.2f}".split(".")
    return re.compile(rf"(?<![\d.,]){whole}[.,]{cents}(?!\d)")


def test_customer_buys_earns_and_withdraws(page, new_context, portal_db, shop, screenshot):
    customer_id = portal_db.customer("anna@test.local")
    portal_db.rate("80.00")  # rubles per dollar today: Test Bank pays in RUB

    # --- log in through the form, Russian UI
    login(page, "anna@test.local")
    page.goto("/cabinet/")
    expect(page.get_by_role("button", name="Купить с кэшбэком")).to_be_visible()
    screenshot(page, "1-cabinet")

    # --- paste the product link, buy with cashback, the ready page
    page.locator("input[name=url]").fill(LINK)
    page.get_by_role("button", name="Купить с кэшбэком").click()
    page.wait_for_url(re.compile(r"/cabinet/ready/[A-Za-z0-9_-]+$"))
    sub_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#click-info")).to_be_visible()
    expect(page.get_by_text(PRODUCT_PAGE).first).to_be_visible()
    screenshot(page, "2-ready")

    # --- continue: /go/<sub_id> -> the network -> the product page
    continue_link = page.locator("#continue")
    expect(continue_link).to_have_attribute("href", f"/go/{sub_id}")
    continue_link.click()
    page.wait_for_url(PRODUCT_PAGE)
    expect(page.locator("#product")).to_have_attribute("data-product", PRODUCT_ID)
    screenshot(page, "3-product-page")
    assert page.url == PRODUCT_PAGE
    assert any(host == "alitems.site" and f"sub={sub_id}" in query for host, _path, query in shop.requests)
    click = portal_db.rows(sa.select(Click.customer_id, Click.product_id, Click.channel, Click.canonical_url)
                           .where(Click.sub_id == sub_id))
    assert click == [(customer_id, PRODUCT_ID, "web", PRODUCT_PAGE)]
    visits = portal_db.rows(sa.select(ClickVisit.channel).join(Click, Click.id == ClickVisit.click_id)
                            .where(Click.sub_id == sub_id))
    assert visits == [("web",)]

    # --- the network reports the order paid: pending cashback
    answer = portal_db.postback(sub_id, "paid", order="AE-1001", n=1)
    assert answer.status_code == 200, answer.text
    page.goto("/cabinet/")
    expect(page.locator("#balance-pending td").first).to_have_text(shown(CASHBACK))
    expect(page.locator("#balance-available td").first).to_have_text(shown(Decimal("0")))
    screenshot(page, "4-pending")
    balances = portal_db.balances(customer_id)
    assert (balances["pending"], balances["available"]) == (CASHBACK, Decimal("0"))

    # --- confirmed: available
    answer = portal_db.postback(sub_id, "confirmed", order="AE-1001", n=2)
    assert answer.status_code == 200, answer.text
    page.reload()
    expect(page.locator("#balance-available td").first).to_have_text(shown(CASHBACK))
    expect(page.locator("#balance-pending td").first).to_have_text(shown(Decimal("0")))
    screenshot(page, "5-available")
    balances = portal_db.balances(customer_id)
    assert (balances["pending"], balances["available"]) == (Decimal("0"), CASHBACK)

    # --- payout details (Test Bank) and a withdrawal
    page.goto("/cabinet/withdraw/")
    expect(page.locator("#available-balance")).to_contain_text(shown(CASHBACK))
    details_form = page.locator("#details-form")
    details_form.locator("select[name=provider]").select_option("test")
    details_form.locator("input[name=account]").fill(WALLET)
    details_form.get_by_role("button").click()
    expect(page.locator("#payout-details tr.payout-details")).to_have_count(1)
    assert portal_db.rows(sa.select(PayoutDetails.provider_code, PayoutDetails.account)
                          .where(PayoutDetails.customer_id == customer_id)) == [("test", WALLET)]

    withdraw_form = page.locator("#withdraw-form")
    withdraw_form.locator("input[name=amount]").fill(f"{WITHDRAW}")
    withdraw_form.get_by_role("button").click()
    row = page.locator("#withdrawals tr.withdrawal")
    expect(row).to_have_count(1)
    payout_id = int(row.get_attribute("data-payout"))
    screenshot(page, "6-withdrawal-requested")
    payout = portal_db.rows(sa.select(Payout.state, Payout.amount_usd, Payout.review_reasons)
                            .where(Payout.id == payout_id))[0]
    assert payout.amount_usd == WITHDRAW

    # --- new details (younger than NEW_DETAILS_HOURS): review; Finance approves it in a second context
    assert (payout.state, payout.review_reasons) == ("in_review", ["new_payout_details"])
    expect(row).to_have_attribute("data-state", "in_review")
    portal_db.staff("fin_olga", "Finance")
    finance = new_context().new_page()
    login(finance, "fin_olga")
    finance.goto("/payouts/review/")
    queued = finance.locator(f"tr.review-row[data-payout='{payout_id}']")
    expect(queued).to_contain_text("anna@test.local")
    queued.locator("input[name=reason]").fill("Реквизиты проверены")
    queued.locator("button[value=approve]").click()
    expect(finance.locator(f"tr.review-row[data-payout='{payout_id}']")).to_have_count(0)
    approved = translated(portal_db.app, "Payout #%(id)s approved: it goes to the provider now.", "ru",
                          id=payout_id)
    expect(finance.locator(".alert").filter(has_text=approved)).to_be_visible()
    screenshot(finance, "7-finance-approved")

    # --- the worker pays it through the Test Bank sandbox
    assert portal_db.wait_for_payout(payout_id) == "succeeded"
    page.reload()
    paid = page.locator(f"#withdrawals tr.withdrawal[data-payout='{payout_id}']")
    expect(paid).to_have_attribute("data-state", "succeeded")
    expect(paid).to_contain_text(translated(portal_db.app, "Paid", "ru"))
    expect(page.locator("#available-balance")).to_contain_text(shown(CASHBACK - WITHDRAW))
    screenshot(page, "8-paid")
    balances = portal_db.balances(customer_id)
    assert (balances["available"], balances["on_hold"]) == (CASHBACK - WITHDRAW, Decimal("0"))
