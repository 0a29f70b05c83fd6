"""First impressions in Chromium (Russian UI, 1366 px wide): issue 16, points 1, 2, 5 and 6.

* the registration form's language is a drop-down, not a 40-row list box;
* ``/`` for an anonymous visitor says what the service is and offers «Регистрация»; after the
  login form each role lands on its own page (customer: cabinet, Support: claims breaching the
  SLA, Finance: the review queue, Developer: the developer desk, Admin: the desks page);
* 403 and 404 are pages of the portal (navbar, Russian text, a way back), not Werkzeug's;
* the Admin's navbar stays on one row at 1366 px, has no «Личный кабинет», and the claims menu
  does not repeat its own name.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login, translated

pytestmark = pytest.mark.browser

WIDE = {"width": 1366, "height": 768}


@pytest.fixture
def wide(new_context):
    """A Russian page 1366 px wide (a common office laptop)."""
    context = new_context()
    page = context.new_page()
    page.set_viewport_size(WIDE)
    return page


def t(app, msgid: str, **values) -> str:
    return translated(app, msgid, **values)


def test_register_language_is_a_drop_down(wide, screenshot, live_app):
    """Point 1: the language select has no ``size`` (a list box of 40 rows) and is one line high."""
    page = wide
    page.goto("/register/")
    select = page.locator("select#locale")
    expect(select).to_be_visible()
    assert select.get_attribute("size") is None
    height = select.bounding_box()["height"]
    field = page.locator("input#email").bounding_box()["height"]
    assert height <= field * 1.5, f"the select is {height}px high, a text field {field}px"
    expect(select.locator("option:checked")).to_have_text("Русский")
    screenshot(page, "register")


def test_anonymous_landing_page(wide, screenshot, live_app):
    """Point 2: ``/`` tells an anonymous visitor what the service is, with «Регистрация» and the login."""
    page = wide
    page.goto("/")
    assert page.url.endswith("/")
    expect(page.locator("#landing-title")).to_have_text(live_app.config["APP_NAME"])
    expect(page.locator("#landing-what")).to_contain_text("AliExpress")
    expect(page.locator("#landing-register")).to_have_text(t(live_app, "Sign up"))
    assert t(live_app, "Sign up") == "Регистрация"
    expect(page).to_have_title(live_app.config["APP_NAME"])
    screenshot(page, "landing")
    page.locator("#landing-register").click()
    page.wait_for_url("**/register/")
    page.goto("/")
    page.locator("#landing-login").click()
    page.wait_for_url("**/login/")
    expect(page.locator("label[for=username]")).to_have_text(t(live_app, "E-mail or username"))
    screenshot(page, "login")


@pytest.mark.parametrize(("role", "landing", "heading"), [
    ("Finance", "/payouts/review/", None),
    ("Support", "/claims/desk/breaching", "Claims breaching the SLA"),
    ("Developer", "/developers/", None),
    ("Admin", "/", "Desks"),
])
def test_each_role_lands_on_its_desk(new_context, portal_db, screenshot, live_app, role, landing, heading):
    """Point 2: after the login form, each staff role is on its own page (not FAB's empty welcome)."""
    page = new_context().new_page()
    page.set_viewport_size(WIDE)
    portal_db.staff(f"{role.lower()}1", role)
    login(page, f"{role.lower()}1")
    page.wait_for_load_state()
    assert page.url.endswith(landing), page.url
    if heading:
        expect(page.locator("h2").first).to_contain_text(t(live_app, heading))
    expect(page.locator("body")).not_to_contain_text("Добро пожаловать")
    screenshot(page, f"landing-{role}")


def test_customer_lands_in_the_cabinet(page, portal_db, screenshot, live_app):
    """Point 2: a customer logs in with the e-mail and is in the cabinet."""
    page.set_viewport_size(WIDE)
    portal_db.customer("landing@example.test")
    login(page, "landing@example.test")
    page.wait_for_url("**/cabinet/")
    expect(page.locator("h2").first).to_have_text(t(live_app, "Cabinet"))
    screenshot(page, "cabinet")


def test_not_found_is_a_portal_page(wide, portal_db, screenshot, live_app):
    """Point 5: a 404 keeps the navbar, speaks Russian and leads back."""
    page = wide
    response = page.goto("/no/such/page")
    assert response.status == 404
    expect(page.locator("#error-title")).to_contain_text(t(live_app, "Page not found"))
    expect(page.locator(".navbar")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("Not Found")
    screenshot(page, "404-anonymous")
    page.locator("#error-home").click()
    page.wait_for_url(lambda url: url.rstrip("/").count("/") == 2)  # the start page
    expect(page.locator("#landing-title")).to_be_visible()

    portal_db.staff("support404", "Support")
    login(page, "support404")
    response = page.goto("/claims/desk/99999999")
    assert response.status == 404
    expect(page.locator("#error-message")).to_have_text(
        t(live_app, "There is no such page: the address may be mistyped, or the page was removed."))
    screenshot(page, "404-support")


def test_forbidden_is_a_portal_page(wide, portal_db, screenshot, live_app):
    """Point 5: a 403 (Support on Finance's review queue) in the layout, with a way back to the own desk."""
    page = wide
    portal_db.staff("support403", "Support")
    login(page, "support403")
    response = page.goto("/payouts/review/")
    assert response.status == 403
    expect(page.locator("#error-title")).to_contain_text(t(live_app, "Access denied"))
    expect(page.locator(".navbar")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("Forbidden")
    screenshot(page, "403")
    page.locator("#error-home").click()
    page.wait_for_url("**/claims/desk/breaching")


def test_admin_navbar_is_one_row_without_the_cabinet(wide, portal_db, screenshot, live_app):
    """Point 6: at 1366 px (and down to 900 px) the Admin's navbar is one row; no «Личный кабинет» (every page of it would
    only say "not a customer"); no menu entry repeats its menu's name (no «Заявки → Заявки»)."""
    page = wide
    portal_db.staff("admin6", "Admin")
    login(page, "admin6")
    page.goto("/")
    navbar = page.locator("#navbar")
    menus = page.locator("#navbar-menu > li")
    assert menus.count() >= 7
    for width in (1366, 1280, 1024, 900):  # one row down to 900 px (icons and the login's name go first)
        page.set_viewport_size({"width": width, "height": 768})
        brand = page.locator("#navbar-brand").bounding_box()
        user = page.locator("#navbar-user").bounding_box()
        tops = {round(menus.nth(i).bounding_box()["y"]) for i in range(menus.count())}
        assert tops == {round(brand["y"])} or len(tops) == 1, f"menus on {len(tops)} rows at {width} px"
        assert abs(user["y"] - menus.first.bounding_box()["y"]) < 5, f"the login's menu is on another row at {width} px"
        assert navbar.bounding_box()["height"] < 70, f"{width} px"
        if width == 1024:
            screenshot(page, "admin-navbar-1024")
    page.set_viewport_size(WIDE)
    assert t(live_app, "Cabinet") not in page.locator("#navbar-menu").inner_text()
    for i in range(menus.count()):
        item = menus.nth(i)
        label = item.locator("> a").inner_text().strip()
        entries = [e.strip() for e in item.locator(".dropdown-menu > li > a").all_inner_texts()]
        assert label not in entries, f"«{label}» repeats itself: {entries}"
    page.locator("#navbar-menu > li", has_text=t(live_app, "Claims")).locator("> a").click()
    screenshot(page, "admin-navbar")
