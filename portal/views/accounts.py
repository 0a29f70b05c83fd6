"""Customer accounts: registration, e-mail confirmation, password reset, referrals, blocking.

Public pages (no login):

* ``/register/`` (``RegisterView``) — the registration form; ``?ref=CODE`` remembers a
  referral code; ``/r/<code>`` (``ReferralLinkView``) is the referral link: it remembers the
  code (first touch: a code already remembered is kept) and redirects to ``/register/``;
* ``/register/sent`` — "check your mailbox"; ``/register/confirm/<token>`` confirms the
  address (``ConfirmView``); ``POST /register/confirm/resend`` sends a new link to the
  logged-in customer;
* ``/password/forgot`` and ``/password/reset/<token>`` (``PasswordView``): the answer to
  "forgot" is the same whether or not the address has an account.

Unconfirmed customers can log in and use the cabinet, but cannot withdraw until they
confirm (``accounts.ensure_can_withdraw``).  The language of the pages is the browser's
(or ``/lang/<locale>``, linked on every page); the registration keeps it as the customer's
language (mail is written in it).

Logged in:

* ``/cabinet/referrals/`` (``CustomerReferrals``: read; set ``customer.referrals``) — the
  referral link, the customers referred, the rewards earned;
* ``/support/customers/<id>/block`` (``CustomerBlocking``: read, write; set
  ``customers.block``) — block with a reason / unblock (audited);
* ``/support/referrals/`` (``ReferralReviews``: read, write; same set) — open self-referral
  reviews with their evidence: dismiss or confirm.

Throttling (``portal.limits``' limiter, the same one FAB builds): registration per IP
(``REGISTER_RATE_LIMIT``) and per address (``ACCOUNT_MAIL_RATE_LIMIT``); confirmation and
the password pages per IP (``LOGIN_RATE_LIMIT``); reset mails per address
(``ACCOUNT_MAIL_RATE_LIMIT``); logins per account (``ACCOUNT_LOGIN_RATE_LIMIT``) on top of
the per-IP login limit.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, request, session as web_session, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, SelectField, StringField, TextAreaField

from portal.errors import DomainError
from portal.extensions import db
from portal.i18n import _, _l, select_locale
from portal.models import Customer
from portal.services import accounts, customers, referrals
from portal.services.audit import Actor
from portal.views.cabinet import CustomerPages, customer_page

#: Where the first-touch referral code waits for the registration.
SESSION_REFERRAL = "referral_code"
REFUSED = 422


def _base_url() -> str:
    return current_app.config.get("PUBLIC_URL") or request.host_url.rstrip("/")


def remember_referral(code: str | None) -> None:
    """Keep the first referral code this browser brought (a later link does not replace it)."""
    code = referrals.clean_code(code)
    if code and not web_session.get(SESSION_REFERRAL):
        web_session[SESSION_REFERRAL] = code


def _languages():
    return [(code, spec["name"]) for code, spec in current_app.config["LANGUAGES"].items()]


class RegisterForm(FlaskForm):
    email = StringField(_l("E-mail"), render_kw={"autocomplete": "email", "type": "email"})
    name = StringField(_l("Your name (optional)"), render_kw={"autocomplete": "name"})
    password = PasswordField(_l("Password (at least 8 characters)"), render_kw={"autocomplete": "new-password"})
    password2 = PasswordField(_l("Repeat the password"), render_kw={"autocomplete": "new-password"})
    locale = SelectField(_l("Language of our messages"))
    country = StringField(_l("Country (optional, two letters, e.g. RU, KZ, DE)"),
                          render_kw={"maxlength": 2, "autocomplete": "country"})
    #: Filled in by the page's script (screen, time zone, platform); optional.
    fingerprint = HiddenField()


class ForgotForm(FlaskForm):
    email = StringField(_l("E-mail"), render_kw={"autocomplete": "email", "type": "email"})


class ResetForm(FlaskForm):
    password = PasswordField(_l("New password (at least 8 characters)"), render_kw={"autocomplete": "new-password"})
    password2 = PasswordField(_l("Repeat the password"), render_kw={"autocomplete": "new-password"})


class EmptyForm(FlaskForm):
    """Only the CSRF token."""


class BlockForm(FlaskForm):
    reason = TextAreaField(_l("Reason (the customer is told to contact support; the reason is for staff)"))


class ReviewForm(FlaskForm):
    decision = SelectField(_l("Decision"), choices=[("dismissed", _l("Dismiss: not the same person")),
                                                    ("confirmed", _l("Confirm: self-referral"))])
    note = StringField(_l("Note (optional)"))


def _field_errors(form: FlaskForm, err: DomainError) -> str | None:
    """Put the error's field problems on the form's fields; the rest is the page's message."""
    rest = []
    for problem in err.errors or []:
        field = getattr(form, problem.get("field") or "", None)
        if field is not None:
            field.errors = [*field.errors, str(problem["message"])]
        else:
            rest.append(str(problem["message"]))
    if not err.errors:
        return str(err.message)
    return " ".join(rest) or None


