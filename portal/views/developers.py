"""Developer pages: refused postbacks (forged, stale, malformed), newest first, read-only.

No customer data here: a rejection keeps the network, the reason, a hash of the IP and the
start of the body (postbacks carry sub-ids and amounts, not personal data).
"""
from __future__ import annotations

from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla.interface import SQLAInterface

from portal.formatting import list_formatters
from portal.i18n import _l
from portal.models import PostbackRejection
from portal.views.model_view import PortalModelView


class PostbackRejectionView(PortalModelView):
    list_title = _l("Postback rejections")
    show_title = _l("Postback rejection")
    enum_columns = {"reason": "rejection_reason", "network": "network"}
    datamodel = SQLAInterface(PostbackRejection)
    base_permissions = ["can_list", "can_show"]
    list_columns = ["received_at", "network", "reason", "http_status", "message"]
    show_columns = ["id", "received_at", "network", "reason", "http_status", "message", "ip_hash", "body_excerpt"]
    search_columns = ["network", "reason", "http_status"]
    formatters_columns = list_formatters(time_columns=["received_at"])
    base_order = ("id", "desc")
    label_columns = {"received_at": _l("Received"), "network": _l("Network"), "reason": _l("Reason"),
                     "http_status": _l("HTTP status"), "message": _l("Message"), "ip_hash": _l("IP hash"),
                     "body_excerpt": _l("Body (start)")}


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(PostbackRejectionView, "Postback rejections", label=_l("Postback rejections"),
                        category="Developers", category_label=_l("Developers"), icon="fa-ban")
