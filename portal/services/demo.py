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
* payouts through the payouts service (details, request, Finance decisions, attempts and
  the providers' answers applied with ``apply_result``) over the last weeks, to every
  enabled provider, with fees: most succeeded, some in review (new details, above the
  review threshold, one above the second-approval threshold with one approval given), one
  rejected, one ``unknown`` for Finance's fix-state, one failed (money returned), one
  cancelled by the customer.  No provider is called: the sandboxes are not running while
  seeding, so each historic attempt gets the answer the provider would have given.  No
  payout is left ``approved``/``submitting``: nothing is sent when the portal starts; the
  ones in review are sent live to the sandboxes once Finance approves them in the demo;
* provider balances as the janitor's poll would have stored them (MegaFon's is low);
* postback rejections (forged signature, stale timestamp, malformed body) through
  ``postbacks.process_postback``, dated over the last days.

Dates: services take a clock where they can (clicks, events, payouts, attempts, claims);
what a service stamps with ``utcnow()`` itself (ledger postings, audit records, a payout's
``finished_at``, approvals, payout details, postback rejections) is backdated by the demo
only, right after the step that wrote it (``_Demo.happened``), to when that step
"happened" — so the dashboard's per-day series spread over the month and still add up to
the balances (the ledger's amounts are untouched: ``verify-ledger`` stays clean).

Idempotency: staff and customers by login, promos by name, rates by day (re-importing
a day changes nothing), a customer's activity (clicks, orders) only when that customer has
no click yet, payouts only when there is none, provider balances only when never polled,
postback rejections only when there is none.  ``seed`` commits the data in one
transaction (all or nothing); the postback rejections follow, each committed by
``process_postback`` itself as in production.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from plugins import ErrorCode, PayoutStatus, Result
from portal.models import AuditRecord, Click, Customer, NetworkEvent, Order, Payout, PostbackRejection, Posting, Promo
from portal.services import clicks, fx, ledger, orders, payouts
from portal.services.audit import Actor
from portal.services.customers import create_customer

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
#: customer index → (a big confirmed order in USD, days ago): cashback for payouts Finance reviews
_BIG_ORDERS = {5: (Decimal("3400.00"), 20), 6: (Decimal("1000.00"), 10)}
#: where the demo's payouts go, in turn (QIWI is switched off: its licence was revoked)
PAYOUT_PROVIDERS = ("test", "yoomoney", "webmoney", "mts", "megafon", "beeline")
#: provider balances in their currency as last polled; MegaFon's is low (top it up)
PROVIDER_BALANCES = {"test": Decimal("1250000.00"), "mts": Decimal("184350.00"), "megafon": Decimal("3120.00"),
                     "beeline": Decimal("96700.00")}
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
    postback_rejections: int = 0


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
        #: customer id → when their cashback last became available (a payout comes after it)
        self.last_available: dict[int, dt.datetime] = {}

    @contextlib.contextmanager
    def happened(self, when: dt.datetime) -> Iterator[None]:
        """Demo-only backdating: the ledger postings and audit records written inside are dated ``when``.

        The ledger and audit stamp ``utcnow()`` themselves (production never backdates);
        only their ``created_at`` changes here, never an amount, so ``verify-ledger`` holds.
        """
        session = self.session
        session.flush()
        last_posting = session.execute(sa.select(sa.func.max(Posting.id))).scalar() or 0
        last_audit = session.execute(sa.select(sa.func.max(AuditRecord.id))).scalar() or 0
        yield
        session.flush()
        session.execute(sa.update(Posting).where(Posting.id > last_posting).values(created_at=when)
                        .execution_options(synchronize_session=False))
        session.execute(sa.update(AuditRecord).where(AuditRecord.id > last_audit).values(created_at=when)
                        .execution_options(synchronize_session=False))

    def receive(self, event: orders.OrderEvent) -> orders.EventOutcome:
        with self.happened(event.event_time):
            outcome = orders.receive_event(self.session, event, default_rate=self.default_rate, actor=ACTOR)
        self.report.events_received += 0 if outcome.duplicate else 1
        order = self.session.get(Order, outcome.order_id) if outcome.order_id is not None else None
        if order is not None and order.customer_id is not None and event.status in ("confirmed", "refunded"):
            cid = order.customer_id
            self.last_available[cid] = max(self.last_available.get(cid, event.event_time), event.event_time)
        return outcome

    def click(self, customer: Customer, url: str, at: dt.datetime) -> Click:
        result = clicks.create_click(self.session, customer, url, "web", config=self.config, now=at)
        self.report.clicks_created += 1
        return result.click

    def available(self, customer_id: int) -> Decimal:
        return ledger.customer_balances(self.session, customer_id)["available"]

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
        if index in _BIG_ORDERS:  # a laptop, a phone: enough cashback for payouts Finance reviews
            amount, days_ago = _BIG_ORDERS[index]
            plan = _OrderPlan(9, "confirmed", days_ago, amount, "USD", "web")
            click_at = self.now - dt.timedelta(days=days_ago, hours=3)
            sub_id = self.click(customer, _product_url(index, plan.n), click_at).sub_id
            self.order_events(customer, index, plan, sub_id, click_at + dt.timedelta(minutes=20))

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
            paid_at = confirmed_at + dt.timedelta(days=2)
            self.payout(customer, index, 1, "test", paid_at, _cents(self.available(customer.id)), "succeeded")
            self.receive(event("cancelled", confirmed_at + dt.timedelta(days=5)))

    # --- payouts ---------------------------------------------------------------------------------

    def provider(self, code: str):
        from portal import providers as registry

        return registry.provider(code)

    def details(self, customer: Customer, index: int, code: str, at: dt.datetime):
        """The customer's payout details at ``code`` (a wallet or phone of their own), saved at ``at``."""
        provider = self.provider(code)
        with self.happened(at):
            details = payouts.save_details(self.session, customer, provider, _account(provider, index),
                                           actor=Actor(f"customer:{customer.id}"))
        if details.created_at > at:
            details.created_at = at
        self.session.flush()
        return details

    def payout(self, customer: Customer, index: int, n: int, code: str, at: dt.datetime, amount: Decimal,
               outcome: str, *, details_at: dt.datetime | None = None) -> Payout | None:
        """One withdrawal of ``amount`` requested at ``at``, taken through the service to ``outcome``.

        ``succeeded`` / ``failed`` / ``unknown``: approved (by the risk rules or by Finance),
        one attempt, and the provider's answer about that attempt's key applied at the time
        it came; ``in_review`` stays for Finance (``approvals`` of them already given);
        ``cancelled`` by the customer, ``rejected`` by Finance.
        """
        if amount < Decimal("1.00"):
            return None
        session, config, provider = self.session, self.config, self.provider(code)
        details = self.details(customer, index, code, details_at or at - dt.timedelta(days=12))
        actor = Actor(f"customer:{customer.id}")
        with self.happened(at):
            payout = payouts.request_withdrawal(
                session, customer, details_id=details.id, amount_usd=amount, request_key=f"demo-{index}-{n}",
                provider=provider, config=config, actor=actor, now=at).payout
        finance = self.staff("finance")
        t = at + dt.timedelta(hours=2, minutes=17)
        if outcome == "cancelled":
            with self.happened(at + dt.timedelta(minutes=40)):
                payouts.cancel_by_customer(session, payout.id, customer, actor=actor)
            payout.finished_at = at + dt.timedelta(minutes=40)
            return payout
        if payout.state == "in_review" and outcome in ("in_review", "rejected"):
            if outcome == "rejected":
                self.decide(payout, finance, t, approve=False,
                            reason="The wallet holder's name does not match the account; asked the customer.")
                payout.finished_at = t
            elif payout.approvals_needed > 1:  # one approval of two given
                self.decide(payout, finance, t, approve=True, reason="Order history checked: a laptop, confirmed.")
            return payout
        if payout.state == "in_review":
            for k in range(payout.approvals_needed):
                self.decide(payout, self.staff(("finance", "admin")[k]), t + dt.timedelta(minutes=k * 30),
                            approve=True, reason="Checked the orders behind this cashback.")
            t += dt.timedelta(hours=1)
        sent = t + dt.timedelta(minutes=3)
        with self.happened(sent):
            attempt = payouts.start_attempt(session, payout.id, provider=provider, now=sent)
        if attempt is None:
            raise RuntimeError(f"demo payout {payout.id} could not start: is provider {code} switched off?")
        attempt.updated_at = sent
        reference = f"{code.upper()}-{payout.id:06d}"
        if outcome == "unknown":  # the provider did not answer; nobody knows whether it paid
            answers = [(sent + dt.timedelta(seconds=30), Result.unknown(ErrorCode.TIMEOUT, "read timed out after 10 s"))]
        elif outcome == "failed":
            answers = [(sent + dt.timedelta(seconds=2), Result(PayoutStatus.ACCEPTED, provider_reference=reference,
                                                               raw_message="accepted")),
                       (sent + dt.timedelta(hours=1), Result.failed(ErrorCode.REJECTED_BY_RECIPIENT,
                                                                    "the subscriber's number is not in service",
                                                                    provider_reference=reference))]
        else:
            answers = [(sent + dt.timedelta(seconds=2), Result(PayoutStatus.ACCEPTED, provider_reference=reference,
                                                               raw_message="accepted")),
                       (sent + dt.timedelta(minutes=7), Result(PayoutStatus.SUCCEEDED, provider_reference=reference,
                                                               fee=payout.fee, raw_message="paid"))]
        for when, result in answers:
            with self.happened(when):
                payouts.apply_result(session, attempt.id, result, config=config, now=when)
            attempt.updated_at = when
            if result.status is PayoutStatus.ACCEPTED:
                attempt.checks += 1
        if payout.state in payouts.FINAL:
            payout.finished_at = answers[-1][0]
        payout.updated_at = answers[-1][0]
        return payout

    def decide(self, payout: Payout, user, at: dt.datetime, *, approve: bool, reason: str) -> None:
        with self.happened(at):
            payouts.decide(self.session, payout.id, user_id=user.id, actor=Actor.user(user), approve=approve,
                           reason=reason)
        for approval in payout.approvals:
            if approval.user_id == user.id:
                approval.created_at = at

    def staff(self, username: str):
        user = self.session.execute(sa.select(self._user_model()).where(self._user_model().username == username)
                                    ).scalar_one()
        return user

    def _user_model(self):
        from flask_appbuilder.security.sqla.models import User

        return User

    def payouts(self, customers: list[Customer]) -> None:
        """Withdrawals of the last month across the providers (only when there is no payout yet)."""
        session = self.session
        if session.execute(sa.select(Payout.id).where(Payout.request_key.not_like("demo-2-1")).limit(1)).first():
            return
        rng = random.Random("payouts")
        special = {5: ("yoomoney", "in_review"), 6: ("test", "in_review"), 7: ("webmoney", "in_review"),
                   8: ("mts", "unknown"), 9: ("beeline", "failed"), 10: ("megafon", "cancelled"),
                   11: ("test", "rejected")}
        codes = [c for c in PAYOUT_PROVIDERS if self.provider(c) is not None
                 and payouts.provider_state(session, c).enabled]
        latest = self.now - dt.timedelta(hours=6)  # settled before now (it takes them ~2.5 hours)
        for index, customer in enumerate(customers[:ACTIVE_CUSTOMERS], start=1):
            if index == 2:
                continue  # the clawback customer withdrew everything already
            available = _cents(self.available(customer.id))
            since = self.last_available.get(customer.id, self.now - dt.timedelta(days=20))
            since = min(since + dt.timedelta(hours=3), latest)
            at = since + (latest - since) * rng.randint(0, 60) / 100  # some time after, not now
            if index in special:
                code, outcome = special[index]
                if code not in codes:
                    code = codes[0]
                if index == 5:
                    amount = min(available, Decimal("230.00"))  # above the second-approval threshold
                elif index == 6:
                    amount = min(available, Decimal("64.00"))  # above the review threshold
                else:
                    amount = _cents(available * Decimal("0.6"))
                details_at = at - dt.timedelta(days=12)
                if index in (7, 10, 11):  # new payout details: review
                    at = self.now - dt.timedelta(hours=5 + index)
                    details_at = at - dt.timedelta(minutes=4)
                elif index == 8:
                    at = self.now - dt.timedelta(hours=20)
                self.payout(customer, index, 1, code, at, amount, outcome, details_at=details_at)
                continue
            if available < Decimal("1.00"):
                continue
            code = codes[index % len(codes)]
            first = _cents(available * Decimal(rng.choice(("0.4", "0.5", "0.7"))))
            self.payout(customer, index, 1, code, at, first, "succeeded")
            rest = _cents(self.available(customer.id))
            later = min(at + dt.timedelta(days=rng.randint(2, 6), hours=rng.randint(0, 12)), latest)
            if rest >= Decimal("1.00") and later > at and rng.random() < 0.7:
                self.payout(customer, index, 2, code, later, _cents(rest * Decimal("0.8")), "succeeded")

    def provider_balances(self) -> None:
        """Each enabled provider's balance as the janitor's poll would have stored it (once)."""
        for code, amount in PROVIDER_BALANCES.items():
            provider = self.provider(code)
            if provider is None or not provider.supports_balance:
                continue
            state = payouts.provider_state(self.session, code)
            if not state.enabled or state.balance_checked_at is not None:
                continue
            at = self.now - dt.timedelta(minutes=12)
            with self.happened(at):
                payouts.refresh_balance(self.session, code, _Polled(provider, amount), actor=Actor.system("janitor"),
                                        now=at)

    def orphan(self, customers: list[Customer]) -> None:
        """Orders whose sub-id none of our clicks has: one for Support to attach after a claim, and
        one Support already proposed for customer 2, waiting for Finance to confirm (four eyes)."""
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
        at = self.now - dt.timedelta(days=3)
        second = self.receive(orders.parse_event(
            {**body, "event_id": "demo-orphan-2:confirmed", "order_id": "DEMO-ORPHAN-2", "order_amount": "23.40",
             "commission": "1.87", "event_time": at.isoformat()}, self.network))
        with self.happened(at + dt.timedelta(hours=5)):
            orders.propose_attach(self.session, second.order_id, customers[1].id,
                                  actor=Actor.user(self.staff("support")),
                                  reason="The customer's screenshot shows this order number and amount.")


class _Polled:
    """What the provider said when the janitor last asked its balance (the sandboxes are not
    running while seeding, so the answer is given here; ``refresh_balance`` does the rest)."""

    def __init__(self, provider, amount: Decimal) -> None:
        self.code, self.settings, self._amount = provider.code, provider.settings, amount

    def balance(self) -> Decimal:
        return self._amount


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_DOWN)


