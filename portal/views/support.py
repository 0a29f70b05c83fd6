"""Support pages: orders (read-only), orphan orders and attaching them, network events.

Orders are read by Support and Finance.  Attaching an orphan to a customer takes two people:
Support proposes the customer (``can_attach``, ``orders.propose_attach``), Finance confirms or
rejects on **Orders → Attachments to confirm** (``OrphanAttachments``, ``orders.decide_attach``,
which books the cashback); both audited.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import SQLAFilterConverter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from portal.errors import DomainError
from portal.extensions import db
from portal.formatting import list_formatters
from portal.i18n import _, _l
from portal.models import Customer, NetworkEvent, Order
from portal.services import orders
from portal.services.audit import Actor
from portal.services.customers import normalize_email
from portal.views.model_view import PortalModelView

#: Refused form submissions answer with this status (the page shows the form and why).
REFUSED = 422

ORDER_LABELS = {
    "network": _l("Network"), "network_order_id": _l("Network order"), "sub_id": _l("Sub-id"),
    "customer": _l("Customer"), "customer.email": _l("Customer"), "status": _l("Status"),
    "amount_usd": _l("Amount, USD"), "commission_usd": _l("Commission, USD"), "refunded_usd": _l("Refunded, USD"),
    "reported_amount": _l("Reported amount"), "reported_currency": _l("Currency"), "rate": _l("Rate, %"),
    "promo": _l("Promo"), "channel": _l("Channel"), "booked_in": _l("Cashback in"),
    "booked_cashback": _l("Cashback, USD"), "paid_at": _l("Paid"), "confirmed_at": _l("Confirmed"),
    "cancelled_at": _l("Cancelled"), "last_event_at": _l("Last event"), "created_at": _l("Created"),
}
#: Codes of orders as a person reads them (``portal.labels``).
ORDER_ENUMS = {"status": "order_status", "booked_in": "booked_in", "channel": "channel", "network": "network"}


class FilterIsNull(BaseFilter):
    """``column IS NULL`` (for ``base_filters``; the value is ignored)."""

    name = _l("Is empty")
    arg_name = "null"

    def apply(self, query, value):
        return query.filter(getattr(self.model, self.column_name).is_(None))


class FilterCustomerEmail(BaseFilter):
    """Orders whose customer's e-mail contains the value (no join: a sub-select)."""

    name = _l("E-mail contains")
    arg_name = "ct"

    def apply(self, query, value):
        text = (value or "").strip().lower()
        if not text:
            return query
        emails = sa.select(Customer.id).where(sa.func.lower(Customer.email).contains(text, autoescape=True))
        return query.filter(Order.customer_id.in_(emails))


class _OrderFilters(SQLAFilterConverter):
    """The default filters, except that ``customer`` is searched by e-mail."""

    def convert(self, col_name):
        if col_name == "customer":
            return [FilterCustomerEmail(col_name, self.datamodel)]
        return super().convert(col_name)


class OrderInterface(SQLAInterface):
    filter_converter_class = _OrderFilters


class NetworkEventView(PortalModelView):
    """Every event the network sent (postbacks and applied reconciliation lines), read-only."""

    list_title = _l("Network events")
    show_title = _l("Network event")
    enum_columns = {"status": "order_status", "source": "event_source", "outcome": "event_outcome",
                    "channel": "channel", "network": "network"}
    datamodel = SQLAInterface(NetworkEvent)
    base_permissions = ["can_list", "can_show"]
    list_columns = ["received_at", "source", "network", "event_id", "network_order_id", "status", "amount",
                    "currency", "commission", "refunded_amount", "event_time", "outcome"]
    show_columns = ["id", "received_at", "source", "network", "event_id", "network_order_id", "sub_id", "status",
                    "amount", "currency", "commission", "refunded_amount", "event_time", "channel",
                    "coupon_used", "items_in_cart_before_click", "outcome", "order"]
    search_columns = ["network_order_id", "event_id", "source", "status", "outcome"]
    formatters_columns = list_formatters(amount_columns=["amount", "commission", "refunded_amount"],
                                         time_columns=["received_at", "event_time"])
    base_order = ("id", "desc")
    label_columns = {"received_at": _l("Received"), "source": _l("Source"), "network": _l("Network"),
                     "event_id": _l("Event id"), "network_order_id": _l("Network order"), "sub_id": _l("Sub-id"),
                     "status": _l("Status"), "amount": _l("Amount"), "currency": _l("Currency"),
                     "commission": _l("Commission"), "refunded_amount": _l("Refunded"),
                     "event_time": _l("Event time"), "outcome": _l("Outcome"), "order": _l("Order")}


ORDER_LIST = ["id", "network_order_id", "sub_id", "customer.email", "status", "amount_usd", "commission_usd",
              "refunded_usd", "booked_in", "booked_cashback", "last_event_at"]
ORDER_SHOW = ["id", "network", "network_order_id", "sub_id", "customer", "status", "amount_usd",
              "commission_usd", "refunded_usd", "reported_amount", "reported_currency", "rate", "promo",
              "channel", "booked_in", "booked_cashback", "paid_at", "confirmed_at", "cancelled_at",
              "last_event_at", "created_at"]
#: Figures of orders in lists and pages: USD exact, the reported amount beside its currency.
ORDER_FORMATTERS = list_formatters(
    money_columns=["amount_usd", "commission_usd", "refunded_usd", "booked_cashback"],
    amount_columns=["reported_amount"], percent_columns=["rate"],
    time_columns=["paid_at", "confirmed_at", "cancelled_at", "last_event_at", "created_at"])


