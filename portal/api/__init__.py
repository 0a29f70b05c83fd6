"""REST APIs under /api/v1 (FAB BaseApi, JWT or session auth).  ``register`` adds them all."""
from __future__ import annotations

from flask_appbuilder import AppBuilder


def register(appbuilder: AppBuilder) -> None:
    """Each API module has ``register(appbuilder)``; add new modules to this tuple."""
    from importlib import import_module

    for name in API_MODULES:
        import_module(f"portal.api.{name}").register(appbuilder)


#: API modules in registration order.
API_MODULES: tuple[str, ...] = ("postback", "customer", "payouts", "provider_callbacks", "claims")