# --- public pages -----------------------------------------------------------------------------------------

class RegisterView(BaseView):
    """``/register/``: the form; ``/register/sent``: check your mailbox."""

    route_base = "/register"
    default_view = "register"

    def _page(self, form: RegisterForm, error: str | None = None, status: int = 200):
        code = web_session.get(SESSION_REFERRAL)
        referrer = referrals.referrer_for(db.session, code) if code else None
        return self.render_template("accounts/register.html", form=form, error=error,
                                    referred=referrer is not None, languages=_languages()), status

    @expose("/", methods=["GET", "POST"])
    def register(self):
        if request.method == "GET":
            remember_referral(request.args.get("ref"))
        if current_user.is_authenticated:
            return redirect(url_for("CabinetView.index"))
        form = RegisterForm()
        form.locale.choices = _languages()
        if request.method == "GET":
            form.locale.data = select_locale()
            return self._page(form)
        if not form.validate_on_submit():
            return self._page(form, _("The form has expired. Reload the page and try again."), 400)
        if (form.password.data or "") != (form.password2.data or ""):
            form.password2.errors = [_("The passwords do not match.")]
            return self._page(form, None, REFUSED)
        device = accounts.Device(user_agent=request.headers.get("User-Agent", "")[:400],
                                 accept_language=request.headers.get("Accept-Language", "")[:200],
                                 client_fingerprint=form.fingerprint.data or "", ip=request.remote_addr)
        try:
            accounts.register(db.session, self.appbuilder.sm, email=form.email.data or "", name=form.name.data or "",
                              password=form.password.data or "", locale=form.locale.data or select_locale(),
                              country=(form.country.data or "").strip().upper() or None,
                              referral_code=web_session.get(SESSION_REFERRAL), device=device,
                              config=current_app.config, base_url=_base_url())
        except customers.EmailTaken as err:
            db.session.rollback()
            form.email.errors = [str(err.message)]
            return self._page(form, None, 409)
        except DomainError as err:
            db.session.rollback()
            return self._page(form, _field_errors(form, err), REFUSED)
        db.session.commit()
        web_session.pop(SESSION_REFERRAL, None)
        web_session["locale"] = form.locale.data
        flash(_("Your account is created. We sent a confirmation link to %(email)s.",
                email=customers.normalize_email(form.email.data or "")), "success")
        return redirect(url_for("RegisterView.sent"))

    @expose("/sent")
    def sent(self):
        return self.render_template("accounts/sent.html")


class ReferralLinkView(BaseView):
    """``/r/<code>``: a customer's referral link."""

    route_base = "/r"
    default_view = "follow"

    @expose("/<code>")
    def follow(self, code: str):
        remember_referral(code)
        return redirect(url_for("RegisterView.register"))


