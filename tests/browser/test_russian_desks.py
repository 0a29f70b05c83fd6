"""Issue 16 points 4 and 9 in Chromium (Russian UI), with screenshots.

* Point 4: Finance's payout list, a payout and the ledger accounts read in Russian — titles,
  states, provider names, yes/no — with no raw code or English title on screen.
* Point 9: the kill switch asks first — an empty reason is stopped by the browser (no dialog,
  nothing sent), Cancel in the confirmation sends nothing, OK switches the provider off; the
  ledger accounts list shows balances.
"""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from portal.models import ProviderState
from tests.browser.conftest import login

pytestmark = pytest.mark.browser

RAW = re.compile(r"\b(in_review|succeeded|on_hold|True|False|None|List |Show |Detail)\b")


def test_finance_pages_read_in_russian_and_the_kill_switch_asks(new_context, portal_db, screenshot):
    portal_db.rate("80.00")
    customer_id = portal_db.customer("nina@test.local", "Нина")
    portal_db.fund(customer_id, "300.00")
    details_id = portal_db.old_details(customer_id, "test", "TEST-12345674")
    payout_id, state, _needed = portal_db.withdrawal(customer_id, details_id, "150.00", "ru-1")
    portal_db.staff("fin_olga", "Finance")
    page = new_context().new_page()
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, "fin_olga")

    page.goto("/payoutview/list/")
    body = page.locator("body")
    expect(body).to_contain_text("Тестовый банк")
    assert not RAW.search(body.inner_text()), RAW.search(body.inner_text())
    screenshot(page, "1-payouts")
    page.goto(f"/payoutview/show/{payout_id}")
    expect(body).to_contain_text("Выплата")
    assert not RAW.search(body.inner_text()), RAW.search(body.inner_text())
    screenshot(page, "2-payout")

    page.goto("/accountview/list/")
    expect(body).to_contain_text("Баланс")
    expect(body).to_contain_text(f"Клиент №{customer_id}")
    assert not RAW.search(body.inner_text()), RAW.search(body.inner_text())
    screenshot(page, "3-ledger-accounts")

    page.goto("/payouts/providers/")
    row = page.locator("tr.provider[data-provider='test']")
    row.locator("button.btn-danger").click()  # no reason: the browser stops it, no dialog
    expect(page.locator("#modal-confirm")).to_be_hidden()
    row.locator("input[name=reason]").fill("Плановые работы")
    row.locator("button.btn-danger").click()
    dialog = page.locator("#modal-confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Отключить Тестовый банк")
    screenshot(page, "4-kill-switch-asks")
    dialog.locator("button[data-dismiss=modal]").click()  # Отмена
    expect(dialog).to_be_hidden()
    assert portal_db.scalar(sa.select(ProviderState.enabled).where(ProviderState.code == "test")) in (None, True)
    row.locator("button.btn-danger").click()
    expect(dialog).to_be_visible()
    page.locator("#modal-confirm-ok").click()
    expect(page.locator("tr.provider[data-provider='test'] td.switch .label-danger")).to_be_visible()
    assert portal_db.scalar(sa.select(ProviderState.enabled).where(ProviderState.code == "test")) is False
    screenshot(page, "5-switched-off")
