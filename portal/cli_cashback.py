"""``cashback import-rates``, ``cashback import-orders``, ``cashback sign-postback``.

The money-flow commands: each is thin, calls a service, and owns the commit.

* ``import-rates FILE`` — a CBR daily XML (``XML_daily.asp``) into ``fx_rate``.
* ``import-orders FILE [--apply]`` — reconcile the network's order report (CSV) with our
  orders and print the differences; ``--apply`` then applies every applicable line with
  the reason "CLI import" (see ``portal.services.reconciliation``).
* ``sign-postback BODYFILE [--network epn] [--url …]`` — the documented signing command:
  prints a ready-to-paste ``curl`` that replays the JSON body as a postback signed with the
  network's secret from ``CASHBACK_POSTBACK_SECRETS`` (valid for the verification window).
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from portal.errors import DomainError
from portal.extensions import db

#: Where ``sign-postback`` sends the postback unless ``--url`` says otherwise.
DEFAULT_POSTBACK_URL = "http://127.0.0.1:5000/api/v1/network/postback"
#: The audit reason of lines applied by ``import-orders --apply``.
CLI_REASON = "CLI import"


def _actor():
    from portal.services.audit import Actor

    return Actor.system("cli")


@click.command("import-rates")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def import_rates_command(file: Path) -> None:
    """Import a CBR daily rates file (XML_daily.asp): USD and EUR, RUB per unit."""
    from portal.services import fx
    from portal.services.rates import RateFileError

    try:
        result = fx.import_cbr(db.session, file.read_bytes(), _actor())
    except RateFileError as err:
        db.session.rollback()
        raise click.ClickException(f"{file.name}: {err.message}") from None
    db.session.commit()
    click.echo(f"rates of {result.day.isoformat()}: {result.created} created, {result.updated} updated, "
               f"{result.unchanged} unchanged")


def _cell(snapshot: dict | None, *keys: str) -> str:
    if not snapshot:
        return "-"
    return " ".join(str(snapshot.get(k)) for k in keys if snapshot.get(k) is not None) or "-"


def _print_import(recon, counts: dict[str, int]) -> None:
    click.echo(f"import #{recon.id} of {recon.filename or '(no name)'}: {recon.rows} rows; "
               + ", ".join(f"{kind} {n}" for kind, n in counts.items()))
    differences = [line for line in recon.lines if line.kind != "match"]
    if differences:
        header = ("line", "order", "kind", "ours", "theirs", "state")
        rows = [header]
        for line in differences:
            theirs = line.theirs or {}
            if line.applied_at is not None:
                state = "applied"
            elif line.decision == "rejected":
                state = "rejected"
            elif line.proposed_at is not None:
                state = f"proposed (+{line.raise_usd} USD, waits for a second Finance user)"
            elif theirs.get("behind"):
                state = "behind (left alone)"
            else:
                state = "open"
            theirs_text = ("absent" if theirs.get("absent")
                           else _cell(theirs, "status", "order_amount", "currency", "commission"))
            rows.append((str(line.line or "-"), line.network_order_id, line.kind,
                         _cell(line.ours, "status", "amount_usd", "commission_usd"), theirs_text, state))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        for r in rows:
            click.echo("  ".join(cell.ljust(width) for cell, width in zip(r, widths)).rstrip())
    for error in recon.errors or []:
        where = f"line {error['line']}" if error.get("line") else "file"
        field = f", {error['field']}" if error.get("field") else ""
        click.echo(f"error: {where}{field}: {error['message']}")


@click.command("import-orders")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--apply", "apply_", is_flag=True,
              help=f'Apply every applicable difference (reason "{CLI_REASON}").')
@click.option("--network", default=None, help="Network code (default: CASHBACK_DEFAULT_NETWORK).")
@with_appcontext
def import_orders_command(file: Path, apply_: bool, network: str | None) -> None:
    """Reconcile a network order report (CSV) with our orders and print the differences."""
    from portal.models import ReconImport
    from portal.services import reconciliation
    from portal.services.network_report import file_digest

    data = file.read_bytes()
    before = db.session.query(ReconImport.id).filter_by(digest=file_digest(data)).scalar()
    try:
        recon = reconciliation.import_report(db.session, data, file.name, _actor(), network=network)
    except DomainError as err:
        db.session.rollback()
        problems = "".join(f"\n  {e['message']}" for e in err.errors)
        raise click.ClickException(f"{file.name}: {err.message}{problems}") from None
    db.session.commit()
    if before is not None:
        click.echo(f"this file was imported before (import #{recon.id}): nothing changed")
    _print_import(recon, reconciliation.counts(db.session, recon.id))
    if not apply_:
        return
    result = reconciliation.apply_all(db.session, recon.id, _actor(), CLI_REASON)
    db.session.commit()
    click.echo(f"applied {len(result.applied)} line(s), proposed {len(result.proposed)} that raise cashback "
               f"(a second Finance user approves them on the Reconciliation page), left {result.skipped} behind, "
               f"{len(result.failed)} failed")
    for line_id, code, message in result.failed:
        click.echo(f"failed: line #{line_id}: {code}: {message}")
    if result.failed:
        sys.exit(1)


@click.command("sign-postback")
@click.argument("bodyfile", type=click.File("rb"))
@click.option("--network", default="epn", show_default=True, help="Network code (selects the secret).")
@click.option("--url", default=DEFAULT_POSTBACK_URL, show_default=True, help="The postback endpoint.")
@click.option("--timestamp", type=int, default=None, help="Unix seconds to sign with (default: now).")
@with_appcontext
def sign_postback_command(bodyfile, network: str, url: str, timestamp: int | None) -> None:
    """Print a curl command replaying BODYFILE (JSON, '-' for stdin) as a signed postback."""
    from portal.services.postback_signing import signed_curl

    secret = current_app.config["POSTBACK_SECRETS"].get(network)
    if not secret:
        raise click.ClickException(f"no postback secret for network {network!r}: "
                                   "set CASHBACK_POSTBACK_SECRETS (network:secret,…)")
    try:
        click.echo(signed_curl(url, secret.encode("utf-8"), bodyfile.read(), network, timestamp))
    except ValueError as err:
        raise click.ClickException(str(err)) from None


COMMANDS = (import_rates_command, import_orders_command, sign_postback_command)


def register(app: Flask) -> None:
    """Add the commands to ``app.cli`` (called from ``portal.cli.register``)."""
    for command in COMMANDS:
        app.cli.add_command(command)
