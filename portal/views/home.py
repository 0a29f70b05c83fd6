"""The front door: ``/`` and the customer's own profile.

* ``/`` (``HomeView``, FAB's index view, where the login form sends everyone): an anonymous
  visitor gets the landing page (what the service is, "Register", "Log in"); a customer goes
  to the cabinet; staff go to their desk — the first of :data:`LANDINGS` their role may open
  (Finance: the review queue; Support: claims breaching the SLA; Developers: the developer
  desk).  Admin, and a login with none of those, gets the desks page: every desk the login
  may open, one line each.
* ``/cabinet/profile/`` (``CustomerProfileView``, permission ``CustomerProfile``, the
  ``customer.profile`` set): the customer's e-mail (and whether it is confirmed), the language
  of pages and mail, and a new password after the current one.  The navbar's "Profile" leads
  customers here instead of FAB's user record (``/users/userinfo/``, staff only).
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, flash, g, redirect, session as web_session, url_for
from flask_appbuilder import AppBuilder, BaseView, IndexView, expose, has_access
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField

from portal.errors import DomainError
from portal.extensions import db
from portal.i18n import _, _l
from portal.models import Customer
from portal.services import accounts, customer_views as cv
from portal.views.cabinet import CustomerPages, customer_page

#: Where staff land after login: the first (permission, view) the login has, in this order.
LANDINGS: tuple[tuple[str, str, str], ...] = (
    ("can_read", "PayoutReview", "PayoutReviewView.queue"),         # Finance: the review queue
    ("can_read", "ClaimDesk", "ClaimDeskView.breaching_list"),      # Support: claims breaching the SLA
    ("can_read", "DeveloperDesk", "DeveloperDeskView.index"),       # Developers: their desk
)
#: Roles that land on the desks page even when they hold a desk's permission.
DESKS_PAGE_ROLES = frozenset({"Admin"})


@dataclass(frozen=True)
class Desk:
    """One line of the desks page."""

    permission: str
    view: str
    endpoint: str
    title: str
    text: str


DESKS: tuple[Desk, ...] = (
    Desk("can_read", "PayoutReview", "PayoutReviewView.queue", _l("Review queue"),
         _l("Withdrawals waiting for a Finance decision.")),
    Desk("can_read", "FinanceDashboard", "FinanceDashboardView.dashboard", _l("Finance dashboard"),
         _l("Cashback, payouts and provider balances by day.")),
    Desk("can_read", "ClaimDesk", "ClaimDeskView.breaching_list", _l("Claims breaching the SLA"),
         _l("Missing-cashback claims that waited too long.")),
    Desk("can_read", "CustomerTimeline", "CustomerTimelineView.search", _l("Customer search"),
         _l("A customer's orders, cashback, payouts and claims on one page.")),
    Desk("can_read", "DeveloperDesk", "DeveloperDeskView.index", _l("Developer desk"),
         _l("Provider plugins, job queues and failed jobs.")),
    Desk("can_list", "AuditLogView", "AuditLogView.list", _l("Audit log"),
         _l("Who changed what, and why.")),
    Desk("can_list", "UserDBModelView", "UserDBModelView.list", _l("Users"),
         _l("Staff logins and their roles.")),
)


def current_customer() -> Customer | None:
    """The logged-in customer, or None (anonymous, staff); looked up once per request."""
    if "portal_customer" not in g:
        customer = None
        if current_user and current_user.is_authenticated:
            try:
                customer = cv.customer_for_user(db.session, current_user)
            except cv.NotACustomer:
                pass
        g.portal_customer = customer
    return g.portal_customer


def profile_url() -> str:
    """The navbar's "Profile": the cabinet's profile page for customers, FAB's user record for staff."""
    if current_customer() is not None:
        return url_for("CustomerProfileView.index")
    return current_app.appbuilder.get_url_for_userinfo


