"""Believable demo data.  Idempotent: running it again adds nothing.

Grows with each feature: today staff logins, customers and their ledger history
(cashback pending and confirmed, withdrawals held and paid out with provider fees).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

from portal.models import Customer
from portal.services import ledger
from portal.services.audit import Actor
from portal.services.customers import create_customer
from portal.services.ledger import customer_account, system_account, transfer
from portal.services.money import cashback_amount

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


@dataclass
class SeedReport:
    staff_created: int = 0
    customers_created: int = 0
    postings_created: int = 0


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


def _ensure_customers(session: Session, sm, report: SeedReport) -> list[Customer]:
    customers = []
    for i, (name, country) in enumerate(_NAMES, start=1):
        email = f"customer{i}@demo.cashback.local"
        customer = session.query(Customer).filter_by(email=email).first()
        if customer is None:
            customer = create_customer(session, sm, email=email, name=name, password=CUSTOMER_PASSWORD,
                                       actor=ACTOR, locale="ru" if country in {"RU", "BY", "KZ", "UA", "UZ"} else "en",
                                       country=country)
            report.customers_created += 1
        customers.append(customer)
    return customers


def _history(session: Session, customer: Customer, rng: random.Random, report: SeedReport) -> None:
    usd = "USD"
    pending = customer_account(customer.id, "pending")
    available = customer_account(customer.id, "available")
    on_hold = customer_account(customer.id, "on_hold")
    network = system_account("network_receivable", usd)
    float_test = system_account("provider_float", usd, "test")
    fees = system_account("fees_expense", usd)

    def post(kind: str, ref: str, legs) -> None:
        if ledger.post(session, kind=kind, reference=f"demo:{customer.id}:{ref}", legs=legs, actor=ACTOR).created:
            report.postings_created += 1

    confirmed_total = Decimal(0)
    for n in range(rng.randint(2, 8)):
        paid = Decimal(rng.randint(150, 25000)) / 100  # order amount, USD
        cashback = cashback_amount(paid, Decimal("7.00"))
        post("cashback.pending", f"order{n}:paid", transfer(network, pending, cashback))
        if rng.random() < 0.7:
            post("cashback.confirmed", f"order{n}:confirmed", transfer(pending, available, cashback))
            confirmed_total += cashback
    if confirmed_total >= Decimal("1.00") and rng.random() < 0.6:
        amount = (confirmed_total / 2).quantize(Decimal("0.01"))
        post("withdrawal.hold", "withdrawal1:hold", transfer(available, on_hold, amount))
        if rng.random() < 0.6:
            post("payout.succeeded", "withdrawal1:paid", transfer(on_hold, float_test, amount))
            fee = (amount * Decimal("0.02")).quantize(Decimal("0.000001"))
            post("payout.fee", "withdrawal1:fee", transfer(fees, float_test, fee))


def seed(session: Session, sm) -> SeedReport:
    """Fill the database with demo data (commits)."""
    report = SeedReport()
    missing = [r for r in ("Customer", *(role for _, role, _ in STAFF)) if sm.find_role(r) is None]
    if missing:
        raise RuntimeError(f"roles {', '.join(missing)} do not exist: run `cashback sync-roles` first")
    _ensure_staff(session, sm, report)
    customers = _ensure_customers(session, sm, report)
    for customer in customers:
        _history(session, customer, random.Random(customer.email), report)
    session.commit()
    return report
