"""Fixtures of the API fuzz tests: two customers with data, JWTs, and the published spec.

* ``two_customers`` — Anna (the attacker: the fuzzer logs in as her) and Boris (the victim),
  each with $5.00 available, old payout details, a click, an order, a withdrawal and a claim;
* ``victim_snapshot(app, customer_id)`` — everything of one customer the API could change;
* ``published_spec`` — ``/api/v1/_openapi`` as FAB publishes it, fetched by a logged-in Admin.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Claim, Click, Customer, Order, Payout, PayoutDetails
from portal.services import clicks, fx, ledger
from portal.services.audit import Actor
from tests.conftest import login
from tests.integration.test_customer_api import receive, token
from tests.integration.test_payout_api import make_customer

LINK = "https://aliexpress.ru/item/1005001234567890.html"
SYSTEM = Actor.system("test")


def _give_data(app, customer_id: int, order: str) -> None:
    """A click with a paid order and a claim (the withdrawal goes through the API)."""
    from portal.services import claims

    with app.app_context():
        customer = db.session.get(Customer, customer_id)
        sub_id = clicks.create_click(db.session, customer, LINK, "web", config=dict(app.config)).click.sub_id
        db.session.commit()
    receive(app, sub_id, "paid", order=order)
    with app.app_context():
        session = db.session
        customer = session.get(Customer, customer_id)
        day = (dt.date.today() - dt.timedelta(days=1)).isoformat()
        data = claims.parse_claim({"order_number": f"{order}-claim", "order_date": day}, now=dt.datetime.now(
            dt.timezone.utc))
        claims.open_claim(session, customer, data, actor=SYSTEM, opened_by="customer", channel="api",
                          config=app.config)
        session.commit()


@pytest.fixture
def two_customers(app, client, clean_db, testbank):
    testbank.reset()
    app.extensions.pop("cashback_collected_jobs", None)
    with app.app_context():
        fx.correct_rate(db.session, dt.date.today(), Decimal("80"), SYSTEM, "test rate")
        db.session.commit()
    anna = make_customer(app, "anna@test.local")
    boris = make_customer(app, "boris@test.local", wallet="TEST-11111116")
    for person, order in ((anna, "A-1"), (boris, "B-1")):
        _give_data(app, person.id, order)
        headers = token(client, person.email)
        response = client.post("/api/v1/me/withdrawals", json={"details_id": person.details_id, "amount_usd": "1.00"},
                               headers={**headers, "Idempotency-Key": f"seed-{person.id}"})
        assert response.status_code == 201, response.get_json()
        person.payout_id = response.get_json()["id"]
        person.auth = headers
        with app.app_context():
            person.claim_id = db.session.execute(sa.select(Claim.id).where(Claim.customer_id == person.id)).scalar_one()
            person.order_id = db.session.execute(sa.select(Order.id).where(Order.customer_id == person.id)).scalar_one()
    return SimpleNamespace(anna=anna, boris=boris)


def _rows(model, *where) -> list[tuple]:
    columns = [c for c in model.__table__.columns]
    return [tuple(row) for row in db.session.execute(sa.select(*columns).where(*where).order_by(columns[0]))]


def victim_snapshot(app, customer_id: int) -> dict:
    """The customer's orders, clicks, payout details, withdrawals, claims and balances."""
    with app.app_context():
        db.session.expire_all()
        return {
            "customer": _rows(Customer, Customer.id == customer_id),
            "orders": _rows(Order, Order.customer_id == customer_id),
            "clicks": _rows(Click, Click.customer_id == customer_id),
            "details": _rows(PayoutDetails, PayoutDetails.customer_id == customer_id),
            "payouts": _rows(Payout, Payout.customer_id == customer_id),
            "claims": _rows(Claim, Claim.customer_id == customer_id),
            "balances": ledger.customer_balances(db.session, customer_id),
        }


@pytest.fixture
def published_spec(app, make_user):
    """The OpenAPI document FAB serves (needs a login with the permission: an Admin's)."""
    make_user("spec-admin", "Admin")
    admin = app.test_client()
    login(admin, "spec-admin")
    response = admin.get("/api/v1/_openapi")
    assert response.status_code == 200
    return response.get_json()

