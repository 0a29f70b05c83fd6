"""Missing-cashback claims on PostgreSQL: diagnosis from real rows, the state machine, four-eyes
credits through the ledger, the SLA list, the customer API and cabinet, the desks and their roles."""
from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
from decimal import Decimal

import pytest
import sqlalchemy as sa

from portal.errors import Invalid
from portal.extensions import db
from portal.models import AuditRecord, Claim, ClaimCredit, Customer
from portal.services import claims, clicks, customers, ledger, orders
from portal.services.audit import Actor
from tests.conftest import login

PASSWORD = "pw-" + "x" * 8
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)
ACTOR = Actor.system("test")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
GIF = b"GIF89a" + b"\x00" * 64


def new_customer(session, email: str = "anna@test.local", locale: str = "en", name: str = "Anna") -> Customer:
    customer = Customer(email=email, name=name, locale=locale)
    session.add(customer)
    session.flush()
    return customer


def click(app, session, customer, at: dt.datetime, *, n: int = 1, channel: str = "web"):
    url = f"https://aliexpress.ru/item/{1005001234560000 + n}.html"
    return clicks.create_click(session, customer, url, channel, config=app.config, now=at).click


def event(app, session, order_no: str, status: str, at: dt.datetime, sub_id: str, *, commission: str = "3.20",
          channel: str = "web", **flags):
    body = {"event_id": f"{order_no}:{status}", "order_id": order_no, "sub_id": sub_id, "status": status,
            "order_amount": "40.00", "currency": "USD", "commission": commission,
            "event_time": at.isoformat(), "channel": channel, **flags}
    return orders.receive_event(session, orders.parse_event(body, "epn"),
                                default_rate=app.config["DEFAULT_CASHBACK_RATE"])


def open_for(app, session, customer, order_no: str, day: dt.date | None = None, **kw) -> Claim:
    data = claims.ClaimInput(order_no, day or (NOW - dt.timedelta(days=1)).date(), Decimal("40.00"))
    return claims.open_claim(session, customer, data, actor=ACTOR, opened_by="customer", channel="web",
                             config=app.config, now=kw.get("now", NOW))


T0 = NOW - dt.timedelta(days=1)  # the order's time in most scenarios


def s_no_click(app, session, c):
    return "O-1", T0.date(), {}


def s_click_after_order(app, session, c):
    k = click(app, session, c, T0 + dt.timedelta(days=1))
    return "O-2", (T0 - dt.timedelta(days=1)).date(), {"click_ids": [k.id]}


def s_channel_mismatch(app, session, c):
    k = click(app, session, c, T0 - dt.timedelta(minutes=30))
    event(app, session, "O-3", "paid", T0, "someone-elses-sub", channel="app")
    return "O-3", T0.date(), {"click_id": k.id}


def s_cart_before_click(app, session, c):
    k = click(app, session, c, T0 - dt.timedelta(minutes=30))
    event(app, session, "O-4", "paid", T0, k.sub_id, commission="0.00", items_in_cart_before_click=True)
    return "O-4", T0.date(), {"click_id": k.id}


def s_click_spam(app, session, c):
    for m in range(4):
        k = click(app, session, c, T0 - dt.timedelta(minutes=20 - 3 * m))
    assert k.repeat_count == 4
    return "O-5", T0.date(), {"click_id": k.id}


def s_foreign_coupon(app, session, c):
    k = click(app, session, c, T0 - dt.timedelta(minutes=30))
    event(app, session, "O-6", "paid", T0, k.sub_id, commission="0.00", coupon_used=True)
    return "O-6", T0.date(), {"click_id": k.id}


def s_not_reported(app, session, c):
    k = click(app, session, c, T0 - dt.timedelta(minutes=30))
    return "O-7", T0.date(), {"click_id": k.id}


def s_awaiting_confirmation(app, session, c):
    k = click(app, session, c, T0 - dt.timedelta(minutes=30))
    event(app, session, "O-8", "paid", T0, k.sub_id)
    return "O-8", T0.date(), {"click_id": k.id}


def s_cancelled_or_refunded(app, session, c):
    k = click(app, session, c, T0 - dt.timedelta(days=5))
    event(app, session, "O-9", "paid", T0 - dt.timedelta(days=4), k.sub_id)
    event(app, session, "O-9", "cancelled", T0, k.sub_id)
    return "O-9", T0.date(), {"click_id": k.id}


