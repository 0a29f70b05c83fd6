"""The portal's Flask-AppBuilder model view: every list and show page reads as a person reads it.

``PortalModelView`` is FAB's ``ModelView`` with:

* the codes of ``enum_columns`` (``{"state": "payout_state"}``) shown through their table in
  ``portal.labels`` (``«На проверке»``, never ``in_review``);
* every other list and show column without a formatter shown through ``labels.shown``:
  ``True``/``False`` as «да»/«нет», nothing as an em dash (FAB prints ``True``, ``None``);
* a column without a label named as ``labels.ENUMS["field"]`` names it (FAB would print
  ``Id``, ``Email``, ``Coupon Used``);
* titles the subclass sets in the catalog (``list_title``, ``show_title``, …): FAB's own
  are English («List Customer», «Show Payout»).
"""
from __future__ import annotations

from flask_appbuilder import ModelView

from portal import labels


class PortalModelView(ModelView):
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
