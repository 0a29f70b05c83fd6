"""Believable demo data.  Idempotent: running it again adds nothing.

What ``seed`` makes, every number derived from fixed seeds (dates are relative to the
first run, so a demo always looks recent):

* staff logins (one per role) and 20 customers from many countries;
* a USD/RUB (and EUR/RUB) rate table for the last 30 days, imported as CBR daily files
  through ``fx.import_cbr`` (source ``cbr``, on the CBR's Tuesday–Saturday schedule);
* two promos: "Чёрная пятница" active now (12 %, pays the difference over the network's
  commission, capped), "Распродажа 11.11" in the past (10 %, capped by the commission);
* clicks for 17 of the 20 customers through ``clicks.create_click`` (so rates and promos
  freeze as in production; customer 1 clicks one product four times: a spam warning);
* orders in every state, each through ``orders.receive_event`` with deterministic event
  ids (``demo-<customer>-<n>:<status>``): paid, confirmed, cancelled, partly refunded,
  confirmed-before-paid, orders in RUB, an orphan with an unknown sub-id, and a clawback:
  customer 2 withdraws, then an order is cancelled — the customer owes it (receivable)
  and a later order pays part of it back;
* withdrawals on the ledger (``available`` → ``on_hold``, some paid out with a fee).

Idempotency: staff and customers by login, promos by name, rates by day (re-importing
a day changes nothing), and a customer's activity (clicks, orders, withdrawals) only
when that customer has no click yet.  ``seed`` commits once, so it is all or nothing.
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import Click, Customer, NetworkEvent, Order, Posting, Promo
from portal.services import clicks, fx, ledger, orders
from portal.services.audit import Actor
from portal.services.customers import create_customer
from portal.services.ledger import customer_account, system_account, transfer

ACTOR = Actor.system("seed-demo")

#: (username, role, password) — printed by the demo command.
STAFF = (
    ("admin", "Admin", "admin-demo"),
    ("support", "Support", "support-demo"),
    ("finance", "Finance", "finance-demo"),
    ("developer", "Developer", "developer-demo"),
)
CUSTOMER_PASSWORD = "customer-demo"

_NAMES = [
    ("Анна Смирнова", "RU"), ("Иван Петров", "RU"), ("Ольга Кузнецова", "RU"), ("Дмитрий Волков", "RU"),
    ("Мария Соколова", "RU"), ("Алексей Морозов", "RU"), ("Олена Шевченко", "UA"), ("Айгерим Нурланова", "KZ"),
    ("Sergio Alves", "BR"), ("Ana Souza", "BR"), ("Jan Kowalski", "PL"), ("Марина Лебедева", "BY"),
    ("Ahmet Yılmaz", "TR"), ("María García", "ES"), ("John Smith", "US"), ("Nguyễn Văn An", "VN"),
    ("Сергей Новиков", "RU"), ("Елена Попова", "RU"), ("Тимур Алиев", "UZ"), ("Lucas Martin", "FR"),
]

#: Customers 1..ACTIVE_CUSTOMERS click and buy; the rest registered and did nothing yet.
ACTIVE_CUSTOMERS = 17
RATE_DAYS = 30
#: An order id no click of ours has: the network's order becomes an orphan for Support.
ORPHAN_SUB_ID = "unknown-sub-from-network"
CENT = Decimal("0.01")


@dataclass
class SeedReport:
    staff_created: int = 0
    customers_created: int = 0
    postings_created: int = 0
    rates_created: int = 0
    promos_created: int = 0
    clicks_created: int = 0
    events_received: int = 0


# --- people -----------------------------------------------------------------------------------------

def _ensure_staff(session: Session, sm, report: SeedReport) -> None:
    for username, role, password in STAFF:
        if sm.find_user(username=username):
            continue
        user = sm.add_user(username=username, first_name=username.capitalize(), last_name="Demo",
                           email=f"{username}@demo.cashback.local", role=sm.find_role(role),
                           password=password, commit=False)
        if not user:
            raise RuntimeError(f"could not create demo user {username}: run `cashback sync-roles` first")
        report.staff_created += 1


def _ensure_customers(session: Session, sm, now: dt.datetime, report: SeedReport) -> list[Customer]:
    customers = []
    for i, (name, country) in enumerate(_NAMES, start=1):
        email = f"customer{i}@demo.cashback.local"
        customer = session.query(Customer).filter_by(email=email).first()
        if customer is None:
            customer = create_customer(session, sm, email=email, name=name, password=CUSTOMER_PASSWORD,
                                       actor=ACTOR, locale="ru" if country in {"RU", "BY", "KZ", "UA", "UZ"} else "en",
                                       country=country)
            customer.created_at = now - dt.timedelta(days=60 - i)  # registered before their orders
            report.customers_created += 1
        customers.append(customer)
    return customers


# --- exchange rates -----------------------------------------------------------------------------------

def usd_rub_on(day: dt.date) -> Decimal:
    """The demo's USD/RUB rate of a day: 90.0000–93.9999, a pure function of the date."""
    return Decimal(900000 + (day.toordinal() * 7919) % 40000) / 10000


