"""Missing-cashback claims: the customer's cabinet pages, Support's desk, Finance's credits.

* ``/cabinet/claims/`` (``CustomerClaims``: read, write) — the customer's claims with the
  form to open one (order number, date, amount, optional PNG/JPEG screenshot), and
  ``/cabinet/claims/<id>`` with the state and Support's reply; another customer's id is 404;
* ``/claims/desk/`` (``ClaimDesk``: read; write = work) — claims filtered by state, reason
  and SLA breach; ``/claims/desk/breaching`` the ones over their SLA; ``/claims/desk/<id>``
  the verdict, its evidence, the suggested reply (editable) with "send reply", and reject /
  escalate / propose a credit; ``/claims/desk/new`` opens a claim for a customer by e-mail;
* ``/claims/credits/`` (``ClaimCredits``: read, write) — credits proposed by Support, for
  Finance to approve or reject (four eyes: ``claims.decide_credit``).

Thin: each action validates its form, calls one service, commits or rolls back, flashes
and redirects; a refused form answers 422 with the page and the reason, nothing changed.
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from flask import Response, abort, current_app, flash, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from portal.errors import DomainError
from portal.extensions import db
from portal.i18n import _, _l
from portal.models import Claim, Customer
from portal.models.types import utcnow
from portal.services import claims
from portal.services.audit import Actor
from portal.services.customers import normalize_email
from portal.views.cabinet import CustomerPages, customer_page

#: Refused form submissions answer with this status (the page shows the form and why).
REFUSED = 422
#: Claims per page of the desk list.
PAGE_SIZE = 50


def actor() -> Actor:
    return Actor.user(current_user)


def state_label(code: str | None) -> str:
    return claims.label(claims.STATE_LABELS, code)


def reason_label(code: str | None) -> str:
    return claims.label(claims.REASON_LABELS, code) if code else "—"


class ClaimForm(FlaskForm):
    """A claim as the customer (or Support for them) types it; ``claims.parse_claim`` validates."""

    order_number = StringField(_l("Order number"), render_kw={"autocomplete": "off"})
    order_date = StringField(_l("Order date (YYYY-MM-DD)"), render_kw={"type": "date"})
    amount_usd = StringField(_l("Amount paid, USD (optional)"), render_kw={"inputmode": "decimal"})
    screenshot = FileField(_l("Screenshot of the order, PNG or JPEG (optional)"))


class StaffClaimForm(ClaimForm):
    email = StringField(_l("Customer e-mail"), validators=[
        DataRequired(message=_l("Enter the customer's e-mail.")), Length(max=254)])


def _open_from_form(form: ClaimForm, customer: Customer, *, opened_by: str, channel: str) -> Claim:
    """Parse the form through the service (all field errors at once) and open the claim."""
    config = current_app.config
    upload = form.screenshot.data
    raw = upload.read() if upload and getattr(upload, "filename", "") else None
    now = utcnow()
    data = claims.parse_claim({"order_number": form.order_number.data, "order_date": form.order_date.data,
                               "amount_usd": form.amount_usd.data}, now=now, screenshot=raw or None,
                              max_screenshot=int(config["CLAIM_SCREENSHOT_MAX_BYTES"]))
    return claims.open_claim(db.session, customer, data, actor=actor(), opened_by=opened_by, channel=channel,
                             config=config, now=now)


def _field_errors(form: FlaskForm, err: DomainError) -> bool:
    """Put the service's field errors under the form's fields; True when any was placed."""
    placed = False
    for problem in err.errors:
        target = getattr(form, problem.get("field") or "", None)
        if target is not None:
            target.errors = [*target.errors, str(problem["message"])]
            placed = True
    return placed


# --- the customer's pages ------------------------------------------------------------------------

class CustomerClaimsView(CustomerPages, BaseView):
    route_base = "/cabinet/claims"
    default_view = "index"
    class_permission_name = "CustomerClaims"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"index": "read", "show": "read", "create": "write"}

    def _index(self, customer: Customer, form: ClaimForm | None = None, error: str | None = None,
               status: int = 200):
        return self._render("claims/cabinet_list.html", status, claims=claims.customer_claims(db.session, customer.id),
                            form=form or ClaimForm(formdata=None), error=error, state_label=state_label)

    @expose("/")
    @has_access
    @customer_page
    def index(self, customer: Customer):
        return self._index(customer)

    @expose("/new", methods=["POST"])
    @has_access
    @customer_page
    def create(self, customer: Customer):
        form = ClaimForm()
        if not form.validate_on_submit():
            return self._index(customer, form, _("The form has expired. Reload the page and try again."), 400)
        try:
            claim = _open_from_form(form, customer, opened_by="customer", channel="web")
        except DomainError as err:
            db.session.rollback()
            placed = _field_errors(form, err)
            return self._index(customer, form, None if placed else str(err.message), REFUSED)
        db.session.commit()
        flash(_("Claim #%(id)s is registered; we have checked the order.", id=claim.id), "success")
        return redirect(url_for("CustomerClaimsView.show", claim_id=claim.id))

    @expose("/<int:claim_id>")
    @has_access
    @customer_page
    def show(self, customer: Customer, claim_id: int):
        try:
            claim = claims.own_claim(db.session, customer.id, claim_id)
        except DomainError as err:
            return self._render("cabinet/not_found.html", 404, message=str(err.message))
        return self._render("claims/cabinet_show.html", claim=claim, state_label=state_label)


# --- Support's desk -------------------------------------------------------------------------------

class ReplyForm(FlaskForm):
    reply = TextAreaField(_l("Reply to the customer"), validators=[DataRequired(message=_l("Write the reply."))],
                          render_kw={"rows": 8})


class NoteForm(FlaskForm):
    note = TextAreaField(_l("Reason"), validators=[DataRequired(message=_l("Say why."))], render_kw={"rows": 2})


class ProposeForm(FlaskForm):
    amount_usd = StringField(_l("Credit, USD"), validators=[DataRequired(message=_l("Enter the amount."))])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(message=_l("Say why."))], render_kw={"rows": 2})


class DecideForm(FlaskForm):
    decision = SelectField(_l("Decision"), choices=[("approve", _l("Approve")), ("reject", _l("Reject"))])
    note = TextAreaField(_l("Note (required to reject)"), render_kw={"rows": 2})


def _flag(value: str | None) -> bool:
    return (value or "") in ("1", "true", "yes", "on")


class ClaimDeskView(BaseView):
    """Support works claims; Finance and others with ``can_read`` only look."""

    route_base = "/claims/desk"
    default_view = "claim_list"
    class_permission_name = "ClaimDesk"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"claim_list": "read", "breaching_list": "read", "show": "read", "screenshot": "read",
                              "new": "write", "reply": "write", "reject": "write", "escalate": "write",
                              "propose": "write"}

    @staticmethod
    def can_work() -> bool:
        return current_app.appbuilder.sm.has_access("can_write", "ClaimDesk")

    def _list(self, rows, title: str, filters: dict, status: int = 200, pages: dict | None = None):
        now = utcnow()
        config = current_app.config
        return self.render_template(
            "claims/desk_list.html", rows=rows, filters=filters, states=claims.STATES, reasons=claims.REASON_LABELS,
            state_label=state_label, reason_label=reason_label, title=title, can_work=self.can_work(),
            deadline=lambda c: claims.sla_deadline(c, config), pages=pages,
            worked_by=claims.worked_by(db.session, [c.id for c in rows]),
            can_timeline=current_app.appbuilder.sm.has_access("can_read", "CustomerTimeline"),
            breaching=lambda c: claims.is_breaching(c, config, now)), status

    @expose("/")
    @has_access
    def claim_list(self):
        state = request.args.get("state") or None
        reason = request.args.get("reason") or None
        breached = _flag(request.args.get("breached"))
        if state not in (None, *claims.STATES):
            flash(_("Unknown state: showing all."), "warning")
            state = None
        if reason not in (None, *claims.REASONS):
            flash(_("Unknown reason: showing all."), "warning")
            reason = None
        text = (request.args.get("q") or "").strip()[:100]
        page = max(request.args.get("page", type=int) or 1, 1)
        now, config = utcnow(), current_app.config
        total = claims.count_staff_claims(db.session, config, now=now, state=state, reason=reason, breached=breached,
                                          text=text)
        last = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
        page = min(page, last)
        rows = claims.staff_claims(db.session, config, now=now, state=state, reason=reason, breached=breached,
                                   text=text, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        filters = {"state": state, "reason": reason, "breached": breached, "q": text}
        pages = {"page": page, "last": last, "total": total,
                 "url": lambda n: url_for(".claim_list", state=state, reason=reason, breached=1 if breached else None,
                                          q=text or None, page=n)}
        return self._list(rows, _("Claims"), filters, pages=pages)

    @expose("/breaching")
    @has_access
    def breaching_list(self):
        rows = claims.breaching(db.session, current_app.config, now=utcnow())
        return self._list(rows, _("Claims breaching the SLA"), {"state": None, "reason": None, "breached": True,
                                                                 "q": ""})

    def _page(self, claim_id: int, status: int = 200, **forms):
        claim = db.session.get(Claim, claim_id)
        if claim is None:
            abort(404)
        config = current_app.config
        reply = forms.pop("reply_form", None) or ReplyForm(formdata=None, reply=claim.reply_sent or claim.suggested_reply)
        return self.render_template(
            "claims/desk_show.html", claim=claim, customer=claim.customer, state_label=state_label,
            reason_label=reason_label, evidence=json.dumps(claim.verdict or {}, indent=2, ensure_ascii=False),
            checked=claims.evidence_view(claim, confirmation_days=int(config.get("CLAIM_CONFIRMATION_DAYS", 60))),
            can_timeline=current_app.appbuilder.sm.has_access("can_read", "CustomerTimeline"),
            deadline=claims.sla_deadline(claim, config), breaching=claims.is_breaching(claim, config, utcnow()),
            can_work=self.can_work(), reply_form=reply,
            reject_form=forms.pop("reject_form", None) or NoteForm(formdata=None, prefix="reject"),
            escalate_form=forms.pop("escalate_form", None) or NoteForm(formdata=None, prefix="escalate"),
            propose_form=forms.pop("propose_form", None) or ProposeForm(formdata=None),
            credit_label=lambda code: claims.label(claims.CREDIT_STATE_LABELS, code),
            title=_("Claim #%(id)s", id=claim.id)), status

    @expose("/<int:claim_id>")
    @has_access
    def show(self, claim_id: int):
        return self._page(claim_id)

    @expose("/<int:claim_id>/screenshot")
    @has_access
    def screenshot(self, claim_id: int):
        claim = db.session.get(Claim, claim_id)
        if claim is None or claim.screenshot is None:
            abort(404)
        return Response(claim.screenshot, mimetype=claim.screenshot_type,
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"})

    def _act(self, claim_id: int, form: FlaskForm, form_key: str, run, done: str):
        if not form.validate_on_submit():
            return self._page(claim_id, REFUSED, **{form_key: form})
        try:
            run()
        except DomainError as err:
            db.session.rollback()
            _field_errors(form, err)
            flash(str(err.message), "danger")
            return self._page(claim_id, err.status if err.status in (404,) else REFUSED, **{form_key: form})
        db.session.commit()
        flash(done, "success")
        return redirect(url_for("ClaimDeskView.show", claim_id=claim_id))

    @expose("/<int:claim_id>/reply", methods=["POST"])
    @has_access
    def reply(self, claim_id: int):
        form = ReplyForm()
        return self._act(claim_id, form, "reply_form",
                         lambda: claims.send_reply(db.session, claim_id, form.reply.data, actor=actor()),
                         _("The reply is sent: the customer sees it in the cabinet."))

    @expose("/<int:claim_id>/reject", methods=["POST"])
    @has_access
    def reject(self, claim_id: int):
        form = NoteForm(prefix="reject")
        return self._act(claim_id, form, "reject_form",
                         lambda: claims.reject(db.session, claim_id, actor=actor(), note=form.note.data),
                         _("The claim is resolved: no cashback due."))

    @expose("/<int:claim_id>/escalate", methods=["POST"])
    @has_access
    def escalate(self, claim_id: int):
        form = NoteForm(prefix="escalate")
        return self._act(claim_id, form, "escalate_form",
                         lambda: claims.escalate(db.session, claim_id, actor=actor(), note=form.note.data),
                         _("The claim is escalated to the network."))

    @expose("/<int:claim_id>/propose", methods=["POST"])
    @has_access
    def propose(self, claim_id: int):
        form = ProposeForm()

        def run():
            errors: list[dict] = []
            amount = claims.parse_amount(form.amount_usd.data, "amount_usd", errors, required=True)
            claims._raise(errors)
            claims.propose_credit(db.session, claim_id, amount, reason=form.reason.data, actor=actor(),
                                  proposed_by=current_user.username)

        return self._act(claim_id, form, "propose_form", run, _("The credit is proposed: Finance approves it."))

    @expose("/new", methods=["GET", "POST"])
    @has_access
    def new(self):
        """Support opens a claim for a customer found by e-mail."""
        form = StaffClaimForm()
        if request.method == "POST":
            if form.validate_on_submit():
                customer = db.session.execute(sa.select(Customer).where(
                    sa.func.lower(Customer.email) == normalize_email(form.email.data))).scalar_one_or_none()
                if customer is None:
                    form.email.errors = [*form.email.errors, _("No customer with this e-mail.")]
                else:
                    try:
                        claim = _open_from_form(form, customer, opened_by=current_user.username, channel="staff")
                    except DomainError as err:
                        db.session.rollback()
                        if not _field_errors(form, err):
                            flash(str(err.message), "danger")
                    else:
                        db.session.commit()
                        flash(_("Claim #%(id)s opened for %(email)s.", id=claim.id, email=customer.email), "success")
                        return redirect(url_for("ClaimDeskView.show", claim_id=claim.id))
            status = REFUSED
        else:
            status = 200
        return self.render_template("claims/desk_new.html", form=form, title=_("Open a claim for a customer")), status


# --- Finance: credits -------------------------------------------------------------------------------

class ClaimCreditsView(BaseView):
    """Credits proposed by Support: Finance approves (posts to the ledger) or rejects them."""

    route_base = "/claims/credits"
    default_view = "credit_list"
    class_permission_name = "ClaimCredits"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"credit_list": "read", "decide": "write"}

    def _page(self, status: int = 200, form: DecideForm | None = None):
        return self.render_template(
            "claims/credits.html", rows=claims.proposed_credits(db.session), form=form or DecideForm(formdata=None),
            reason_label=reason_label, me=current_user.username, title=_("Credits to approve")), status

    @expose("/")
    @has_access
    def credit_list(self):
        return self._page()

    @expose("/<int:credit_id>/decide", methods=["POST"])
    @has_access
    def decide(self, credit_id: int):
        form = DecideForm()
        if not form.validate_on_submit():
            return self._page(REFUSED, form)
        approve = form.decision.data == "approve"
        try:
            credit = claims.decide_credit(db.session, credit_id, approve=approve, decided_by=current_user.username,
                                          actor=actor(), note=form.note.data)
        except DomainError as err:
            db.session.rollback()
            flash(_("Credit #%(id)s: %(error)s", id=credit_id, error=err.message), "danger")
            return self._page(REFUSED, form)
        db.session.commit()
        if approve:
            flash(_("Credit #%(id)s approved: the customer's balance is credited.", id=credit.id), "success")
        else:
            flash(_("Credit #%(id)s rejected.", id=credit.id), "success")
        return redirect(url_for("ClaimCreditsView.credit_list"))


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(ClaimDeskView, "Claims list", label=_l("All claims"), icon="fa-life-ring",
                        category="Claims", category_label=_l("Claims"), category_icon="fa-life-ring")
    appbuilder.add_link("Claims breaching SLA", href="/claims/desk/breaching", label=_l("Breaching SLA"),
                        icon="fa-clock-o", category="Claims")
    appbuilder.add_view(ClaimCreditsView, "Credits to approve", label=_l("Credits to approve"), icon="fa-check",
                        category="Claims")
    appbuilder.add_view(CustomerClaimsView, "Cabinet claims", label=_l("Missing cashback"), icon="fa-life-ring",
                        category="Cabinet")
