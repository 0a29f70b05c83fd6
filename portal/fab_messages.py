"""Flask-AppBuilder's own messages that its Russian catalog leaves in English or gets wrong.

FAB's templates and security views translate these ids with its catalog, which has no Russian
for them (or a wrong one: «Отобажения/меню»); listing them here puts them in ours (``cashback
translations update`` keeps them), and ours is merged over FAB's (``BABEL_TRANSLATION_DIRECTORIES``).
The security pages themselves are ``portal.views.security``.  Nothing imports this module.
"""
from portal.i18n import _l

MESSAGES = (
    _l("Detail"), _l("Add"), _l("Edit"), _l("Delete"), _l("Show"), _l("List"), _l("OK"), _l("Cancel"),
    _l("Groups"), _l("List Groups"), _l("Add Group"), _l("Edit Group"), _l("Show Group"), _l("Users"),
    _l("Roles"), _l("User"), _l("Statistics"), _l("Failed Login Count"), _l("Last Login"),
    # the Security menu's entries (FAB registers them with these English labels)
    _l("List Users"), _l("List Roles"), _l("User's Statistics"), _l("Base Permissions"), _l("Views/Menus"),
    _l("Permission on Views/Menus"),
    _l("Copy Role"), _l("Copy the selected roles?"),
)
