"""The customer's cabinet and the ``/go/<sub_id>`` redirect.

Cabinet pages (``/cabinet/…``, permission ``can_read`` / ``can_write`` on ``CustomerCabinet``,
the ``customer.cabinet`` set of the Customer role):

* ``/cabinet/`` — balances (pending, available, on hold; USD and RUB at today's rate,
  the minimum withdrawal in RUB) and the purchase form: paste a product link, press
  "Buy with cashback";
* ``POST /cabinet/buy`` — creates the click (channel ``web``, the same service as the
  API) and redirects (post/redirect/get: a reload does not click twice) to
* ``/cabinet/ready/<sub_id>`` — the information message and the "Continue" link to
  ``/go/<sub_id>``;
* ``/cabinet/orders`` — statistics: orders with their status history and cashback;
* ``/cabinet/clicks`` — clicks with repeat and visit counts;
* ``/cabinet/withdraw/`` — withdrawals (``WithdrawView``, permission view ``CustomerWithdrawals``,
  the ``customer.payouts`` set): saved payout details (masked) and a form for new ones, the
  withdrawal form (the minimum in RUB, the available balance, a hidden per-form request key
  so a double-clicked button makes one withdrawal), and the withdrawals with a cancel button
  while nothing was sent.

``/go/<sub_id>`` is public (the browser or the extension follows it): it logs the visit
(user agent, keyed hash of the IP, channel from ``?ch=``) and redirects to the network.
A ``HEAD`` request (link previews) is redirected without being logged.
"""
from __future__ import annotations

import functools
import secrets

from flask import current_app, flash, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose
from flask_appbuilder.security.decorators import has_access
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField, SubmitField

from portal import formatting, providers
from portal.api import payouts as payout_api
from portal.errors import DomainError
from portal.extensions import db
from portal.i18n import _, _l
from portal.models import Customer
from portal.models.payouts import mask
from portal.models.types import utcnow
from portal.services import clicks, customer_views as cv, links, payouts
from portal.services.audit import Actor


class LinkForm(FlaskForm):
    """The product link to buy with cashback (the link checker validates it)."""

    url = StringField(_l("Product link"), render_kw={"placeholder": links.EXAMPLE_PRODUCT_URL,
                                                      "autocomplete": "off"})
    submit = SubmitField(_l("Buy with cashback"))


#: Pages a partner-linked customer sees as a notice with a link to the partner account.
PARTNER_HIDDEN = {"cabinet/index.html", "cabinet/orders.html", "cabinet/clicks.html", "cabinet/withdraw.html"}


def customer_page(view):
    """A cabinet view of the login's own customer: the view receives that ``Customer`` after
    ``self``; a login that is not a customer gets the "not a customer" page (403).  Put it
    under ``@has_access`` (the permission check comes first)."""

    @functools.wraps(view)
    def wrapper(self, *args, **kwargs):
        customer = self._customer()
        if customer is None:
            return self._not_a_customer()
        return view(self, customer, *args, **kwargs)

    return wrapper


class CustomerPages:
    """Helpers of the customer's pages (mixed into their ``BaseView`` classes)."""

    def _customer(self) -> Customer | None:
        try:
            return cv.customer_for_user(db.session, self.appbuilder.sm.current_user)
        except cv.NotACustomer:
            return None

    def _render(self, template: str, status: int = 200, **context):
        """Render a cabinet template (figures with the ``portal.formatting`` globals)."""
        if template in PARTNER_HIDDEN:  # partner-linked: figures are in the partner account
            from portal.services.partners import partner_notice

            customer = context.get("customer") or self._customer()
            notice = partner_notice(customer) if customer is not None else None
            if notice is not None:
                return self.render_template("cabinet/partner_linked.html", notice=notice,
                                            form=context.get("form"), error=context.get("error")), status
        return self.render_template(template, **context), status

    def _not_a_customer(self):
        return self._render("cabinet/not_customer.html", 403, message=str(cv.NotACustomer().message))

    def _paging(self):
        try:
            return cv.parse_paging(request.args)
        except DomainError:
            return 1, cv.DEFAULT_PAGE_SIZE


