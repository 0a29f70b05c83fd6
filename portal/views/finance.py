"""Finance pages: exchange rates (list, CBR upload, correction), reconciliation, promos.

Thin: each page validates its form, calls one service, commits or rolls back, and says
what happened.  A refused submission answers 422 with the form and the reason shown.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired, FileSize
from wtforms import BooleanField, DateField, DateTimeLocalField, DecimalField, SelectField, StringField, \
    TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from portal.errors import DomainError
from portal.extensions import db
from portal.formatting import date, list_formatters, number
from portal.i18n import _, _l
from portal.labels import ENUMS
from portal.models import FxRate, Promo, ReconImport, ReconLine
from portal.services import audit, fx, reconciliation
from portal.services.audit import Actor
from portal.services.money import is_ledger_exact
from portal.services.network_report import file_digest
from portal.services.rates import RateFileError
from portal.views.model_view import PortalModelView

#: Largest CBR file accepted (a real one is ~10 KB).
MAX_RATES_BYTES = 1024 * 1024
#: Largest network report accepted.
MAX_REPORT_BYTES = 10 * 1024 * 1024
#: Refused form submissions answer with this status (the page shows the form and why).
REFUSED = 422


def actor() -> Actor:
    return Actor.user(current_user)


# --- validators ---------------------------------------------------------------------------

def exact_amount(form, field) -> None:
    """A finite decimal with at most 6 decimal places (what the ledger stores)."""
    value = field.data
    if value is not None and (not value.is_finite() or not is_ledger_exact(value)):
        raise ValidationError(_l("Enter a number with at most 6 decimal places."))


def reason_field() -> TextAreaField:
    return TextAreaField(_l("Reason"), validators=[DataRequired(message=_l("Say why."))])


# --- exchange rates -----------------------------------------------------------------------

class CbrUploadForm(FlaskForm):
    file = FileField(_l("CBR daily rates (XML)"), validators=[
        FileRequired(message=_l("Choose a file.")),
        FileSize(MAX_RATES_BYTES, message=_l("The file is too large."))])


class CorrectRateForm(FlaskForm):
    day = DateField(_l("Day"), validators=[InputRequired(message=_l("Enter a date."))])
    base = SelectField(_l("Currency"), choices=[(c, c) for c in fx.KEPT], default="USD")
    rate = DecimalField(_l("Rate, RUB per unit"), places=None, validators=[
        InputRequired(message=_l("Enter the rate.")), exact_amount,
        NumberRange(min=Decimal("0.000001"), max=Decimal("100000"),
                    message=_l("The rate must be a positive number."))])
    reason = reason_field()


class FxRateView(PortalModelView):
    """Exchange rates: read-only list; CBR upload and corrections need ``can_write``."""

    list_title = _l("Exchange rates")
    show_title = _l("Exchange rate")
    enum_columns = {"source": "fx_source"}
    datamodel = SQLAInterface(FxRate)
    base_permissions = ["can_list", "can_show", "can_write"]
    method_permission_name = {"upload": "write", "correct": "write"}
    list_columns = ["day", "base", "quote", "rate", "source", "updated_at"]
    show_columns = list_columns
    search_columns = ["day", "base", "source"]
    formatters_columns = list_formatters(date_columns=["day"], number_columns=["rate"], time_columns=["updated_at"])
    base_order = ("day", "desc")
    list_template = "finance/fx_rates.html"
    label_columns = {"day": _l("Day"), "base": _l("Currency"), "quote": _l("In"), "rate": _l("Rate"),
                     "source": _l("Source"), "updated_at": _l("Updated")}

    @expose("/upload/", methods=["GET", "POST"])
    @has_access
    def upload(self):
        """Upload a CBR daily XML; flash the summary or the reason it was refused."""
        form = CbrUploadForm()
        if form.validate_on_submit():
            try:
                result = fx.import_cbr(db.session, form.file.data.read(), actor())
            except RateFileError as err:
                db.session.rollback()
                flash(_("The rates file was refused: %(error)s", error=err.message), "danger")
            else:
                db.session.commit()
                flash(_("Rates of %(day)s: %(created)s added, %(updated)s updated, %(unchanged)s unchanged.",
                        day=date(result.day), created=result.created, updated=result.updated,
                        unchanged=result.unchanged), "success")
                return redirect(url_for(".list"))
        status = REFUSED if request.method == "POST" else 200
        return self.render_template("finance/form_page.html", form=form, title=_("Upload CBR rates"),
                                    back=url_for(".list"), multipart=True), status

    @expose("/correct/", methods=["GET", "POST"])
    @has_access
    def correct(self):
        """Set a day's rate by hand, with a reason (audited by the service)."""
        form = CorrectRateForm()
        if form.validate_on_submit():
            try:
                row = fx.correct_rate(db.session, form.day.data, form.rate.data, actor(), form.reason.data,
                                      base=form.base.data)
            except DomainError as err:
                db.session.rollback()
                flash(str(err.message), "danger")
            else:
                db.session.commit()
                flash(_("The %(base)s rate of %(day)s is now %(rate)s.", base=row.base,
                        day=date(row.day), rate=number(row.rate)), "success")
                return redirect(url_for(".list"))
        status = REFUSED if request.method == "POST" else 200
        return self.render_template("finance/form_page.html", form=form, title=_("Correct a rate"),
                                    back=url_for(".list"), multipart=False), status


