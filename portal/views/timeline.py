"""Customer search and the customer timeline, for Support (also Finance and Admin).

* ``/support/customers/search?q=`` — one box: id, e-mail, order number, sub-id, wallet or
  phone; each result says what matched.
* ``/support/customers/<id>/timeline`` — a summary header and every event about the
  customer, newest first, filtered by kind (``?kind=order&kind=payout``), paged with
  "older" links (``?until=<ISO time>``).

Permission ``can_read`` on ``CustomerTimeline`` (set ``customers.timeline``).  Wallets and
phones are masked unless the viewer may see payout PII (``can_pii`` on ``PayoutView``,
as on the payout desk).  Thin: the queries are ``portal.services.timeline``'s.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from flask import abort, current_app, flash, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from markupsafe import Markup, escape

from portal.extensions import db
from portal.i18n import _, _l
from portal.services import timeline as tl
from portal.views.payouts_desk import sees_pii


def _time_arg(name: str) -> dt.datetime | None:
    """An ISO timestamp query argument (aware, UTC if no zone); a bad value is ignored with a warning."""
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        flash(_("Not a valid time: %(value)s", value=raw), "warning")
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def value_type(value) -> str:
    """How the template shows a detail: ``datetime``, ``date``, ``number``, ``mapping`` or ``text``."""
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, bool):
        return "text"
    if isinstance(value, (int, Decimal)):
        return "number"
    if isinstance(value, dict):
        return "mapping"
    return "text"


def _url(link: tl.Link) -> str | None:
    """The link's URL when the viewer may open it."""
    if not current_app.appbuilder.sm.has_access(link.permission, link.view):
        return None
    return url_for(link.endpoint, **link.args)


def timeline_link(customer_id) -> Markup:
    """``customer_id`` with a link to the customer's timeline when the viewer may open it
    (a column formatter of the customer list, ``portal/views/people.py``)."""
    if not current_app.appbuilder.sm.has_access("can_read", "CustomerTimeline"):
        return Markup(escape(customer_id))
    return Markup('{} <a class="btn btn-xs btn-default timeline-link" href="{}">{}</a>').format(
        customer_id, url_for("CustomerTimelineView.timeline", customer_id=customer_id), _("Timeline"))


class CustomerTimelineView(BaseView):
    """Find a customer and read everything that happened to them, in time order."""

    route_base = "/support/customers"
    default_view = "search"
    class_permission_name = "CustomerTimeline"
    base_permissions = ["can_read"]
    method_permission_name = {"search": "read", "timeline": "read"}

    @expose("/search")
    @has_access
    def search(self):
        query = (request.args.get("q") or "").strip()
        pii = sees_pii()
        matches = tl.search(db.session, query, show_pii=pii) if query else []
        return self.render_template("support/customer_search.html", query=query, matches=matches,
                                    reasons=tl.REASONS, title=_("Customer search"))

    @expose("/<int:customer_id>/timeline")
    @has_access
    def timeline(self, customer_id: int):
        kinds = [k for k in request.args.getlist("kind") if k in tl.KINDS]
        limit = request.args.get("limit", type=int) or tl.DEFAULT_LIMIT
        until, since = _time_arg("until"), _time_arg("since")
        page = tl.timeline(db.session, customer_id, show_pii=sees_pii(), limit=limit, until=until, since=since,
                           kinds=kinds or None)
        if page is None:
            abort(404)
        older = None
        if page.next_until is not None:
            older = url_for(".timeline", customer_id=customer_id, kind=kinds, limit=limit,
                            until=page.next_until.isoformat(),
                            since=since.isoformat() if since else None)
        return self.render_template(
            "support/timeline.html", page=page, summary=page.summary, customer=page.summary.customer,
            kinds=tl.KINDS, selected=set(kinds), detail_labels=tl.DETAIL_LABELS, amount_labels=tl.AMOUNT_LABELS,
            link_url=_url, value_type=value_type, detail_kind=tl.detail_kind, older=older, paged=until is not None,
            newest=url_for(".timeline", customer_id=customer_id, kind=kinds),
            title=_("Customer %(email)s", email=page.summary.customer.email))


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(CustomerTimelineView, "Customer search", label=_l("Customer search"),
                        category="People", category_label=_l("People"), icon="fa-search")
