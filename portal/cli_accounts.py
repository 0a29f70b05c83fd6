"""``cashback mail-outbox``: the local SMTP server of the demo (and a tool for developers).

Every message it receives is stored as a ``.eml`` file in the outbox directory
(``instance/outbox`` by default) and printed.  Point ``MAIL_SERVER``/``MAIL_PORT`` at it
(the defaults, 127.0.0.1:8025, already do).
"""
from __future__ import annotations

import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("mail-outbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True, type=int)
@click.option("--directory", default=None, help="Where .eml files go (default: INSTANCE_DIR/outbox).")
@click.option("--quiet", is_flag=True, help="Do not print the messages.")
@with_appcontext
def mail_outbox_command(host: str, port: int, directory: str | None, quiet: bool) -> None:
    """Run a local SMTP server that keeps every message as a .eml file (Ctrl+C stops it)."""
    from aiosmtpd.controller import Controller

    from portal.services.mail import OutboxHandler

    path = Path(directory or Path(current_app.config["INSTANCE_DIR"]) / "outbox")
    controller = Controller(OutboxHandler(path, echo=None if quiet else click.echo), hostname=host, port=port)
    controller.start()
    click.echo(f"mail outbox: smtp://{host}:{port} -> {path}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


COMMANDS = (mail_outbox_command,)