# --- reconciliation -----------------------------------------------------------------------

class ReportUploadForm(FlaskForm):
    file = FileField(_l("Network order report (CSV)"), validators=[
        FileRequired(message=_l("Choose a file.")),
        FileSize(MAX_REPORT_BYTES, message=_l("The file is too large."))])


class ApplyForm(FlaskForm):
    reason = reason_field()


KIND_LABELS = ENUMS["recon_kind"]


class ReconciliationView(BaseView):
    """The network's order report against our orders: imports, their lines, applying them."""

    route_base = "/finance/reconciliation"
    default_view = "list"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"list": "read", "show": "read", "upload": "write", "apply": "write",
                              "apply_all": "write", "approve": "write", "reject": "write"}

    def _list_page(self, form: ReportUploadForm, status: int = 200):
        imports = db.session.execute(sa.select(ReconImport).order_by(ReconImport.id.desc()).limit(100)).scalars().all()
        tallies = {i.id: reconciliation.counts(db.session, i.id) for i in imports}
        return self.render_template("finance/recon_list.html", form=form, imports=imports, tallies=tallies,
                                    kinds=KIND_LABELS, title=_("Reconciliation")), status

    @expose("/")
    @has_access
    def list(self):
        return self._list_page(ReportUploadForm())

    @expose("/upload", methods=["POST"])
    @has_access
    def upload(self):
        form = ReportUploadForm()
        if not form.validate_on_submit():
            return self._list_page(form, REFUSED)
        data = form.file.data.read()
        known = db.session.execute(sa.select(ReconImport.id).where(
            ReconImport.digest == file_digest(data))).scalar_one_or_none()
        try:
            recon = reconciliation.import_report(db.session, data, form.file.data.filename or "", actor(),
                                                 network=current_app.config["DEFAULT_NETWORK"])
        except DomainError as err:
            db.session.rollback()
            details = "; ".join(e["message"] for e in err.errors[:5])
            flash(f"{err.message} {details}".strip(), "danger")
            return self._list_page(form, REFUSED)
        db.session.commit()
        if known is not None:
            flash(_("This file was imported before (import #%(id)s): nothing changed.", id=recon.id), "info")
        else:
            tally = reconciliation.counts(db.session, recon.id)
            flash(_("Report imported: %(rows)s rows, %(differences)s differences, %(errors)s errors.",
                    rows=recon.rows, differences=sum(n for k, n in tally.items() if k != "match"),
                    errors=len(recon.errors or [])), "success")
        return redirect(url_for(".show", import_id=recon.id))

    def _show_page(self, recon: ReconImport, kind: str | None, status: int = 200, form: ApplyForm | None = None):
        query = sa.select(ReconLine).where(ReconLine.import_id == recon.id)
        if kind:
            query = query.where(ReconLine.kind == kind)
        lines = db.session.execute(query.order_by(ReconLine.line, ReconLine.id)).scalars().all()
        return self.render_template(
            "finance/recon_show.html", recon=recon, lines=lines, kind=kind, kinds=KIND_LABELS,
            tally=reconciliation.counts(db.session, recon.id), applicable=reconciliation.is_applicable,
            open_count=sum(1 for line in recon.lines if reconciliation.is_applicable(line)),
            proposal=reconciliation.proposal(db.session, recon.id),
            form=form or ApplyForm(), title=_("Reconciliation import #%(id)s", id=recon.id)), status

    def _import_or_404(self, import_id: int) -> ReconImport:
        recon = db.session.get(ReconImport, import_id)
        if recon is None:
            abort(404)
        return recon

    @staticmethod
    def _kind_arg() -> str | None:
        kind = request.args.get("kind") or None
        return kind if kind in KIND_LABELS else None

    @expose("/<int:import_id>")
    @has_access
    def show(self, import_id: int):
        return self._show_page(self._import_or_404(import_id), self._kind_arg())

    @expose("/line/<int:line_id>/apply", methods=["POST"])
    @has_access
    def apply(self, line_id: int):
        line = db.session.get(ReconLine, line_id)
        if line is None:
            abort(404)
        recon, kind = line.recon_import, self._kind_arg()
        form = ApplyForm()
        if not form.validate_on_submit():
            flash(_("Line %(line)s was not applied: say why.", line=line.line or line.network_order_id), "danger")
            return self._show_page(recon, kind, REFUSED, form)
        try:
            result = reconciliation.apply_line(db.session, line.id, actor(), form.reason.data)
        except DomainError as err:
            db.session.rollback()
            flash(str(err.message), "danger")
            return self._show_page(recon, kind, REFUSED)
        db.session.commit()
        if result.outcome == "already_applied":
            flash(_("This line was applied before: nothing changed."), "info")
        elif result.outcome == "proposed":
            flash(_("Order %(order)s would raise a customer's cashback: proposed, a second Finance user "
                    "approves it.", order=line.network_order_id), "info")
        else:
            flash(_("Order %(order)s: the network's data applied (%(outcome)s).",
                    order=line.network_order_id, outcome=result.outcome), "success")
        return redirect(url_for(".show", import_id=recon.id, kind=kind))

    @expose("/<int:import_id>/apply-all", methods=["POST"])
    @has_access
    def apply_all(self, import_id: int):
        recon, kind = self._import_or_404(import_id), self._kind_arg()
        form = ApplyForm()
        if not form.validate_on_submit():
            flash(_("Nothing was applied: say why."), "danger")
            return self._show_page(recon, kind, REFUSED, form)
        result = reconciliation.apply_all(db.session, recon.id, actor(), form.reason.data)
        db.session.commit()
        flash(_("%(applied)s lines applied, %(skipped)s left alone (the network is behind), %(failed)s failed.",
                applied=len(result.applied), skipped=result.skipped, failed=len(result.failed)),
              "danger" if result.failed else "success")
        if result.proposed:
            flash(_("%(count)s lines would raise customers' cashback: proposed, a second Finance user approves "
                    "them.", count=len(result.proposed)), "info")
        for line_id, _code, message in result.failed[:10]:
            flash(f"#{line_id}: {message}", "danger")
        return redirect(url_for(".show", import_id=recon.id, kind=kind))

    def _decide(self, import_id: int, approve: bool):
        recon, kind = self._import_or_404(import_id), self._kind_arg()
        form = ApplyForm()
        if not form.validate_on_submit():
            flash(_("Nothing was decided: say why."), "danger")
            return self._show_page(recon, kind, REFUSED, form)
        try:
            if approve:
                result = reconciliation.approve_proposal(db.session, recon.id, actor(), form.reason.data)
            else:
                rejected = reconciliation.reject_proposal(db.session, recon.id, actor(), form.reason.data)
        except DomainError as err:
            db.session.rollback()
            flash(str(err.message), "danger")
            return self._show_page(recon, kind, REFUSED)
        db.session.commit()
        if not approve:
            flash(_("%(count)s proposed lines rejected: nothing was applied.", count=rejected), "success")
            return redirect(url_for(".show", import_id=recon.id, kind=kind))
        flash(_("%(applied)s proposed lines approved and applied, %(failed)s failed.",
                applied=len(result.applied), failed=len(result.failed)), "danger" if result.failed else "success")
        for line_id, _code, message in result.failed[:10]:
            flash(f"#{line_id}: {message}", "danger")
        return redirect(url_for(".show", import_id=recon.id, kind=kind))

    @expose("/<int:import_id>/approve", methods=["POST"])
    @has_access
    def approve(self, import_id: int):
        """A second Finance user applies the lines proposed to raise cashback (four eyes)."""
        return self._decide(import_id, approve=True)

    @expose("/<int:import_id>/reject", methods=["POST"])
    @has_access
    def reject(self, import_id: int):
        return self._decide(import_id, approve=False)


