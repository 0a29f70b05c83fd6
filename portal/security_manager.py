"""The portal's Flask-AppBuilder security manager: AUTH_DB plus CPA-partner login.

``AUTH_TYPE`` stays ``AUTH_DB``: the login form (``/login/``) and the JWT login
(``POST /api/v1/security/login``, provider ``db``; the browser extension uses it) both call
:meth:`CashbackSecurityManager.auth_user_db`, so partner logins work in both.

The decision, for a username and password (``portal.services.partners`` has the rules):

1. Partner login off (empty ``PARTNER_DIRECTORY_URL``): FAB's own check, nothing else.
2. A local login that is **not a customer** (staff): FAB's check only; the directory is never
   asked, so no partner account can ever open a staff login.
3. A **partner-linked** customer's login: the directory only (its local password is
   random and unknown); no local check, no fallback.
4. A local customer whose password matches: logged in locally.  Otherwise (wrong local
   password, or no local login with that name or e-mail) the directory is asked; if it
   accepts, the account for the partner is found by partner id, linked by the e-mail the
   directory returned, or created (``partners.login_partner``; audited).

A directory that is down or slow refuses the login with "partner directory unavailable,
try later" (``g.partner_login_error``): the form shows it instead of FAB's "Invalid login",
the JWT login answers 503 with it (403 when the partner cannot be let in), in the API's one
error shape (``portal.errors.error_body``).
"""
from __future__ import annotations

import logging
import time

import sqlalchemy as sa
from flask import current_app, g, has_request_context, request
from flask_appbuilder.api import safe
from flask_appbuilder.security.api import SecurityApi as FabSecurityApi
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.sqla.models import assoc_permissionview_role
from flask_appbuilder.security.utils import is_null_password
from flask_appbuilder.security.views import AuthDBView as FabAuthDBView
from flask_appbuilder.views import expose
from sqlalchemy.exc import IntegrityError

from portal.errors import DomainError, error_body
from portal.extensions import db
from portal.services import customers, partners
from portal.views import security as security_views

log = logging.getLogger(__name__)


def partner_login_error() -> DomainError | None:
    """Why the last ``auth_user_db`` of this request refused a partner login, if it was the directory's say."""
    return g.get("partner_login_error")


class AuthDBView(FabAuthDBView):
    """FAB's login form; a refused partner login shows its own reason (same name: same endpoints)."""

    @property
    def invalid_login_message(self):
        error = partner_login_error()
        return error.message if error is not None else FabAuthDBView.invalid_login_message


class SecurityApi(FabSecurityApi):
    """FAB's JWT login; a refused partner login answers its status and reason (same name: same blueprint)."""

    @expose("/login", methods=["POST"])
    @safe
    def login(self):
        response = super().login()
        error = partner_login_error()
        if response.status_code == 401 and error is not None:
            return self.response(error.status, **error_body(error.status, error.code, error.message))
        return response


#: Where one request keeps the permissions it looked up (the WSGI environ: one per request, even when
#: a test holds an app context, and so ``g``, across requests).
PERMISSIONS_CACHE = "cashback.role_permissions"


def _request_cache() -> dict | None:
    return request.environ.setdefault(PERMISSIONS_CACHE, {}) if has_request_context() else None


