"""Flask-AppBuilder's own security pages (logins, roles, groups, permissions, login statistics),
read as the rest of the portal reads.

Each class keeps FAB's class name: permissions are stored against it (``can_list`` on
``UserDBModelView``), so a role keeps its rights.  ``CashbackSecurityManager`` registers these
instead of FAB's.  What changes is what a person reads:

* titles, column and field labels and descriptions in the portal's catalog (FAB's Russian is
  missing or wrong for many, and speaks of LDAP and OID logins this portal does not have);
* values through ``portal.labels``: a flag as «да»/«нет», nothing as an em dash, roles by their
  label («Администратор»), permissions as «просмотр списка — Клиенты» (the stored names,
  ``can_list`` and ``CustomerView``, stay as they are: RBAC matches them);
* the role and permission choices of forms and filters labelled the same way.
"""
from __future__ import annotations

from flask import redirect
from flask_appbuilder.actions import action
from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.security.forms import roles_or_groups_required
from flask_appbuilder.security.views import (PermissionModelView as FabPermissionModelView,
                                             PermissionViewModelView as FabPermissionViewModelView,
                                             ResetMyPasswordView as FabResetMyPasswordView,
                                             ResetPasswordView as FabResetPasswordView,
                                             RoleModelView as FabRoleModelView,
                                             UserDBModelView as FabUserDBModelView,
                                             UserGroupModelView as FabUserGroupModelView,
                                             UserInfoEditView as FabUserInfoEditView,
                                             UserStatsChartView as FabUserStatsChartView,
                                             ViewMenuModelView as FabViewMenuModelView)
from flask_appbuilder.validators import PasswordComplexityValidator
from flask_appbuilder.widgets import ListWidget, ShowWidget
from markupsafe import Markup
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, ValidationError

from portal import labels
from portal.formatting import list_formatters
from portal.i18n import _, _l
from portal.views.model_view import PortalModelView, RelationLabels

#: A login's fields, everywhere they are shown or asked for.
USER_LABELS = {
    "first_name": _l("First name"), "last_name": _l("Last name"), "get_full_name": _l("Full name"),
    "username": _l("Login name"), "email": _l("E-mail"), "active": _l("May log in"), "roles": _l("Roles"),
    "groups": _l("Groups"), "password": _l("Password"), "conf_password": _l("Password again"),
    "last_login": _l("Last login"), "login_count": _l("Logins"), "fail_login_count": _l("Failed logins in a row"),
    "created_on": _l("Created"), "created_by": _l("Created by"), "changed_on": _l("Changed"),
    "changed_by": _l("Changed by"),
}
USER_DESCRIPTIONS = {
    "first_name": _l("The person's first name"),
    "last_name": _l("The person's last name"),
    "username": _l("The name to log in with (the e-mail works too)"),
    "password": _l("The password to log in with"),
    "conf_password": _l("The same password once more"),
    "active": _l("Switch off instead of deleting a login: its history stays"),
    "email": _l("Where the portal writes to this person"),
    "roles": _l("What the login may see and do"),
    "groups": _l("Groups give their roles to every member"),
}
USER_FORMATTERS = {**list_formatters(time_columns=["last_login", "created_on", "changed_on"]),
                   "roles": labels.roles, "groups": labels.names, "last_name": labels.last_name,
                   "created_by": labels.person, "changed_by": labels.person}


def _no_dash(value):
    """A login made with a one-word name holds ``-`` as its last name: the form shows it empty."""
    return "" if value is not None and value.strip() == labels.NO_LAST_NAME else value


def _last_name_field():
    """The last name, optional (FAB asks for one: its column is NOT NULL; an empty one is stored as '')."""
    return StringField(USER_LABELS["last_name"], description=USER_DESCRIPTIONS["last_name"],
                       validators=[Optional(), Length(max=64)], filters=[_no_dash], widget=BS3TextFieldWidget())


def one_role_or_group(form, field):
    """FAB's rule (a login needs a role or a group), said in the catalog."""
    try:
        roles_or_groups_required(form, field)
    except ValidationError:
        raise ValidationError(_l("Choose a role or a group")) from None


def _password_fields():
    return {
        "password": PasswordField(USER_LABELS["password"], description=USER_DESCRIPTIONS["password"],
                                  validators=[DataRequired(), PasswordComplexityValidator()],
                                  widget=BS3PasswordFieldWidget()),
        "conf_password": PasswordField(USER_LABELS["conf_password"], description=USER_DESCRIPTIONS["conf_password"],
                                       validators=[DataRequired(),
                                                   EqualTo("password", message=_l("The passwords differ"))],
                                       widget=BS3PasswordFieldWidget()),
    }


class UserDBModelView(FabUserDBModelView, PortalModelView):
    list_title = _l("User accounts")
    show_title = _l("User account")
    add_title = _l("New user account")
    edit_title = _l("Edit user account")
    user_info_title = _l("Your login")
    label_columns = USER_LABELS
    description_columns = USER_DESCRIPTIONS
    formatters_columns = USER_FORMATTERS
    relation_labels = {"roles": labels.role_name}
    validators_columns = {"roles": [one_role_or_group], "groups": [one_role_or_group]}
    add_form_extra_fields = {**_password_fields(), "last_name": _last_name_field()}
    edit_form_extra_fields = {"last_name": _last_name_field()}
    show_fieldsets = [
        (_l("Login details"), {"fields": ["username", "active", "roles", "login_count"]}),
        (_l("Person"), {"fields": ["first_name", "last_name", "email"], "expanded": True}),
        (_l("History"), {"fields": ["last_login", "fail_login_count", "created_on", "created_by", "changed_on",
                                    "changed_by"], "expanded": False}),
    ]
    user_show_fieldsets = show_fieldsets[:2]