def s_credited(app, session, c):
    k = click(app, session, c, T0 - dt.timedelta(days=5))
    event(app, session, "O-10", "paid", T0 - dt.timedelta(days=4), k.sub_id)
    event(app, session, "O-10", "confirmed", T0, k.sub_id)
    return "O-10", T0.date(), {"click_id": k.id}


SCENARIOS = {
    "no_click": s_no_click, "click_after_order": s_click_after_order, "channel_mismatch": s_channel_mismatch,
    "cart_before_click": s_cart_before_click, "click_spam": s_click_spam, "foreign_coupon": s_foreign_coupon,
    "not_reported": s_not_reported, "awaiting_confirmation": s_awaiting_confirmation,
    "cancelled_or_refunded": s_cancelled_or_refunded, "credited": s_credited,
}


def test_every_reason_code_has_a_scenario():
    """The scenarios below cover every reason code the service knows."""
    assert set(SCENARIOS) == set(claims.REASONS) == set(claims.REASON_LABELS) == set(claims.REPLIES)


@pytest.mark.parametrize("reason", sorted(SCENARIOS))
def test_diagnosis_from_rows(app, session, reason):
    """Each reason code is found from real clicks, orders and events, with its evidence and reply."""
    customer = new_customer(session)
    order_no, day, relevant = SCENARIOS[reason](app, session, customer)
    claim = open_for(app, session, customer, order_no, day)
    session.commit()
    assert (claim.state, claim.reason_code) == ("diagnosed", reason)
    assert claim.verdict["rule"] == reason and claim.verdict["order_number"] == order_no
    assert {"orders", "network_events", "clicks", "click_visits"} <= set(claim.verdict["checked"])
    for key, value in relevant.items():
        assert claim.verdict["relevant"][key] == value
    assert order_no in claim.suggested_reply and claim.suggested_reply.startswith("Hello, Anna!")
    actions = session.execute(sa.select(AuditRecord.action).where(AuditRecord.object_id == str(claim.id))
                              .order_by(AuditRecord.id)).scalars().all()
    assert actions == ["claim.opened", "claim.diagnosed"]


def test_reply_fills_amounts_and_dates_in_the_customers_language(app, session):
    """An English customer's reply shows $ and English dates; a Russian one's uses Russian formats."""
    en = new_customer(session)
    ru = new_customer(session, "ivan@test.local", "ru", "Иван")
    for customer, n in ((en, 1), (ru, 2)):
        k = click(app, session, customer, T0 - dt.timedelta(days=5), n=n)
        event(app, session, f"R-{n}", "paid", T0 - dt.timedelta(days=4), k.sub_id)
        event(app, session, f"R-{n}", "confirmed", T0, k.sub_id)
    claim_en = open_for(app, session, en, "R-1", dt.date(2026, 11, 15))
    claim_ru = open_for(app, session, ru, "R-2", dt.date(2026, 11, 15))
    assert "$2.80" in claim_en.suggested_reply and "Nov 15, 2026" in claim_en.suggested_reply
    assert "2,80" in claim_ru.suggested_reply and "нояб" in claim_ru.suggested_reply


def test_open_claim_refuses_a_second_unresolved_claim_for_the_order(app, session):
    """The same order twice while the first claim is unresolved: 409, nothing added."""
    customer = new_customer(session)
    open_for(app, session, customer, "D-1")
    with pytest.raises(claims.ClaimExists):
        open_for(app, session, customer, "D-1")


# --- state machine ---------------------------------------------------------------------------------

def audit_actions(session, object_type: str, object_id) -> list[str]:
    return session.execute(sa.select(AuditRecord.action).where(
        AuditRecord.object_type == object_type, AuditRecord.object_id == str(object_id))
        .order_by(AuditRecord.id)).scalars().all()


def test_diagnose_only_from_open(app, session):
    """``diagnose`` moves an open claim and refuses a diagnosed one."""
    customer = new_customer(session)
    claim = Claim(customer_id=customer.id, order_number="X-1", order_date=T0.date(), state="open",
                  suggested_reply="", state_since=NOW)
    session.add(claim)
    session.flush()
    claims.diagnose(session, claim.id, actor=ACTOR, config=app.config, now=NOW)
    assert claim.state == "diagnosed" and claim.reason_code == "no_click"
    with pytest.raises(claims.ClaimStateError):
        claims.diagnose(session, claim.id, actor=ACTOR, config=app.config, now=NOW)


