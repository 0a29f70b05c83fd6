"""Customer search and the customer timeline: the service on PostgreSQL, the pages with the
Flask test client (who may open them, what each role sees of wallets)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask_babel import force_locale

from portal import providers
from portal.extensions import db
from portal.models import Click, Customer, PayoutAttempt, PayoutDetails
from portal.services import audit, claims, clicks, fx, ledger, orders, payouts
from portal.services import timeline as tl
from portal.services.audit import Actor
from portal.services.ledger import customer_account, system_account, transfer
from tests.conftest import login

D = Decimal
SYSTEM = Actor.system("test")
T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)
WALLET = "TEST-12345674"
PHONE = "+79161234567"
OTHER_WALLET = "TEST-76543214"


def link(n: int) -> str:
    return f"https://aliexpress.com/item/10050012345678{n:02d}.html"


def order_event(app, session, sub_id: str, order_no: str, status: str, minutes: int):
    body = {"event_id": f"{order_no}:{status}", "order_id": order_no, "sub_id": sub_id, "status": status,
            "order_amount": "100.00", "currency": "USD", "commission": "8.00",
            "event_time": (T0 + dt.timedelta(minutes=minutes)).isoformat()}
    return orders.receive_event(session, orders.parse_event(body, "epn"),
                                default_rate=app.config["DEFAULT_CASHBACK_RATE"])


@pytest.fixture
def story(app, clean_db, testbank):
    """Anna (1): 3 clicks on two products (one visited twice), order 8100001 paid and confirmed,
    $50 funded, wallet and phone details, a withdrawal with a refused attempt naming the wallet,
    a claim and an audit record.  Bob (2): one click, order 8200002, his own wallet."""
    testbank.reset()
    app.extensions.pop("cashback_collected_jobs", None)
    with app.app_context():
        s = db.session
        anna = Customer(id=1, email="anna@test.local", name="Anna", created_at=T0 - dt.timedelta(days=30))
        bob = Customer(id=2, email="bob@test.local", name="Bob", created_at=T0 - dt.timedelta(days=30))
        s.add_all([anna, bob])
        s.flush()
        s.execute(sa.text("SELECT setval('customer_id_seq', 2)"))
        fx.correct_rate(s, dt.date.today(), D("80"), SYSTEM, "test rate")
        cfg = dict(app.config)
        a1 = clicks.create_click(s, anna, link(1), "web", config=cfg, now=T0).click
        clicks.create_click(s, anna, link(1), "app", config=cfg, now=T0 + dt.timedelta(minutes=1))
        clicks.create_click(s, anna, link(2), "web", config=cfg, now=T0 + dt.timedelta(minutes=2))
        b1 = clicks.create_click(s, bob, link(3), "web", config=cfg, now=T0).click
        for _ in range(2):
            clicks.record_visit(s, a1.sub_id, user_agent="ua", ip="10.0.0.1", channel="web", secret="x")
        order_event(app, s, a1.sub_id, "8100001", "paid", 10)
        order_event(app, s, a1.sub_id, "8100001", "confirmed", 20)
        order_event(app, s, b1.sub_id, "8200002", "paid", 10)
        ledger.post(s, kind="test.fund", reference="fund:1", actor=SYSTEM,
                    legs=transfer(system_account("network_receivable"), customer_account(1, "available"), D("50")))
        s.add_all([
            PayoutDetails(id=1, customer_id=1, provider_code="test", account=WALLET,
                          created_at=T0 - dt.timedelta(days=10)),
            PayoutDetails(id=2, customer_id=1, provider_code="mts", account=PHONE,
                          created_at=T0 - dt.timedelta(days=10)),
            PayoutDetails(id=3, customer_id=2, provider_code="test", account=OTHER_WALLET,
                          created_at=T0 - dt.timedelta(days=10)),
        ])
        s.flush()
        s.execute(sa.text("SELECT setval('payout_details_id_seq', 3)"))
        payout = payouts.request_withdrawal(s, anna, details_id=1, amount_usd=D("5.00"), request_key="k1",
                                            provider=providers.provider("test"), config=app.config,
                                            actor=SYSTEM).payout
        s.add(PayoutAttempt(payout_id=payout.id, number=1, idempotency_key="att-1", status="failed_final",
                            error_code="invalid_account",
                            raw_message=f"ERR 403: account {WALLET} is closed; call +7 (916) 765-43-21"))
        claim = claims.open_claim(s, anna, claims.ClaimInput("8100077", dt.date(2026, 11, 19), D("12.50")),
                                  actor=SYSTEM, opened_by="customer", channel="web", config=app.config)
        claims.propose_credit(s, claim.id, D("3.00"), reason="goodwill", actor=SYSTEM, proposed_by="support")
        claims.open_claim(s, bob, claims.ClaimInput("8200099", dt.date(2026, 11, 19)), actor=SYSTEM,
                          opened_by="customer", channel="web", config=app.config)
        audit.record(s, SYSTEM, "customer.blocked", "customer", 1, reason="test block")
        audit.record(s, SYSTEM, "customer.blocked", "customer", 2, reason="bob's own record")
        s.commit()
        return {"anna_sub": a1.sub_id, "bob_sub": b1.sub_id, "payout": payout.id}


@pytest.fixture
def session(app_ctx):
    yield db.session
    db.session.rollback()


@pytest.fixture
def as_role(app, client, make_user):
    """Log ``client`` in with a fresh login of ``role`` (English pages)."""
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"

    def log_in(role: str) -> None:
        username = f"t_{role.lower()}"
        make_user(username, role)
        login(client, username)

    return log_in


def reasons(matches) -> dict[int, set[str]]:
    return {m.customer.id: {r.code for r in m.reasons} for m in matches}


# --- search ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("query,code", [
    ("1", "id"), ("#1", "id"), ("ANNA@test", "email"), ("anna", "email"), ("8100001", "order"),
    ("TEST-12345674", "wallet"), ("test 1234 5674", "wallet"), ("TEST12345674", "wallet"),
    ("+79161234567", "phone"), ("8 (916) 123-45-67", "phone"), ("+7 916 123 45 67", "phone"),
    ("9161234567", "phone"), ("7-916-123-4567", "phone"),
])
def test_search_finds_anna_by_each_key(story, session, query, code):
    """Each key finds customer 1 and names what matched; Bob is not found."""
    found = reasons(tl.search(session, query))
    assert code in found.get(1, set())
    assert 2 not in found


def test_search_by_sub_id(story, session):
    """A click's sub-id finds its customer only."""
    assert reasons(tl.search(session, story["anna_sub"])) == {1: {"sub_id"}}
    assert reasons(tl.search(session, story["bob_sub"])) == {2: {"sub_id"}}


