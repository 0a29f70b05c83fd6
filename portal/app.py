"""The application factory."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from flask import Flask
from flask_appbuilder import AppBuilder

import config as config_module
from portal import assets, formatting, i18n, labels, limits, observability, providers
from portal.errors import protect_forms, set_error_handlers
from portal.extensions import db, migrate
from portal.models.types import render_item

PACKAGE_DIR = Path(__file__).resolve().parent


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the portal: settings from ``config.py`` (environment), then ``config`` overrides."""
    settings = config_module.load()
    if config:
        settings.update(config)
    config_module.check(settings)
    limits.resolve_settings(settings)  # throttling on/off and its storage, after the overrides
    # FAB warns about its own user/role list filters at every start: noise, not news.
    logging.getLogger("flask_appbuilder.models.filters").setLevel(logging.ERROR)

    app = Flask(
        "portal",
        instance_path=settings["INSTANCE_DIR"],
        template_folder=str(PACKAGE_DIR / "templates"),
        static_folder=str(PACKAGE_DIR / "static"),
    )
    app.config.update(settings)
    if settings["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    db.init_app(app)
    migrate.init_app(app, db, directory=settings["MIGRATIONS_DIR"],
                     render_as_batch=settings["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"),
                     compare_type=True, render_item=render_item)
    with app.app_context():
        from portal.security_manager import CashbackSecurityManager  # AUTH_DB + CPA-partner login

        from portal.views.home import HomeView  # "/": the landing page, or the login's own desk

        appbuilder = AppBuilder(update_perms=False, security_manager_class=CashbackSecurityManager,
                                indexview=HomeView)
        appbuilder.init_app(app, db.session)
        from portal import views

        views.register(appbuilder)
        i18n.init_app(app)  # the locale of each request (API: Accept-Language)
    formatting.init_app(app)  # money(), when(), date(), number(), percent() in templates
    assets.init_app(app)  # static files under fingerprinted names, cached for a year
    labels.init_app(app)  # label(), provider_name(), yes_no(): codes as a person reads them
    set_error_handlers(app)
    protect_forms(app)  # CSRF on every portal POST (the REST APIs stay exempt)
    limits.init_app(app)  # login and public endpoints throttled (after the views exist)
    observability.init_app(app)  # /health, /health/ready, /metrics, request ids, logs
    providers.init_app(app)

    from portal.api.postback import NetworkDispatcher, network_app

    # the network's postbacks take a lean path past the portal's page machinery
    app.wsgi_app = NetworkDispatcher(app.wsgi_app, network_app(app))
    if settings.get("TRUSTED_PROXIES"):  # the client IP (throttling, logs) from X-Forwarded-For
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(settings["TRUSTED_PROXIES"]))

    from portal import cli

    cli.register(app)
    return app
