"""The customer's side in Chromium (Russian UI, 1366 px): issue 16, point 7.

* an unconfirmed self-registered customer sees the warning and «send the link again» on the
  cabinet and the withdraw page (where it matters), and the resend brings them back there;
* the navbar's «Профиль» is the cabinet's own profile page (language, password), not FAB's
  user record; the password changes after the current one, the language switches the pages;
* the ready page's product link goes through the tracking redirect and keeps the .ru site.
"""
from __future__ import annotations

import sqlalchemy as sa
import pytest
from playwright.sync_api import expect

from portal.models import Click, ClickVisit, Customer
from tests.browser.conftest import PASSWORD, login, translated

pytestmark = pytest.mark.browser

WIDE = {"width": 1366, "height": 768}
LINK = "https://aliexpress.ru/item/1005001234567890.html?spm=a2g0o.detail"
PRODUCT_PAGE = "https://aliexpress.ru/item/1005001234567890.html"


def t(app, msgid: str, **values) -> str:
    return translated(app, msgid, **values)


def _unconfirmed(portal_db, customer_id: int) -> None:
    """The customer as if self-registered and not confirmed yet (a registration fingerprint)."""
    from portal.extensions import db

    with portal_db.app.app_context():
        db.session.get(Customer, customer_id).registration_fingerprint = "f" * 64
        db.session.commit()


def test_unconfirmed_warning_where_withdrawal_needs_it(page, portal_db, screenshot, live_app):
    page.set_viewport_size(WIDE)
    customer_id = portal_db.customer("unconfirmed@example.test")
    _unconfirmed(portal_db, customer_id)
    login(page, "unconfirmed@example.test")
    warning = t(live_app, "Your e-mail address %(email)s is not confirmed yet: withdrawals open once it is.",
                email="unconfirmed@example.test")
    expect(page.locator("#confirm-pending")).to_contain_text(warning)  # the cabinet, where login lands
    screenshot(page, "cabinet")
    page.goto("/cabinet/withdraw/")
    expect(page.locator("#confirm-pending")).to_contain_text(warning)
    page.locator("#resend-submit").click()
    page.wait_for_url("**/cabinet/withdraw/")
    expect(page.locator(".alert-success")).to_contain_text(
        t(live_app, "We sent a new confirmation link to %(email)s.", email="unconfirmed@example.test"))
    screenshot(page, "withdraw-resent")


def test_profile_page_password_and_language(page, portal_db, screenshot, live_app):
    page.set_viewport_size(WIDE)
    portal_db.customer("profile@example.test")
    login(page, "profile@example.test")
    page.locator("#navbar-user > a").click()
    page.locator("#navbar-profile").click()
    page.wait_for_url("**/cabinet/profile/")
    expect(page.locator("#profile-email")).to_contain_text("profile@example.test")
    expect(page.locator("#locale option:checked")).to_have_text("Русский")
    screenshot(page, "profile")
    assert page.goto("/users/userinfo/").status == 403  # FAB's raw user record is for staff

    page.goto("/cabinet/profile/")
    page.fill("#current", "not-the-password")
    page.fill("#password", "a-new-password-16")
    page.fill("#password2", "a-new-password-16")
    page.locator("#password-submit").click()
    expect(page.locator("#group-current .error")).to_have_text(t(live_app, "The current password is not right."))
    screenshot(page, "wrong-current")
    page.fill("#current", PASSWORD)
    page.fill("#password", "a-new-password-16")
    page.fill("#password2", "a-new-password-16")
    page.locator("#password-submit").click()
    page.wait_for_url("**/cabinet/profile/")
    expect(page.locator(".alert-success")).to_contain_text(t(live_app, "Your new password is set."))

    page.select_option("#locale", "en")
    page.locator("#locale-submit").click()
    page.wait_for_url("**/cabinet/profile/")
    expect(page.locator("h2").first).to_have_text("Profile")
    assert portal_db.scalar(sa.select(Customer.locale).where(Customer.email == "profile@example.test")) == "en"
    screenshot(page, "english")

    page.goto("/logout/")
    login(page, "profile@example.test", "a-new-password-16")
    page.wait_for_url("**/cabinet/")


def test_ready_page_product_link_is_tracked_and_stays_on_ru(page, portal_db, screenshot, live_app, shop):
    page.set_viewport_size(WIDE)
    portal_db.customer("ready@example.test")
    login(page, "ready@example.test")
    page.fill("#url", LINK)
    page.locator("form[action='/cabinet/buy'] [type=submit]").click()
    page.wait_for_url("**/cabinet/ready/*")
    sub_id = page.url.rsplit("/", 1)[1]
    product = page.locator("#product-link")
    expect(product).to_have_text(PRODUCT_PAGE)
    expect(product).to_have_attribute("href", f"/go/{sub_id}")
    screenshot(page, "ready")
    product.click()
    page.wait_for_url(PRODUCT_PAGE)
    assert any(host == "alitems.site" and f"sub={sub_id}" in query and "aliexpress.ru" in query
               for host, _path, query in shop.requests)
    visits = portal_db.rows(sa.select(ClickVisit.id).join(Click, Click.id == ClickVisit.click_id)
                            .where(Click.sub_id == sub_id))
    assert len(visits) == 1