class RoleModelView(FabRoleModelView, PortalModelView):
    list_title = _l("Roles")
    show_title = _l("Role")
    add_title = _l("New role")
    edit_title = _l("Edit role")
    # FAB's role widgets show a value as it is (for roles of FAB_ROLES, which this portal has not)
    list_widget = ListWidget
    show_widget = ShowWidget
    label_columns = {"name": _l("Role name"), "permissions": _l("Permissions"), "user": _l("Users"),
                     "groups": _l("Groups")}
    description_columns = {
        "name": _l("Permission checks and the role definitions in code use this name: rename a built-in role "
                   "and it loses its permissions at the next role sync"),
        "permissions": _l("What the role may open and do"),
    }
    formatters_columns = {"name": labels.role_name,
                          "permissions": lambda items: Markup("<br>").join(labels.permission_views(items).split("\n")),
                          "user": labels.names, "groups": labels.names}
    relation_labels = {"permissions": labels.permission_view_name}
    relation_order = {"permissions": labels.permission_sort_key}

    @action("copyrole", _l("Copy Role"), _l("Copy the selected roles?"), icon="fa-copy", single=False)
    def copy_role(self, items):
        """FAB's copy, named in the reader's language: «Поддержка (копия)», not «Support copy»."""
        self.update_redirect()
        for item in items:
            self.datamodel.add(item.__class__(name=_("%(role)s (copy)", role=labels.role_name(item)),
                                              permissions=list(item.permissions)))
        return redirect(self.get_redirect())


class UserGroupModelView(FabUserGroupModelView, PortalModelView):
    list_title = _l("Groups")
    show_title = _l("Group")
    add_title = _l("New group")
    edit_title = _l("Edit group")
    label_columns = {"name": _l("Group name"), "label": _l("Shown as"), "description": _l("Description"),
                     "users": _l("Users"), "roles": _l("Roles")}
    description_columns = {"roles": _l("Every member of the group gets these roles")}
    formatters_columns = {"roles": labels.roles, "users": labels.names}
    relation_labels = {"roles": labels.role_name, "users": labels.full_name}


class PermissionModelView(FabPermissionModelView, PortalModelView):
    list_title = _l("Kinds of permission")
    show_title = _l("Kind of permission")
    label_columns = {"name": _l("Kind of permission")}
    formatters_columns = {"name": labels.permission_name}


class ViewMenuModelView(FabViewMenuModelView, PortalModelView):
    list_title = _l("Pages and menu items")
    show_title = _l("Page or menu item")
    label_columns = {"name": _l("Page or menu item")}
    formatters_columns = {"name": labels.view_menu_name}


class PermissionViewModelView(FabPermissionViewModelView, PortalModelView):
    list_title = _l("Permissions on pages")
    show_title = _l("Permission on a page")
    label_columns = {"permission": _l("Kind of permission"), "view_menu": _l("Page or menu item"),
                     "role": _l("Roles")}
    formatters_columns = {"permission": lambda p: labels.permission_name(p.name if p is not None else None),
                          "view_menu": lambda v: labels.view_menu_name(v.name if v is not None else None)}


class UserStatsChartView(RelationLabels, FabUserStatsChartView):
    chart_title = _l("Login statistics")
    relation_labels = {"roles": labels.role_name}
    definitions = [
        {"label": _l("Logins"), "group": "username", "series": ["login_count"]},
        {"label": _l("Failed logins in a row"), "group": "username", "series": ["fail_login_count"]},
    ]

    def __init__(self, **kwargs):
        # FAB names a chart's columns after the definitions and prettified column names
        # ("Login Count"), in a dict its class shares: each view its own, labelled from the catalog
        self.label_columns = dict(USER_LABELS)
        self.definitions = [dict(d) for d in self.definitions]
        super().__init__(**kwargs)
        self.label_columns.update(USER_LABELS)


# --- the forms of one's own login ---------------------------------------------------------------

class PasswordForm(DynamicForm):
    password = PasswordField(_l("New password"), validators=[DataRequired(), PasswordComplexityValidator()],
                             widget=BS3PasswordFieldWidget())
    conf_password = PasswordField(_l("New password again"),
                                  validators=[EqualTo("password", message=_l("The passwords differ"))],
                                  widget=BS3PasswordFieldWidget())


class UserInfoForm(DynamicForm):
    first_name = StringField(USER_LABELS["first_name"], validators=[DataRequired()], widget=BS3TextFieldWidget(),
                             description=USER_DESCRIPTIONS["first_name"])
    last_name = StringField(USER_LABELS["last_name"], validators=[Optional(), Length(max=64)], filters=[_no_dash],
                            widget=BS3TextFieldWidget(), description=USER_DESCRIPTIONS["last_name"])


class ResetMyPasswordView(FabResetMyPasswordView):
    form = PasswordForm
    form_title = _l("Change your password")
    message = _l("Password changed")


class ResetPasswordView(FabResetPasswordView):
    form = PasswordForm
    form_title = _l("Set a new password for the user")
    message = _l("Password changed")


class UserInfoEditView(FabUserInfoEditView):
    form = UserInfoForm
    form_title = _l("Your name")
    message = _l("Your name is saved")