def test_search_masks_wallets_unless_allowed(story, session):
    """The wallet reason is masked for viewers without PII, full otherwise."""
    masked = tl.search(session, WALLET)[0].reasons[0].value
    full = tl.search(session, WALLET, show_pii=True)[0].reasons[0].value
    assert masked == "Тестовый банк (песочница): TEST••••5674"  # the provider by name (default locale)
    assert full == f"Тестовый банк (песочница): {WALLET}"


def test_search_nothing(story, session):
    """An empty query or an unknown value finds no one."""
    assert tl.search(session, "") == [] and tl.search(session, "   ") == []
    assert tl.search(session, "nobody-here@nowhere") == []
    assert tl.search(session, "9999999") == []


# --- timeline (service) ----------------------------------------------------------------------------

def test_timeline_has_every_kind_newest_first(story, session):
    """Every source shows up, in time order, and the header adds up."""
    page = tl.timeline(session, 1, show_pii=True, limit=200)
    kinds = {e.kind for e in page.entries}
    assert kinds == {"click", "order", "network_event", "posting", "payout", "attempt", "claim", "audit",
                     "account"}
    keys = [e.sort_key for e in page.entries]
    assert keys == sorted(keys, reverse=True)
    assert page.entries[-1].kind == "account"  # registration is the oldest thing
    assert page.next_until is None
    visits = {e.details["sub_id"]: e.details["visits"] for e in page.entries if e.kind == "click"}
    assert visits[story["anna_sub"]] == 2 and sorted(visits.values()) == [0, 0, 2]
    summary = page.summary
    assert summary.clicks_total == 3
    assert summary.top_products == [("1005001234567801", 2), ("1005001234567802", 1)]
    assert summary.orders_by_status == {"confirmed": 1}
    assert summary.total_cashback == D("7.00")
    assert summary.balances["available"] == D("52.000000") and summary.balances["on_hold"] == D("5.000000")
    assert summary.total_withdrawn == D("0") and summary.claims_total == 1
    postings = [e for e in page.entries if e.kind == "posting"]
    hold = next(e for e in postings if e.details["reference"] == f"payout:{story['payout']}:hold")
    assert {(a.label, a.value) for a in hold.amounts} == {("available", D("-5")), ("on_hold", D("5"))}