def minted_claims(_identity) -> dict:
    """When the token was minted, in milliseconds (``iat`` has whole seconds only)."""
    return {"minted_ms": time.time_ns() // 1_000_000}


def token_revoked(_jwt_header: dict, jwt_payload: dict) -> bool:
    """A JWT minted before its customer's last password change or partner link is refused
    (``Customer.tokens_valid_after`` against the token's ``minted_ms``)."""
    from portal.models import Customer

    try:
        user_id = int(jwt_payload.get("sub"))
        minted_ms = int(jwt_payload.get("minted_ms") or int(jwt_payload.get("iat") or 0) * 1000)
    except (TypeError, ValueError):
        return True
    valid_after = db.session.execute(sa.select(Customer.tokens_valid_after)
                                     .where(Customer.user_id == user_id)).scalar_one_or_none()
    return valid_after is not None and minted_ms < valid_after.timestamp() * 1000


class CashbackSecurityManager(SecurityManager):
    authdbview = AuthDBView
    security_api = SecurityApi
    # FAB's security pages, labelled through the catalog and portal.labels (same class names:
    # the permissions stored against them stay valid)
    userdbmodelview = security_views.UserDBModelView
    rolemodelview = security_views.RoleModelView
    groupmodelview = security_views.UserGroupModelView
    permissionmodelview = security_views.PermissionModelView
    viewmenumodelview = security_views.ViewMenuModelView
    permissionviewmodelview = security_views.PermissionViewModelView
    userstatschartview = security_views.UserStatsChartView
    resetmypasswordview = security_views.ResetMyPasswordView
    resetpasswordview = security_views.ResetPasswordView
    userinfoeditview = security_views.UserInfoEditView

    # --- permission checks: one query per request, not one per menu entry --------------------------
    # FAB asks the database once per ``has_access``: the navbar alone made 40-odd queries on every
    # page.  The roles' (permission, view) pairs are read once per request instead.

    def _role_permissions(self, role_ids) -> frozenset[tuple[str, str]]:
        key = tuple(sorted(role_ids))
        cache = _request_cache()
        if cache is not None and key in cache:
            return cache[key]
        pv, role = self.permissionview_model, self.role_model
        rows = (self.session.query(self.permission_model.name, self.viewmenu_model.name)
                .select_from(pv).join(pv.permission).join(pv.view_menu)
                .join(assoc_permissionview_role, assoc_permissionview_role.c.permission_view_id == pv.id)
                .join(role, role.id == assoc_permissionview_role.c.role_id)
                .filter(role.id.in_(key)).distinct().all())
        pairs = frozenset((perm, view) for perm, view in rows)
        if cache is not None:
            cache[key] = pairs
        return pairs

    def exist_permission_on_roles(self, view_name, permission_name, role_ids) -> bool:
        return (permission_name, view_name) in self._role_permissions(role_ids)

    def is_item_public(self, permission_name, view_name) -> bool:
        cache = _request_cache()
        public = cache.get("public") if cache is not None else None
        if public is None:
            role = self.get_public_role()
            public = self._role_permissions([role.id]) if role is not None else frozenset()
            if cache is not None:
                cache["public"] = public
        return (permission_name, view_name) in public

    def create_jwt_manager(self, app):
        manager = super().create_jwt_manager(app)
        manager.additional_claims_loader(minted_claims)
        manager.token_in_blocklist_loader(token_revoked)
        return manager

    def auth_user_db(self, username, password):
        g.pop("partner_login_error", None)
        directory = partners.PartnerDirectory.from_config(current_app.config)
        if directory is None or not username or is_null_password(password):
            return super().auth_user_db(username, password)
        user = self.find_user(username=username) or self.find_user(email=username)
        session = db.session
        if user is not None:
            customer = partners.customer_of(session, user)
            if customer is None:  # staff: local only
                return super().auth_user_db(username, password)
            if not customer.partner_linked:
                local = super().auth_user_db(username, password)
                if local is not None:
                    return local
        return self._auth_partner(directory, username, password, user)

    def _auth_partner(self, directory: partners.PartnerDirectory, username: str, password: str, local_user):
        session = db.session
        try:
            info = directory.authenticate(username, password)
            if info is None:
                if local_user is not None and partners.linked_customer(session, local_user) is not None:
                    self.update_user_auth_stat(local_user, False)
                return None
            for last_try in (False, True):  # two first logins of one partner race: the loser finds the account
                try:
                    customer = partners.login_partner(session, self, info)
                    user = customer.user
                    session.commit()
                    break
                except (IntegrityError, customers.EmailTaken):  # FAB's add_user turns the race into EmailTaken
                    session.rollback()
                    if last_try:
                        raise partners.DirectoryUnavailable() from None
        except DomainError as err:
            session.rollback()
            g.partner_login_error = err
            log.info("partner login of %r refused: %s", username, err.code)
            return None
        if not user.is_active:
            return None
        self.update_user_auth_stat(user, True)
        return user
