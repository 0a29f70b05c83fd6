"""The payout desk: Finance reviews withdrawals, settles the ones no automatic step could,
and runs the provider switchboard; everyone allowed reads the payouts.

Pages (menu "Payouts"):

* ``/payouts/review/`` (``PayoutReview``: read, write) — payouts in review, filtered by
  provider, reason and amount; approve or reject one with a reason, or approve the selected
  ones (each through ``payouts.decide``: maker-checker, a second approver above the
  threshold; one report line per payout);
* ``/payouts/attention/`` (``PayoutAttention``: read, write) — payouts in ``unknown`` or
  flagged for attention, with their attempts and the providers' answers; "fix state"
  (``payouts.fix_state``) with a reason;
* ``/payouts/providers/`` (``PayoutProviders``: read, write) — each provider: kill switch
  with its reason, breaker, pause reason and "resume", last known balance and "refresh",
  payouts held for it;
* ``/payoutview/list/`` (``PayoutView``: list, show) — every payout, read-only; the account
  is masked unless the viewer has ``can_pii`` on ``PayoutView`` (Finance, Admin);
* ``/payouttechview/list/`` (``PayoutTechView``) — the same without customer data, for Developers.

Thin: each action validates its form, calls one service, commits or rolls back, flashes
what happened and redirects; a refused action answers 422 with the page and the reason.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from flask import Response, abort, current_app, flash, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import SQLAFilterConverter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import get_locale
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import selectinload
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired

from plugins import PayoutProviderError
from portal import formatting, labels, providers
from portal.errors import DomainError
from portal.extensions import db
from portal.reporting import report_session
from portal.i18n import _, _l
from portal.models import Customer, Payout
from portal.models.payouts import mask
from portal.models.types import utcnow
from portal.services import payout_report, payouts
from portal.services.audit import Actor
from portal.tasks import payouts as payout_tasks
from portal.views.model_view import PortalModelView

log = logging.getLogger(__name__)

#: Refused actions answer with this status (the page shows why).
REFUSED = 422
#: Rows shown on the review and attention pages (oldest first).
PAGE_LIMIT = 200
#: Who sees full accounts: everyone else sees ``mask(account)``.
PII_PERMISSION = ("can_pii", "PayoutView")

#: The circuit breaker's states as Finance reads them.
BREAKER_LABELS = labels.ENUMS["breaker"]

REASON_LABELS = labels.ENUMS["review_reason"]


def actor() -> Actor:
    return Actor.user(current_user)


def sees_pii() -> bool:
    return current_app.appbuilder.sm.has_access(*PII_PERMISSION)


def account_text(account: str | None) -> str:
    """The account as the current viewer may see it."""
    return (account or "") if sees_pii() else mask(account)


def reason_label(code: str) -> str:
    return str(REASON_LABELS.get(code, code))


def reason_field() -> TextAreaField:
    return TextAreaField(_l("Reason"), validators=[DataRequired(message=_l("Say why."))])


def _refused(form: FlaskForm) -> None:
    """Flash why a form was refused."""
    if "csrf_token" in form.errors:
        flash(_("The form has expired. Reload the page and try again."), "danger")
    for name, messages in form.errors.items():
        if name != "csrf_token":
            for message in messages:
                flash(f"{form[name].label.text}: {message}", "danger")


def _usernames(user_ids) -> dict[int, str]:
    ids = {i for i in user_ids if i is not None}
    if not ids:
        return {}
    model = current_app.appbuilder.sm.user_model
    return dict(db.session.execute(sa.select(model.id, model.username).where(model.id.in_(ids))).all())


# --- review -------------------------------------------------------------------------------

class DecideForm(FlaskForm):
    decision = StringField(validators=[AnyOf(("approve", "reject"))])
    reason = reason_field()


class BulkApproveForm(FlaskForm):
    reason = reason_field()


@dataclass(frozen=True)
class QueueFilters:
    """The review queue's filters (query arguments ``provider``, ``reason``, ``min``, ``max``)."""

    provider: str | None = None
    reason: str | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None

    @classmethod
    def from_args(cls, args) -> tuple["QueueFilters", list[str]]:
        errors = []
        amounts = {}
        for name in ("min", "max"):
            raw = (args.get(name) or "").strip()
            amounts[name] = None
            if raw:
                try:
                    amounts[name] = Decimal(raw)
                    if not amounts[name].is_finite():
                        raise InvalidOperation
                except InvalidOperation:
                    amounts[name] = None
                    errors.append(_("Not an amount: %(value)s", value=raw))
        provider = args.get("provider") or None
        reason = args.get("reason") or None
        return cls(provider if provider in providers.all_providers() else None,
                   reason if reason in REASON_LABELS else None, amounts["min"], amounts["max"]), errors

    def args(self) -> dict[str, str]:
        """Back to query arguments (for links and redirects that keep the filters)."""
        values = {"provider": self.provider, "reason": self.reason,
                  "min": None if self.min_amount is None else str(self.min_amount),
                  "max": None if self.max_amount is None else str(self.max_amount)}
        return {k: v for k, v in values.items() if v is not None}


