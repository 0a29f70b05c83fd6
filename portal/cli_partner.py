"""``cashback partner-directory``: serve the local CPA partner directory (``portal/partner_directory.py``).

The demo (``scripts/demo.sh``) starts it on port 8790 and points
``CASHBACK_PARTNER_DIRECTORY_URL`` at it; the seeded partner logins are printed at start.
"""
from __future__ import annotations

import click


@click.command("partner-directory")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8790, show_default=True)
@click.option("--token", default=None,
              help="Service token clients must send (default: CASHBACK_PARTNER_DIRECTORY_TOKEN, else the demo's).")
def partner_directory_command(host: str, port: int, token: str | None) -> None:
    """Serve the local partner directory (partner login for the demo) until Ctrl+C."""
    from flask import current_app

    from portal import partner_directory

    token = token or current_app.config.get("PARTNER_DIRECTORY_TOKEN") or partner_directory.DEFAULT_TOKEN
    partner_directory.serve(host, port, token)