class ConfirmView(BaseView):
    """``/register/confirm/<token>`` and ``POST /register/confirm/resend``."""

    route_base = "/register/confirm"
    default_view = "resend"

    @expose("/<token>")
    def confirm(self, token: str):
        try:
            customer, changed = accounts.confirm_email(db.session, current_app.config, token)
        except DomainError as err:
            db.session.rollback()
            return self.render_template("accounts/message.html", message_id="confirm-failed",
                                        title=_("E-mail confirmation"), message=str(err.message),
                                        ok=False), err.status
        db.session.commit()
        message = (_("Thank you: your e-mail address %(email)s is confirmed.", email=customer.email) if changed
                   else _("Your e-mail address %(email)s was confirmed already.", email=customer.email))
        return self.render_template("accounts/message.html", message_id="confirm-ok", title=_("E-mail confirmation"),
                                    message=message, ok=True)

    @expose("/resend", methods=["POST"])
    def resend(self):
        if not current_user.is_authenticated:
            return redirect(self.appbuilder.get_url_for_login)
        form = EmptyForm()
        customer = db.session.execute(sa.select(Customer).where(Customer.user_id == current_user.id)).scalar_one_or_none()
        if customer is None or not form.validate_on_submit():
            abort(400)
        if accounts.resend_confirmation(db.session, customer, _base_url()):
            db.session.commit()
            flash(_("We sent a new confirmation link to %(email)s.", email=customer.email), "success")
        else:
            flash(_("Your e-mail address is confirmed already."), "info")
        back = request.form.get("next") or ""
        if not (back.startswith("/") and not back.startswith("//") and "\\" not in back):  # our own pages only
            back = url_for("CustomerReferralsView.index")
        return redirect(back)


class PasswordView(BaseView):
    """``/password/forgot`` and ``/password/reset/<token>``."""

    route_base = "/password"
    default_view = "forgot"

    @expose("/forgot", methods=["GET", "POST"])
    def forgot(self):
        form = ForgotForm()
        if request.method == "POST":
            if not form.validate_on_submit():
                return self.render_template("accounts/forgot.html", form=form,
                                            error=_("The form has expired. Reload the page and try again.")), 400
            accounts.request_password_reset(db.session, form.email.data or "", _base_url())
            db.session.commit()
            return self.render_template(
                "accounts/message.html", message_id="reset-sent", title=_("Password reset"), ok=True,
                message=_("If an account exists for this address, we sent it a link to choose a new password. "
                          "The link works once and expires soon."))
        return self.render_template("accounts/forgot.html", form=form, error=None)

    @expose("/reset/<token>", methods=["GET", "POST"])
    def reset(self, token: str):
        config = current_app.config
        form = ResetForm()
        try:
            accounts.check_reset_token(db.session, config, token)
        except DomainError as err:
            return self.render_template("accounts/message.html", message_id="reset-failed", title=_("Password reset"),
                                        message=str(err.message), ok=False), err.status
        if request.method == "GET":
            return self.render_template("accounts/reset.html", form=form, error=None)
        if not form.validate_on_submit():
            return self.render_template("accounts/reset.html", form=form,
                                        error=_("The form has expired. Reload the page and try again.")), 400
        if (form.password.data or "") != (form.password2.data or ""):
            form.password2.errors = [_("The passwords do not match.")]
            return self.render_template("accounts/reset.html", form=form, error=None), REFUSED
        try:
            accounts.reset_password(db.session, config, token, form.password.data or "")
        except DomainError as err:
            db.session.rollback()
            return self.render_template("accounts/reset.html", form=form, error=_field_errors(form, err)), err.status
        db.session.commit()
        flash(_("Your new password is set. Log in with it."), "success")
        return redirect(self.appbuilder.get_url_for_login)


# --- the cabinet's referral page ---------------------------------------------------------------------------