def test_escalate_then_reject_and_refusals(app, session):
    """diagnosed → escalated → resolved_rejected, each audited; illegal moves raise and change nothing."""
    customer = new_customer(session)
    claim = open_for(app, session, customer, "S-1")
    with pytest.raises(Invalid):
        claims.escalate(session, claim.id, actor=ACTOR, note="  ")
    claims.escalate(session, claim.id, actor=ACTOR, note="asked the network", now=NOW + dt.timedelta(hours=1))
    assert claim.state == "escalated" and claim.state_since == NOW + dt.timedelta(hours=1)
    with pytest.raises(claims.ClaimStateError):
        claims.escalate(session, claim.id, actor=ACTOR, note="again")
    claims.reject(session, claim.id, actor=ACTOR, note="network says no")
    assert claim.state == "resolved_rejected"
    for move in (claims.reject, claims.escalate):
        with pytest.raises(claims.ClaimStateError):
            move(session, claim.id, actor=ACTOR, note="no")
    with pytest.raises(claims.ClaimStateError):
        claims.propose_credit(session, claim.id, Decimal("1.00"), reason="r", actor=ACTOR, proposed_by="sam")
    assert audit_actions(session, "claim", claim.id) == ["claim.opened", "claim.diagnosed", "claim.escalated",
                                                         "claim.rejected"]
    # a resolved claim for the order lets the customer open a new one
    assert open_for(app, session, customer, "S-1").id != claim.id


def test_send_reply_is_stored_and_audited(app, session):
    """The reply sent is stored with its time and audited; an empty one is refused."""
    customer = new_customer(session)
    claim = open_for(app, session, customer, "S-2")
    with pytest.raises(Invalid):
        claims.send_reply(session, claim.id, "   ", actor=ACTOR)
    claims.send_reply(session, claim.id, "Edited reply", actor=ACTOR, now=NOW)
    assert (claim.reply_sent, claim.replied_at) == ("Edited reply", NOW)
    assert audit_actions(session, "claim", claim.id)[-1] == "claim.replied"


# --- four eyes ----------------------------------------------------------------------------------------

def available(session, customer_id) -> Decimal:
    return ledger.customer_balances(session, customer_id)["available"]


def test_credit_four_eyes_and_single_posting(app, session):
    """Self-approval is refused; approval credits once; a second approval and a replayed posting move nothing."""
    customer = new_customer(session)
    claim = open_for(app, session, customer, "C-1")
    credit = claims.propose_credit(session, claim.id, Decimal("3.50"), reason="goodwill", actor=ACTOR,
                                   proposed_by="sam")
    with pytest.raises(claims.ClaimStateError):  # one proposal at a time
        claims.propose_credit(session, claim.id, Decimal("1.00"), reason="again", actor=ACTOR, proposed_by="sam")
    with pytest.raises(claims.FourEyes):
        claims.decide_credit(session, credit.id, approve=True, decided_by="sam", actor=ACTOR)
    assert credit.state == "proposed" and available(session, customer.id) == 0
    before_adjustments = ledger.balance(session, ledger.system_account("adjustments"))
    claims.decide_credit(session, credit.id, approve=True, decided_by="fiona", actor=ACTOR, now=NOW)
    session.commit()
    assert available(session, customer.id) == Decimal("3.50")
    assert ledger.balance(session, ledger.system_account("adjustments")) - before_adjustments == Decimal("3.50")
    assert (credit.state, claim.state, credit.decided_by) == ("approved", "resolved_credit", "fiona")
    with pytest.raises(claims.ClaimStateError):
        claims.decide_credit(session, credit.id, approve=True, decided_by="frank", actor=ACTOR)
    replay = ledger.post(session, kind="adjustment.claim", reference=claims.credit_reference(claim.id),
                         legs=ledger.transfer(ledger.system_account("adjustments"),
                                              ledger.customer_account(customer.id, "available"), Decimal("3.50")),
                         actor=ACTOR)
    assert replay.created is False and replay.posting_id == credit.posting_id
    assert available(session, customer.id) == Decimal("3.50")
    assert "claim.credit.approved" in audit_actions(session, "claim_credit", credit.id)
    assert audit_actions(session, "claim", claim.id)[-1] == "claim.credited"
    assert ledger.verify(session).ok


