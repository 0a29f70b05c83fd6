"""The portal's Flask-AppBuilder model view: every list and show page reads as a person reads it.

``PortalModelView`` is FAB's ``ModelView`` with:

* the codes of ``enum_columns`` (``{"state": "payout_state"}``) shown through their table in
  ``portal.labels`` (``«На проверке»``, never ``in_review``);
* every other list and show column without a formatter shown through ``labels.shown``:
  ``True``/``False`` as «да»/«нет», nothing as an em dash (FAB prints ``True``, ``None``);
* a column without a label named as ``labels.ENUMS["field"]`` names it (FAB would print
  ``Id``, ``Email``, ``Coupon Used``);
* titles the subclass sets in the catalog (``list_title``, ``show_title``, …): FAB's own
  are English («List Customer», «Show Payout»);
* the choices of a relationship in forms and filters named by ``relation_labels``
  (``{"roles": labels.role_name}``; FAB shows each record's ``str``, a role's stored name).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_appbuilder import ModelView
from flask_appbuilder.fields import QuerySelectField
from wtforms.fields.core import UnboundField

from portal import labels


class RelationLabels:
    """A FAB view mixin: the choices of relationship columns read as ``relation_labels`` say,
    in the order of ``relation_order`` (default: alphabetical by that label)."""

    #: relationship column → the label of one related record
    relation_labels: dict[str, Callable[[Any], str]] = {}
    #: relationship column → the sort key of one related record
    relation_order: dict[str, Callable[[Any], Any]] = {}

    def _init_forms(self):
        super()._init_forms()
        for form in (getattr(self, name, None) for name in ("search_form", "add_form", "edit_form")):
            for column, get_label in self.relation_labels.items():
                field = getattr(form, column, None) if form is not None else None
                if isinstance(field, UnboundField) and issubclass(field.field_class, QuerySelectField):
                    order = self.relation_order.get(column) or (lambda item, name=get_label: name(item).casefold())
                    query = field.kwargs["query_func"]
                    field.kwargs.update(get_label=get_label,
                                        query_func=lambda query=query, order=order: sorted(query(), key=order))


class PortalModelView(RelationLabels, ModelView):
    #: column → the name of its table in ``portal.labels.ENUMS``
    enum_columns: dict[str, str] = {}

    def __init__(self, **kwargs):
        # FAB fills in English names for the columns without a label, in the dict it is given:
        # each view gets its own copy (views share tables such as ORDER_LABELS)
        self.label_columns = dict(self.label_columns or {})
        super().__init__(**kwargs)
        formatters = dict(self.formatters_columns or {})
        for column, kind in self.enum_columns.items():
            formatters.setdefault(column, labels.column(kind))
        for column in (*self.list_columns, *self.show_columns):
            formatters.setdefault(column, labels.shown)
        self.formatters_columns = formatters
        names = labels.ENUMS["field"]
        self.label_columns = {**self.label_columns, **{
            c: names[c] for c in (*self.list_columns, *self.show_columns, *self.search_columns)
            if c in names and str(self.label_columns.get(c, "")) in ("", self._prettify_column(c))}}
