"""Translation helpers. Message ids are English; Russian lives in portal/translations/ru.

Services mark user-facing text with ``_l`` (lazy) so the text is rendered in the
requester's locale when it is shown, not when the module is imported.
"""
from flask_babel import gettext as _, lazy_gettext as _l

__all__ = ["_", "_l"]