def test_credit_rejection_needs_a_note_and_keeps_the_claim(app, session):
    """Finance rejects with a note; the claim stays workable and a new credit can be proposed."""
    customer = new_customer(session)
    claim = open_for(app, session, customer, "C-2")
    credit = claims.propose_credit(session, claim.id, Decimal("2.00"), reason="r", actor=ACTOR, proposed_by="sam")
    with pytest.raises(claims.ClaimStateError):  # a pending credit blocks rejecting the claim
        claims.reject(session, claim.id, actor=ACTOR, note="no")
    with pytest.raises(Invalid):
        claims.decide_credit(session, credit.id, approve=False, decided_by="fiona", actor=ACTOR, note="")
    claims.decide_credit(session, credit.id, approve=False, decided_by="fiona", actor=ACTOR, note="not ours")
    assert (credit.state, claim.state) == ("rejected", "diagnosed")
    assert available(session, customer.id) == 0
    for bad in (Decimal("0"), Decimal("-1"), Decimal("1.005"), Decimal("5000")):
        with pytest.raises(Invalid):
            claims.propose_credit(session, claim.id, bad, reason="r", actor=ACTOR, proposed_by="sam")
    claims.propose_credit(session, claim.id, Decimal("1.00"), reason="second try", actor=ACTOR, proposed_by="sam")


# --- input, SLA -------------------------------------------------------------------------------------

def test_screenshot_checked_by_magic_bytes_and_size():
    """PNG and JPEG pass by content; other types, empty and oversized files are refused."""
    assert claims.screenshot_type(PNG) == "image/png"
    assert claims.screenshot_type(JPEG) == "image/jpeg"
    for data, code in ((GIF, "screenshot_type"), (b"", "screenshot_empty"), (PNG * 100, "screenshot_too_large")):
        with pytest.raises(Invalid) as err:
            claims.screenshot_type(data, max_bytes=1000)
        assert err.value.code == code


def test_parse_claim_lists_every_problem():
    """Bad number, future date, bad amount and a non-image screenshot are all reported together."""
    with pytest.raises(Invalid) as err:
        claims.parse_claim({"order_number": "a b", "order_date": "2099-01-01", "amount_usd": "-3",
                            "screenshot": base64.b64encode(GIF).decode()}, now=NOW)
    assert {e["field"] for e in err.value.errors} == {"order_number", "order_date", "amount_usd", "screenshot"}
    parsed = claims.parse_claim({"order_number": "8100-1", "order_date": "2026-11-19", "amount_usd": "12,5",
                                 "screenshot": base64.b64encode(JPEG).decode()}, now=NOW)
    assert (parsed.amount_usd, parsed.screenshot_type, parsed.screenshot) == (Decimal("12.5"), "image/jpeg", JPEG)


def test_sla_breaches_listed_by_state(app, session):
    """Claims over their state's SLA are listed at a given ``now``; resolved ones never are."""
    customer = new_customer(session)
    rows = {}
    for name, state, hours_ago in (("open-late", "open", 2), ("open-ok", "open", 0.5), ("diag-late", "diagnosed", 25),
                                   ("diag-ok", "diagnosed", 23), ("esc-late", "escalated", 24 * 15),
                                   ("esc-ok", "escalated", 24 * 13), ("done", "resolved_rejected", 24 * 100)):
        claim = Claim(customer_id=customer.id, order_number=name, order_date=T0.date(), state=state,
                      suggested_reply="", state_since=NOW - dt.timedelta(hours=hours_ago))
        session.add(claim)
        rows[name] = claim
    session.flush()
    late = {c.order_number for c in claims.breaching(session, app.config, now=NOW)}
    assert late == {"open-late", "diag-late", "esc-late"}
    assert claims.is_breaching(rows["diag-late"], app.config, NOW)
    assert not claims.is_breaching(rows["done"], app.config, NOW)
    listed = claims.staff_claims(session, app.config, now=NOW, state="diagnosed", breached=True)
    assert [c.order_number for c in listed] == ["diag-late"]
    assert {c.order_number for c in claims.breaching(session, app.config, now=NOW - dt.timedelta(days=2))} == set()


# --- the customer API --------------------------------------------------------------------------------

def make_login_customer(app, email: str, name: str = "Anna", locale: str = "en") -> int:
    with app.app_context():
        customer = customers.create_customer(db.session, app.appbuilder.sm, email=email, name=name,
                                             password=PASSWORD, actor=ACTOR)
        customer.locale = locale
        db.session.commit()
        return customer.id


