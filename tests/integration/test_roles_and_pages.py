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


def test_sync_roles_is_idempotent(app_ctx, clean_db):
    """Running sync-roles again changes nothing, and every role is defined."""
    first = sync_roles(app_ctx.appbuilder)
    second = sync_roles(app_ctx.appbuilder)
    assert first == second
    assert set(first) == {"Admin", *ROLE_DEFINITIONS}
    assert first["Admin"] > first["Finance"] > first["Support"] > 0


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
