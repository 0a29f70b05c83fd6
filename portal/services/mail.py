"""Outgoing mail: rendered in the recipient's language, sent over SMTP after the commit.

* :func:`render` renders ``mail/<name>.subject.txt`` / ``.txt`` / ``.html`` under
  ``flask_babel.force_locale(locale)``.
* :func:`send` speaks SMTP (``smtplib``) to ``MAIL_SERVER:MAIL_PORT`` (``MAIL_USE_TLS``:
  STARTTLS, ``MAIL_USE_SSL``: SMTPS, ``MAIL_USERNAME``/``MAIL_PASSWORD``: login); the
  setting names are Flask-Mail's, which FAB's own registration uses too.
* Account mail is never sent inside the request: :func:`send_account_mail_after_commit`
  queues the job :func:`deliver_account_mail` (customer id and kind only, no token: the job
  signs a fresh one) when the session commits, so a rolled-back registration sends nothing.
* :class:`OutboxHandler` is the local SMTP server of the demo and the tests
  (``cashback mail-outbox``, aiosmtpd): every message becomes a ``.eml`` file.
"""
from __future__ import annotations

import datetime as dt
import logging
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Mapping

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy.orm import Session

from portal.tasks import QUEUE_DEFAULT, enqueue_after_commit, job

log = logging.getLogger(__name__)

#: Account mails and their templates (``portal/templates/mail/<kind>.*``).
ACCOUNT_MAILS = ("confirm", "reset")


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


def render(name: str, locale: str, **context: Any) -> Rendered:
    """The subject and bodies of mail ``name`` in ``locale`` (needs an app context)."""
    with force_locale(locale):
        subject = render_template(f"mail/{name}.subject.txt", **context).strip()
        text = render_template(f"mail/{name}.txt", **context)
        try:
            html = render_template(f"mail/{name}.html", **context)
        except Exception:  # noqa: BLE001 — the HTML part is optional
            html = None
    return Rendered(" ".join(subject.split()), text, html)


def build_message(config: Mapping, to: str, rendered: Rendered) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config["MAIL_DEFAULT_SENDER"]
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="cashback.local")
    message.set_content(rendered.text)
    if rendered.html:
        message.add_alternative(rendered.html, subtype="html")
    return message


def send(config: Mapping, message: EmailMessage) -> None:
    """One SMTP conversation with the configured server (raises ``smtplib``/``OSError`` errors)."""
    host, port, timeout = config["MAIL_SERVER"], int(config["MAIL_PORT"]), int(config.get("MAIL_TIMEOUT", 10))
    if config.get("MAIL_USE_SSL"):
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if config.get("MAIL_USE_TLS") and not config.get("MAIL_USE_SSL"):
            smtp.starttls(context=ssl.create_default_context())
        if config.get("MAIL_USERNAME"):
            smtp.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD", ""))
        smtp.send_message(message)


def send_account_mail_after_commit(session: Session, kind: str, customer_id: int, base_url: str) -> None:
    """Queue account mail ``kind`` (confirm, reset) to the customer once ``session`` commits."""
    if kind not in ACCOUNT_MAILS:
        raise ValueError(f"unknown account mail {kind!r}")
    enqueue_after_commit(session, QUEUE_DEFAULT, "portal.services.mail.deliver_account_mail",
                         kind, customer_id, base_url.rstrip("/"))


@job
def deliver_account_mail(kind: str, customer_id: int, base_url: str) -> bool:
    """The job: sign a fresh token, render the mail in the customer's language, send it.

    Runs in the worker (or the in-process queue).  Returns False when there is nothing to
    send (the customer is gone, blocked, or already confirmed for ``confirm``).
    """
    from portal.extensions import db
    from portal.models import Customer
    from portal.services import accounts

    customer = db.session.get(Customer, customer_id)
    if customer is None or customer.is_blocked:
        return False
    config = current_app.config
    if kind == "confirm":
        if customer.email_confirmed_at is not None:
            return False
        link = f"{base_url}/register/confirm/{accounts.confirmation_token(config, customer)}"
        hours = int(config["CONFIRM_TOKEN_MAX_AGE"]) // 3600
    elif kind == "reset":
        token = accounts.reset_token(db.session, config, customer)
        if token is None:
            return False
        link = f"{base_url}/password/reset/{token}"
        hours = max(1, int(config["RESET_TOKEN_MAX_AGE"]) // 3600)
    else:
        raise ValueError(f"unknown account mail {kind!r}")
    rendered = render(kind, customer.locale or config["BABEL_DEFAULT_LOCALE"], customer=customer, link=link,
                      hours=hours, app_name=config["APP_NAME"])
    send(config, build_message(config, customer.email, rendered))
    log.info("account mail %s sent to customer %s", kind, customer_id)
    return True


# --- the local outbox (demo, tests) ------------------------------------------------------------

class OutboxHandler:
    """aiosmtpd handler: each accepted message is written to ``directory`` as a ``.eml`` file."""

    def __init__(self, directory: str | Path, echo=None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.echo = echo

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 — aiosmtpd's name
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        data = envelope.original_content or envelope.content
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        if self.echo is not None:
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            self.echo(f"--- {path.name}: {envelope.mail_from} -> {', '.join(envelope.rcpt_tos)}\n{text}")
        return "250 Message accepted for delivery"


def read_outbox(directory: str | Path) -> list:
    """The messages in an outbox directory, oldest first (``email.message.EmailMessage``)."""
    from email import policy
    from email.parser import BytesParser

    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(p.read_bytes()) for p in sorted(Path(directory).glob("*.eml"))]


def message_text(message) -> str:
    """The plain-text body of a parsed message."""
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""