def count(app, model) -> int:
    with app.app_context():
        return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def test_api_create_list_and_own_only(app, client):
    """POST opens a diagnosed claim; GET lists own claims; another customer's id is 404."""
    make_login_customer(app, "anna@test.local")
    make_login_customer(app, "boris@test.local", "Boris")
    login(client, "boris@test.local")
    day = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    boris_claim = client.post("/api/v1/me/claims", json={"order_number": "B-1", "order_date": day}).get_json()
    client.get("/logout/")
    login(client, "anna@test.local")
    response = client.post("/api/v1/me/claims", json={
        "order_number": "A-1", "order_date": day, "amount_usd": "12.50",
        "screenshot": base64.b64encode(PNG).decode()})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()["claim"]
    assert body["state"] == "diagnosed" and body["has_screenshot"] and body["amount_usd"]["display"] == "12.50"
    assert "verdict" not in body and body["reply"] is None
    listed = client.get("/api/v1/me/claims").get_json()["claims"]
    assert [c["order_number"] for c in listed] == ["A-1"]
    assert client.get(f"/api/v1/me/claims/{body['id']}").get_json()["claim"]["id"] == body["id"]
    other = client.get(f"/api/v1/me/claims/{boris_claim['claim']['id']}")
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "claim_not_found"


def test_api_refuses_bad_input_and_duplicates(app, client):
    """Bad fields and a GIF screenshot are 422 with errors[]; the same order again is 409; nothing added."""
    make_login_customer(app, "anna@test.local")
    login(client, "anna@test.local")
    bad = client.post("/api/v1/me/claims", json={"order_number": "", "order_date": "yesterday",
                                                  "screenshot": base64.b64encode(GIF).decode()})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.get_json()["errors"]} == {"order_number", "order_date", "screenshot"}
    assert client.post("/api/v1/me/claims", data="x").status_code == 422
    assert count(app, Claim) == 0
    day = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    assert client.post("/api/v1/me/claims", json={"order_number": "A-1", "order_date": day}).status_code == 201
    again = client.post("/api/v1/me/claims", json={"order_number": "A-1", "order_date": day})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "claim_exists"
    assert count(app, Claim) == 1


def test_api_needs_a_customer_login(app, client, make_user):
    """No login is 401; a staff login is 403 not_a_customer."""
    assert client.get("/api/v1/me/claims").status_code == 401
    make_user("sup", "Support")
    login(client, "sup")
    response = client.get("/api/v1/me/claims")
    assert response.status_code == 403


# --- cabinet --------------------------------------------------------------------------------------------

def test_cabinet_open_list_show_and_refusals(app, client):
    """The cabinet form opens a claim (upload checked), lists it, shows the reply; bad input is 422."""
    anna = make_login_customer(app, "anna@test.local")
    boris = make_login_customer(app, "boris@test.local", "Boris")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"  # the messages below are the English ones
    login(client, "anna@test.local")
    assert client.get("/cabinet/claims/").status_code == 200
    day = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    refused = client.post("/cabinet/claims/new", data={"order_number": "A-9", "order_date": day,
                                                       "screenshot": (io.BytesIO(GIF), "x.png")},
                          content_type="multipart/form-data")
    assert refused.status_code == 422 and b"PNG or JPEG" in refused.data
    assert client.post("/cabinet/claims/new", data={"order_number": "", "order_date": ""}).status_code == 422
    assert count(app, Claim) == 0
    done = client.post("/cabinet/claims/new", data={"order_number": "A-9", "order_date": day,
                                                    "screenshot": (io.BytesIO(JPEG), "x.jpg")},
                       content_type="multipart/form-data")
    assert done.status_code == 302
    with app.app_context():
        claim = db.session.execute(sa.select(Claim)).scalar_one()
        assert (claim.customer_id, claim.screenshot_type, claim.channel) == (anna, "image/jpeg", "web")
        claims.send_reply(db.session, claim.id, "We looked: all fine.", actor=ACTOR)
        other = Claim(customer_id=boris, order_number="B-1", order_date=dt.date.today(), state="diagnosed",
                      suggested_reply="", state_since=claims.utcnow())
        db.session.add(other)
        db.session.commit()
        claim_id, other_id = claim.id, other.id
    page = client.get(f"/cabinet/claims/{claim_id}")
    assert page.status_code == 200 and b"We looked: all fine." in page.data
    assert b"A-9" in client.get("/cabinet/claims/").data
    assert client.get(f"/cabinet/claims/{other_id}").status_code == 404


# --- desks ------------------------------------------------------------------------------------------------

