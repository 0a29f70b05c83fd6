"""Static files and the speed of warm pages in Chromium: issue 16, point 10.

Every stylesheet, script and font of a page is linked under a fingerprinted name
(``/assets/<folder>/<fingerprint>/…``) with a year of cache: a warm page load asks the server
for none of them (each resource's ``transferSize`` is 0: from the browser's cache, not even a
304).  The test also prints how long warm pages of each desk take in Chromium, against the
same pages with the old ``/static/…`` links (``ASSET_FINGERPRINTS`` off) measured in the same
run — figures for the record, never an assertion (the machine is shared).
"""
from __future__ import annotations

import statistics

import pytest

from tests.browser.conftest import login

pytestmark = pytest.mark.browser

WARM_LOADS = 3
#: (login's role, its page): the pages people keep open all day.
PAGES = [("Customer", "/cabinet/"), ("Finance", "/payouts/review/"), ("Support", "/claims/desk/breaching"),
         ("Developer", "/developers/"), ("Admin", "/")]

RESOURCES = """() => performance.getEntriesByType('resource').map(e => ({
    url: e.name, type: e.initiatorType, transfer: e.transferSize}))"""
NAVIGATION = """() => { const n = performance.getEntriesByType('navigation')[0];
    return {load: n.loadEventEnd - n.startTime, response: n.responseEnd - n.startTime}; }"""


def _user(portal_db, role: str) -> str:
    if role == "Customer":
        portal_db.customer("speed@example.test")
        return "speed@example.test"
    portal_db.staff(f"speed-{role.lower()}", role)
    return f"speed-{role.lower()}"


def _warm(page, path: str) -> tuple[list[float], list[float], list[dict]]:
    """Load ``path`` once (cold), then WARM_LOADS times: the warm load times, the times until the
    page's HTML was in (the server's share), and the last load's resources."""
    page.goto(path, wait_until="load")
    times, html, resources = [], [], []
    for _ in range(WARM_LOADS):
        page.goto(path, wait_until="load")
        timing = page.evaluate(NAVIGATION)
        times.append(timing["load"])
        html.append(timing["response"])
        resources = page.evaluate(RESOURCES)
    return times, html, resources


@pytest.mark.slow
@pytest.mark.parametrize("role, path", PAGES, ids=[role for role, _ in PAGES])
def test_static_files_are_fingerprinted_and_cached(new_context, portal_db, screenshot, live_app, capsys, role, path):
    page = new_context().new_page()
    page.set_viewport_size({"width": 1366, "height": 768})
    login(page, _user(portal_db, role))
    times, html, resources = _warm(page, path)
    statics = [r for r in resources if r["type"] in ("link", "script", "css")]
    assert len(statics) >= 15, statics  # FAB's stylesheets, scripts and fonts, and ours
    plain = [r["url"] for r in statics if "/assets/" not in r["url"]]
    assert not plain, f"{path}: static files without a fingerprint: {plain}"
    asked = [r["url"] for r in statics if r["transfer"] != 0]
    assert not asked, f"{path}: a warm load asked the server again for {asked}"
    screenshot(page, role)

    live_app.config["ASSET_FINGERPRINTS"] = False  # the same page as before: /static/… with no-cache
    try:
        before, _html, old = _warm(page, path)
    finally:
        live_app.config["ASSET_FINGERPRINTS"] = True
    revalidated = [r for r in old if r["type"] in ("link", "script", "css") and r["transfer"] != 0]
    assert revalidated, "the baseline should revalidate its /static files"  # the comparison is real
    now, was = statistics.median(times), statistics.median(before)
    with capsys.disabled():
        print(f"\nwarm page loads in Chromium, median of {WARM_LOADS} (fingerprinted vs /static/ no-cache): "
              f"{role:<10} {path:<24} warm load {now:5.0f} ms (HTML in at {statistics.median(html):4.0f} ms, "
              f"static files asked: 0)  before: {was:5.0f} ms ({len(revalidated)} asked again)  ratio {now / was:4.2f}")
