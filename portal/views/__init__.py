"""Portal views: thin, read from models, call services.  ``register`` adds them all."""
from __future__ import annotations

from flask_appbuilder import AppBuilder


def register(appbuilder: AppBuilder) -> None:
    from portal import api

    from . import admin, ledger, people

    people.register(appbuilder)
    ledger.register(appbuilder)
    admin.register(appbuilder)
    api.register(appbuilder)
