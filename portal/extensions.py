"""Extension singletons that are safe to share between app instances."""
from __future__ import annotations

import sqlalchemy as sa
from flask_appbuilder.models.sqla import Model
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate

#: Flask-SQLAlchemy bound to Flask-AppBuilder's declarative base (one metadata for all).
db = SQLA(model_class=Model)
migrate = Migrate()


@sa.event.listens_for(sa.engine.Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """SQLite: enforce foreign keys and wait for the write lock instead of failing."""
    module = type(dbapi_connection).__module__
    if module.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()
