"""Flask-AppBuilder's own messages that its Russian catalog leaves in English.

FAB's templates and security views translate these ids with its catalog, which has no Russian
for them; listing them here puts them in ours (``cashback translations update`` keeps them), and
ours is merged over FAB's (``BABEL_TRANSLATION_DIRECTORIES``).  Nothing imports this module.
"""
from portal.i18n import _l

MESSAGES = (
    _l("Detail"), _l("Add"), _l("Edit"), _l("Delete"), _l("Show"), _l("List"), _l("OK"), _l("Cancel"),
    _l("Groups"), _l("List Groups"), _l("Add Group"), _l("Edit Group"), _l("Show Group"), _l("Users"),
    _l("Roles"), _l("User"), _l("Statistics"), _l("Failed Login Count"), _l("Last Login"),
)
