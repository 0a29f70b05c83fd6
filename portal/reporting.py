"""Where reports read from: a PostgreSQL read replica when one is configured.

Reports (the Finance dashboard, payouts by day and their CSV exports) only read, scan many
rows and tolerate being a few seconds behind; at volume they belong on a replica so they
never compete with postings and payouts for the primary.  ``CASHBACK_REPORTS_DATABASE_URL``
adds the Flask-SQLAlchemy bind ``reports``; without it reports read the primary through the
request's own session, as before.

A replica lags: a figure on the dashboard may miss the last seconds of postings.  Pages that
*act* on what they show (the review queue, needs-attention, the kill switch) always read the
primary — only pure reports use :func:`report_session`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from flask import current_app
from sqlalchemy.orm import Session

from portal.extensions import db

#: The Flask-SQLAlchemy bind key of the replica (``SQLALCHEMY_BINDS``).
REPORTS_BIND = "reports"


def uses_replica() -> bool:
    return REPORTS_BIND in (current_app.config.get("SQLALCHEMY_BINDS") or {})


@contextmanager
def report_session() -> Iterator[Session]:
    """A session for read-only report queries: the replica's, or the request's own."""
    if not uses_replica():
        yield db.session
        return
    with Session(db.engines[REPORTS_BIND]) as session:
        try:
            yield session
        finally:
            session.rollback()  # read-only: nothing to keep, and no transaction left open
