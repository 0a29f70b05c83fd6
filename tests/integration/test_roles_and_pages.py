"""Roles as code: the RBAC matrix holds in the portal, and pages render."""
from __future__ import annotations

import pytest

from portal.extensions import db
from portal.models import AuditRecord
from portal.security import ROLE_DEFINITIONS, sync_roles
from tests.conftest import login

#: (role, url, expected status) — the DESIGN.md matrix, as far as pages exist today.
MATRIX = [
    ("Support", "/customerview/list/", 200),
    ("Support", "/postingview/list/", 403),   # ledger is Finance's
    ("Support", "/accountview/list/", 403),
    ("Support", "/auditlogview/list/", 403),
    ("Support", "/users/list/", 403),
    ("Finance", "/customerview/list/", 200),
    ("Finance", "/postingview/list/", 200),
    ("Finance", "/accountview/list/", 200),
    ("Finance", "/auditlogview/list/", 403),
    ("Developer", "/customerview/list/", 403),  # no PII for developers
    ("Developer", "/postingview/list/", 403),
    ("Customer", "/customerview/list/", 403),
    ("Customer", "/postingview/list/", 403),
    ("Admin", "/auditlogview/list/", 200),
    ("Admin", "/postingview/list/", 200),
    ("Admin", "/users/list/", 200),
]


@pytest.mark.parametrize("role,url,status", MATRIX)
def test_permission_matrix(client, make_user, role, url, status):
    """Each role reaches its pages and gets 403 on the others."""
    make_user(f"u_{role.lower()}", role)
    login(client, f"u_{role.lower()}")
    assert client.get(url).status_code == status


def test_anonymous_is_sent_to_login(client):
    """Without a login, staff pages redirect to the login form."""
    response = client.get("/postingview/list/")
    assert response.status_code == 302 and "/login/" in response.headers["Location"]


@pytest.mark.slow
def test_sync_roles_is_idempotent(app_ctx, clean_db):
    """Running sync-roles again changes nothing, and every role is defined."""
    first = sync_roles(app_ctx.appbuilder)
    second = sync_roles(app_ctx.appbuilder)
    assert first == second
    assert set(first) == {"Admin", *ROLE_DEFINITIONS}
    assert first["Admin"] > first["Finance"] > first["Support"] > 0


@pytest.mark.slow
def test_sync_roles_restores_a_removed_permission(app_ctx, clean_db):
    """A role edited by hand is put back to its definition."""
    sm = app_ctx.appbuilder.sm
    finance = sm.find_role("Finance")
    count = len(finance.permissions)
    finance.permissions = finance.permissions[:1]
    db.session.commit()
    sync_roles(app_ctx.appbuilder)
    assert len(sm.find_role("Finance").permissions) == count