def cbr_daily_xml(day: dt.date) -> bytes:
    """A CBR ``XML_daily.asp`` document for ``day`` with USD and EUR (UTF-8)."""
    usd = usd_rub_on(day)
    eur = (usd * Decimal("1.0840")).quantize(Decimal("0.0001"))

    def valute(ident: str, num: str, code: str, name: str, rate: Decimal) -> str:
        text = str(rate).replace(".", ",")
        return (f'<Valute ID="{ident}"><NumCode>{num}</NumCode><CharCode>{code}</CharCode><Nominal>1</Nominal>'
                f"<Name>{name}</Name><Value>{text}</Value><VunitRate>{text}</VunitRate></Valute>")

    return (f'<?xml version="1.0" encoding="utf-8"?>\n<ValCurs Date="{day:%d.%m.%Y}" name="Foreign Currency Market">'
            + valute("R01235", "840", "USD", "Доллар США", usd) + valute("R01239", "978", "EUR", "Евро", eur)
            + "</ValCurs>").encode("utf-8")


def _ensure_rates(session: Session, today: dt.date, report: SeedReport) -> None:
    """The last 30 days of CBR rates (the CBR sets rates dated Tuesday to Saturday)."""
    for back in range(RATE_DAYS, -1, -1):
        day = today - dt.timedelta(days=back)
        if day.isoweekday() in (7, 1):  # no rate is dated Sunday or Monday
            continue
        report.rates_created += fx.import_cbr(session, cbr_daily_xml(day), ACTOR).created


# --- promos ------------------------------------------------------------------------------------------

def _promo_specs(now: dt.datetime) -> list[dict[str, Any]]:
    return [
        dict(name="Чёрная пятница", rate=Decimal("12.00"), starts_at=now - dt.timedelta(days=3),
             ends_at=now + dt.timedelta(days=4), cap_usd=Decimal("25.00"), pays_difference=True),
        dict(name="Распродажа 11.11", rate=Decimal("10.00"), starts_at=now - dt.timedelta(days=16),
             ends_at=now - dt.timedelta(days=12), cap_usd=Decimal("15.00"), pays_difference=False),
    ]


def _ensure_promos(session: Session, now: dt.datetime, report: SeedReport) -> None:
    for spec in _promo_specs(now):
        if session.execute(sa.select(Promo.id).where(Promo.name == spec["name"])).first() is None:
            session.add(Promo(**spec, first_order_only=False, is_active=True, created_at=now))
            report.promos_created += 1
    session.flush()


# --- orders ------------------------------------------------------------------------------------------

#: How an order's events go; every state of an order appears in the demo.
SCENARIOS = ("paid", "confirmed", "cancelled", "refunded", "confirmed_first")
_WEIGHTS = (25, 40, 10, 15, 10)
#: Fixed scenarios, so each state is there whatever the dice say.
_FIXED: dict[int, list[str]] = {
    1: ["confirmed", "paid", "refunded", "confirmed"],
    2: ["clawback", "paid", "netting"],
    3: ["cancelled", "confirmed", "confirmed_first"],
}


@dataclass(frozen=True)
class _OrderPlan:
    n: int
    scenario: str
    days_ago: int
    amount: Decimal
    currency: str
    channel: str


def _plan_orders(index: int, rng: random.Random) -> list[_OrderPlan]:
    scenarios = _FIXED.get(index) or rng.choices(SCENARIOS, _WEIGHTS, k=rng.randint(2, 4))
    plans = []
    for n, scenario in enumerate(scenarios, start=1):
        recent = scenario == "paid" and rng.random() < 0.5  # inside the promo running now
        days_ago = rng.randint(0, 2) if recent else rng.randint(8, 27)
        if scenario == "netting":
            days_ago = 2
        currency = "RUB" if rng.random() < 0.25 else "USD"
        usd = Decimal(rng.randint(500, 30000)) / 100
        amount = (usd * 90).quantize(CENT) if currency == "RUB" else usd
        plans.append(_OrderPlan(n, scenario, days_ago, amount, currency, rng.choice(("web", "web", "app"))))
    if index == 2:  # the clawback order is big and first; the netting order comes last and smaller
        plans[0] = _OrderPlan(1, "clawback", 20, Decimal("240.00"), "USD", "web")
        plans[2] = _OrderPlan(3, "netting", 2, Decimal("90.00"), "USD", "web")
    return sorted(plans, key=lambda p: -p.days_ago)


