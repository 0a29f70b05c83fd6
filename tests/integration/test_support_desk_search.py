"""Issue 16 point 8: Support finds customers and claims.

* Customer search finds a customer by (part of) the name, any case, and by the start of a
  wallet (four characters or more), masked for viewers without PII.
* The claims list searches by claim number, order number, e-mail or name, pages by 50 with a
  pager, shows who worked each claim last, and links the customer to the timeline.
* A resolved claim no longer advises a next step.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from portal.extensions import db
from portal.models import AuditRecord, Claim, Customer
from portal.services import claims as claim_service, timeline as tl
from tests.integration.test_timeline import WALLET, as_role, session, story  # noqa: F401 (fixtures)

UTC = dt.timezone.utc


def test_customer_search_by_name_and_wallet_prefix(story, session):
    by_name = tl.search(session, "aNN")
    assert [m.customer.id for m in by_name] == [1] and "name" in [r.code for r in by_name[0].reasons]
    prefix = tl.search(session, WALLET[:8])  # "TEST-123"
    assert 1 in [m.customer.id for m in prefix]
    reason = next(r for m in prefix if m.customer.id == 1 for r in m.reasons if r.code == "wallet")
    assert reason.value.endswith("TEST••••5674")  # masked without PII
    assert tl.search(session, "TE") == [] or all(r.code != "wallet" for m in tl.search(session, "TE")
                                                 for r in m.reasons)  # too short for a wallet prefix


def _claims(app, n: int) -> None:
    with app.app_context():
        now = dt.datetime.now(UTC)
        db.session.add_all([Customer(id=10, email="vera@test.local", name="Вера Смирнова"),
                            Customer(id=11, email="oleg@test.local", name="Олег")])
        db.session.flush()
        for i in range(n):
            db.session.add(Claim(customer_id=10 if i % 2 else 11, order_number=f"77000{i:03d}",
                                 order_date=now.date(), amount_usd=Decimal("10.00"), state="diagnosed",
                                 reason_code="no_click", opened_by="customer", channel="web", suggested_reply="",
                                 created_at=now - dt.timedelta(minutes=i), state_since=now - dt.timedelta(minutes=i)))
        db.session.flush()
        first = db.session.execute(sa.select(Claim.id).where(Claim.order_number == "77000001")).scalar_one()
        db.session.add(AuditRecord(actor="user:sup_nina", action="claim.replied", object_type="claim",
                                   object_id=str(first)))
        db.session.commit()


def test_claims_list_searches_pages_and_shows_who_works_it(app, client, make_user, clean_db):
    _claims(app, 60)
    make_user("sup_anna", "Support")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "ru"
    client.post("/login/", data={"username": "sup_anna", "password": "pw-" + "x" * 8})
    first = client.get("/claims/desk/").get_data(as_text=True)
    assert first.count('class="claim') == 50 and "Страница 1 из 2, заявок: 60" in first
    assert "page=2" in first and "/support/customers/10/timeline" in first
    second = client.get("/claims/desk/?page=2").get_data(as_text=True)
    assert second.count('class="claim') == 10
    found = client.get("/claims/desk/?q=смирнова").get_data(as_text=True)  # by name, any case
    assert found.count('class="claim') == 30
    one = client.get("/claims/desk/?q=77000001").get_data(as_text=True)  # by order number
    assert one.count('class="claim') == 1 and "sup_nina" in one
    by_mail = client.get("/claims/desk/?q=OLEG@").get_data(as_text=True)
    assert by_mail.count('class="claim') == 30


def test_a_resolved_claim_advises_no_next_step(app, session, story):
    claim = session.execute(sa.select(Claim)).scalars().first()
    assert claim is not None
    claim.reason_code = claim.reason_code or "no_click"
    open_view = claim_service.evidence_view(claim, confirmation_days=60)
    assert open_view.next_step
    claim.state = "resolved_rejected"
    assert claim_service.evidence_view(claim, confirmation_days=60).next_step == ""
    session.rollback()
