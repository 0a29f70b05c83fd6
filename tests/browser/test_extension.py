"""The reference browser extension (``extension/``, Manifest V3) in headless Chromium.

The unpacked extension is loaded into a persistent Chromium profile (``--load-extension``);
the AliExpress hosts and the network's ``alitems.site`` are mapped to the local shop with
``--host-resolver-rules`` as in the other journeys.  Toolbar popups cannot be clicked in
headless mode, so the test opens ``chrome-extension://<id>/popup.html?target=<tabId>`` in a
tab of its own: the popup then works on the product tab ``target`` instead of the active tab.

* the journey: portal address in the options page, login in the popup (JWT), the balance
  (pending from a signed postback of an earlier purchase), "Перейти к покупкам в плагине" ->
  a click with channel ``extension`` in the database and the product tab back on the same
  product page via ``/go/<sub_id>`` and the network; a second press within the repeat window
  warns that the customer already went through a link for this product;
* an "ad blocker": the tracking host resolves to nothing (``MAP alitems.site ~NOTFOUND``),
  the popup's probe from the product page fails and it warns;
* a staff login in the popup: the API's 403 ``not_a_customer`` message, no balance;
* the extension's files: manifest, every message key in both locales.
"""
from __future__ import annotations

import json
import re
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask_babel import force_locale
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError, expect

from portal.models import Click, ClickVisit
from portal.services.customer_views import NotACustomer
from tests.browser.conftest import PASSWORD, REPO, SHOP_HOSTS, WAIT_MS, chromium_path
from tests.conftest import READY_SECONDS

pytestmark = pytest.mark.browser

EXTENSION = REPO / "extension"
PRODUCT_ID = "1005001234567890"
PRODUCT_PAGE = f"https://aliexpress.com/item/{PRODUCT_ID}.html"
EARLIER_PRODUCT = "https://aliexpress.ru/item/1005009876543210.html"
GO_BUTTON = "Перейти к покупкам в плагине"
#: 100.00 USD order × the default 7 % = the pending cashback of the earlier purchase
PENDING = Decimal("7.00")


def messages(locale: str) -> dict[str, dict]:
    return json.loads((EXTENSION / "_locales" / locale / "messages.json").read_text(encoding="utf-8"))


@pytest.fixture
def extension_context(browser, shop, live_server, portal_db, tmp_path, request):
    """``extension_context(blocked=())`` -> (context, extension id): Chromium with the unpacked
    extension, Russian UI; ``blocked`` hosts resolve to nothing (an ad blocker, as the page sees it)."""
    contexts = getattr(request.node, "_browser_contexts", None)
    if contexts is None:  # failed tests screenshot every page of these (conftest's hook)
        contexts = request.node._browser_contexts = []
    made = []

    def make(blocked: tuple[str, ...] = ()):
        rules = [f"MAP {host} ~NOTFOUND" for host in blocked]
        rules += [f"MAP {host} 127.0.0.1:{shop.port}" for host in SHOP_HOSTS if host not in blocked]
        context = browser.browser_type.launch_persistent_context(
            str(tmp_path / f"profile-{len(made)}"), executable_path=chromium_path(), headless=True,
            timeout=READY_SECONDS * 1000,
            locale="ru-RU", ignore_https_errors=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=ru",
                  f"--disable-extensions-except={EXTENSION}", f"--load-extension={EXTENSION}",
                  f"--host-resolver-rules={', '.join(rules)}", "--ignore-certificate-errors"])
        context.set_default_timeout(WAIT_MS)
        made.append(context)
        contexts.append(context)
        extension_id = extension_worker(context).url.split("/")[2]
        # the portal's address, through the options page as a customer would set it; Russian
        # chosen there, as Debian's Chromium without chromium-l10n runs its UI in English only
        options = context.new_page()
        options.goto(f"chrome-extension://{extension_id}/options.html")
        expect(options.locator("body")).to_have_attribute("data-loaded", "true")
        expect(options.locator("#portal-url")).to_have_value("http://127.0.0.1:5000")  # the demo's default
        expect(options.locator("#tracking-host")).to_have_value("alitems.site")
        options.locator("#portal-url").fill(live_server)
        options.locator("#language").select_option("ru")
        options.locator("#save").click()
        expect(options.locator("#status")).to_have_text(messages("ru")["saved"]["message"])
        options.close()
        return context, extension_id

    yield make
    for context in made:
        context.close()


def extension_worker(context):
    """The extension's service worker, registered at launch: already there, or awaited (a worker
    that registers between a look and a wait_for_event would be missed by the wait alone)."""
    deadline = time.monotonic() + READY_SECONDS
    while not context.service_workers:
        if time.monotonic() > deadline:
            pytest.fail(f"the extension's service worker did not start within {READY_SECONDS:.0f} s", pytrace=False)
        try:
            context.wait_for_event("serviceworker", timeout=1000)
        except PlaywrightTimeoutError:
            pass
    return context.service_workers[0]