# --- promos -------------------------------------------------------------------------------

def after_start(form, field) -> None:
    start = form.starts_at.data
    if field.data is not None and start is not None and field.data <= start:
        raise ValidationError(_l("The end must be after the start."))


class PromoForm(DynamicForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    rate = DecimalField(_l("Rate, %"), places=None, validators=[
        InputRequired(), exact_amount,
        NumberRange(min=Decimal("0.01"), max=Decimal("100"), message=_l("Enter a rate between 0.01 and 100."))])
    starts_at = DateTimeLocalField(_l("Starts (UTC)"), tz=dt.timezone.utc, validators=[InputRequired()])
    ends_at = DateTimeLocalField(_l("Ends (UTC)"), tz=dt.timezone.utc, validators=[InputRequired(), after_start])
    first_order_only = BooleanField(_l("First order only"))
    cap_usd = DecimalField(_l("Cap per order, USD"), places=None, validators=[
        Optional(), exact_amount, NumberRange(min=Decimal("0.01"), message=_l("The cap must be positive."))])
    pays_difference = BooleanField(_l("We pay the difference above the commission"))
    is_active = BooleanField(_l("Active"), default=True)


PROMO_FIELDS = ["name", "rate", "starts_at", "ends_at", "first_order_only", "cap_usd", "pays_difference",
                "is_active"]


class PromoView(PortalModelView):
    """Promos: Finance lists, adds and edits them (no delete: clicks keep their promo); audited."""

    list_title = _l("Promos")
    show_title = _l("Promo")
    add_title = _l("New promo")
    edit_title = _l("Edit the promo")
    datamodel = SQLAInterface(Promo)
    base_permissions = ["can_list", "can_show", "can_add", "can_edit"]
    add_form = edit_form = PromoForm
    add_columns = edit_columns = PROMO_FIELDS
    list_columns = PROMO_FIELDS
    show_columns = ["id", *PROMO_FIELDS, "created_at"]
    search_columns = ["name", "is_active"]
    formatters_columns = list_formatters(money_columns=["cap_usd"], percent_columns=["rate"],
                                         time_columns=["starts_at", "ends_at", "created_at"])
    base_order = ("id", "desc")
    label_columns = {"name": _l("Name"), "rate": _l("Rate, %"), "starts_at": _l("Starts (UTC)"),
                     "ends_at": _l("Ends (UTC)"), "first_order_only": _l("First order only"),
                     "cap_usd": _l("Cap per order, USD"),
                     "pays_difference": _l("We pay the difference above the commission"),
                     "is_active": _l("Active"), "created_at": _l("Created")}

    def pre_add(self, item: Promo) -> None:
        # flushed here so the audit record has the id; FAB's commit makes both durable together
        db.session.add(item)
        db.session.flush()
        audit.record(db.session, actor(), "promo.created", "promo", item.id,
                     after={f: getattr(item, f) for f in PROMO_FIELDS})

    def pre_update(self, item: Promo) -> None:
        state = sa.inspect(item)
        before, after = {}, {}
        for name in PROMO_FIELDS:
            history = state.attrs[name].history
            if history.added or history.deleted:
                before[name] = history.deleted[0] if history.deleted else None
                after[name] = history.added[0] if history.added else None
        if after:
            audit.record(db.session, actor(), "promo.updated", "promo", item.id, before=before, after=after)


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(FxRateView, "Exchange rates", label=_l("Exchange rates"),
                        category="Finance", category_label=_l("Finance"), icon="fa-exchange")
    appbuilder.add_view(ReconciliationView, "Reconciliation", label=_l("Reconciliation"),
                        category="Finance", icon="fa-check-square-o")
    appbuilder.add_view(PromoView, "Promos", label=_l("Promos"), category="Finance", icon="fa-bullhorn")