def _product_url(index: int, n: int) -> str:
    return f"https://aliexpress.ru/item/{1005004000000000 + index * 100 + n}.html"


def _event(network: str, index: int, plan: _OrderPlan, sub_id: str, status: str, at: dt.datetime,
           refunded: Decimal | None = None) -> orders.OrderEvent:
    """An event of demo customer ``index``'s order ``plan.n``; ids do not depend on database ids."""
    commission = (plan.amount * Decimal("0.08")).quantize(CENT)
    body: dict[str, Any] = {
        "event_id": f"demo-{index}-{plan.n}:{status}", "order_id": f"DEMO-{index:03d}-{plan.n}",
        "sub_id": sub_id, "status": status, "order_amount": str(plan.amount), "currency": plan.currency,
        "commission": str(commission), "event_time": at.isoformat(), "channel": plan.channel,
    }
    if refunded is not None:
        body["refunded_amount"] = str(refunded)
    return orders.parse_event(body, network)


class _Demo:
    """One seeding run: the session, settings, clock and report."""

    def __init__(self, session: Session, config: Mapping[str, Any], now: dt.datetime, report: SeedReport) -> None:
        self.session, self.config, self.now, self.report = session, config, now, report
        self.network = config.get("DEFAULT_NETWORK", "epn")
        self.default_rate = config["DEFAULT_CASHBACK_RATE"]

    def receive(self, event: orders.OrderEvent) -> orders.EventOutcome:
        outcome = orders.receive_event(self.session, event, default_rate=self.default_rate, actor=ACTOR)
        self.report.events_received += 0 if outcome.duplicate else 1
        return outcome

    def click(self, customer: Customer, url: str, at: dt.datetime) -> Click:
        result = clicks.create_click(self.session, customer, url, "web", config=self.config, now=at)
        self.report.clicks_created += 1
        return result.click

    def post(self, customer_id: int, kind: str, ref: str, legs) -> None:
        ledger.post(self.session, kind=kind, reference=f"demo:{customer_id}:{ref}", legs=legs, actor=ACTOR,
                    memo="demo")

    def available(self, customer_id: int) -> Decimal:
        return ledger.customer_balances(self.session, customer_id)["available"]

    def withdraw(self, customer_id: int, ref: str, amount: Decimal, paid_out: bool) -> None:
        """A withdrawal on the ledger: held, and maybe paid out by the test provider with a 2 % fee."""
        if amount <= 0:
            return
        available, on_hold = customer_account(customer_id, "available"), customer_account(customer_id, "on_hold")
        self.post(customer_id, "withdrawal.hold", f"{ref}:hold", transfer(available, on_hold, amount))
        if paid_out:
            provider_float = system_account("provider_float", "USD", "test")
            self.post(customer_id, "payout.succeeded", f"{ref}:paid", transfer(on_hold, provider_float, amount))
            fee = (amount * Decimal("0.02")).quantize(Decimal("0.000001"))
            self.post(customer_id, "payout.fee", f"{ref}:fee",
                      transfer(system_account("fees_expense"), provider_float, fee))

    def customer_activity(self, customer: Customer, index: int) -> None:
        """Clicks, orders and withdrawals of one customer, in the order they happened."""
        rng = random.Random(f"orders:{customer.email}")
        plans = _plan_orders(index, rng)
        for plan in plans:
            click_at = self.now - dt.timedelta(days=plan.days_ago, hours=rng.randint(1, 9), minutes=rng.randint(0, 59))
            url = _product_url(index, plan.n)
            if index == 1 and plan.n == 1:  # comparing sizes: four clicks on one product in ten minutes
                for k in range(3):
                    self.click(customer, url, click_at - dt.timedelta(minutes=10 - 3 * k))
            sub_id = self.click(customer, url, click_at).sub_id
            self.order_events(customer, index, plan, sub_id, click_at + dt.timedelta(minutes=rng.randint(5, 55)))
        for n in range(rng.randint(1, 2)):  # clicks that did not (yet) become orders
            self.click(customer, _product_url(index, 50 + n),
                       self.now - dt.timedelta(days=rng.randint(0, 20), minutes=rng.randint(0, 600)))
        available = self.available(customer.id)
        if index != 2 and available >= Decimal("1.00") and rng.random() < 0.6:
            self.withdraw(customer.id, "w1", (available / 2).quantize(CENT), paid_out=rng.random() < 0.6)

    def order_events(self, customer: Customer, index: int, plan: _OrderPlan, sub_id: str,
                     paid_at: dt.datetime) -> None:
        confirm_days = max(1, min(plan.days_ago - 1, 7))
        confirmed_at = paid_at + dt.timedelta(days=confirm_days)

        def event(status: str, at: dt.datetime, refunded: Decimal | None = None) -> orders.OrderEvent:
            return _event(self.network, index, plan, sub_id, status, at, refunded)

        if plan.scenario == "confirmed_first":  # the network's confirmation overtook the payment
            self.receive(event("confirmed", confirmed_at))
            self.receive(event("paid", paid_at))
            return
        self.receive(event("paid", paid_at))
        if plan.scenario == "paid":
            return
        if plan.scenario == "cancelled":
            self.receive(event("cancelled", confirmed_at))
            return
        self.receive(event("confirmed", confirmed_at))
        if plan.scenario == "refunded":  # part of the order went back: cashback pro rata
            refunded = (plan.amount * Decimal("0.35")).quantize(CENT)
            self.receive(event("refunded", confirmed_at + dt.timedelta(hours=20), refunded))
        elif plan.scenario == "clawback":  # withdrawn in full, then the network cancels the order
            self.withdraw(customer.id, "w-clawback", self.available(customer.id), paid_out=True)
            self.receive(event("cancelled", confirmed_at + dt.timedelta(days=5)))

    def orphan(self) -> None:
        """An order whose sub-id none of our clicks has: Support attaches it after a claim."""
        exists = self.session.execute(sa.select(NetworkEvent.id).where(
            NetworkEvent.network == self.network, NetworkEvent.event_id.like("demo-orphan-%"))).first()
        if exists:
            return
        plan = _OrderPlan(1, "confirmed", 6, Decimal("64.90"), "USD", "app")
        at = self.now - dt.timedelta(days=6)
        body = {"event_id": "demo-orphan-1:confirmed", "order_id": "DEMO-ORPHAN-1", "sub_id": ORPHAN_SUB_ID,
                "status": "confirmed", "order_amount": str(plan.amount), "currency": "USD", "commission": "5.19",
                "event_time": at.isoformat(), "channel": plan.channel}
        self.receive(orders.parse_event(body, self.network))