class OrderView(PortalModelView):
    """Orders as the network reported them and the cashback booked for each, read-only."""

    show_title = _l("Order")
    enum_columns = ORDER_ENUMS
    datamodel = OrderInterface(Order)
    base_permissions = ["can_list", "can_show"]
    list_columns = ORDER_LIST
    show_columns = ORDER_SHOW
    search_columns = ["network_order_id", "sub_id", "customer", "status"]
    search_form_extra_fields = {"customer": StringField(_l("Customer e-mail"))}
    base_order = ("id", "desc")
    related_views = [NetworkEventView]
    formatters_columns = ORDER_FORMATTERS
    list_title = _l("All orders")
    label_columns = ORDER_LABELS


class AttachOrphanForm(FlaskForm):
    customer = StringField(_l("Customer id or e-mail"), validators=[
        DataRequired(message=_l("Enter the customer's id or e-mail.")), Length(max=254)])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(message=_l("Say why."))])


def _customer(text: str) -> Customer | None:
    text = text.strip()
    if text.isdigit():
        return db.session.get(Customer, int(text))
    return db.session.execute(sa.select(Customer).where(
        sa.func.lower(Customer.email) == normalize_email(text))).scalar_one_or_none()


def _attach_link(order_id: int) -> Markup:
    if not OrphanOrderView.can_attach():
        return Markup(escape(order_id))
    return Markup('{} <a class="btn btn-xs btn-primary" href="{}">{}</a>').format(
        order_id, url_for("OrphanOrderView.attach", pk=order_id), _("Attach"))


class OrphanOrderView(PortalModelView):
    """Orders whose sub-id matched no click: Support gives each to its customer."""

    show_title = _l("Orphan order")
    enum_columns = ORDER_ENUMS
    datamodel = SQLAInterface(Order)
    base_permissions = ["can_list", "can_show", "can_attach"]
    base_filters = [["customer_id", FilterIsNull, None]]
    list_columns = ["id", "network_order_id", "sub_id", "status", "amount_usd", "commission_usd",
                    "last_event_at"]
    show_columns = [c for c in ORDER_SHOW if c != "customer"]
    search_columns = ["network_order_id", "sub_id"]
    base_order = ("id", "desc")
    list_title = _l("Orphan orders")
    label_columns = ORDER_LABELS
    formatters_columns = {**ORDER_FORMATTERS, "id": _attach_link}

    @staticmethod
    def can_attach() -> bool:
        from flask import current_app

        return current_app.appbuilder.sm.has_access("can_attach", "OrphanOrderView")

    @expose("/attach/<int:pk>", methods=["GET", "POST"])
    @has_access
    def attach(self, pk: int):
        """Attach the orphan order ``pk`` to a customer (id or e-mail) with a reason."""
        order = db.session.get(Order, pk)
        if order is None:
            abort(404)
        form = AttachOrphanForm()
        if form.validate_on_submit():
            customer = _customer(form.customer.data)
            if customer is None:
                form.customer.errors.append(_("No such customer."))
            else:
                try:
                    orders.propose_attach(db.session, order.id, customer.id, actor=Actor.user(current_user),
                                          reason=form.reason.data)
                except DomainError as err:
                    db.session.rollback()
                    flash(str(err.message), "danger")
                else:
                    db.session.commit()
                    flash(_("Order %(order)s proposed for %(email)s: Finance confirms it before any cashback is "
                            "booked.", order=order.network_order_id, email=customer.email), "success")
                    return redirect(url_for(".list"))
        status = REFUSED if request.method == "POST" else 200
        return self.render_template("support/attach_orphan.html", form=form, order=order,
                                    title=_("Attach an orphan order")), status


class OrphanAttachmentsView(BaseView):
    """Orphan orders Support proposed for a customer: Finance confirms (books the cashback) or rejects."""

    route_base = "/orders/attachments"
    default_view = "attachment_list"
    class_permission_name = "OrphanAttachments"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"attachment_list": "read", "decide": "write"}

    def _page(self, status: int = 200, form=None):
        from portal.views.claims import DecideForm

        return self.render_template(
            "support/attachments.html", rows=orders.proposed_attachments(db.session),
            form=form or DecideForm(formdata=None), me=Actor.user(current_user).label,
            title=_("Attachments to confirm")), status

    @expose("/")
    @has_access
    def attachment_list(self):
        return self._page()

    @expose("/<int:order_id>/decide", methods=["POST"])
    @has_access
    def decide(self, order_id: int):
        from portal.views.claims import DecideForm

        form = DecideForm()
        if not form.validate_on_submit():
            return self._page(REFUSED, form)
        approve = form.decision.data == "approve"
        try:
            order = orders.decide_attach(db.session, order_id, approve=approve, actor=Actor.user(current_user),
                                         note=form.note.data)
        except DomainError as err:
            db.session.rollback()
            flash(str(err.message), "danger")
            return self._page(REFUSED, form)
        db.session.commit()
        if approve:
            flash(_("Order %(order)s now belongs to %(email)s.", order=order.network_order_id,
                    email=order.customer.email), "success")
        else:
            flash(_("The attachment of order %(order)s was rejected.", order=order.network_order_id), "success")
        return redirect(url_for(".attachment_list"))


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(OrderView, "All orders", label=_l("All orders"),
                        category="Orders", category_label=_l("Orders"), icon="fa-shopping-cart")
    appbuilder.add_view(OrphanOrderView, "Orphan orders", label=_l("Orphan orders"),
                        category="Orders", icon="fa-question-circle")
    appbuilder.add_view(OrphanAttachmentsView, "Attachments to confirm", label=_l("Attachments to confirm"),
                        category="Orders", icon="fa-check")
    appbuilder.add_view(NetworkEventView, "Network events", label=_l("Network events"),
                        category="Orders", icon="fa-bolt")