def review_queue(filters: QueueFilters) -> list[Payout]:
    """Payouts in review, oldest first."""
    query = (sa.select(Payout).where(Payout.state == "in_review")
             .options(selectinload(Payout.approvals), selectinload(Payout.customer)))
    if filters.provider:
        query = query.where(Payout.provider_code == filters.provider)
    if filters.min_amount is not None:
        query = query.where(Payout.amount_usd >= filters.min_amount)
    if filters.max_amount is not None:
        query = query.where(Payout.amount_usd <= filters.max_amount)
    if filters.reason:
        # reasons are a JSON list of codes (REASON_LABELS keys: plain identifiers); its text
        # holds '"code"' exactly when the list does — the same test on PostgreSQL and SQLite,
        # and before the page limit, so a long queue cannot hide a match
        query = query.where(sa.cast(Payout.review_reasons, sa.Text).contains(f'"{filters.reason}"'))
    return db.session.execute(query.order_by(Payout.created_at, Payout.id).limit(PAGE_LIMIT)).scalars().all()


def decision_message(payout: Payout, approve: bool) -> str:
    if not approve:
        return _("Payout #%(id)s rejected: the money is back on the customer's balance.", id=payout.id)
    if payout.state == "approved":
        return _("Payout #%(id)s approved: it goes to the provider now.", id=payout.id)
    done = sum(1 for a in payout.approvals if a.decision == "approve")
    return _("Payout #%(id)s: approval %(done)s of %(needed)s recorded; another approver is needed.",
             id=payout.id, done=done, needed=payout.approvals_needed)


class PayoutReviewView(BaseView):
    """Payouts the risk rules held back: Finance approves or rejects them (maker-checker)."""

    route_base = "/payouts/review"
    default_view = "queue"
    class_permission_name = "PayoutReview"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"queue": "read", "decide": "write", "bulk_approve": "write"}

    def _queue_page(self, status: int = 200, form: FlaskForm | None = None):
        filters, errors = QueueFilters.from_args(request.args)
        for error in errors:
            flash(error, "warning")
        rows = review_queue(filters)
        users = _usernames(a.user_id for p in rows for a in p.approvals)
        return self.render_template(
            "payouts/review.html", rows=rows, filters=filters, query=filters.args(), users=users,
            providers=sorted(providers.all_providers()), reasons=REASON_LABELS, reason_label=reason_label,
            account_text=account_text, form=form or DecideForm(formdata=None), bulk_form=BulkApproveForm(formdata=None),
            me=current_user.id, title=_("Payouts in review")), status

    @expose("/")
    @has_access
    def queue(self):
        return self._queue_page()

    @expose("/<int:payout_id>/decide", methods=["POST"])
    @has_access
    def decide(self, payout_id: int):
        form = DecideForm()
        if not form.validate_on_submit():
            _refused(form)
            return self._queue_page(REFUSED, form)
        approve = form.decision.data == "approve"
        try:
            payout = payouts.decide(db.session, payout_id, user_id=current_user.id, actor=actor(),
                                    approve=approve, reason=form.reason.data)
        except DomainError as err:
            db.session.rollback()
            flash(_("Payout #%(id)s: %(error)s", id=payout_id, error=err.message), "danger")
            return self._queue_page(REFUSED, form)
        # the message of the state as decided, read before the commit: a job worker may move an
        # approved payout on (submitting, succeeded) the moment it is committed
        message = decision_message(payout, approve)
        db.session.commit()
        flash(message, "success")
        return redirect(url_for(".queue", **request.args))

    @expose("/bulk-approve", methods=["POST"])
    @has_access
    def bulk_approve(self):
        """Approve each selected payout through ``payouts.decide``, one transaction each."""
        form = BulkApproveForm()
        ids = sorted({int(v) for v in request.form.getlist("ids") if v.isdigit()})
        if not form.validate_on_submit() or not ids:
            if not ids:
                flash(_("Select the payouts to approve."), "danger")
            _refused(form)
            return self._queue_page(REFUSED)
        report, done = [], 0
        for payout_id in ids:
            try:
                payout = payouts.decide(db.session, payout_id, user_id=current_user.id, actor=actor(),
                                        approve=True, reason=form.reason.data)
                message = decision_message(payout, True)  # as decided (see decide)
                db.session.commit()
            except DomainError as err:
                db.session.rollback()
                report.append((False, _("Payout #%(id)s: %(error)s", id=payout_id, error=err.message)))
            else:
                done += 1
                report.append((True, message))
        flash(_("%(done)s of %(total)s selected payouts approved.", done=done, total=len(ids)),
              "success" if done == len(ids) else "warning")
        for ok, message in report:
            flash(message, "success" if ok else "danger")
        return redirect(url_for(".queue", **request.args))


