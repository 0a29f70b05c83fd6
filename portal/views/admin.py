"""Admin-only pages: the audit log."""
from __future__ import annotations

from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla.interface import SQLAInterface

from portal import labels
from portal.formatting import list_formatters
from portal.i18n import _l
from portal.models import AuditRecord
from portal.views.model_view import PortalModelView


class AuditLogView(PortalModelView):
    list_title = _l("Audit log")
    show_title = _l("Audit record")
    enum_columns = {"action": "audit_action", "object_type": "object_type", "actor": "actor"}
    datamodel = SQLAInterface(AuditRecord)
    base_permissions = ["can_list", "can_show"]
    list_columns = ["created_at", "actor", "action", "object_type", "object_id", "reason"]
    show_columns = ["created_at", "actor", "action", "object_type", "object_id", "reason", "before", "after"]
    search_columns = ["actor", "action", "object_type", "object_id"]
    formatters_columns = {**list_formatters(time_columns=["created_at"]), "before": labels.mapping,
                          "after": labels.mapping}
    base_order = ("id", "desc")
    label_columns = {"created_at": _l("Time"), "actor": _l("Who"), "action": _l("Action"),
                     "object_type": _l("Object"), "object_id": _l("Object id"), "reason": _l("Reason"),
                     "before": _l("Before"), "after": _l("After")}


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(AuditLogView, "Audit log", label=_l("Audit log"),
                        category="Security", icon="fa-history")
