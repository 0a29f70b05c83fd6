"""Finance's dashboard: headline figures, per-day charts (inline SVG) and CSV exports.

* ``/finance/dashboard/`` (``FinanceDashboard``: read) — customer balances, payouts waiting
  for Finance, provider balances; charts of cashback pending/available/paid, payouts per
  provider and claims opened/resolved per day, each with a table of the same figures;
  a period form (``since``, ``until``: UTC days, 366 at most; refused → 422 with why).
* ``/finance/dashboard/<series>.csv`` — ``cashback``, ``payouts`` or ``claims`` for the period.

Thin: the figures come from ``portal.services.dashboard``, the SVG from
``portal.services.charts``; this module only reads the form and formats for the reader.
"""
from __future__ import annotations

from flask import Response, abort, request
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_wtf import FlaskForm
from wtforms import DateField
from wtforms.validators import Optional

from portal import providers
from portal.errors import Invalid
from portal.reporting import report_session
from portal.formatting import date, money, number
from portal.i18n import _, _l
from portal.labels import provider_name
from portal.services import dashboard
from portal.services.charts import Series, bar_chart

#: A refused period answers with this status (the page says why).
REFUSED = 422


class PeriodForm(FlaskForm):
    """The period, from the query string (GET: no CSRF token)."""

    class Meta:
        csrf = False

    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("Until"), validators=[Optional()])


def read_period(args) -> tuple[PeriodForm, dashboard.Period | None, list[str]]:
    """The form, the period it asks for (``None`` if refused) and the reasons of a refusal."""
    form = PeriodForm(args)
    if not form.validate():
        return form, None, [f"{form[name].label.text}: {message}" for name, messages in form.errors.items()
                            for message in messages]
    default = dashboard.Period.default()
    since, until = form.since.data, form.until.data
    if since is None and until is None:
        since, until = default.since, default.until
    elif since is None:
        since = until - (default.until - default.since)
    elif until is None:
        until = min(default.until, since + (default.until - default.since))
        until = max(until, since)
    try:
        period = dashboard.Period.checked(since, until)
    except Invalid as err:
        return form, None, [str(err.message)]
    form.since.data, form.until.data = period.since, period.until
    return form, period, []


def _usd(value) -> str:
    return money(value, "USD")


def _day_labels(period: dashboard.Period) -> list[str]:
    return [date(d, "d MMM") for d in period.days]


def cashback_chart(period: dashboard.Period, rows: list[dashboard.CashbackDay]):
    return bar_chart(_day_labels(period), [
        Series(_("Booked to pending"), [r.pending for r in rows]),
        Series(_("Made available"), [r.available for r in rows]),
        Series(_("Paid out"), [r.paid for r in rows]),
    ], title=_("Cashback per day, USD"), x_label=_("Day (UTC)"), y_label=_("USD"), fmt=_usd)


def payouts_chart(period: dashboard.Period, series: list[dashboard.ProviderDays]):
    return bar_chart(_day_labels(period), [Series(provider_name(s.provider), s.amount_usd) for s in series]
                     or [Series(_("No payouts"), [0] * len(period.days))],
                     title=_("Payouts per provider per day, USD"), x_label=_("Day (UTC)"), y_label=_("USD"),
                     fmt=_usd)


def claims_chart(period: dashboard.Period, rows: list[dashboard.ClaimsDay]):
    return bar_chart(_day_labels(period), [
        Series(_("Claims opened"), [r.opened for r in rows]),
        Series(_("Claims resolved"), [r.resolved for r in rows]),
    ], title=_("Claims per day"), x_label=_("Day (UTC)"), y_label=_("Claims"), fmt=number)


class FinanceDashboardView(BaseView):
    """The Finance dashboard and its CSV exports (read-only)."""

    route_base = "/finance/dashboard"
    default_view = "dashboard"
    class_permission_name = "FinanceDashboard"
    base_permissions = ["can_read"]
    method_permission_name = {"dashboard": "read", "export": "read"}

    @expose("/")
    @has_access
    def dashboard(self):
        form, period, errors = read_period(request.args)
        with report_session() as session:  # the read replica when configured
            context = {"form": form, "period": period, "errors": errors, "title": _("Finance dashboard"),
                       "headline": dashboard.headline(session, providers.all_providers()), "series_names": dashboard.SERIES}
            if period is None:
                return self.render_template("finance/dashboard.html", **context), REFUSED
            cashback = dashboard.cashback_series(session, period)
            payout_rows = dashboard.payouts_series(session, period)
            claims = dashboard.claims_series(session, period)
        per_provider = dashboard.by_provider(payout_rows, period)
        context.update(
            cashback=cashback, cashback_chart=cashback_chart(period, cashback),
            payout_rows=payout_rows, payouts_chart=payouts_chart(period, per_provider),
            claims=claims, claims_chart=claims_chart(period, claims),
            csv_args={"since": period.since.isoformat(), "until": period.until.isoformat()})
        return self.render_template("finance/dashboard.html", **context)

    @expose("/<series>.csv")
    @has_access
    def export(self, series: str):
        _form, period, errors = read_period(request.args)
        if period is None:
            return Response("\n".join(errors) + "\n", status=REFUSED, mimetype="text/plain")
        with report_session() as session:
            rows = dashboard.csv_rows(session, series, period)
        if rows is None:
            abort(404)
        filename = f"{series}-{period.since.isoformat()}-{period.until.isoformat()}.csv"
        return Response(dashboard.to_csv(rows), mimetype="text/csv",
                        headers={"Content-Disposition": f"attachment; filename={filename}"})


def register(appbuilder: AppBuilder) -> None:
    appbuilder.add_view(FinanceDashboardView, "Finance dashboard", label=_l("Dashboard"), icon="fa-bar-chart",
                        category="Finance", category_label=_l("Finance"))