# --- attention ----------------------------------------------------------------------------

class FixForm(FlaskForm):
    to = SelectField(_l("Outcome"), choices=[("succeeded", _l("Paid: the provider confirmed the payment")),
                                             ("failed", _l("Not paid: return the money to the customer"))])
    reason = reason_field()


def attention_list() -> list[Payout]:
    """Payouts in ``unknown`` or flagged by the janitor or a reversal, oldest change first."""
    return db.session.execute(
        sa.select(Payout).where(sa.or_(Payout.state == "unknown", Payout.needs_attention.is_(True)))
        .options(selectinload(Payout.attempts), selectinload(Payout.customer))
        .order_by(Payout.updated_at, Payout.id).limit(PAGE_LIMIT)).scalars().all()


class PayoutAttentionView(BaseView):
    """Payouts no automatic step could resolve: Finance checks with the provider and fixes them."""

    route_base = "/payouts/attention"
    default_view = "attention"
    class_permission_name = "PayoutAttention"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"attention": "read", "fix": "write", "acknowledge": "write", "check": "write"}

    def _page(self, status: int = 200, form: FixForm | None = None, form_for: int | None = None):
        return self.render_template(
            "payouts/attention.html", rows=attention_list(), account_text=account_text,
            fixable=lambda p: p.state in ("unknown", "submitting"), form=FixForm(formdata=None),
            failed_form=form, failed_for=form_for, ack_form=ReasonForm(formdata=None),
            csrf_form=CsrfForm(formdata=None), in_flight=payout_tasks.IN_FLIGHT,
            title=_("Payouts needing attention")), status

    @expose("/")
    @has_access
    def attention(self):
        return self._page()

    @expose("/<int:payout_id>/fix", methods=["POST"])
    @has_access
    def fix(self, payout_id: int):
        form = FixForm()
        if not form.validate_on_submit():
            _refused(form)
            return self._page(REFUSED, form, payout_id)
        try:
            payout = payouts.fix_state(db.session, payout_id, to=form.to.data, actor=actor(),
                                       reason=form.reason.data)
        except DomainError as err:
            db.session.rollback()
            flash(_("Payout #%(id)s: %(error)s", id=payout_id, error=err.message), "danger")
            return self._page(REFUSED, form, payout_id)
        db.session.commit()
        flash(_("Payout #%(id)s: %(state)s.", id=payout.id, state=labels.label("payout_state", payout.state)), "success")
        return redirect(url_for(".attention"))

    @expose("/<int:payout_id>/check", methods=["POST"])
    @has_access
    def check(self, payout_id: int):
        """«Check status now»: a status check of the payout's open attempt, queued at once."""
        form = CsrfForm()
        if not form.validate_on_submit():
            _refused(form)
            return self._page(REFUSED)
        attempt = payout_tasks.check_now(db.session, payout_id)
        if attempt is None:
            flash(_("Payout #%(id)s has no attempt waiting for the provider's answer.", id=payout_id), "warning")
            return self._page(REFUSED)
        db.session.commit()  # the job is sent after the commit
        flash(_("Payout #%(id)s: the provider is being asked about attempt %(number)s now; "
                "reload the page for its answer.", id=payout_id, number=attempt.number), "success")
        return redirect(url_for(".attention"))

    @expose("/<int:payout_id>/acknowledge", methods=["POST"])
    @has_access
    def acknowledge(self, payout_id: int):
        """A reversed payout was dealt with (the money is back with the customer): off the list."""
        form = ReasonForm()
        if not form.validate_on_submit():
            _refused(form)
            return self._page(REFUSED)
        try:
            payouts.acknowledge(db.session, payout_id, actor=actor(), reason=form.reason.data)
        except DomainError as err:
            db.session.rollback()
            flash(_("Payout #%(id)s: %(error)s", id=payout_id, error=err.message), "danger")
            return self._page(REFUSED)
        db.session.commit()
        flash(_("Payout #%(id)s is acknowledged.", id=payout_id), "success")
        return redirect(url_for(".attention"))