class CabinetView(CustomerPages, BaseView):
    route_base = "/cabinet"
    default_view = "index"
    class_permission_name = "CustomerCabinet"
    method_permission_name = {"index": "read", "ready": "read", "orders": "read", "click_list": "read",
                              "buy": "write"}

    # --- helpers ------------------------------------------------------------------------------

    def _index(self, customer: Customer, form: LinkForm, error: str | None = None, status: int = 200):
        view = cv.balance(db.session, customer.id, minimum_usd=current_app.config["MIN_WITHDRAWAL_USD"],
                          day=utcnow().date())
        return self._render("cabinet/index.html", status, balance=view, kinds=("pending", "available", "on_hold"),
                            form=form, error=error, customer=customer)

    # --- pages --------------------------------------------------------------------------------

    @expose("/")
    @has_access
    @customer_page
    def index(self, customer: Customer):
        return self._index(customer, LinkForm())

    @expose("/buy", methods=["POST"])
    @has_access
    @customer_page
    def buy(self, customer: Customer):
        form = LinkForm()
        if not form.validate_on_submit():
            # the only validator is Flask-WTF's CSRF check
            return self._index(customer, form, _("The form has expired. Reload the page and try again."), 400)
        try:
            result = clicks.create_click(db.session, customer, form.url.data or "", "web",
                                         config=current_app.config, resolver=cv.link_resolver(current_app.config))
        except DomainError as err:
            db.session.rollback()
            return self._index(customer, form, str(err.message), 422)
        db.session.commit()
        return redirect(url_for("CabinetView.ready", sub_id=result.click.sub_id))

    @expose("/ready/<sub_id>")
    @has_access
    @customer_page
    def ready(self, customer: Customer, sub_id: str):
        try:
            click = cv.own_click(db.session, customer.id, sub_id)
        except DomainError as err:
            return self._render("cabinet/not_found.html", 404, message=str(err.message))
        config = current_app.config
        spam = cv.is_spam(click.repeat_count, config)
        return self._render(
            "cabinet/ready.html", click=click, info=str(cv.CLICK_INFO),
            spam_warning=str(cv.spam_warning_text(click.repeat_count, config)) if spam else None,
            go_url=url_for("GoView.visit", sub_id=click.sub_id))

    @expose("/orders")
    @has_access
    @customer_page
    def orders(self, customer: Customer):
        page, size = self._paging()
        return self._render("cabinet/orders.html", page=cv.orders_page(db.session, customer.id, page, size),
                            status_label=lambda code: cv.label(cv.ORDER_STATUS_LABELS, code),
                            booked_label=lambda code: cv.label(cv.BOOKED_IN_LABELS, code))

    @expose("/clicks")
    @has_access
    @customer_page
    def click_list(self, customer: Customer):
        page, size = self._paging()
        return self._render("cabinet/clicks.html", page=cv.clicks_page(db.session, customer.id, page, size),
                            is_spam=lambda n: cv.is_spam(n, current_app.config))


# --- withdrawals ----------------------------------------------------------------------------------

class DetailsForm(FlaskForm):
    """New payout details: a payment method and the account (the provider validates it)."""

    provider = SelectField(_l("Payment method"))
    account = StringField(_l("Account or wallet number"), render_kw={"autocomplete": "off"})


def _new_request_key() -> str:
    return secrets.token_urlsafe(18)


class WithdrawForm(FlaskForm):
    """A withdrawal; ``request_key`` is made when the form is shown, so a double click is one withdrawal."""

    details = SelectField(_l("Payout details"), coerce=int)
    amount = StringField(_l("Amount, USD"), render_kw={"inputmode": "decimal", "autocomplete": "off",
                                                        "placeholder": "1.25"})
    request_key = HiddenField(default=_new_request_key)


class CancelForm(FlaskForm):
    """Only the CSRF token: the withdrawal is in the URL."""