class CustomerReferralsView(CustomerPages, BaseView):
    """``/cabinet/referrals/``: the referral link, referred customers, rewards; e-mail confirmation state."""

    route_base = "/cabinet/referrals"
    default_view = "index"
    class_permission_name = "CustomerReferrals"
    base_permissions = ["can_read"]
    method_permission_name = {"index": "read"}

    @expose("/")
    @has_access
    @customer_page
    def index(self, customer: Customer):
        stats = referrals.stats(db.session, customer)
        db.session.commit()  # a customer's first visit makes their code
        link = f"{_base_url()}{url_for('ReferralLinkView.follow', code=stats.code)}"
        return self._render("accounts/referrals.html", stats=stats, link=link, customer=customer,
                            reward_percent=referrals.reward_percent())


# --- Support ----------------------------------------------------------------------------------------------

def _actor() -> Actor:
    return Actor.user(current_user)


class CustomerBlockView(BaseView):
    """``/support/customers/<id>/block``: block with a reason, or unblock (audited)."""

    route_base = "/support/customers"
    default_view = "block"
    class_permission_name = "CustomerBlocking"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"block": "read", "block_post": "write", "unblock_post": "write"}

    def _page(self, customer: Customer, form: BlockForm, error: str | None = None, status: int = 200):
        return self.render_template("accounts/block.html", customer=customer, form=form, error=error,
                                    unblock_form=BlockForm(formdata=None, prefix="unblock")), status

    def _customer_or_404(self, customer_id: int) -> Customer:
        customer = db.session.get(Customer, customer_id)
        if customer is None:
            abort(404)
        return customer

    @expose("/<int:customer_id>/block")
    @has_access
    def block(self, customer_id: int):
        return self._page(self._customer_or_404(customer_id), BlockForm(formdata=None))

    @expose("/<int:customer_id>/block", methods=["POST"])
    @has_access
    def block_post(self, customer_id: int):
        customer = self._customer_or_404(customer_id)
        form = BlockForm()
        if not form.validate_on_submit():
            return self._page(customer, form, _("The form has expired. Reload the page and try again."), 400)
        try:
            accounts.block(db.session, customer_id, form.reason.data or "", _actor())
        except DomainError as err:
            db.session.rollback()
            return self._page(customer, form, str(err.message), err.status)
        db.session.commit()
        flash(_("Customer %(email)s is blocked: no new purchases or withdrawals.", email=customer.email), "success")
        return redirect(url_for("CustomerBlockView.block", customer_id=customer_id))

    @expose("/<int:customer_id>/unblock", methods=["POST"])
    @has_access
    def unblock_post(self, customer_id: int):
        customer = self._customer_or_404(customer_id)
        form = BlockForm(prefix="unblock")
        if not form.validate_on_submit():
            return self._page(customer, BlockForm(formdata=None),
                              _("The form has expired. Reload the page and try again."), 400)
        try:
            accounts.unblock(db.session, customer_id, form.reason.data or "", _actor())
        except DomainError as err:
            db.session.rollback()
            return self._page(customer, BlockForm(formdata=None), str(err.message), err.status)
        db.session.commit()
        flash(_("Customer %(email)s is unblocked.", email=customer.email), "success")
        return redirect(url_for("CustomerBlockView.block", customer_id=customer_id))


class ReferralReviewView(BaseView):
    """``/support/referrals/``: open self-referral reviews; dismiss or confirm each."""

    route_base = "/support/referrals"
    default_view = "index"
    class_permission_name = "ReferralReviews"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"index": "read", "resolve": "write"}

    def _page(self, error: str | None = None, status: int = 200):
        reviews = referrals.open_reviews(db.session)
        ids = {r.customer_id for r in reviews} | {r.referrer_id for r in reviews}
        people = {c.id: c for c in db.session.execute(sa.select(Customer).where(Customer.id.in_(ids))).scalars()}
        return self.render_template("accounts/reviews.html", reviews=reviews, people=people, error=error,
                                    reason_labels=referrals.reason_labels, form=ReviewForm(formdata=None),
                                    stages={"registration": _("At registration"),
                                            "payout_details": _("New payout details")}), status

    @expose("/")
    @has_access
    def index(self):
        return self._page()

    @expose("/<int:review_id>/resolve", methods=["POST"])
    @has_access
    def resolve(self, review_id: int):
        form = ReviewForm()
        if not form.validate_on_submit():
            return self._page(_("The form has expired. Reload the page and try again."), 400)
        try:
            review = referrals.resolve_review(db.session, review_id, form.decision.data, actor=_actor(),
                                              note=form.note.data or "")
        except DomainError as err:
            db.session.rollback()
            return self._page(str(err.message), err.status)
        db.session.commit()
        flash(_("Review #%(id)s: %(state)s.", id=review.id, state=referrals.REVIEW_STATES[review.state]), "success")
        return redirect(url_for("ReferralReviewView.index"))