def open_popup(context, extension_id: str, product_url: str):
    """The popup as a tab, targeting the (first) tab showing ``product_url``."""
    popup = context.new_page()
    popup.goto(f"chrome-extension://{extension_id}/popup.html")
    tab_id = popup.evaluate("async (url) => (await chrome.tabs.query({url}))[0].id", product_url)
    popup.goto(f"chrome-extension://{extension_id}/popup.html?target={tab_id}")
    return popup


def popup_login(popup, username: str) -> None:
    expect(popup.locator("#login")).to_be_visible()
    popup.locator("#email").fill(username)
    popup.locator("#password").fill(PASSWORD)
    popup.locator("#login-button").click()


def seed_pending_cashback(portal_db, customer_id: int) -> None:
    """An earlier purchase on another product: a web click, and the network's signed postback "paid"."""
    from portal.extensions import db
    from portal.models import Customer
    from portal.services import clicks

    with portal_db.app.app_context():
        result = clicks.create_click(db.session, db.session.get(Customer, customer_id), EARLIER_PRODUCT, "web",
                                     config=portal_db.app.config)
        sub_id = result.click.sub_id
        db.session.commit()
    answer = portal_db.postback(sub_id, "paid", order="AE-7001", n=1)
    assert answer.status_code == 200, answer.text
    assert portal_db.balances(customer_id)["pending"] == PENDING


def extension_clicks(portal_db, customer_id: int) -> list:
    return portal_db.rows(sa.select(Click.sub_id, Click.product_id, Click.canonical_url, Click.repeat_count)
                          .where(Click.customer_id == customer_id, Click.channel == "extension")
                          .order_by(Click.id))


def test_extension_login_balance_click_and_repeat_warning(extension_context, portal_db, shop, screenshot):
    customer_id = portal_db.customer("anna@test.local")
    portal_db.rate("80.00")
    seed_pending_cashback(portal_db, customer_id)
    context, extension_id = extension_context()
    ru = messages("ru")

    product = context.new_page()
    product.goto(PRODUCT_PAGE)
    expect(product.locator("#product")).to_have_attribute("data-product", PRODUCT_ID)

    # --- log in in the popup (JWT from the customer API); the balance and the product
    popup = open_popup(context, extension_id, PRODUCT_PAGE)
    expect(popup.locator("#login-button")).to_have_text(ru["loginButton"]["message"])
    screenshot(popup, "1-popup-login")
    popup_login(popup, "anna@test.local")
    expect(popup.locator("#account")).to_be_visible()
    expect(popup.locator("#balance-pending .amount")).to_have_text(f"{PENDING:.2f} USD")
    expect(popup.locator("#balance-pending .amount")).to_have_attribute("data-exact", f"{PENDING:.6f}")
    expect(popup.locator("#balance-available .amount")).to_have_text("0.00 USD")
    expect(popup.locator("#balance-pending .rub")).to_have_text("≈ 560.00 ₽")  # 7.00 USD at 80 RUB
    section = popup.locator("#product")
    expect(section).to_have_attribute("data-product", PRODUCT_ID)
    expect(popup.locator("#product-rate")).to_have_text("Кэшбэк 7.00 %")
    expect(section).to_have_attribute("data-probe", "ok")  # the tracking host is reachable: no warning
    expect(popup.locator("#warn-adblock")).to_be_hidden()
    expect(popup.locator("#warn-recent")).to_be_hidden()
    go = popup.get_by_role("button", name=GO_BUTTON)
    expect(go).to_be_visible()
    screenshot(popup, "2-popup-product")

    # --- "Перейти к покупкам в плагине": a click (channel extension), the tab goes /go -> network -> product
    with product.expect_navigation(url=PRODUCT_PAGE):
        go.click()
    expect(popup.locator("#go-message")).to_have_attribute("data-sub-id", re.compile(r"^[A-Za-z0-9_-]{16,}$"))
    sub_id = popup.locator("#go-message").get_attribute("data-sub-id")
    assert extension_clicks(portal_db, customer_id) == [(sub_id, PRODUCT_ID, PRODUCT_PAGE, 1)]
    assert product.url == PRODUCT_PAGE
    expect(product.locator("#product")).to_have_attribute("data-product", PRODUCT_ID)
    assert any(host == "alitems.site" and f"sub={sub_id}" in query for host, _path, query in shop.requests)
    visits = portal_db.rows(sa.select(ClickVisit.channel).join(Click, Click.id == ClickVisit.click_id)
                            .where(Click.sub_id == sub_id))
    assert visits == [("extension",)]
    expect(popup.locator("#warn-recent")).to_be_hidden()  # the first click on this product
    screenshot(product, "3-product-page-after-redirect")

    # --- the popup again within the repeat window: it warns before, and after the second press
    popup.reload()
    warning = popup.locator("#warn-recent")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Вы уже переходили к этому товару через нашу ссылку")
    screenshot(popup, "4-popup-recently")
    with product.expect_navigation(url=PRODUCT_PAGE):
        popup.get_by_role("button", name=GO_BUTTON).click()
    expect(warning).to_contain_text("Это уже 2-й переход к этому товару за 60 мин.")
    expect(popup.locator("#go-message")).not_to_have_attribute("data-sub-id", sub_id)
    second = popup.locator("#go-message").get_attribute("data-sub-id")
    assert extension_clicks(portal_db, customer_id) == [(sub_id, PRODUCT_ID, PRODUCT_PAGE, 1),
                                                        (second, PRODUCT_ID, PRODUCT_PAGE, 2)]
    assert product.url == PRODUCT_PAGE
    screenshot(popup, "5-popup-second-click")