def test_login_page_renders(client):
    """The login page renders with its form."""
    response = client.get("/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.data and b'name="password"' in response.data


def test_audit_log_lists_records_for_admin(app, client, make_user):
    """An audit record written by a command shows in the Admin's audit list."""
    make_user("root", "Admin")
    with app.app_context():
        db.session.add(AuditRecord(actor="system:test", action="ledger.adjustment.approved",
                                   object_type="posting", object_id="42", reason="test reason"))
        db.session.commit()
    login(client, "root")
    response = client.get("/auditlogview/list/")
    assert response.status_code == 200
    assert b"ledger.adjustment.approved" in response.data and b"test reason" in response.data


def test_every_permission_and_page_has_a_label(app_ctx):
    """Each (permission, page) pair sync-roles creates reads as words in Russian: a new view,
    action or menu entry without a label in ``portal.labels`` fails here (its stored name would
    show on the roles pages)."""
    from flask_babel import force_locale

    from portal import labels

    sm = app_ctx.appbuilder.sm
    pairs = db.session.query(sm.permissionview_model).all()
    assert len(pairs) > 100
    with app_ctx.test_request_context("/"), force_locale("ru"):
        unlabelled = sorted({pv.permission.name for pv in pairs
                             if labels.permission_name(pv.permission.name) == pv.permission.name}
                            | {pv.view_menu.name for pv in pairs
                               if labels.view_menu_name(pv.view_menu.name) == pv.view_menu.name})
        assert not unlabelled, f"no label in portal.labels for: {unlabelled}"
        customers = sm.find_permission_view_menu("can_list", "CustomerView")
        assert labels.permission_view_name(customers) == "просмотр списка — Клиенты"
        finance = sm.find_permission_view_menu("menu_access", "Finance")
        assert labels.permission_view_name(finance) == "раздел меню — Финансы"


def test_security_pages_in_english_read_as_labels_and_keep_the_stored_names(app, client, make_user):
    """The roles and users pages show permissions and roles by their labels in English too; the
    stored names (which permission checks match) are untouched, and the role still works."""
    make_user("root", "Admin")
    make_user("helper", "Support")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    login(client, "root")
    with app.app_context():
        sm = app.appbuilder.sm
        support = sm.find_role("Support")
        support_id = support.id
        assert sm.find_permission_view_menu("can_list", "CustomerView") in support.permissions
    shown = client.get(f"/roles/show/{support_id}").get_data(as_text=True)
    assert "Customers: view the list, view a record, block and unblock, menu item" in shown
    assert "can_list" not in shown and "can list on" not in shown and "CustomerView" not in shown
    form = client.get(f"/roles/edit/{support_id}").get_data(as_text=True)
    assert ">view the list — Customers<" in form and "can list on" not in form
    users = client.get("/users/list/").get_data(as_text=True)
    assert "User accounts" in users and "Administrator" in users and "[Support]" not in users
    assert ">True<" not in users
    # the labels changed nothing: the Support login still reaches its pages, and only those
    helper = app.test_client()
    login(helper, "helper")
    assert helper.get("/customerview/list/").status_code == 200
    assert helper.get("/users/list/").status_code == 403


def test_a_one_word_name_has_no_dash_for_a_last_name(app, client, make_user):
    """A customer registered as «Анна» is «Анна» in the navbar and on the user pages, never «Анна -»;
    a login stored with the old ``-`` reads the same, and its edit form shows the last name empty."""
    from portal.services import customers
    from portal.services.audit import Actor

    make_user("root", "Admin")
    with app.app_context():
        customer = customers.create_customer(db.session, app.appbuilder.sm, email="anna@test.local", name="Анна",
                                             password="pw-" + "x" * 8, actor=Actor.system("test"))
        old = app.appbuilder.sm.add_user(username="olga", first_name="Ольга", last_name="-", email="olga@test.local",
                                         role=app.appbuilder.sm.find_role("Support"), password="pw-" + "x" * 8)
        db.session.commit()
        anna_id, olga_id = customer.user_id, old.id
        assert customer.user.last_name == ""
    anna = app.test_client()
    login(anna, "anna@test.local")
    page = anna.get("/cabinet/").get_data(as_text=True)
    assert '<span class="navbar-user-name">Анна</span>' in page
    login(client, "root")
    for user_id in (anna_id, olga_id):
        shown = client.get(f"/users/show/{user_id}").get_data(as_text=True)
        assert ">-<" not in shown and " -<" not in shown
    form = client.get(f"/users/edit/{olga_id}").get_data(as_text=True)
    assert 'name="last_name"' in form and 'value="-"' not in form
    with app.app_context():
        support_id = app.appbuilder.sm.find_role("Support").id
    response = client.post(f"/users/edit/{olga_id}", data={"first_name": "Ольга", "last_name": "", "username": "olga",
                                                         "email": "olga@test.local", "active": "y",
                                                         "roles": [str(support_id)]})
    assert response.status_code == 302  # saved without a last name
    with app.app_context():
        assert app.appbuilder.sm.get_user_by_id(olga_id).last_name == ""


def test_copying_a_role_names_the_copy_in_the_readers_language(app, client, make_user):
    """FAB's «copy role» action: «Поддержка (копия)» with the same permissions, not «Support copy»."""
    make_user("root", "Admin")
    login(client, "root")
    sm = app.appbuilder.sm
    with app.app_context():
        support = sm.find_role("Support")
        support_id, wanted = support.id, {pv.id for pv in support.permissions}
    try:
        response = client.post("/roles/action_post", data={"action": "copyrole", "rowid": [str(support_id)]})
        assert response.status_code == 302
        with app.app_context():
            copy = sm.find_role("Поддержка (копия)")
            assert copy is not None and {pv.id for pv in copy.permissions} == wanted
            assert {pv.id for pv in sm.find_role("Support").permissions} == wanted
    finally:  # roles outlive a test's data: the copy goes
        with app.app_context():
            copy = sm.find_role("Поддержка (копия)")
            if copy is not None:
                db.session.delete(copy)
                db.session.commit()
