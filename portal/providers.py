"""The payout providers of this app: built once per process from the plugin manager.

Settings come from the environment only (``CASHBACK_PROVIDER_SETTINGS``, a JSON object
``{"code": {"base_url": …, "credentials": {…}, …}}``), never from the database, so
credentials stay out of dumps and logs.  In production a provider without its own credentials
there is not offered (its shipped defaults are its local sandbox's), a development-only one (the
Test Bank) is never offered there, and one configured with a sandbox signer or secret
(``PayoutProvider.production_problems``) stops start-up.  A broken plugin stops start-up with a
``PluginStartupError`` naming it.
"""
from __future__ import annotations

import logging

from flask import Flask, current_app

from plugins import PayoutProvider
from plugins.manager import collect_providers, get_plugin_manager

EXTENSION = "payout_providers"
log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    from portal.services.handles import DbHandleStore

    pm = get_plugin_manager(load_entrypoints=True)
    settings = app.config["PAYOUT_PROVIDER_SETTINGS"]
    built = collect_providers(pm, settings)
    if app.config.get("CASHBACK_ENV") == "production":
        # Providers ship their sandbox's base URL and credentials as defaults (the demo, the
        # tests).  In production a provider runs only with credentials of its own from the
        # environment: one without them is not offered at all, never run on the defaults.
        for code in [code for code in built if not (settings.get(code) or {}).get("credentials")]:
            log.warning("payout provider %s has no credentials in CASHBACK_PROVIDER_SETTINGS: not offered", code)
            del built[code]
        for code in [code for code, instance in built.items() if instance.development_only]:
            log.info("payout provider %s is for development only: not offered in production", code)
            del built[code]
        # Configured, but on the sandbox's signer or secrets: anyone could sign its notifications
        # (a forged reversal pays a payout twice).  Fail closed: refuse to start.
        problems = [f"{code}: {problem}" for code, instance in built.items()
                    for problem in instance.production_problems()]
        if problems:
            from config import ConfigError

            raise ConfigError("payout providers on sandbox signers or secrets in production: "
                              + "; ".join(problems))
    store = DbHandleStore()
    for instance in built.values():
        instance.bind_handles(store)  # numeric handles and counters live in the database
    app.extensions[EXTENSION] = built
    app.extensions["cashback_plugin_manager"] = pm


def all_providers(app: Flask | None = None) -> dict[str, PayoutProvider]:
    return (app or current_app).extensions[EXTENSION]


def provider(code: str, app: Flask | None = None) -> PayoutProvider | None:
    return all_providers(app).get(code)