def test_support_works_a_claim_and_finance_approves_the_credit(app, client, make_user):
    """Support opens a claim by e-mail, replies, proposes a credit; Finance approves it on its desk."""
    anna = make_login_customer(app, "anna@test.local")
    make_user("sup", "Support")
    make_user("fin", "Finance")
    login(client, "sup")
    day = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    missing = client.post("/claims/desk/new", data={"email": "nobody@test.local", "order_number": "A-1",
                                                    "order_date": day})
    assert missing.status_code == 422 and count(app, Claim) == 0
    opened = client.post("/claims/desk/new", data={"email": "ANNA@test.local", "order_number": "A-1",
                                                   "order_date": day})
    assert opened.status_code == 302
    with app.app_context():
        claim = db.session.execute(sa.select(Claim)).scalar_one()
        claim_id = claim.id
        assert (claim.opened_by, claim.channel, claim.customer_id) == ("sup", "staff", anna)
    page = client.get(f"/claims/desk/{claim_id}")
    assert page.status_code == 200 and b"no_click" in page.data and b"claim-evidence" in page.data
    assert client.post(f"/claims/desk/{claim_id}/reply", data={"reply": ""}).status_code == 422
    assert client.post(f"/claims/desk/{claim_id}/reply", data={"reply": "Checked, sorry."}).status_code == 302
    assert client.post(f"/claims/desk/{claim_id}/reject", data={"reject-note": ""}).status_code == 422
    assert client.post(f"/claims/desk/{claim_id}/propose",
                       data={"amount_usd": "abc", "reason": "x"}).status_code == 422
    assert client.post(f"/claims/desk/{claim_id}/propose",
                       data={"amount_usd": "2.25", "reason": "goodwill"}).status_code == 302
    assert client.get("/claims/credits/").status_code == 403  # Support proposes, does not approve
    with app.app_context():
        credit = db.session.execute(sa.select(ClaimCredit)).scalar_one()
        assert (credit.state, credit.proposed_by) == ("proposed", "sup")
        assert db.session.get(Claim, claim_id).reply_sent == "Checked, sorry."
        credit_id = credit.id
    client.get("/logout/")
    login(client, "fin")
    assert b"goodwill" in client.get("/claims/credits/").data
    assert client.post(f"/claims/desk/{claim_id}/reject", data={"reject-note": "x"}).status_code == 403
    assert client.post(f"/claims/credits/{credit_id}/decide", data={"decision": "approve"}).status_code == 302
    assert client.post(f"/claims/credits/{credit_id}/decide", data={"decision": "approve"}).status_code == 422
    with app.app_context():
        assert ledger.customer_balances(db.session, anna)["available"] == Decimal("2.25")
        assert db.session.get(Claim, claim_id).state == "resolved_credit"


def test_finance_cannot_approve_its_own_proposal_on_the_page(app, client, make_user):
    """An Admin who proposed a credit cannot approve it: 422 and the balance is unchanged."""
    anna = make_login_customer(app, "anna@test.local")
    make_user("root", "Admin")
    with app.app_context():
        claim = open_for(app, db.session, db.session.get(Customer, anna), "A-1")
        credit = claims.propose_credit(db.session, claim.id, Decimal("1.00"), reason="r", actor=ACTOR,
                                       proposed_by="root")
        db.session.commit()
        credit_id = credit.id
    login(client, "root")
    assert client.post(f"/claims/credits/{credit_id}/decide", data={"decision": "approve"}).status_code == 422
    with app.app_context():
        assert ledger.customer_balances(db.session, anna)["available"] == 0
        assert db.session.get(ClaimCredit, credit_id).state == "proposed"


MATRIX = [
    ("Support", "/claims/desk/", 200), ("Support", "/claims/desk/breaching", 200),
    ("Support", "/claims/desk/new", 200), ("Support", "/claims/credits/", 403),
    ("Support", "/cabinet/claims/", 403),
    ("Finance", "/claims/desk/", 200), ("Finance", "/claims/desk/breaching", 200),
    ("Finance", "/claims/desk/new", 403), ("Finance", "/claims/credits/", 200),
    ("Admin", "/claims/desk/", 200), ("Admin", "/claims/desk/new", 200), ("Admin", "/claims/credits/", 200),
    ("Developer", "/claims/desk/", 403), ("Developer", "/claims/credits/", 403),
    ("Developer", "/cabinet/claims/", 403),
    ("Customer", "/claims/desk/", 403), ("Customer", "/claims/credits/", 403),
]


@pytest.mark.parametrize("role,url,status", MATRIX)
def test_claim_pages_role_matrix(client, make_user, role, url, status):
    """Support works claims, Finance reads them and decides credits, Developer sees none, customers only own."""
    make_user(f"u_{role.lower()}", role)
    login(client, f"u_{role.lower()}")
    assert client.get(url).status_code == status