def seed(session: Session, sm, config: Mapping[str, Any] | None = None,
         now: dt.datetime | None = None) -> SeedReport:
    """Fill the database with demo data (commits).  ``config`` defaults to the app's."""
    if config is None:
        from flask import current_app

        config = current_app.config
    now = (now or dt.datetime.now(dt.timezone.utc)).replace(second=0, microsecond=0)
    report = SeedReport()
    missing = [r for r in ("Customer", *(role for _, role, _ in STAFF)) if sm.find_role(r) is None]
    if missing:
        raise RuntimeError(f"roles {', '.join(missing)} do not exist: run `cashback sync-roles` first")
    postings_before = session.execute(sa.select(sa.func.count()).select_from(Posting)).scalar_one()
    _ensure_staff(session, sm, report)
    customers = _ensure_customers(session, sm, now, report)
    from portal.services import referrals

    referrals.seed_demo(session, customers, config)  # customer 3 referred by 1; 19 by 4, flagged
    _ensure_rates(session, now.date(), report)
    _ensure_promos(session, now, report)
    demo = _Demo(session, config, now, report)
    for index, customer in enumerate(customers[:ACTIVE_CUSTOMERS], start=1):
        has_clicks = session.execute(sa.select(Click.id).where(Click.customer_id == customer.id).limit(1)).first()
        if not has_clicks:
            demo.customer_activity(customer, index)
    demo.orphan()
    from portal.services import claims as claim_service

    claim_service.seed_demo(session, customers, config, now)
    from portal.services import partners

    partners.seed_demo(session, sm, config)  # customer 20 is partner-linked (CPA-partner login)
    session.flush()
    report.postings_created = session.execute(sa.select(sa.func.count()).select_from(Posting)).scalar_one() \
        - postings_before
    session.commit()
    return report


def order_states(session: Session) -> dict[str, int]:
    """How many demo orders are in each state (for the demo command and its test)."""
    rows = session.execute(sa.select(Order).where(Order.network_order_id.like("DEMO-%"))).scalars().all()
    states = {"paid": 0, "confirmed": 0, "cancelled": 0, "partly_refunded": 0, "orphan": 0, "clawback": 0}
    for order in rows:
        if order.customer_id is None:
            states["orphan"] += 1
            continue
        states[order.status] += 1
        if order.refunded_usd > 0:
            states["partly_refunded"] += 1
    receivables = [ledger.customer_balances(session, cid)["receivable"] for cid in
                   {o.customer_id for o in rows if o.customer_id is not None and o.status == "cancelled"}]
    states["clawback"] = sum(1 for r in receivables if r > 0)
    return states
