"""The payout providers of this app: built once per process from the plugin manager.

Settings come from the environment only (``CASHBACK_PROVIDER_SETTINGS``, a JSON object
``{"code": {"base_url": …, "credentials": {…}, …}}``), never from the database, so
credentials stay out of dumps and logs.  A broken plugin stops start-up with a
``PluginStartupError`` naming it.
"""
from __future__ import annotations

from flask import Flask, current_app

from plugins import PayoutProvider
from plugins.manager import collect_providers, get_plugin_manager

EXTENSION = "payout_providers"


def init_app(app: Flask) -> None:
    from portal.services.handles import DbHandleStore

    pm = get_plugin_manager(load_entrypoints=True)
    built = collect_providers(pm, app.config["PAYOUT_PROVIDER_SETTINGS"])
    store = DbHandleStore()
    for instance in built.values():
        instance.bind_handles(store)  # numeric handles and counters live in the database
    app.extensions[EXTENSION] = built
    app.extensions["cashback_plugin_manager"] = pm


def all_providers(app: Flask | None = None) -> dict[str, PayoutProvider]:
    return (app or current_app).extensions[EXTENSION]


def provider(code: str, app: Flask | None = None) -> PayoutProvider | None:
    return all_providers(app).get(code)
