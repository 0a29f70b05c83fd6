"""The Alembic revisions build exactly the schema the models describe."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from portal.extensions import db
from portal.models.types import render_item
from tests.conftest import build_app


def _diff(engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "render_item": render_item})
        return compare_metadata(context, db.metadata)


def test_postgres_schema_matches_models(app):
    """After `db upgrade` on PostgreSQL, autogenerate finds nothing to add or change."""
    with app.app_context():
        assert _diff(db.engine) == []


def test_sqlite_schema_matches_models(tmp_path):
    """The same revisions build the embedded SQLite default without drift."""
    app = build_app(f"sqlite:///{tmp_path / 'cashback.db'}")
    with app.app_context():
        assert _diff(db.engine) == []
        tables = sa.inspect(db.engine).get_table_names()
    assert {"ledger_posting", "ledger_entry", "ledger_balance", "audit_log", "customer"} <= set(tables)