class WithdrawView(CustomerPages, BaseView):
    """``/cabinet/withdraw/``: saved payout details, new details, a withdrawal, the withdrawals.

    Permission ``can_read`` / ``can_write`` on ``CustomerWithdrawals`` (the ``customer.payouts``
    set).  Each form posts to its own address and redirects back (post/redirect/get); a
    refused form shows the page again with the reason (422; 400 for an expired form).
    """

    route_base = "/cabinet/withdraw"
    default_view = "index"
    class_permission_name = "CustomerWithdrawals"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"index": "read", "add_details": "write", "withdraw": "write", "cancel": "write"}

    def _page(self, customer: Customer, *, details_form: DetailsForm | None = None,
              withdraw_form: WithdrawForm | None = None, error: str | None = None, status: int = 200):
        session = db.session
        locale = payout_api.request_locale()
        methods = payout_api.payout_methods(session, locale)
        enabled = {m.code: m.enabled for m in methods}
        details = payout_api.saved_details(session, customer.id)
        details_form = details_form or DetailsForm(formdata=None)
        details_form.provider.choices = [(m.code, m.name) for m in methods if m.enabled]
        withdraw_form = withdraw_form or WithdrawForm(formdata=None)
        off = " (%s)" % _("Switched off for now: choose other details")
        withdraw_form.details.choices = [
            (d.id, f"{payout_api.provider_name(d.provider_code, locale)} · {mask(d.account)}"
                   + ("" if enabled.get(d.provider_code) else off))
            for d in details]
        page, size = self._paging()
        view = cv.balance(session, customer.id, minimum_usd=current_app.config["MIN_WITHDRAWAL_USD"],
                          day=utcnow().date())
        return self._render(
            "cabinet/withdraw.html", status, customer=customer, balance=view, methods=methods, details=details, enabled=enabled,
            details_form=details_form, withdraw_form=withdraw_form, cancel_form=CancelForm(formdata=None),
            error=error, page=payout_api.withdrawals_page(session, customer.id, page, size),
            can_cancel=payout_api.can_cancel, state_label=payout_api.state_label, mask=mask,
            provider_name=lambda code: payout_api.provider_name(code, locale))

    def _refused(self, customer: Customer, form: FlaskForm, **forms):
        """A form that did not validate: 400 for a missing or stale CSRF token, else 422."""
        if "csrf_token" in form.errors:
            return self._page(customer, error=_("The form has expired. Reload the page and try again."),
                              status=400, **forms)
        return self._page(customer, status=422, **forms)

    @expose("/")
    @has_access
    @customer_page
    def index(self, customer: Customer):
        return self._page(customer)

    @expose("/details", methods=["POST"])
    @has_access
    @customer_page
    def add_details(self, customer: Customer):
        form = DetailsForm()
        form.provider.choices = [(code, code) for code in providers.all_providers()]
        if not form.validate_on_submit():
            return self._refused(customer, form, details_form=form)
        try:
            saved = payouts.save_details(db.session, customer, providers.provider(form.provider.data),
                                         form.account.data or "", actor=Actor.user(current_user))
        except DomainError as err:
            db.session.rollback()
            shown = [str(p["message"]) for p in err.errors if p.get("field") == "account"]
            form.account.errors = [*form.account.errors, *shown]
            return self._page(customer, details_form=form, error=None if shown else str(err.message), status=422)
        db.session.commit()
        flash(_("Payout details saved: %(method)s %(account)s.",
                method=payout_api.provider_name(saved.provider_code, payout_api.request_locale()),
                account=mask(saved.account)), "success")
        return redirect(url_for("WithdrawView.index"))

    @expose("/request", methods=["POST"])
    @has_access
    @customer_page
    def withdraw(self, customer: Customer):
        form = WithdrawForm()
        form.details.choices = [(d.id, str(d.id)) for d in payout_api.saved_details(db.session, customer.id)]
        if not form.validate_on_submit():
            return self._refused(customer, form, withdraw_form=form)
        try:
            amount = payout_api.parse_amount_usd(form.amount.data)
            result = payout_api.request_withdrawal(db.session, customer, details_id=form.details.data,
                                                   amount_usd=amount, request_key=form.request_key.data or "",
                                                   actor=Actor.user(current_user))
        except DomainError as err:
            db.session.rollback()
            return self._page(customer, withdraw_form=form, error=str(err.message), status=422)
        payout = result.payout
        flash(_("Withdrawal #%(id)s of %(amount)s: %(state)s.", id=payout.id,
                amount=formatting.money(payout.amount_usd, "USD"), state=payout_api.state_label(payout.state)),
              "success")
        return redirect(url_for("WithdrawView.index"))

    @expose("/<int:payout_id>/cancel", methods=["POST"])
    @has_access
    @customer_page
    def cancel(self, customer: Customer, payout_id: int):
        form = CancelForm()
        if not form.validate_on_submit():
            return self._refused(customer, form)
        try:
            payout = payouts.cancel_by_customer(db.session, payout_id, customer, actor=Actor.user(current_user))
        except DomainError as err:
            db.session.rollback()
            return self._page(customer, error=str(err.message), status=err.status)
        db.session.commit()
        flash(_("Withdrawal #%(id)s is cancelled: the money is back on your balance.", id=payout.id), "success")
        return redirect(url_for("WithdrawView.index"))


class GoView(BaseView):
    """Public: ``/go/<sub_id>`` logs the visit and sends the browser to the network."""

    route_base = "/go"
    default_view = "visit"

    @expose("/<sub_id>", methods=["GET", "HEAD"])
    def visit(self, sub_id: str):
        config = current_app.config
        try:
            if request.method == "HEAD":  # a link preview: answer, but it is not a visit
                click = cv.click_by_sub_id(db.session, sub_id)
            else:
                click = clicks.record_visit(db.session, sub_id, user_agent=request.headers.get("User-Agent", ""),
                                            ip=request.remote_addr, channel=request.args.get("ch"),
                                            secret=config["SECRET_KEY"])
                db.session.commit()
        except clicks.UnknownClick as err:
            return self.render_template("cabinet/not_found.html", message=str(err.message)), 404
        response = redirect(clicks.affiliate_url(click, config["NETWORK_URL_TEMPLATE"]), code=302)
        response.headers["Cache-Control"] = "no-store"
        return response


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(CabinetView, "Cabinet balance", label=_l("Balance and purchase"), icon="fa-wallet",
                        category="Cabinet", category_label=_l("Cabinet"), category_icon="fa-user")
    appbuilder.add_link("Cabinet statistics", href="/cabinet/orders", label=_l("Statistics"),
                        icon="fa-list", category="Cabinet")
    appbuilder.add_link("Cabinet clicks", href="/cabinet/clicks", label=_l("Clicks"),
                        icon="fa-mouse-pointer", category="Cabinet")
    appbuilder.add_view(WithdrawView, "Cabinet withdraw", label=_l("Withdraw"), icon="fa-money",
                        category="Cabinet")
    appbuilder.add_view_no_menu(GoView)