def test_anonymous_is_sent_to_login(client):
    """Without a login, the claim pages redirect to the login form."""
    for url in ("/claims/desk/", "/claims/credits/", "/cabinet/claims/"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response.headers["Location"]


# --- demo -------------------------------------------------------------------------------------------------

def test_seed_demo_on_sqlite_has_every_reason_code(sqlite_url):
    """seed-demo on the embedded SQLite default makes claims with every reason code and a credit for Finance."""
    from portal.services import demo
    from tests.conftest import build_app

    app = build_app(sqlite_url)
    with app.app_context():
        demo.seed(db.session, app.appbuilder.sm)
        reasons = set(db.session.execute(sa.select(Claim.reason_code)).scalars())
        assert reasons == set(claims.REASONS)
        assert [c.state for c in claims.proposed_credits(db.session)] == ["proposed"]
        states = set(db.session.execute(sa.select(Claim.state)).scalars())
        assert {"diagnosed", "escalated", "resolved_rejected"} <= states
        count_before = db.session.execute(sa.select(sa.func.count()).select_from(Claim)).scalar_one()
        demo.seed(db.session, app.appbuilder.sm)
        assert db.session.execute(sa.select(sa.func.count()).select_from(Claim)).scalar_one() == count_before
        assert ledger.verify(db.session).ok
        rows = db.session.execute(sa.select(Claim.id, Customer.email).join(Customer)).all()
    client = app.test_client()
    login(client, "admin", "admin-demo")
    for claim_id, _email in rows:
        assert client.get(f"/claims/desk/{claim_id}").status_code == 200
    assert b"support" in client.get("/claims/credits/").data
    assert client.get("/claims/desk/?breached=1").status_code == 200
    client.get("/logout/")
    claim_id, email = rows[0]
    login(client, email, demo.CUSTOMER_PASSWORD)
    page = client.get(f"/cabinet/claims/{claim_id}")
    assert page.status_code == 200


# --- "What we checked": the evidence for people -------------------------------------------------------------

@contextlib.contextmanager
def english(app):
    from flask_babel import force_locale

    with app.test_request_context("/"), force_locale("en"):
        yield


def test_evidence_view_turns_the_evidence_into_rows(app, session):
    """not_reported: our click (before the order) with its timeline time, no orders; no_click: nothing, and advice."""
    anna = new_customer(session)
    order_no, day, relevant = s_not_reported(app, session, anna)
    reported = open_for(app, session, anna, order_no, day)
    ivan = new_customer(session, "ivan@test.local", name="Ivan")
    rejected = open_for(app, session, ivan, "O-1", T0.date())
    session.commit()

    with english(app):
        shown, nothing = claims.evidence_view(reported), claims.evidence_view(rejected)
    assert (shown.reason_code, shown.verdict) == ("not_reported", "Not reported to us by the network")
    assert "escalate to the network" in shown.next_step.lower() and "credit" in shown.next_step
    assert [(c.id, c.before_order, c.channel, c.repeat_count, c.visits) for c in shown.clicks] == [
        (relevant["click_id"], True, "website", 1, 0)]  # the channel as a word (portal.labels)
    click_row = shown.clicks[0]
    assert click_row.at == T0 - dt.timedelta(minutes=30)
    assert click_row.timeline_until == click_row.at + dt.timedelta(minutes=1)
    assert click_row.product_id and click_row.sub_id
    assert shown.orders == () and shown.events == () and shown.customer_id == anna.id
    assert shown.lookback_days == app.config["CLAIM_CLICK_LOOKBACK_DAYS"]
    assert shown.window_to - shown.window_from == dt.timedelta(days=shown.lookback_days + claims.CLICKS_AFTER_DAYS)

    assert nothing.reason_code == "no_click" and nothing.clicks == () and nothing.orders == ()
    assert "reject with the reply template" in nothing.next_step.lower() and "nothing to credit" in nothing.next_step
    assert "did not follow our link" in nothing.meaning


def test_evidence_view_lists_orders_with_amounts_flags_and_the_wait(app, session):
    """A reported order shows its status, amounts (Decimal) and flags; awaiting_confirmation names the date."""
    anna = new_customer(session)
    order_no, day, _relevant = s_awaiting_confirmation(app, session, anna)
    waiting = open_for(app, session, anna, order_no, day)
    ivan = new_customer(session, "ivan@test.local", name="Ivan")
    coupon_no, coupon_day, _ = s_foreign_coupon(app, session, ivan)
    coupon = open_for(app, session, ivan, coupon_no, coupon_day)
    session.commit()

    with english(app):
        shown, flagged = claims.evidence_view(waiting, confirmation_days=60), claims.evidence_view(coupon)
    order = shown.orders[0]
    assert (order.network_order_id, order.status, order.amount_usd, order.for_customer) == (
        "O-8", "Paid", Decimal("40.00"), True)
    assert order.cashback_usd > 0 and order.booked_in == "Pending" and order.paid_at == T0
    assert [e.status for e in shown.events] == ["Paid"]
    assert "Jan 18, 2027" in shown.next_step  # T0 (Nov 19, 2026) + 60 days

    assert flagged.reason_code == "foreign_coupon"
    assert "coupon or bonus programme used" in flagged.orders[0].flags
    assert "coupon or bonus programme used" in flagged.events[0].flags


def _outside_details(html: str) -> str:
    start, end = html.index("<details"), html.index("</details>")
    assert start < html.index('id="claim-evidence"') < end  # the raw JSON is only inside the <details>
    return html[:start] + html[end:]


def test_desk_page_shows_what_we_checked(app, client, make_user):
    """Support reads the verdict's meaning, next step and evidence rows; raw JSON only behind <details>."""
    with app.app_context():
        session = db.session
        anna = new_customer(session)
        order_no, day, relevant = s_not_reported(app, session, anna)
        reported_id = open_for(app, session, anna, order_no, day).id
        ivan = new_customer(session, "ivan@test.local", name="Ivan")
        rejected_id = open_for(app, session, ivan, "O-1", T0.date()).id
        anna_id = anna.id
        session.commit()
    make_user("sup", "Support")
    login(client, "sup")

    page = client.get(f"/claims/desk/{reported_id}?_l_=en")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    visible = _outside_details(html)
    assert "What we checked" in visible and "Escalate to the network, or propose a credit" in visible
    assert "Our click is there, but the network did not report the order" in visible
    assert visible.count('class="checked-click"') == 1 and "before the order" in visible
    assert f"/support/customers/{anna_id}/timeline?until=" in visible
    assert "The network reported no order or event with this number." in visible
    assert '"checked"' not in visible and '"clicks_before"' not in visible
    assert '&#34;clicks_before&#34;' in html or '"clicks_before"' in html  # still there for seniors

    page = client.get(f"/claims/desk/{rejected_id}?_l_=en")
    visible = _outside_details(page.get_data(as_text=True))
    assert page.status_code == 200
    assert "No click before the order" in visible and "nothing to credit" in visible
    assert "No clicks of the customer in this window." in visible and 'class="checked-click"' not in visible
    assert '"checked"' not in visible and "&#34;checked&#34;" not in visible


@pytest.mark.parametrize("role,status", [("Support", 200), ("Finance", 200), ("Admin", 200),
                                         ("Developer", 403), ("Customer", 403)])
def test_claim_page_role_matrix(app, client, make_user, role, status):
    """The claim page with its evidence panel: Support, Finance and Admin read it; Developer and customers don't."""
    with app.app_context():
        anna = new_customer(db.session)
        s_not_reported(app, db.session, anna)
        claim_id = open_for(app, db.session, anna, "O-7", T0.date()).id
        db.session.commit()
    make_user(f"u_{role.lower()}", role)
    login(client, f"u_{role.lower()}")
    page = client.get(f"/claims/desk/{claim_id}")
    assert page.status_code == status
    if status == 200:
        assert b"claim-checked" in page.data and b"timeline?until=" in page.data


@pytest.mark.parametrize("locale", ["ru", "en"])
@pytest.mark.parametrize("reason", sorted(SCENARIOS))
def test_replies_have_no_double_period(app, reason, locale):
    """A date ending on its own period ("23 нояб. 2026 г.") does not get the sentence's second one."""
    from flask_babel import force_locale

    facts = {"click_time": T0, "order_time": T0, "cashback": Decimal("2.80"), "days": 60, "count": 4,
             "status": "cancelled", "event_time": T0}
    with app.test_request_context("/"), force_locale(locale):
        text = claims.render_reply(reason, customer_name="Иван", order_number="O-1",
                                   order_date=dt.date(2026, 11, 23), facts=facts)
        dated = claims.render_reply(reason, customer_name="Иван", order_number="O-1",
                                    order_date=dt.date(2026, 11, 23), facts={})
    assert ".." not in text and ".." not in dated
    assert "O-1" in text and ("2026" in text)