class HomeView(IndexView):
    """``/``: the landing page, or the login's own desk."""

    @expose("/")
    def index(self):
        if not current_user.is_authenticated:
            return self.render_template("home/landing.html", rate=current_app.config["DEFAULT_CASHBACK_RATE"],
                                        methods=_method_names())
        if current_customer() is not None:
            return redirect(url_for("CabinetView.index"))
        sm = self.appbuilder.sm
        roles = {role.name for role in current_user.roles}
        if not roles & DESKS_PAGE_ROLES:
            for permission, view, endpoint in LANDINGS:
                if sm.has_access(permission, view):
                    return redirect(url_for(endpoint))
        desks = [d for d in DESKS if sm.has_access(d.permission, d.view)]
        return self.render_template("home/desks.html", desks=desks)


def _method_names() -> list[str]:
    """The payout methods customers are offered, by name, for the landing page."""
    from portal.api import payouts as payout_api

    return [m.name for m in payout_api.payout_methods(db.session, payout_api.request_locale()) if m.enabled]


# --- the customer's profile ---------------------------------------------------------------------------

def _languages():
    return [(code, spec["name"]) for code, spec in current_app.config["LANGUAGES"].items()]


class LocaleForm(FlaskForm):
    locale = SelectField(_l("Language of the pages and our messages"))


class PasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), render_kw={"autocomplete": "current-password"})
    password = PasswordField(_l("New password (at least 8 characters)"), render_kw={"autocomplete": "new-password"})
    password2 = PasswordField(_l("Repeat the new password"), render_kw={"autocomplete": "new-password"})


class CustomerProfileView(CustomerPages, BaseView):
    """``/cabinet/profile/``: e-mail, language, password."""

    route_base = "/cabinet/profile"
    default_view = "index"
    class_permission_name = "CustomerProfile"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"index": "read", "set_locale": "write", "set_password": "write"}

    def _page(self, customer: Customer, *, locale_form: LocaleForm | None = None,
              password_form: PasswordForm | None = None, error: str | None = None, status: int = 200):
        locale_form = locale_form or LocaleForm(formdata=None, locale=customer.locale)
        locale_form.locale.choices = _languages()
        return self._render("accounts/profile.html", status, customer=customer, locale_form=locale_form,
                            password_form=password_form or PasswordForm(formdata=None), error=error)

    def _expired(self, customer: Customer, **forms):
        return self._page(customer, error=_("The form has expired. Reload the page and try again."), status=400,
                          **forms)

    @expose("/")
    @has_access
    @customer_page
    def index(self, customer: Customer):
        return self._page(customer)

    @expose("/locale", methods=["POST"])
    @has_access
    @customer_page
    def set_locale(self, customer: Customer):
        form = LocaleForm()
        form.locale.choices = _languages()
        if not form.validate_on_submit():
            return self._expired(customer, locale_form=form)
        try:
            accounts.set_locale(db.session, current_app.config, customer, form.locale.data)
        except DomainError as err:
            db.session.rollback()
            return self._page(customer, locale_form=form, error=str(err.message), status=err.status)
        db.session.commit()
        web_session["locale"] = customer.locale  # the pages follow at once
        flash(_("Language saved."), "success")
        return redirect(url_for("CustomerProfileView.index"))

    @expose("/password", methods=["POST"])
    @has_access
    @customer_page
    def set_password(self, customer: Customer):
        form = PasswordForm()
        if not form.validate_on_submit():
            return self._expired(customer, password_form=form)
        if (form.password.data or "") != (form.password2.data or ""):
            form.password2.errors = [_("The passwords do not match.")]
            return self._page(customer, password_form=form, status=422)
        try:
            accounts.change_password(db.session, current_app.config, customer, form.current.data or "",
                                     form.password.data or "")
        except DomainError as err:
            db.session.rollback()
            shown = False
            for problem in err.errors:
                field = getattr(form, problem.get("field") or "", None)
                if field is not None:
                    field.errors = [*field.errors, str(problem["message"])]
                    shown = True
            return self._page(customer, password_form=form, error=None if shown else str(err.message),
                              status=err.status)
        db.session.commit()
        flash(_("Your new password is set."), "success")
        return redirect(url_for("CustomerProfileView.index"))


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(CustomerProfileView, "Cabinet profile", label=_l("Profile"), icon="fa-id-card",
                        category="Cabinet")

    @current_app.context_processor
    def _profile():
        return {"profile_url": profile_url, "current_customer": current_customer}