def test_timeline_never_shows_other_customers(story, session):
    """Nothing of Bob's appears in Anna's timeline."""
    page = tl.timeline(session, 1, show_pii=True, limit=200)
    text = repr([(e.title, e.details, e.amounts) for e in page.entries])
    for bob in ("8200002", "8200099", story["bob_sub"], OTHER_WALLET, "bob's own record", "bob@test.local"):
        assert bob not in text
    assert tl.timeline(session, 99, show_pii=True) is None


def test_timeline_masks_attempt_answers(story, session):
    """The provider's raw answer has the wallet and any phone masked unless PII is allowed."""
    masked = next(e for e in tl.timeline(session, 1, show_pii=False).entries if e.kind == "attempt")
    full = next(e for e in tl.timeline(session, 1, show_pii=True).entries if e.kind == "attempt")
    assert WALLET not in masked.details["answer"] and "TEST••••5674" in masked.details["answer"]
    assert "765-43-21" not in masked.details["answer"] and "+791••••4321" in masked.details["answer"]
    assert WALLET in full.details["answer"]
    payout = next(e for e in tl.timeline(session, 1, show_pii=False).entries if e.kind == "payout")
    assert payout.details["account"] == "TEST••••5674"


def test_paging_covers_everything_once(story, session):
    """Following the cursor with small pages yields the whole timeline, each entry once, in order."""
    everything = tl.timeline(session, 1, show_pii=True, limit=200).entries
    seen, until, pages = [], None, 0
    while True:
        page = tl.timeline(session, 1, show_pii=True, limit=3, until=until)
        seen += page.entries
        pages += 1
        assert page.entries and pages < 50
        if page.next_until is None:
            break
        until = page.next_until
    assert [(e.kind, e.id) for e in seen] == [(e.kind, e.id) for e in everything]
    assert pages > 3


def test_kinds_filter(story, session):
    """Only the kinds asked for come back."""
    page = tl.timeline(session, 1, show_pii=True, kinds=["click", "claim"])
    assert sorted(e.kind for e in page.entries) == ["claim", "click", "click", "click"]
    claim = next(e for e in page.entries if e.kind == "claim")
    assert claim.details["order"] == "8100077" and claim.amounts[0].value == D("12.50")
    assert claim.details["state"] == "diagnosed"


def test_claim_audit_records_are_included(story, session):
    """The claim's own audit trail (opened, diagnosed, credit proposed) is on Anna's timeline only."""
    with force_locale("en"):
        actions = [str(e.title) for e in tl.timeline(session, 1, show_pii=True, kinds=["audit"]).entries]
        bob = tl.timeline(session, 2, show_pii=True, limit=200).entries
        assert not any("Credit proposed" in str(e.title) for e in bob)
    assert {"Audit: Claim opened", "Audit: Credit proposed"} <= set(actions)  # the actions as words
    assert any(e.kind == "claim" and e.details["order"] == "8200099" for e in bob)


def test_cut_keeps_a_timestamp_together():
    """Entries sharing the boundary time move to the next page together."""
    t = [T0 - dt.timedelta(minutes=i) for i in range(3)]
    entries = [tl.TimelineEntry("click", t[0], 1, "a"), tl.TimelineEntry("click", t[1], 2, "b"),
               tl.TimelineEntry("order", t[1], 3, "c"), tl.TimelineEntry("click", t[2], 4, "d")]
    entries.sort(key=lambda e: e.sort_key, reverse=True)
    page, cursor = tl._cut(entries, 2)
    assert [e.id for e in page] == [1] and cursor == t[1]
    page, cursor = tl._cut(entries, 4)
    assert len(page) == 4 and cursor is None


def test_scrub_masks_accounts_in_text():
    """Known accounts and account-shaped numbers are masked; times and amounts are left alone."""
    text = ("paid 41001614575714 and P123456789012 at 2026-11-25 10:00, 500.000000 USD, id 12345, "
            "order 8123456789012345, phone 89161234567")
    out = tl.scrub(text)
    assert "8123456789012345" in out and "89161234567" not in out and "8916••••4567" in out
    assert "41001614575714" not in out and "4100••••5714" in out
    assert "P123456789012" not in out and "P123••••9012" in out
    assert "2026-11-25 10:00" in out and "500.000000" in out and "12345" in out
    assert tl.scrub({"account": ["+7 916 123-45-67"]}) == {"account": ["+791••••4567"]}


# --- pages -----------------------------------------------------------------------------------------