# --- providers ----------------------------------------------------------------------------

class ReasonForm(FlaskForm):
    reason = reason_field()


class CsrfForm(FlaskForm):
    """Only the CSRF token."""


@dataclass(frozen=True)
class ProviderRow:
    code: str
    name: str
    currency: str
    supports_balance: bool
    #: the provider's own ``enabled`` setting (configuration)
    configured: bool
    state: object
    held: int
    in_flight: int
    #: the last balance is below the provider's ``low_balance`` setting
    low_balance: bool = False


def provider_rows() -> list[ProviderRow]:
    counts = dict(db.session.execute(
        sa.select(Payout.provider_code, sa.func.count()).where(Payout.state == "approved")
        .group_by(Payout.provider_code)).all())
    flying = dict(db.session.execute(
        sa.select(Payout.provider_code, sa.func.count()).where(Payout.state.in_(("submitting", "unknown")))
        .group_by(Payout.provider_code)).all())
    locale = str(get_locale() or current_app.config["BABEL_DEFAULT_LOCALE"])
    rows = []
    for code, provider in sorted(providers.all_providers().items()):
        state = payouts.provider_state(db.session, code)
        rows.append(ProviderRow(code, provider.display_name(locale), provider.currency, provider.supports_balance,
                                provider.enabled, state, counts.get(code, 0), flying.get(code, 0),
                                payouts.low_balance(state, provider)))
    return rows


