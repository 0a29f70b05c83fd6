"""Reconciliation: the network's order report against our orders, and applying its truth.

Importing (:func:`import_report`)
---------------------------------
The CSV is parsed by :mod:`portal.services.network_report`.  A file is identified by the
SHA-256 of its bytes: importing the same bytes again returns the first import and changes
nothing.  Every valid row is checked with the postback's own validation
(:func:`portal.services.orders.parse_event`: USD or RUB, amounts up to 10,000,000 with at
most 6 places, refunded not above the amount, a refunded row needs its amount); a row
that fails it, or an RUB row compared with an order on a day without an exchange rate,
is an error of the import and gets no line.  Each remaining row becomes one
:class:`~portal.models.ReconLine`, compared with our order of the same network and
``network_order_id``:

``missing_here``
    the network has the order, we do not.
``status_drift``
    the statuses differ (``paid`` < ``confirmed`` < ``cancelled``).  A ``refunded`` row
    says nothing about the status: only its refunded amount is compared.
``amount_drift``
    same status, but the amount, the commission or the refunded amount differs.  RUB rows
    are converted to USD at the rate of the row's day, as a postback would be; a row
    without ``refunded_amount`` does not compare refunds.
``match``
    nothing differs.
``missing_there``
    one of our orders (not cancelled) whose last network event falls inside the report's
    time span (first to last ``event_time`` of its rows) but which the report lacks.  These
    lines have ``line = 0``.  When the report has unreadable lines, this check is skipped
    (and the import says so): an order on a bad line would look missing, and applying the
    line would cancel it.

A file with no usable row at all (empty, wrong header) is refused with ``Invalid`` and
nothing is stored; the problems of a partly bad file are kept on the import (``errors``,
rendered in the importer's language).

Snapshots: ``ours`` is our order as it was at import time (amounts in USD); ``theirs`` is
the report row as written (amounts as strings, ``event_time`` ISO 8601), plus
``differs`` (which of status, amount, commission, refunded differ) and ``behind``.
``behind`` is true when applying the row could change nothing, because the order logic
never moves an order back (the network says ``paid``, we have ``confirmed``) and never
takes amounts from an event older than the last one it applied (refunds only grow).
Such a line is shown, marked, and left alone: :func:`apply_line` refuses it and
:func:`apply_all` skips it.  For ``missing_there`` lines ``theirs`` holds the report's
span (``report_from``, ``report_to``) and ``absent: true``.

Applying (:func:`apply_line`, :func:`apply_all`)
------------------------------------------------
Applying a line feeds the network's truth through the same order logic as a postback:
an :class:`~portal.services.orders.OrderEvent` with ``source="reconciliation"`` and the
deterministic id ``recon:<file digest[:16]>:<line>`` goes to
:func:`portal.services.orders.receive_event`, so the ledger moves exactly as the postback
would have moved it (one posting referenced by the event) and a second application of the
same event is a no-op.  For ``missing_there`` the event is a cancellation with id
``recon:<digest[:16]>:absent:<network order id>``, dated at the end of the report's span,
carrying our own USD amounts (so only the status moves); it is refused when the order
received a newer event after the report's end (the network has spoken since).

Four eyes on money: the report is an unsigned file, so a line whose application would create
or raise a customer's cashback (an order for one of our clicks, a confirmation, a higher
amount or commission) is not applied by the person who asks: :func:`apply_line` and
:func:`apply_all` *propose* it instead (``proposed_by``/``proposed_at``, the customer and the
estimated raise in ``raise_usd``), and a line raising more than ``RECON_LINE_CAP_USD`` is
refused outright.  A second Finance user, neither the proposer nor the importer, approves
(:func:`approve_proposal`, each proposed line then applied as below) or rejects
(:func:`reject_proposal`) the import's proposal, seeing its lines and their total first.
Lines that only take cashback away (cancellations, refunds, lower amounts, orphans) are
applied at once.

A ``match`` or ``behind`` line has nothing to apply (``Conflict``).  A line applied once is
not applied again (the call reports ``already_applied``).  Every applied line gets
``applied_at``/``applied_by`` and an audit record ``recon.line.applied`` with the reason.
:func:`apply_all` applies every open, applicable line of an import, each in a savepoint:
a line that fails (e.g. no exchange rate for its day) is reported and the others go on.

These functions never commit: the CLI command or the view does.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from portal.errors import Conflict, DomainError, Invalid, NotFound
from portal.i18n import _l
from portal.models import Click, Order, Promo, ReconImport, ReconLine
from portal.models.types import utcnow
from portal.services import audit, fx, orders
from portal.services.audit import Actor
from portal.services.db import insert_or_ignore
from portal.services.network_report import ReportRow, file_digest, parse_order_report

__all__ = ["KINDS", "APPLICABLE_KINDS", "LineResult", "BulkResult", "import_report", "apply_line",
           "apply_all", "approve_proposal", "reject_proposal", "proposal", "counts", "is_applicable"]

#: Every kind of line, in the order they are shown.
KINDS = ("missing_here", "missing_there", "status_drift", "amount_drift", "match")
#: Kinds that can be applied (unless the line is ``behind``).
APPLICABLE_KINDS = ("missing_here", "missing_there", "status_drift", "amount_drift")
#: How many order ids go into one ``IN (…)`` query.
_CHUNK = 1000


class NothingToApply(Conflict):
    code = "nothing_to_apply"
    default_message = _l("This line has nothing to apply.")


class FourEyes(Conflict):
    code = "four_eyes"
    default_message = _l("A second Finance user must approve this: not the one who imported the report or "
                         "proposed the lines.")


@dataclass(frozen=True)
class LineResult:
    """What applying one line did.

    :ivar outcome: the event's outcome (applied, stale, orphan), ``duplicate`` when the
        event had been received before, or ``already_applied`` when the line was applied
        before (then nothing happened now)
    """

    line_id: int
    outcome: str
    order_id: int | None


@dataclass
class BulkResult:
    """What :func:`apply_all` did: applied lines, skipped ones (behind) and failures."""

    applied: list[LineResult] = field(default_factory=list)
    #: lines that would create or raise cashback: proposed for a second person's approval
    proposed: list[LineResult] = field(default_factory=list)
    skipped: int = 0
    #: (line id, error code, message) of each line that could not be applied
    failed: list[tuple[int, str, str]] = field(default_factory=list)


# --- snapshots ----------------------------------------------------------------------------

def _s(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _ours(order: Order) -> dict:
    return {
        "order_id": order.id, "network": order.network, "network_order_id": order.network_order_id,
        "sub_id": order.sub_id, "customer_id": order.customer_id, "status": order.status,
        "amount_usd": _s(order.amount_usd), "commission_usd": _s(order.commission_usd),
        "refunded_usd": _s(order.refunded_usd), "reported_amount": _s(order.reported_amount),
        "reported_currency": order.reported_currency, "last_event_at": _s(order.last_event_at),
        "booked_in": order.booked_in, "booked_cashback": _s(order.booked_cashback),
    }


def _theirs(row: ReportRow, network: str) -> dict:
    return {
        "network": network, "line": row.line, "order_id": row.order_id, "sub_id": row.sub_id,
        "status": row.status, "order_amount": _s(row.order_amount), "currency": row.currency,
        "commission": _s(row.commission), "refunded_amount": _s(row.refunded_amount),
        "event_time": _s(row.event_time),
    }


def _body(theirs: dict, event_id: str) -> dict:
    """A postback body (the shape ``orders.parse_event`` reads) for a report row."""
    body = {"event_id": event_id, "order_id": theirs["order_id"], "sub_id": theirs["sub_id"],
            "status": theirs["status"], "order_amount": theirs["order_amount"],
            "currency": theirs["currency"], "commission": theirs["commission"],
            "event_time": theirs["event_time"]}
    if theirs.get("refunded_amount") is not None:
        body["refunded_amount"] = theirs["refunded_amount"]
    return body


def _event_id(digest: str, suffix: Any) -> str:
    return f"recon:{digest[:16]}:{suffix}"


# --- comparing ----------------------------------------------------------------------------

def _usd(session: Session, amount: Decimal | None, event: orders.OrderEvent) -> Decimal | None:
    """The amount in USD as ``orders.receive_event`` would convert it."""
    if amount is None or event.currency == "USD":
        return amount
    return fx.rub_to_usd(session, amount, event.event_time.date())


def _compare(session: Session, event: orders.OrderEvent, order: Order) -> tuple[str, list[str], bool]:
    """(kind, differing fields, behind) of a report row against our order."""
    amount = _usd(session, event.amount, event)
    commission = _usd(session, event.commission, event)
    refunded = _usd(session, event.refunded_amount, event)
    differs = []
    status_ahead = False
    if event.status in orders.RANK and event.status != order.status:
        differs.append("status")
        status_ahead = orders.RANK[event.status] > orders.RANK[order.status]
    if amount != order.amount_usd:
        differs.append("amount")
    if commission != order.commission_usd:
        differs.append("commission")
    if refunded is not None and refunded != order.refunded_usd:
        differs.append("refunded")
    # What applying would change, by the rules of orders._apply:
    newer = order.last_event_at is None or event.event_time >= order.last_event_at
    amounts_move = newer and ("amount" in differs or "commission" in differs)
    refund_grows = refunded is not None and refunded > order.refunded_usd
    behind = not (status_ahead or amounts_move or refund_grows)
    if "status" in differs:
        kind = "status_drift"
    elif differs:
        kind = "amount_drift"
    else:
        kind, behind = "match", False
    return kind, differs, behind


def _orders_by_id(session: Session, network: str, ids: Iterable[str]) -> dict[str, Order]:
    ids = sorted(set(ids))
    found: dict[str, Order] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        for order in session.execute(sa.select(Order).where(
                Order.network == network, Order.network_order_id.in_(chunk))).scalars():
            found[order.network_order_id] = order
    return found


def _error(line: int | None, field_name: str | None, message: Any) -> dict:
    return {"line": line, "field": field_name, "message": str(message)}


def _default(name: str) -> Any:
    return current_app.config[name]


# --- import -------------------------------------------------------------------------------

def import_report(session: Session, data: bytes, filename: str, actor: Actor, *,
                  network: str | None = None) -> ReconImport:
    """Import a network order report (see the module docstring); the caller commits.

    ``network`` defaults to the app's ``DEFAULT_NETWORK``.  Returns the import: the earlier
    one, untouched, when the same bytes were imported before.
    """
    network = network or _default("DEFAULT_NETWORK")
    digest = file_digest(data)
    existing = session.execute(sa.select(ReconImport).where(ReconImport.digest == digest)).scalar_one_or_none()
    if existing is not None:
        return existing
    parsed = parse_order_report(data)
    if not parsed.rows and parsed.errors:
        raise Invalid(_l("The file has no usable order lines."), code="unusable_report",
                      errors=[{"field": e.field or "", "code": "invalid", "message": str(e)}
                              for e in parsed.errors[:50]])

    table = ReconImport.__table__
    import_id = session.execute(
        insert_or_ignore(session, table).values(
            digest=digest, filename=(filename or "")[:200], imported_by=actor.label[:120],
            imported_at=utcnow(), rows=len(parsed.rows), errors=[])
        .on_conflict_do_nothing(index_elements=["digest"]).returning(table.c.id)
    ).scalar_one_or_none()
    if import_id is None:  # imported meanwhile by a concurrent transaction
        return session.execute(sa.select(ReconImport).where(ReconImport.digest == digest)).scalar_one()
    recon = session.get(ReconImport, import_id)

    errors = [_error(e.line, e.field, e.message) for e in parsed.errors]
    ours = _orders_by_id(session, network, (row.order_id for row in parsed.rows))
    lines: list[ReconLine] = []
    for row in parsed.rows:
        theirs = _theirs(row, network)
        try:
            event = orders.parse_event(_body(theirs, _event_id(digest, row.line)), network,
                                       source="reconciliation")
        except Invalid as err:
            errors.extend(_error(row.line, e.get("field"), e["message"]) for e in err.errors or [{"message": err.message}])
            continue
        order = ours.get(row.order_id)
        if order is None:
            kind, differs, behind = "missing_here", [], False
        else:
            try:
                kind, differs, behind = _compare(session, event, order)
            except fx.NoRate:
                errors.append(_error(row.line, "event_time", _l(
                    "No exchange rate for %(day)s: import the CBR rates first.",
                    day=event.event_time.date().isoformat())))
                continue
        lines.append(ReconLine(import_id=import_id, line=row.line, network_order_id=row.order_id, kind=kind,
                               ours=_ours(order) if order is not None else None,
                               theirs={**theirs, "differs": differs, "behind": behind}))

    if parsed.rows and parsed.errors:
        errors.append(_error(None, None, _l(
            "Orders missing from the report were not looked for: the file has lines that could not "
            "be read.")))
    elif parsed.rows:
        start = min(row.event_time for row in parsed.rows)
        end = max(row.event_time for row in parsed.rows)
        in_report = {row.order_id for row in parsed.rows}
        absent = session.execute(
            sa.select(Order).where(Order.network == network, Order.status != "cancelled",
                                   Order.last_event_at >= start, Order.last_event_at <= end)
            .order_by(Order.network_order_id)
        ).scalars()
        for order in absent:
            if order.network_order_id in in_report:
                continue
            lines.append(ReconLine(import_id=import_id, line=0, network_order_id=order.network_order_id,
                                   kind="missing_there", ours=_ours(order),
                                   theirs={"network": network, "absent": True, "report_from": _s(start),
                                           "report_to": _s(end), "differs": ["status"], "behind": False}))
    session.add_all(lines)
    recon.errors = sorted(errors, key=lambda e: (e["line"] is None, e["line"] or 0))
    session.flush()
    audit.record(session, actor, "recon.import.created", "recon_import", import_id,
                 after={"filename": recon.filename, "digest": digest, "rows": recon.rows,
                        "errors": len(recon.errors), "lines": counts(session, import_id)})
    return recon


def counts(session: Session, import_id: int) -> dict[str, int]:
    """``{kind: number of lines}`` of an import, every kind present (zeros included)."""
    result = dict.fromkeys(KINDS, 0)
    for kind, n in session.execute(sa.select(ReconLine.kind, sa.func.count()).where(
            ReconLine.import_id == import_id).group_by(ReconLine.kind)):
        result[kind] = n
    return result


def is_applicable(line: ReconLine) -> bool:
    """True when the line is open (not applied, proposed or rejected) and applying it can change something."""
    return (line.applied_at is None and line.proposed_at is None and line.kind in APPLICABLE_KINDS
            and not (line.theirs or {}).get("behind"))


@dataclass(frozen=True)
class Proposal:
    """An import's lines waiting for a second person: who proposed them, and the money at stake."""

    lines: list[ReconLine]
    total_usd: Decimal
    cap_usd: Decimal
    proposed_by: list[str]