def _account(provider, index: int) -> str:
    """Demo customer ``index``'s own wallet or phone at ``provider`` (valid, deterministic)."""
    stems = {"test": "TEST-{:07d}{}", "yoomoney": "41001{:07d}{:03d}", "webmoney": "P{:09d}{:03d}"}
    phones = {"mts": "+7916", "megafon": "+7926", "beeline": "+7903"}
    for k in range(1000):
        if provider.code in phones:
            raw = f"{phones[provider.code]}{index:03d}{k:04d}"
        else:
            raw = stems.get(provider.code, "{:09d}{:03d}").format(4200000 + index, k)
        try:
            return provider.validate_account(raw)
        except Exception:  # noqa: BLE001 - not a valid number: try the next one
            continue
    raise RuntimeError(f"no demo account for provider {provider.code}")


# --- postback rejections ------------------------------------------------------------------------------

def _postback_rejections(session: Session, config: Mapping[str, Any], now: dt.datetime) -> int:
    """Refused postbacks for the Developer desk, through the real endpoint's command (once).

    ``process_postback`` commits each refusal itself; the record is then dated to when it came.
    """
    from portal.services import postback_signing, postbacks

    if session.execute(sa.select(PostbackRejection.id).limit(1)).first() is not None:
        return 0
    network = config.get("DEFAULT_NETWORK", "epn")
    secret = (config["POSTBACK_SECRETS"].get(network) or "").encode()
    if not secret:
        return 0

    def body(n: int) -> bytes:
        return json.dumps({"event_id": f"demo-rejected-{n}:paid", "order_id": f"DEMO-REJ-{n}", "sub_id": "x",
                           "status": "paid", "order_amount": "19.90", "currency": "USD", "commission": "1.59",
                           "event_time": (now - dt.timedelta(days=n)).isoformat()}).encode()

    cases = []  # (days ago, body, headers, processed at)
    at = now - dt.timedelta(days=5, hours=3)
    forged = postback_signing.sign(b"not-our-secret", body(5), int(at.timestamp()))
    cases.append((at, body(5), forged))
    at = now - dt.timedelta(days=3, hours=7)
    stale = postback_signing.sign(secret, body(3), int((at - dt.timedelta(hours=2)).timestamp()))
    cases.append((at, body(3), stale))
    at = now - dt.timedelta(days=1, hours=2)
    garbled = b'{"event_id": "demo-rejected-1:paid", "order_id": "DEMO-REJ-1", "status": "paid",'
    cases.append((at, garbled, postback_signing.sign(secret, garbled, int(at.timestamp()))))
    made = 0
    for at, raw, headers in cases:
        headers = {**headers, postback_signing.NETWORK_HEADER: network, "Content-Type": "application/json"}
        try:
            postbacks.process_postback(session, body=raw, headers=headers, remote_ip="203.0.113.45", config=config,
                                       now=int(at.timestamp()))
        except postbacks.PostbackRejected:
            made += 1
        newest = session.execute(sa.select(sa.func.max(PostbackRejection.id))).scalar()
        session.execute(sa.update(PostbackRejection).where(PostbackRejection.id == newest).values(received_at=at))
        session.commit()
    return made


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
    demo.orphan(customers)
    session.flush()
    demo.payouts(customers)
    demo.provider_balances()
    from portal.services import claims as claim_service

    claim_service.seed_demo(session, customers, config, now)
    from portal.services import partners

    partners.seed_demo(session, sm, config)  # customer 20 is partner-linked (CPA-partner login)
    session.flush()
    report.postings_created = session.execute(sa.select(sa.func.count()).select_from(Posting)).scalar_one() \
        - postings_before
    session.commit()
    report.postback_rejections = _postback_rejections(session, config, now)
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
