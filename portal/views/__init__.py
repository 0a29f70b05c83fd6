"""Portal views: thin, read from models, call services.  ``register`` adds them all."""
from __future__ import annotations

from flask_appbuilder import AppBuilder


def register(appbuilder: AppBuilder) -> None:
    from portal import api

    from . import admin, cabinet, developers, finance, ledger, payouts_desk, people, support

    people.register(appbuilder)
    ledger.register(appbuilder)
    admin.register(appbuilder)
    cabinet.register(appbuilder)
    support.register(appbuilder)
    finance.register(appbuilder)
    developers.register(appbuilder)
    from . import devdesk

    devdesk.register(appbuilder)
    payouts_desk.register(appbuilder)
    from . import claims as claim_views

    claim_views.register(appbuilder)
    from . import dashboard

    dashboard.register(appbuilder)
    from . import timeline

    timeline.register(appbuilder)
    from . import accounts  # registration, password reset, referrals, blocking

    accounts.register(appbuilder)
    from . import home  # the customer's profile page; the navbar's "Profile" link

    home.register(appbuilder)
    api.register(appbuilder)
