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
* ``/cabinet/clicks`` — clicks with repeat and visit counts.

``/go/<sub_id>`` is public (the browser or the extension follows it): it logs the visit
(user agent, keyed hash of the IP, channel from ``?ch=``) and redirects to the network.
A ``HEAD`` request (link previews) is redirected without being logged.
"""
from __future__ import annotations

from flask import current_app, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose
from flask_appbuilder.security.decorators import has_access
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField

from portal.errors import DomainError
from portal.extensions import db
from portal.i18n import _, _l
from portal.models import Customer
from portal.models.types import utcnow
from portal.services import clicks, customer_views as cv, links


class LinkForm(FlaskForm):
    """The product link to buy with cashback (the link checker validates it)."""

    url = StringField(_l("Product link"), render_kw={"placeholder": links.EXAMPLE_PRODUCT_URL,
                                                      "autocomplete": "off"})
    submit = SubmitField(_l("Buy with cashback"))


class CabinetView(BaseView):
    route_base = "/cabinet"
    default_view = "index"
    class_permission_name = "CustomerCabinet"
    method_permission_name = {"index": "read", "ready": "read", "orders": "read", "click_list": "read",
                              "buy": "write"}

    # --- helpers ------------------------------------------------------------------------------

    def _customer(self) -> Customer | None:
        try:
            return cv.customer_for_user(db.session, self.appbuilder.sm.current_user)
        except cv.NotACustomer:
            return None

    def _render(self, template: str, status: int = 200, **context):
        """Render a cabinet template with the money helpers (``money``, ``fixed``, ``rate_text``)."""
        return self.render_template(template, money=cv.money_text, fixed=cv.fixed, rate_text=cv.rate_text,
                                    **context), status

    def _not_a_customer(self):
        return self._render("cabinet/not_customer.html", 403, message=str(cv.NotACustomer().message))

    def _index(self, customer: Customer, form: LinkForm, error: str | None = None, status: int = 200):
        view = cv.balance(db.session, customer.id, minimum_usd=current_app.config["MIN_WITHDRAWAL_USD"],
                          day=utcnow().date())
        return self._render("cabinet/index.html", status, balance=view, kinds=("pending", "available", "on_hold"),
                            form=form, error=error, customer=customer)

    def _paging(self):
        try:
            return cv.parse_paging(request.args)
        except DomainError:
            return 1, cv.DEFAULT_PAGE_SIZE

    # --- pages --------------------------------------------------------------------------------

    @expose("/")
    @has_access
    def index(self):
        customer = self._customer()
        if customer is None:
            return self._not_a_customer()
        return self._index(customer, LinkForm())

    @expose("/buy", methods=["POST"])
    @has_access
    def buy(self):
        customer = self._customer()
        if customer is None:
            return self._not_a_customer()
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
    def ready(self, sub_id: str):
        customer = self._customer()
        if customer is None:
            return self._not_a_customer()
        try:
            click = cv.own_click(db.session, customer.id, sub_id)
        except DomainError as err:
            return self._render("cabinet/not_found.html", 404, message=str(err.message))
        config = current_app.config
        spam = cv.is_spam(click.repeat_count, config)
        return self._render(
            "cabinet/ready.html", click=click, rate=cv.rate_text(click.rate), info=str(cv.CLICK_INFO),
            spam_warning=str(cv.spam_warning_text(click.repeat_count, config)) if spam else None,
            go_url=url_for("GoView.visit", sub_id=click.sub_id))

    @expose("/orders")
    @has_access
    def orders(self):
        customer = self._customer()
        if customer is None:
            return self._not_a_customer()
        page, size = self._paging()
        return self._render("cabinet/orders.html", page=cv.orders_page(db.session, customer.id, page, size),
                            status_label=lambda code: cv.label(cv.ORDER_STATUS_LABELS, code),
                            booked_label=lambda code: cv.label(cv.BOOKED_IN_LABELS, code))

    @expose("/clicks")
    @has_access
    def click_list(self):
        customer = self._customer()
        if customer is None:
            return self._not_a_customer()
        page, size = self._paging()
        return self._render("cabinet/clicks.html", page=cv.clicks_page(db.session, customer.id, page, size),
                            is_spam=lambda n: cv.is_spam(n, current_app.config))


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
    appbuilder.add_view_no_menu(GoView)