def test_extension_warns_when_the_tracking_host_is_blocked(extension_context, portal_db, screenshot):
    portal_db.customer("boris@test.local", "Борис")
    context, extension_id = extension_context(blocked=("alitems.site",))
    product = context.new_page()
    product.goto(PRODUCT_PAGE)
    popup = open_popup(context, extension_id, PRODUCT_PAGE)
    popup_login(popup, "boris@test.local")
    section = popup.locator("#product")
    expect(section).to_have_attribute("data-probe", "blocked")
    warning = popup.locator("#warn-adblock")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("блокировщик рекламы")
    expect(warning).to_contain_text("alitems.site")
    expect(popup.locator("#balance-pending .amount")).to_have_text("0.00 USD")
    screenshot(popup, "popup-ad-blocker")
    assert portal_db.scalar(sa.select(sa.func.count()).select_from(Click)) == 0  # warned, nothing clicked

    # --- a rejected access token: one refresh with the refresh token, and the popup carries on
    popup.evaluate("chrome.storage.local.set({token: 'not-a-token'})")
    popup.reload()
    expect(popup.locator("#balance-pending .amount")).to_have_text("0.00 USD")
    assert popup.evaluate("chrome.storage.local.get('token').then((s) => s.token)") != "not-a-token"
    # --- both tokens rejected: the login form again, saying why
    popup.evaluate("chrome.storage.local.set({token: 'not-a-token', refreshToken: 'not-either'})")
    popup.reload()
    expect(popup.locator("#login")).to_be_visible()
    expect(popup.locator("#error")).to_have_text(messages("ru")["sessionExpired"]["message"])


def test_extension_refuses_a_staff_login(extension_context, portal_db, screenshot):
    """The customer API is the Customer role's (``customer.self``): a Finance login gets its 403 message."""
    portal_db.staff("olga@finance.test", "Finance")  # an e-mail-like login: the form wants one
    context, extension_id = extension_context()
    popup = context.new_page()
    popup.goto(f"chrome-extension://{extension_id}/popup.html")
    popup_login(popup, "olga@finance.test")
    expect(popup.locator("#error")).to_be_visible()
    with portal_db.app.test_request_context("/"), force_locale("ru"):
        refused = str(NotACustomer.default_message)  # the portal's answer, as a Russian browser gets it
    expect(popup.locator("#error")).to_have_text(refused)
    expect(popup.locator("#balance-pending .amount")).to_have_text("")
    screenshot(popup, "popup-staff-refused")


def test_extension_files_are_complete():
    """MV3 manifest, Russian default, icons present, and every message key used exists in both locales."""
    manifest = json.loads((EXTENSION / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["manifest_version"], manifest["default_locale"]) == (3, "ru")
    for path in list(manifest["icons"].values()) + [manifest["background"]["service_worker"],
                                                     manifest["action"]["default_popup"],
                                                     manifest["options_ui"]["page"]]:
        assert (EXTENSION / path).is_file(), path
    assert all((EXTENSION / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in manifest["icons"].values())
    ru, en = messages("ru"), messages("en")
    assert set(ru) == set(en)
    assert ru["goButton"]["message"] == GO_BUTTON
    used = set()
    for path in EXTENSION.glob("*.html"):
        used |= set(re.findall(r'data-i18n(?:-placeholder)?="(\w+)"', path.read_text(encoding="utf-8")))
    for path in EXTENSION.glob("*.js"):
        used |= set(re.findall(r'\bt\("(\w+)"', path.read_text(encoding="utf-8")))
    used |= set(re.findall(r"__MSG_(\w+)__", json.dumps(manifest)))
    assert used and used <= set(ru), sorted(used - set(ru))
    for key, entry in ru.items():  # the same placeholders in both languages
        assert set(entry.get("placeholders", {})) == set(en[key].get("placeholders", {})), key
    for path in EXTENSION.glob("*.html"):  # no remote code: every script is a file of the extension
        for src in re.findall(r'<script[^>]*src="([^"]+)"', path.read_text(encoding="utf-8")):
            assert (EXTENSION / src).is_file(), (path.name, src)
    assert not any(re.search(r"\beval\(|new Function\(|importScripts\(", p.read_text(encoding="utf-8"))
                   for p in EXTENSION.glob("*.js"))