# --- throttling -------------------------------------------------------------------------------------------

def _limit(name: str):
    return lambda: current_app.config[name]


def _form_account() -> str:
    value = request.form.get("email") or request.form.get("username") or ""
    return "account:" + customers.normalize_email(value)[:254]


def _no_form_account() -> bool:
    return not (request.form.get("email") or request.form.get("username"))


def _login_account() -> str:
    """The account a login attempt names — exactly what FAB authenticates: the form's
    ``username`` or the JSON login's ``username`` (any other field is ignored, so adding one
    cannot move the attempt to a fresh bucket)."""
    value = request.form.get("username")
    if value is None and request.is_json:
        body = request.get_json(silent=True)
        value = body.get("username") if isinstance(body, dict) else None
    return "login:" + customers.normalize_email(str(value or ""))[:254]


def _no_login_account() -> bool:
    return _login_account() == "login:" or request.endpoint == "SecurityApi.refresh"


def init_limits(appbuilder: AppBuilder, views: dict) -> None:
    """Per-IP and per-account limits on these pages and on the login form (see the module docstring)."""
    limiter = appbuilder.sm.limiter
    if not limiter.enabled:
        return
    limiter.limit(_limit("REGISTER_RATE_LIMIT"), methods=["POST"], scope="register")(views["register"].blueprint)
    for key in ("register", "password"):
        limiter.limit(_limit("ACCOUNT_MAIL_RATE_LIMIT"), key_func=_form_account, methods=["POST"],
                      exempt_when=_no_form_account, scope="account-mail")(views[key].blueprint)
    limiter.limit(_limit("LOGIN_RATE_LIMIT"), methods=["POST"], scope="password")(views["password"].blueprint)
    limiter.limit(_limit("LOGIN_RATE_LIMIT"), scope="confirm")(views["confirm"].blueprint)
    # per account, shared by the login form and the JWT login (the app and the extension)
    login_blueprints = [appbuilder.sm.auth_view.blueprint]
    app = appbuilder.app
    if "SecurityApi" in app.blueprints:
        login_blueprints.append(app.blueprints["SecurityApi"])
    per_account = limiter.shared_limit(_limit("ACCOUNT_LOGIN_RATE_LIMIT"), key_func=_login_account, methods=["POST"],
                                       exempt_when=_no_login_account, scope="login-account")
    for blueprint in login_blueprints:
        per_account(blueprint)


def register(appbuilder: AppBuilder) -> None:
    views = {
        "register": appbuilder.add_view_no_menu(RegisterView),
        "confirm": appbuilder.add_view_no_menu(ConfirmView),
        "password": appbuilder.add_view_no_menu(PasswordView),
    }
    appbuilder.add_view_no_menu(ReferralLinkView)
    appbuilder.add_view(CustomerReferralsView, "Cabinet referrals", label=_l("Invite friends"), icon="fa-share-alt",
                        category="Cabinet", category_label=_l("Cabinet"))
    appbuilder.add_view_no_menu(CustomerBlockView)
    appbuilder.add_view(ReferralReviewView, "Referral reviews", label=_l("Self-referral reviews"), icon="fa-user-secret",
                        category="People", category_label=_l("People"))
    # the login page links to registration and "forgot password" (FAB's template, extended)
    appbuilder.sm.auth_view.login_template = "accounts/login_db.html"
    init_limits(appbuilder, views)
