"""The ledger, read-only: postings with their entries and the amount each moved (its credits),
accounts with their balance (``Account.balance``: the ledger's reading, debit-normal accounts
with the sign turned), every figure with the ledger's digits beside its currency."""
from __future__ import annotations

from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla.interface import SQLAInterface

from portal import labels
from portal.formatting import list_formatters, money
from portal.i18n import _l
from portal.models import Account, Entry, Posting
from portal.views.model_view import PortalModelView


class EntryInline(PortalModelView):
    list_title = _l("Entries")
    show_title = _l("Entry")
    datamodel = SQLAInterface(Entry)
    base_permissions = ["can_list"]
    list_columns = ["account", "amount", "currency"]
    formatters_columns = list_formatters(amount_columns=["amount"])  # the ledger's exact digits


class PostingView(PortalModelView):
    list_title = _l("Postings")
    show_title = _l("Posting")
    enum_columns = {"kind": "posting_kind", "actor": "actor"}
    datamodel = SQLAInterface(Posting)
    base_permissions = ["can_list", "can_show"]
    list_columns = ["id", "created_at", "kind", "moved", "reference", "actor", "memo"]
    show_columns = ["id", "created_at", "kind", "moved", "reference", "actor", "memo"]
    search_columns = ["kind", "reference", "actor"]
    formatters_columns = {**list_formatters(time_columns=["created_at"]),
                          "moved": lambda moved: money(*moved, exact=True)}
    base_order = ("id", "desc")
    related_views = [EntryInline]
    label_columns = {"created_at": _l("Time"), "kind": _l("Kind"), "reference": _l("Reference"),
                     "actor": _l("Actor"), "memo": _l("Memo")}


class AccountView(PortalModelView):
    list_title = _l("Ledger accounts")
    show_title = _l("Ledger account")
    enum_columns = {"kind": "account_kind"}
    datamodel = SQLAInterface(Account)
    base_permissions = ["can_list", "can_show"]
    list_columns = ["id", "name", "kind", "balance", "currency", "shards", "created_at"]
    show_columns = ["id", "name", "kind", "balance", "currency", "shards", "created_at"]
    search_columns = ["name", "kind", "currency"]
    formatters_columns = {**list_formatters(time_columns=["created_at"], amount_columns=["balance"]),
                          "name": labels.account_owner}
    base_order = ("id", "asc")
    related_views = [EntryInline]
    label_columns = {"name": _l("Account"), "kind": _l("Kind"), "currency": _l("Currency"),
                     "shards": _l("Balance rows"), "created_at": _l("Opened")}


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_view_no_menu(EntryInline)
    appbuilder.add_view(PostingView, "Postings", label=_l("Postings"),
                        category="Ledger", category_label=_l("Ledger"), icon="fa-book")
    appbuilder.add_view(AccountView, "Accounts", label=_l("Accounts"),
                        category="Ledger", icon="fa-balance-scale")
