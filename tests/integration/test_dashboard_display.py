"""Issue 16 point 3: the Finance dashboard as Finance reads it.

* A provider never switched by anyone is on or off as its plugin starts it (QIWI: off) on the
  dashboard, the providers page and ``/health/ready`` alike — before and after its switchboard
  row is first saved (one answer: ``payouts.provider_states``).
* Money is shown to the currency's minor unit in the reader's locale (never the ledger's 6
  decimals), in the headline and the tables and on the chart's axis.
* The charts have no fixed pixel size: they scale to their container (viewBox only).
"""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from portal import providers
from portal.extensions import db
from portal.models import ProviderState
from portal.services import dashboard, ledger, payouts
from portal.services.audit import Actor
from portal.services.charts import Series, bar_chart
from portal.services.ledger import customer_account, system_account, transfer
from tests.conftest import login

D = Decimal
ACTOR = Actor.system("test")


@pytest.fixture
def finance(app, client, make_user, customers):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "ru"
    make_user("fin", "Finance")
    login(client, "fin")
    return client


def dashboard_state(client, code: str) -> str:
    """The state cell of ``code``'s row in the dashboard's provider table."""
    page = client.get("/finance/dashboard/").get_data(as_text=True)
    table = page[page.index('id="provider-balances"'):]
    row = re.search(r'<tr data-provider="%s">(.*?)</tr>' % code, table, re.S)
    assert row, f"no row for {code}"
    return row.group(1)


def test_a_provider_off_by_default_is_off_on_every_page_before_and_after_its_first_save(app, finance):
    assert providers.provider("qiwi", app).default_enabled is False
    with app.app_context():
        assert db.session.get(ProviderState, "qiwi") is None
        headline = dashboard.headline(db.session, providers.all_providers())
        by_code = {p.code: p for p in headline.providers}
        assert by_code["qiwi"].enabled is False and by_code["test"].enabled is True
        assert db.session.get(ProviderState, "qiwi") is None  # read only: nothing was saved
    assert "выкл." in dashboard_state(finance, "qiwi") and "вкл." not in dashboard_state(finance, "qiwi")
    assert "вкл." in dashboard_state(finance, "test")
    ready = finance.get("/health/ready").get_json()
    assert ready["checks"]["providers"]["states"]["qiwi"]["enabled"] is False
    providers_page = finance.get("/payouts/providers/").get_data(as_text=True)
    row = re.search(r'data-provider="qiwi">(.*?)</tr>', providers_page, re.S).group(1)
    assert "выкл." in row and "вкл.<" not in row
    # the first use saves the switchboard row as the plugin starts it: still the same answer
    with app.app_context():
        payouts.provider_state(db.session, "qiwi")
        db.session.commit()
        assert db.session.get(ProviderState, "qiwi").enabled is False
    assert "выкл." in dashboard_state(finance, "qiwi")
    # a saved row wins over the default: Finance switched QIWI on
    with app.app_context():
        payouts.set_provider_enabled(db.session, "qiwi", True, actor=ACTOR, reason="licence back (test)")
        db.session.commit()
    assert "вкл." in dashboard_state(finance, "qiwi") and "выкл." not in dashboard_state(finance, "qiwi")


def test_money_on_the_dashboard_has_the_currency_minor_unit(app, finance):
    with app.app_context():
        ledger.post(db.session, kind="test.fund", reference="fund:1", actor=ACTOR,
                    legs=transfer(system_account("network_receivable"), customer_account(1, "available"),
                                  D("237.894369")))
        db.session.commit()
    page = finance.get("/finance/dashboard/").get_data(as_text=True)
    assert "237,89\xa0$" in page
    assert not re.search(r"\d,\d{3,}\xa0[$₽]", page), re.findall(r"\d+,\d{3,}\xa0[$₽]", page)


def test_charts_scale_with_their_container():
    svg = str(bar_chart(["1", "2"], [Series("a", [D("1.5"), D("2")])], title="t", x_label="x", y_label="y"))
    root = svg[:svg.index(">")]
    assert 'viewBox="0 0 720 260"' in root and 'width="100%"' in root
    assert not re.search(r'\b(width|height)="\d+"', root)