def proposal(session: Session, import_id: int) -> Proposal:
    """The import's proposed, undecided lines and their total raise (shown before approval)."""
    lines = list(session.execute(sa.select(ReconLine).where(
        ReconLine.import_id == import_id, ReconLine.proposed_at.is_not(None), ReconLine.decision.is_(None))
        .order_by(ReconLine.line, ReconLine.id)).scalars())
    return Proposal(lines, sum((line.raise_usd or Decimal(0) for line in lines), Decimal("0.00")),
                    _default("RECON_LINE_CAP_USD"), sorted({line.proposed_by for line in lines}))


# --- applying -----------------------------------------------------------------------------

def _event_for(session: Session, line: ReconLine, digest: str) -> orders.OrderEvent:
    theirs = line.theirs or {}
    if line.kind != "missing_there":
        return orders.parse_event(_body(theirs, _event_id(digest, line.line)), theirs["network"],
                                  source="reconciliation")
    ours = line.ours
    order = session.get(Order, ours["order_id"])
    report_to = dt.datetime.fromisoformat(theirs["report_to"])
    if order is None:
        raise NotFound()
    if order.last_event_at is not None and order.last_event_at > report_to:
        raise Conflict(_l("The order received a newer event after the report's end: import a newer "
                          "report."), code="order_changed")
    body = {"event_id": _event_id(digest, f"absent:{line.network_order_id}"),
            "order_id": line.network_order_id, "sub_id": ours["sub_id"], "status": "cancelled",
            "order_amount": ours["amount_usd"], "currency": "USD", "commission": ours["commission_usd"],
            "event_time": theirs["report_to"]}
    return orders.parse_event(body, ours["network"], source="reconciliation")


