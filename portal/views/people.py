"""Customers as staff see them."""
from __future__ import annotations

from flask_appbuilder import AppBuilder
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.interface import SQLAInterface

from portal.formatting import list_formatters
from portal.i18n import _l
from portal.models import Customer
from portal.views.timeline import timeline_link
from portal.views.model_view import PortalModelView


class CustomerView(PortalModelView):
    list_title = _l("Customers")
    show_title = _l("Customer")
    enum_columns = {"locale": "locale", "country": "country"}
    datamodel = SQLAInterface(Customer)
    base_permissions = ["can_list", "can_show"]
    list_columns = ["id", "email", "name", "country", "locale", "is_blocked", "created_at"]
    show_columns = ["id", "email", "name", "country", "locale", "is_blocked", "block_reason", "created_at"]
    search_columns = ["email", "name", "country"]
    formatters_columns = list_formatters(time_columns=["created_at"])
    formatters_columns = {**formatters_columns, "id": timeline_link}  # the customer's timeline
    base_order = ("id", "desc")
    label_columns = {
        "email": _l("E-mail"), "name": _l("Name"), "country": _l("Country"),
        "locale": _l("Language"), "is_blocked": _l("Blocked"), "block_reason": _l("Block reason"),
        "created_at": _l("Registered"),
    }

    # Support: block / unblock with a reason (portal/views/accounts.py; set customers.block)
    @action("block", _l("Block or unblock"), single=True, multiple=False, icon="fa-ban")
    def block_action(self, items):
        from flask import abort, redirect, url_for

        item = items[0] if isinstance(items, list) and items else items  # show page: a list of one
        if not item:
            abort(404)
        return redirect(url_for("CustomerBlockView.block", customer_id=item.id))


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(CustomerView, "Customers", label=_l("Customers"),
                        category="People", category_label=_l("People"), icon="fa-users")