class PayoutProviderView(BaseView):
    """The provider switchboard: kill switch, breaker, balance."""

    route_base = "/payouts/providers"
    default_view = "list"
    class_permission_name = "PayoutProviders"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"list": "read", "disable": "write", "enable": "write", "resume": "write",
                              "refresh_balance": "write"}

    def _page(self, status: int = 200):
        return self.render_template(
            "payouts/providers.html", rows=provider_rows(), form=ReasonForm(formdata=None),
            breaker_labels=BREAKER_LABELS,
            csrf_form=CsrfForm(formdata=None),
            can_write=current_app.appbuilder.sm.has_access("can_write", "PayoutProviders"),
            title=_("Payout providers")), status

    @staticmethod
    def _provider_or_404(code: str):
        provider = providers.provider(code)
        if provider is None:
            abort(404)
        return provider

    @expose("/")
    @has_access
    def list(self):
        return self._page()

    def _switch(self, code: str, enabled: bool):
        self._provider_or_404(code)
        form = ReasonForm()
        if not form.validate_on_submit():
            _refused(form)
            return self._page(REFUSED)
        try:
            state = payouts.set_provider_enabled(db.session, code, enabled, actor=actor(), reason=form.reason.data)
        except DomainError as err:
            db.session.rollback()
            flash(str(err.message), "danger")
            return self._page(REFUSED)
        db.session.commit()
        if state.enabled:
            flash(_("%(code)s is switched on: held payouts are being sent.", code=labels.provider_name(code)), "success")
        else:
            flash(_("%(code)s is switched off: new withdrawals are refused, approved ones are held.", code=labels.provider_name(code)),
                  "success")
        return redirect(url_for(".list"))

    @expose("/<code>/disable", methods=["POST"])
    @has_access
    def disable(self, code: str):
        return self._switch(code, False)

    @expose("/<code>/enable", methods=["POST"])
    @has_access
    def enable(self, code: str):
        return self._switch(code, True)

    @expose("/<code>/resume", methods=["POST"])
    @has_access
    def resume(self, code: str):
        self._provider_or_404(code)
        form = ReasonForm()
        if not form.validate_on_submit():
            _refused(form)
            return self._page(REFUSED)
        payouts.resume_provider(db.session, code, actor=actor(), reason=form.reason.data.strip())
        db.session.commit()
        flash(_("%(code)s is resumed: held payouts are being sent.", code=labels.provider_name(code)), "success")
        return redirect(url_for(".list"))

    @expose("/<code>/balance", methods=["POST"])
    @has_access
    def refresh_balance(self, code: str):
        """Ask the provider for our balance there and keep it; a failure is shown, not raised."""
        provider = self._provider_or_404(code)
        form = CsrfForm()
        if not form.validate_on_submit():
            _refused(form)
            return self._page(REFUSED)
        db.session.rollback()  # no transaction open while the provider is asked
        try:
            amount = payouts.refresh_balance(db.session, code, provider, actor=actor())
        except NotImplementedError:
            flash(_("%(code)s does not report a balance.", code=labels.provider_name(code)), "warning")
            return self._page(REFUSED)
        except PayoutProviderError as err:
            flash(_("The balance of %(code)s could not be read: %(error)s", code=labels.provider_name(code),
                    error=f"{err.code.value} {err.message}".strip()), "danger")
            return self._page(REFUSED)
        except Exception as exc:  # a plugin bug must not break the page
            log.exception("balance of %s", code)
            flash(_("The balance of %(code)s could not be read: %(error)s", code=labels.provider_name(code),
                    error=type(exc).__name__), "danger")
            return self._page(REFUSED)
        db.session.commit()
        flash(_("Balance at %(code)s: %(amount)s.", code=labels.provider_name(code),
                amount=formatting.money(amount, provider.currency, exact=True)), "success")
        return redirect(url_for(".list"))


# --- all payouts (read-only) ---------------------------------------------------------------

class FilterPayoutCustomerEmail(BaseFilter):
    """Payouts whose customer's e-mail contains the value (a sub-select, no join)."""

    name = _l("E-mail contains")
    arg_name = "ct"

    def apply(self, query, value):
        text = (value or "").strip().lower()
        if not text:
            return query
        emails = sa.select(Customer.id).where(sa.func.lower(Customer.email).contains(text, autoescape=True))
        return query.filter(Payout.customer_id.in_(emails))


class _PayoutFilters(SQLAFilterConverter):
    def convert(self, col_name):
        if col_name == "customer":
            return [FilterPayoutCustomerEmail(col_name, self.datamodel)]
        return super().convert(col_name)


class PayoutInterface(SQLAInterface):
    filter_converter_class = _PayoutFilters


PAYOUT_LABELS = {
    "created_at": _l("Requested"), "customer": _l("Customer"), "customer.email": _l("Customer"),
    "provider_code": _l("Provider"), "account": _l("Account"), "amount_usd": _l("Amount, USD"),
    "payout_amount": _l("Payout amount"), "payout_currency": _l("Currency"), "fx_rate": _l("Rate"),
    "fee": _l("Our fee"), "state": _l("State"), "review_reasons": _l("Review reasons"),
    "approvals_needed": _l("Approvals needed"), "failure_code": _l("Failure"),
    "failure_message": _l("Provider's message"), "next_attempt_at": _l("Next attempt"),
    "needs_attention": _l("Needs attention"), "updated_at": _l("Updated"), "finished_at": _l("Finished"),
}
#: Codes of payouts as a person reads them (``portal.labels``).
PAYOUT_ENUMS = {"state": "payout_state", "provider_code": "provider", "review_reasons": "review_reason",
                "failure_code": "failure_code"}
#: Figures in lists and pages, in the reader's locale: USD exact (payouts are whole cents), the
#: payout amount and our fee beside the payout currency column.
AMOUNT_FORMATTERS = formatting.list_formatters(
    money_columns=["amount_usd"], amount_columns=["payout_amount", "fee"], number_columns=["fx_rate"],
    time_columns=["created_at", "updated_at", "finished_at", "next_attempt_at"])
TECH_COLUMNS = ["id", "created_at", "provider_code", "state", "amount_usd", "payout_amount", "payout_currency",
                "failure_code", "needs_attention", "updated_at"]


