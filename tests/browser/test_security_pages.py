"""Issue 16: Flask-AppBuilder's own security pages in Chromium, as Admin, in Russian (screenshots).

The user accounts list and a login's page, the roles list, a role's page and its edit form read
as words: roles by their labels («Администратор», «Поддержка»), permissions as «просмотр
списка — Клиенты» (their stored names ``can_list`` on ``CustomerView`` never on screen), flags
as «да», nothing as an em dash.
"""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser.conftest import login

pytestmark = pytest.mark.browser

#: FAB's raw values and English titles, and a stored permission or view name in any of its forms
#: (``can_list``, ``can list on CustomerView``, ``menu_access``, ``UserDBModelView``).
RAW = re.compile(r"\b(True|False|None|List Users|List Roles|Show User|Show Role|Edit Role|Email|Is Active)\b"
                 r"|\bcan_\w+|\bcan \w+(?: \w+)* on \b|\bmenu[_ ]access\b|\b\w+(?:View|Api)\b|\[\w+\]")


def _no_raw(page) -> None:
    text = page.locator("body").inner_text()
    found = RAW.search(text)
    assert found is None, f"{found.group(0)!r} on {page.url}"


def test_admin_reads_users_and_roles_in_russian(new_context, portal_db, screenshot):
    portal_db.staff("adm_irina", "Admin")
    helper_id = portal_db.staff("sup_pavel", "Support")
    sm = portal_db.app.appbuilder.sm
    support_id = portal_db.scalar(sa.select(sm.role_model.id).where(sm.role_model.name == "Support"))
    page = new_context().new_page()
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, "adm_irina")
    body = page.locator("body")

    page.goto("/users/list/")
    expect(page.locator(".panel-title, .panel-heading").first).to_contain_text("Учётные записи")
    row = page.locator("tr", has_text="sup_pavel@test.local")
    expect(row).to_contain_text("Поддержка")
    expect(row).to_contain_text("да")
    expect(page.locator("tr", has_text="adm_irina@test.local")).to_contain_text("Администратор")
    expect(body).to_contain_text("Может входить")
    _no_raw(page)
    screenshot(page, "1-users")

    page.goto(f"/users/show/{helper_id}")
    expect(body).to_contain_text("Учётная запись")
    expect(body).to_contain_text("Неудачных входов подряд")
    expect(body).to_contain_text("Поддержка")
    _no_raw(page)
    screenshot(page, "2-user")

    page.goto("/roles/list/")
    support_row = page.locator("tr", has_text="Поддержка").filter(has_text="Клиенты:")
    expect(support_row).to_contain_text("Клиенты: просмотр списка, просмотр записи, блокировка и разблокировка")
    expect(support_row).to_contain_text("Заявки: раздел меню")
    _no_raw(page)
    screenshot(page, "3-roles")

    page.goto(f"/roles/show/{support_id}")
    expect(body).to_contain_text("Название роли")
    expect(body).to_contain_text("Поиск клиентов и их история: открытие страниц")
    expect(body).to_contain_text("sup_pavel@test.local")  # the role's logins, below
    _no_raw(page)
    screenshot(page, "4-role")

    page.goto(f"/roles/edit/{support_id}")
    chosen = page.locator("select#permissions option:checked")
    expect(chosen.filter(has_text="просмотр списка — Клиенты")).to_have_count(1)
    expect(body).to_contain_text("просмотр списка — Клиенты")  # the chosen ones, as select2 shows them
    assert not any(RAW.search(text) for text in page.locator("select#permissions option").all_inner_texts())
    _no_raw(page)
    screenshot(page, "5-role-edit")

    page.goto("/users/add")
    expect(body).to_contain_text("Пароль ещё раз")
    expect(page.locator("select#roles option", has_text="Администратор")).to_have_count(1)
    _no_raw(page)
    screenshot(page, "6-user-add")