def test_support_sees_masked_wallets_on_the_page(story, client, as_role):
    """Support reads the timeline with wallets and phones masked, everywhere on the page."""
    as_role("Support")
    response = client.get("/support/customers/1/timeline")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "anna@test.local" in page and "TEST••••5674" in page and "+791••••4567" in page
    assert WALLET not in page and PHONE not in page and "765-43-21" not in page
    assert "8100001" in page and "8100077" in page and 'data-kind="attempt"' in page
    assert "bob@test.local" not in page and "8200002" not in page


def test_finance_sees_full_wallets_on_the_page(story, client, as_role):
    """Finance (payouts.pii) reads full wallets and the provider's own words."""
    as_role("Finance")
    page = client.get("/support/customers/1/timeline").get_data(as_text=True)
    assert WALLET in page and PHONE in page and "765-43-21" in page
    assert "$52.00" in page  # the available balance through money()


def test_search_page_shows_what_matched(story, client, as_role):
    """The search page lists the customer, why, and links to the timeline; masked for Support."""
    as_role("Support")
    page = client.get("/support/customers/search", query_string={"q": "8 916 123 45 67"}).get_data(as_text=True)
    assert 'data-customer="1"' in page and 'data-reason="phone"' in page and "+791••••4567" in page
    assert PHONE not in page and "/support/customers/1/timeline" in page
    page = client.get("/support/customers/search", query_string={"q": "nobody"}).get_data(as_text=True)
    assert 'id="search-empty"' in page


def test_page_filter_and_older_link(story, client, as_role):
    """The kind filter narrows the list; a small page offers "load older", which continues."""
    as_role("Admin")
    page = client.get("/support/customers/1/timeline?kind=click").get_data(as_text=True)
    assert page.count('data-kind="click"') == 3 and 'data-kind="order"' not in page
    page = client.get("/support/customers/1/timeline?limit=2").get_data(as_text=True)
    assert 'id="timeline-older"' in page
    assert client.get("/support/customers/999/timeline").status_code == 404


@pytest.mark.parametrize("role,status", [
    ("Support", 200), ("Finance", 200), ("Admin", 200), ("Developer", 403), ("Customer", 403),
])
@pytest.mark.parametrize("url", ["/support/customers/search?q=anna", "/support/customers/1/timeline"])
def test_role_matrix(story, client, as_role, role, status, url):
    """Support, Finance and Admin read customers' timelines; Developers and Customers do not."""
    as_role(role)
    assert client.get(url).status_code == status


def test_anonymous_goes_to_login(story, client):
    response = client.get("/support/customers/1/timeline")
    assert response.status_code == 302 and "/login/" in response.headers["Location"]


def test_customer_list_links_to_the_timeline(story, client, as_role):
    """The staff customer list links each customer to their timeline."""
    as_role("Support")
    page = client.get("/customerview/list/").get_data(as_text=True)
    assert 'href="/support/customers/1/timeline"' in page and 'href="/support/customers/2/timeline"' in page


def test_search_and_timeline_on_sqlite(sqlite_app):
    """The embedded SQLite default runs the same queries (demo database)."""
    with sqlite_app.app_context():
        s = db.session
        click = clicks.create_click(s, s.get(Customer, 3), link(1), "web", config=dict(sqlite_app.config)).click
        s.add(PayoutDetails(customer_id=3, provider_code="mts", account=PHONE))
        s.commit()
        try:
            assert reasons(tl.search(s, "8 916 123 45 67")) == {3: {"phone"}}
            assert reasons(tl.search(s, click.sub_id)) == {3: {"sub_id"}}
            page = tl.timeline(s, 3, show_pii=False)
            assert [e.kind for e in page.entries] == ["click", "account"]
            assert page.summary.payout_details == [("mts", "+791••••4567", True)]
        finally:
            s.rollback()
            s.execute(sa.delete(PayoutDetails).where(PayoutDetails.customer_id == 3))
            s.execute(sa.delete(Click).where(Click.customer_id == 3))
            s.commit()


def test_query_count_does_not_grow_with_rows(app, story, session):
    """One query per source: more clicks, visits and payouts do not add queries (no N+1)."""
    statements = []

    def count(*args):
        statements.append(1)

    def queries() -> int:
        statements.clear()
        session.expire_all()
        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            tl.timeline(session, 1, show_pii=False, limit=200)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        return len(statements)

    before = queries()
    assert before >= 9  # one per source at least
    anna = session.get(Customer, 1)
    for n in range(5):
        sub = clicks.create_click(session, anna, link(10 + n), "web", config=dict(app.config)).click.sub_id
        clicks.record_visit(session, sub, user_agent="ua", ip=None, channel="web", secret="x")
    session.commit()
    assert queries() == before