class PayoutView(PortalModelView):
    """Every payout, read-only; the account masked for viewers without ``can_pii``."""

    show_title = _l("Payout")
    enum_columns = PAYOUT_ENUMS
    datamodel = PayoutInterface(Payout)
    base_permissions = ["can_list", "can_show", "can_pii"]
    list_columns = ["id", "created_at", "customer.email", "provider_code", "account", "amount_usd",
                    "payout_amount", "payout_currency", "state", "needs_attention"]
    show_columns = ["id", "created_at", "customer", "provider_code", "account", "amount_usd", "payout_amount",
                    "payout_currency", "fx_rate", "fee", "state", "review_reasons", "approvals_needed",
                    "failure_code", "failure_message", "next_attempt_at", "needs_attention", "updated_at",
                    "finished_at"]
    search_columns = ["state", "provider_code", "customer", "needs_attention", "created_at"]
    search_form_extra_fields = {"customer": StringField(_l("Customer e-mail"))}
    formatters_columns = {"account": account_text, **AMOUNT_FORMATTERS}
    base_order = ("id", "desc")
    list_title = _l("All payouts")
    label_columns = PAYOUT_LABELS


class PayoutTechView(PortalModelView):
    """Payouts without customer data (no customer, no account, no provider texts): for Developers."""

    show_title = _l("Payout (technical)")
    enum_columns = PAYOUT_ENUMS
    datamodel = SQLAInterface(Payout)
    base_permissions = ["can_list", "can_show"]
    list_columns = TECH_COLUMNS
    show_columns = TECH_COLUMNS + ["fx_rate", "fee", "review_reasons", "approvals_needed", "next_attempt_at",
                                   "finished_at"]
    search_columns = ["state", "provider_code", "failure_code", "needs_attention"]
    formatters_columns = AMOUNT_FORMATTERS
    base_order = ("id", "desc")
    list_title = _l("Payouts (technical)")
    label_columns = PAYOUT_LABELS


class PayoutReportView(BaseView):
    """Per provider and day: succeeded payouts, amounts and our fees; CSV export."""

    route_base = "/payouts/report"
    default_view = "report"
    class_permission_name = "PayoutReport"
    base_permissions = ["can_read"]
    method_permission_name = {"report": "read", "export": "read"}

    def _period(self) -> tuple[dt.date, dt.date]:
        today = dt.datetime.now(dt.timezone.utc).date()
        try:
            since = dt.date.fromisoformat(request.args.get("since", ""))
        except ValueError:
            since = today - dt.timedelta(days=30)
        try:
            until = dt.date.fromisoformat(request.args.get("until", ""))
        except ValueError:
            until = today
        return since, until

    @expose("/")
    @has_access
    def report(self):
        since, until = self._period()
        with report_session() as session:  # the read replica when configured
            rows = payout_report.by_day(session, since, until)
        return self.render_template("payouts/report.html", rows=rows, since=since, until=until,
                                    title=_("Payouts by provider and day"))

    @expose("/export.csv")
    @has_access
    def export(self):
        since, until = self._period()
        with report_session() as session:
            body = payout_report.to_csv(payout_report.by_day(session, since, until))
        return Response(body, mimetype="text/csv",
                        headers={"Content-Disposition": f"attachment; filename=payouts-{since}-{until}.csv"})


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(PayoutReviewView, "Review queue", label=_l("Review queue"), icon="fa-gavel",
                        category="Payouts", category_label=_l("Payouts"), category_icon="fa-money")
    appbuilder.add_view(PayoutAttentionView, "Needs attention", label=_l("Needs attention"),
                        icon="fa-exclamation-triangle", category="Payouts")
    appbuilder.add_view(PayoutProviderView, "Payout providers", label=_l("Payout providers"), icon="fa-plug",
                        category="Payouts")
    appbuilder.add_view(PayoutReportView, "Payouts by day", label=_l("Payouts by day"), icon="fa-table",
                        category="Payouts")
    appbuilder.add_view(PayoutView, "All payouts", label=_l("All payouts"), icon="fa-list", category="Payouts")
    appbuilder.add_view(PayoutTechView, "Payouts (no PII)", label=_l("Payouts (technical)"), icon="fa-cogs",
                        category="Payouts")