def _reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise Invalid(_l("Say why the line is applied."), code="reason_required")
    return reason.strip()


def _estimate(session: Session, line: ReconLine, event: orders.OrderEvent) -> tuple[int | None, Decimal]:
    """(customer, cashback applying the line would create or raise for them, USD, ≥ 0).

    The order logic runs on a detached copy of the order (or the order the event would create
    for its click); the raise is what would land in ``pending``/``available`` on top of what
    the ledger already holds there for the order (a confirmation raises ``available`` by the
    whole cashback).  Cancellations, refunds, lower amounts and orphans raise nothing.
    """
    if line.kind == "missing_there":
        return (line.ours or {}).get("customer_id"), Decimal(0)
    amount, commission = _usd(session, event.amount, event), _usd(session, event.commission, event)
    refunded = _usd(session, event.refunded_amount, event)
    order = session.execute(sa.select(Order).where(
        Order.network == event.network, Order.network_order_id == event.network_order_id)).scalar_one_or_none()
    if order is not None:
        copy = Order(**{a.key: getattr(order, a.key) for a in sa.inspect(Order).column_attrs})
        promo, created = order.promo, False
    else:
        click = session.execute(sa.select(Click).where(Click.sub_id == event.sub_id)).scalar_one_or_none() \
            if event.sub_id else None
        if click is None:
            return None, Decimal(0)  # an orphan: nobody's money until Support and Finance attach it
        copy = Order(customer_id=click.customer_id, status=event.status if event.status in orders.RANK else "paid",
                     amount_usd=amount, commission_usd=commission, refunded_usd=Decimal(0), rate=click.rate,
                     booked_in="none", booked_cashback=Decimal(0), last_event_at=event.event_time)
        promo = session.get(Promo, click.promo_id) if click.promo_id else None
        created = True
    before_in, before = copy.booked_in, copy.booked_cashback
    orders._apply(copy, event, created, amount, commission, refunded)  # noqa: SLF001 (the same rules, dry)
    if copy.customer_id is None or copy.status == "cancelled":
        return copy.customer_id, Decimal(0)
    where, want = orders.WHERE[copy.status], orders.cashback_for(copy, promo).total
    raised = want - (before if before_in == where else Decimal(0))
    return copy.customer_id, max(raised, Decimal(0))


