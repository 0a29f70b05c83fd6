"""The Developer desk (menu "Developers"): plugins, queues, failed jobs, the payout sandbox.

Pages (``DeveloperDesk``: ``can_read`` to look, ``can_write`` to requeue and fire):

* ``/developers/`` — the registered provider plugins (distribution, version, capabilities,
  enabled / paused by the breaker / disabled and why), the RQ queues' depths (or a note
  that jobs run in-process when ``REDIS_URL`` is empty) and the last refused postbacks;
* ``/developers/failed-jobs`` — the failed jobs with a "Requeue" button each (POST, CSRF);
* ``/developers/sandbox`` — fire a test payout at a provider's **local** sandbox and see the
  provider's answer and the status query right after (``devdesk.fire_test_payout``:
  refused unless the provider's base URL is localhost/127.0.0.1; never a payout or a
  ledger posting).

Thin: each page calls ``portal.services.devdesk``; no customer data is shown (ids only).
"""
from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import current_app, flash, redirect, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_babel import get_locale
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired

from portal import providers
from portal.errors import DomainError
from portal.extensions import db
from portal.i18n import _, _l
from portal.models import PostbackRejection
from portal.services import devdesk
from portal.services.audit import Actor

log = logging.getLogger(__name__)

#: Refused actions answer with this status (the page shows why).
REFUSED = 422
#: Refused postbacks shown on the overview.
RECENT_REJECTIONS = 20


class CsrfForm(FlaskForm):
    """Only the CSRF token."""


class SandboxForm(FlaskForm):
    provider = SelectField(_l("Provider"), validators=[DataRequired()])
    amount = StringField(_l("Amount"), validators=[DataRequired(message=_l("Enter an amount."))])
    account = StringField(_l("Account"), validators=[DataRequired(message=_l("Enter an account."))])


def _locale() -> str:
    return str(get_locale() or current_app.config["BABEL_DEFAULT_LOCALE"])


def _redis():
    """``(connection, prefix)``, or None when jobs run in-process (no ``REDIS_URL``)."""
    if not current_app.config.get("REDIS_URL"):
        return None
    from portal.tasks import redis_connection

    return redis_connection(current_app), current_app.config.get("QUEUE_PREFIX", "")


def _sandbox_form(formdata=None) -> SandboxForm:
    form = SandboxForm() if formdata is None else SandboxForm(formdata=formdata)
    form.provider.choices = [(info.code, info.name)
                             for info in devdesk.plugins(current_app, db.session, _locale())]
    return form


class DeveloperDeskView(BaseView):
    route_base = "/developers"
    default_view = "index"
    class_permission_name = "DeveloperDesk"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"index": "read", "failed_jobs": "read", "requeue": "write",
                              "sandbox": "read", "fire": "write"}

    def _can_write(self) -> bool:
        return current_app.appbuilder.sm.has_access("can_write", "DeveloperDesk")

    @expose("/")
    @has_access
    def index(self):
        rows = devdesk.plugins(current_app, db.session, _locale())
        db.session.commit()  # provider_state creates a provider's row on first sight
        backend = _redis()
        depths, redis_error = None, None
        if backend is not None:
            try:
                depths = devdesk.queues(*backend)
            except Exception as exc:  # Redis down: say so, keep the page
                log.exception("queue depths")
                redis_error = type(exc).__name__
        rejections = db.session.execute(
            sa.select(PostbackRejection).order_by(PostbackRejection.id.desc()).limit(RECENT_REJECTIONS)).scalars().all()
        return self.render_template("developers/index.html", plugins=rows, queues=depths, in_process=backend is None,
                                    redis_error=redis_error, rejections=rejections, active="index",
                                    title=_("Developer desk"))

    def _failed_page(self, status: int = 200):
        backend = _redis()
        jobs = devdesk.failed_jobs(*backend) if backend is not None else []
        return self.render_template("developers/failed_jobs.html", jobs=jobs, in_process=backend is None,
                                    form=CsrfForm(formdata=None), can_write=self._can_write(), active="failed",
                                    title=_("Failed jobs")), status

    @expose("/failed-jobs")
    @has_access
    def failed_jobs(self):
        return self._failed_page()

    @expose("/failed-jobs/<job_id>/requeue", methods=["POST"])
    @has_access
    def requeue(self, job_id: str):
        form = CsrfForm()
        if not form.validate_on_submit():
            flash(_("The form has expired. Reload the page and try again."), "danger")
            return self._failed_page(REFUSED)
        backend = _redis()
        if backend is None:
            flash(_("Jobs run in-process here: there is no queue to requeue to."), "danger")
            return self._failed_page(REFUSED)
        try:
            job = devdesk.requeue(db.session, *backend, job_id, actor=Actor.user(current_user))
        except DomainError as err:
            db.session.rollback()
            flash(str(err.message), "danger")
            return self._failed_page(err.status)
        except Exception:
            db.session.rollback()
            raise
        db.session.commit()
        flash(_("Job %(id)s is back on the %(queue)s queue.", id=job.id, queue=job.queue), "success")
        return redirect(url_for(".failed_jobs"))

    def _sandbox_page(self, form: SandboxForm, outcome=None, status: int = 200):
        return self.render_template("developers/sandbox.html", form=form, outcome=outcome,
                                    plugins=devdesk.plugins(current_app, db.session, _locale()),
                                    can_write=self._can_write(), scrub=devdesk.scrub, active="sandbox",
                                    title=_("Payout sandbox")), status

    @expose("/sandbox")
    @has_access
    def sandbox(self):
        form = _sandbox_form()
        return self._sandbox_page(form)

    @expose("/sandbox/fire", methods=["POST"])
    @has_access
    def fire(self):
        form = _sandbox_form()
        if not form.validate_on_submit():
            if "csrf_token" in form.errors:
                flash(_("The form has expired. Reload the page and try again."), "danger")
            for name, messages in form.errors.items():
                if name != "csrf_token":
                    for message in messages:
                        flash(f"{form[name].label.text}: {message}", "danger")
            return self._sandbox_page(form, status=REFUSED)
        db.session.rollback()  # no transaction open while the provider is called
        try:
            outcome = devdesk.fire_test_payout(db.session, providers.provider(form.provider.data),
                                               amount=form.amount.data, account=form.account.data,
                                               actor=Actor.user(current_user))
        except DomainError as err:
            db.session.rollback()
            flash(str(err.message), "danger")
            return self._sandbox_page(form, status=err.status)
        db.session.commit()
        return self._sandbox_page(form, outcome)


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(DeveloperDeskView, "Developer desk", label=_l("Developer desk"), icon="fa-code",
                        category="Developers", category_label=_l("Developers"))
    appbuilder.add_link("Failed jobs", href="/developers/failed-jobs", label=_l("Failed jobs"),
                        icon="fa-exclamation-circle", category="Developers")
    appbuilder.add_link("Payout sandbox", href="/developers/sandbox", label=_l("Payout sandbox"),
                        icon="fa-flask", category="Developers")
