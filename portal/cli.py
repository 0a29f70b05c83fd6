"""The ``cashback`` command: the Flask CLI of this app plus the project's own commands.

``cashback db upgrade`` (Flask-Migrate), ``cashback sync-roles``, ``cashback create-admin``,
``cashback seed-demo``, ``cashback verify-ledger``.  ``flask --app run …`` gives the same.
"""
from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from portal.extensions import db


@click.command("sync-roles")
@with_appcontext
def sync_roles_command() -> None:
    """Create or update the roles Admin, Support, Finance, Developer, Customer."""
    from portal.security import sync_roles

    for role, count in sync_roles(current_app.appbuilder).items():
        click.echo(f"{role}: {count} permissions")


@click.command("create-admin")
@click.option("--username", prompt=True)
@click.option("--email", prompt=True)
@click.option("--first-name", default="Admin", show_default=True)
@click.option("--last-name", default="User", show_default=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@with_appcontext
def create_admin_command(username: str, email: str, first_name: str, last_name: str, password: str) -> None:
    """Create a user with the Admin role (interactive when flags are missing)."""
    sm = current_app.appbuilder.sm
    role = sm.find_role("Admin")
    if role is None:
        raise click.ClickException("role Admin does not exist: run `cashback sync-roles` first")
    if sm.find_user(username=username) or sm.find_user(email=email):
        raise click.ClickException(f"a user {username!r} or {email!r} exists already")
    user = sm.add_user(username=username, first_name=first_name, last_name=last_name, email=email,
                       role=role, password=password, commit=False)
    if not user:
        raise click.ClickException("could not create the user (see the log)")
    from portal.services import audit

    audit.record(db.session, audit.Actor.system("cli"), "user.created", "user", user.id,
                 after={"username": username, "email": email, "roles": ["Admin"]})
    db.session.commit()
    click.echo(f"Admin {username} created.")


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Fill the database with believable demo data (idempotent)."""
    from portal.services import demo

    report = demo.seed(db.session, current_app.appbuilder.sm)
    click.echo(f"demo data: {report.staff_created} staff, {report.customers_created} customers, "
               f"{report.postings_created} postings added")
    click.echo("demo logins: " + ", ".join(f"{u} / {p} ({r})" for u, r, p in demo.STAFF)
               + f"; customers customer1@demo.cashback.local … / {demo.CUSTOMER_PASSWORD}")


@click.command("verify-ledger")
@with_appcontext
def verify_ledger_command() -> None:
    """Re-sum all entries, compare with stored balances; exit 1 on any mismatch."""
    from portal.services.ledger import verify

    report = verify(db.session)
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)


@click.command("worker")
@click.option("--queues", default="payouts,payouts-status,default", show_default=True,
              help="Comma-separated RQ queues, in priority order.")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--name", default=None, help="Worker name (default: RQ's).")
@click.option("--calls", type=int, default=None,
              help="Provider calls in flight at once (default: CASHBACK_WORKER_CALLS, 4).")
def worker_command(queues: str, burst: bool, name: str | None, calls: int | None) -> None:
    """An RQ worker with the app context (REDIS_URL must be set).  Run one or more per host."""
    from portal import tasks
    from portal.tasks.worker import PayoutWorker

    app = current_app._get_current_object()
    if not app.config.get("REDIS_URL"):
        raise click.ClickException("REDIS_URL is not set: without Redis jobs run inside the web process")
    tasks.WORKER_APP = app
    import itertools
    import time

    from redis.exceptions import ConnectionError as RedisConnectionError

    # RQ's work() returns (or raises) when Redis goes away, e.g. on a Redis restart: start a
    # new worker until it is back, unless the worker was asked to stop.
    for run in itertools.count():
        worker = None
        try:
            worker = PayoutWorker([tasks.rq_queue(app, q.strip()) for q in queues.split(",") if q.strip()],
                                  connection=tasks.redis_connection(app),
                                  name=f"{name}.{run}" if name and run else name, calls=calls)
            worker.work(burst=burst, with_scheduler=True)
        except RedisConnectionError as exc:
            click.echo(f"worker: Redis unreachable ({exc}); starting again", err=True)
        if burst or (worker is not None and worker._shutdown_requested_date is not None):  # SIGTERM/SIGINT
            break
        time.sleep(1)


@click.command("janitor")
@click.option("--every", type=int, default=0, help="Repeat every N seconds (0: run once).")
@with_appcontext
def janitor_command(every: int) -> None:
    """Resolve stuck payouts: due status checks, stale submits, lost or held jobs."""
    import time

    from portal.tasks.payouts import janitor

    while True:
        try:
            click.echo(f"janitor: {janitor()}")
        except Exception as exc:  # noqa: BLE001 — a lost connection must not end the loop
            if not every:
                raise
            db.session.rollback()
            click.echo(f"janitor: this run failed ({type(exc).__name__}: {exc}); next one in {every} s", err=True)
        if not every:
            break
        time.sleep(every)


@click.command("sandbox", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("code")
@click.pass_context
@with_appcontext
def sandbox_command(ctx: click.Context, code: str) -> None:
    """Serve provider CODE's local sandbox (extra options go to it: --host, --port, credentials)."""
    import importlib

    from portal import providers

    provider = providers.provider(code)
    if provider is None:
        raise click.ClickException(f"no provider {code!r}; known: {', '.join(providers.all_providers())}")
    package = type(provider).__module__.rpartition(".")[0]
    try:
        module = importlib.import_module(f"{package}.sandbox")
    except ImportError:
        raise click.ClickException(f"provider {code!r} ships no sandbox ({package}.sandbox)") from None
    module.main(list(ctx.args))


def _commands() -> tuple:
    from portal.cli_cashback import COMMANDS as money_flow
    from portal.cli_i18n import translations
    from portal.cli_accounts import COMMANDS as accounts_commands

    return (sync_roles_command, create_admin_command, seed_demo_command, verify_ledger_command, translations,
            worker_command, janitor_command, sandbox_command, *money_flow, *accounts_commands)


def register(app: Flask) -> None:
    for command in _commands():
        app.cli.add_command(command)
    from portal.cli_partner import partner_directory_command  # the local CPA partner directory

    app.cli.add_command(partner_directory_command)


def _create_app():
    """The app, or a one-line refusal (no traceback) when the configuration is unsafe."""
    from config import ConfigError
    from portal.app import create_app

    try:
        return create_app()
    except ConfigError as err:
        raise click.ClickException(str(err)) from None


def main() -> None:
    """Entry point of the ``cashback`` console script."""
    from portal.cli_i18n import translations

    group = FlaskGroup(create_app=_create_app, help="Cashback back-office command line.")
    group.add_command(translations)  # the catalogs need no app (nor its secrets)
    group.main(prog_name="cashback")