def _cap_check(line: ReconLine, raised: Decimal) -> None:
    cap = _default("RECON_LINE_CAP_USD")
    if raised > cap:
        raise Invalid(_l("Order %(order)s would raise a customer's cashback by %(amount)s USD, above the "
                         "per-line cap of %(cap)s USD: settle it with the network, not through the report.",
                         order=line.network_order_id, amount=raised, cap=cap), code="above_line_cap")


def _lock_line(session: Session, line_id: int) -> ReconLine:
    line = session.execute(sa.select(ReconLine).where(ReconLine.id == line_id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one_or_none()
    if line is None:
        raise NotFound()
    return line


def apply_line(session: Session, line_id: int, actor: Actor, reason: str, *,
               default_rate: Decimal | None = None) -> LineResult:
    """Apply one line through the order logic, or propose it when it would create or raise
    cashback (see the module docstring); audited.

    ``default_rate`` (the rate of an order without a click) defaults to the app's
    ``DEFAULT_CASHBACK_RATE``.  The caller commits.
    """
    reason = _reason(reason)
    line = _lock_line(session, line_id)
    if line.applied_at is not None:
        return LineResult(line.id, "already_applied", (line.ours or {}).get("order_id"))
    if line.decision == "rejected":
        raise NothingToApply(_l("A second Finance user rejected this line: it is not applied."),
                             code="line_rejected")
    if line.proposed_at is not None and line.decision is None:
        return LineResult(line.id, "proposed", (line.ours or {}).get("order_id"))
    if line.kind not in APPLICABLE_KINDS:
        raise NothingToApply(_l("This line matches our order: there is nothing to apply."))
    if (line.theirs or {}).get("behind"):
        raise NothingToApply(_l("The network is behind us on this order, and an order never moves back: "
                                "there is nothing to apply."), code="network_behind")
    event = _event_for(session, line, line.recon_import.digest)
    customer_id, raised = _estimate(session, line, event)
    if raised > 0:
        _cap_check(line, raised)
        line.customer_id, line.raise_usd = customer_id, raised
        line.proposed_by, line.proposed_at, line.proposal_reason = actor.label[:120], utcnow(), reason
        audit.record(session, actor, "recon.line.proposed", "recon_line", line.id, reason=reason,
                     after={"customer_id": customer_id, "raise_usd": raised, "kind": line.kind})
        return LineResult(line.id, "proposed", (line.ours or {}).get("order_id"))
    return _apply(session, line, event, actor, reason, default_rate)


def _apply(session: Session, line: ReconLine, event: orders.OrderEvent, actor: Actor, reason: str,
           default_rate: Decimal | None) -> LineResult:
    outcome = orders.receive_event(
        session, event, actor=actor,
        default_rate=default_rate if default_rate is not None else _default("DEFAULT_CASHBACK_RATE"))
    order = session.get(Order, outcome.order_id) if outcome.order_id is not None else None
    line.applied_at = utcnow()
    line.applied_by = actor.label[:120]
    result = LineResult(line.id, "duplicate" if outcome.duplicate else outcome.outcome, outcome.order_id)
    audit.record(session, actor, "recon.line.applied", "recon_line", line.id, reason=reason,
                 before={"kind": line.kind, "ours": line.ours},
                 after={"event_id": event.event_id, "outcome": result.outcome, "order_id": outcome.order_id,
                        "status": order.status if order else None,
                        "booked_in": order.booked_in if order else None,
                        "booked_cashback": order.booked_cashback if order else None})
    return result


def _proposed_lines(session: Session, import_id: int, actor: Actor) -> tuple[ReconImport, list[ReconLine]]:
    recon = session.get(ReconImport, import_id)
    if recon is None:
        raise NotFound()
    lines = list(session.execute(sa.select(ReconLine).where(
        ReconLine.import_id == import_id, ReconLine.proposed_at.is_not(None), ReconLine.decision.is_(None))
        .order_by(ReconLine.line, ReconLine.id).with_for_update().execution_options(populate_existing=True)).scalars())
    if not lines:
        raise NothingToApply(_l("Nothing in this report is waiting for approval."), code="no_proposal")
    return recon, lines


def approve_proposal(session: Session, import_id: int, actor: Actor, reason: str, *,
                     default_rate: Decimal | None = None) -> BulkResult:
    """A second Finance user applies every proposed line of an import (four eyes); the caller commits.

    Refused as a whole when the approver imported the report or proposed any of its lines.
    Each line is applied in a savepoint; one whose raise now exceeds the cap (the order moved
    since) fails and the others go on.
    """
    reason = _reason(reason)
    recon, lines = _proposed_lines(session, import_id, actor)
    if actor.label[:120] in {recon.imported_by, *(line.proposed_by for line in lines)}:
        raise FourEyes()
    result = BulkResult()
    for line in lines:
        try:
            with session.begin_nested():
                event = _event_for(session, line, recon.digest)
                _customer, raised = _estimate(session, line, event)
                _cap_check(line, raised)
                line.decision, line.decided_by, line.decided_at = "approved", actor.label[:120], utcnow()
                result.applied.append(_apply(session, line, event, actor, reason, default_rate))
        except DomainError as err:
            result.failed.append((line.id, err.code, str(err.message)))
    return result


def reject_proposal(session: Session, import_id: int, actor: Actor, reason: str) -> int:
    """Reject every proposed line of an import (nothing is applied; audited); returns how many."""
    reason = _reason(reason)
    _recon, lines = _proposed_lines(session, import_id, actor)
    for line in lines:
        line.decision, line.decided_by, line.decided_at = "rejected", actor.label[:120], utcnow()
        audit.record(session, actor, "recon.line.rejected", "recon_line", line.id, reason=reason,
                     before={"proposed_by": line.proposed_by, "raise_usd": line.raise_usd})
    return len(lines)


def apply_all(session: Session, import_id: int, actor: Actor, reason: str, *,
              default_rate: Decimal | None = None) -> BulkResult:
    """Apply every open, applicable line of an import, proposing those that would create or raise
    cashback (each audited); the caller commits."""
    reason = _reason(reason)
    if session.get(ReconImport, import_id) is None:
        raise NotFound()
    lines = session.execute(
        sa.select(ReconLine).where(ReconLine.import_id == import_id, ReconLine.applied_at.is_(None),
                                   ReconLine.kind.in_(APPLICABLE_KINDS))
        .order_by(ReconLine.line, ReconLine.id)
    ).scalars().all()
    result = BulkResult()
    for line in lines:
        if not is_applicable(line):
            result.skipped += 1
            continue
        try:
            with session.begin_nested():
                done = apply_line(session, line.id, actor, reason, default_rate=default_rate)
                (result.proposed if done.outcome == "proposed" else result.applied).append(done)
        except DomainError as err:
            result.failed.append((line.id, err.code, str(err.message)))
    return result
