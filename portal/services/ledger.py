"""The double-entry ledger: every balance change in the system goes through ``post``.

Rules
-----
* A posting has a kind, a unique reference, an actor, a memo and ≥ 2 legs.  Per
  currency the legs sum to zero.  Amounts are ``Decimal`` with at most 6 decimal places
  (see ``portal.services.money``); zero legs and floats are refused.
* **Sign convention**: a leg's amount is positive for a *credit*.  Customer accounts
  (``pending``, ``available``, ``on_hold``) are credit-normal: a positive balance is what
  we owe the customer.  Debit-normal accounts (``receivable``, ``network_receivable``,
  ``provider_float``, ``fees_expense``, ``promo_expense``, ``adjustments``) show the
  negated stored sum, so a receivable reads as a positive amount owed to us.  Use
  ``transfer(src, dst, amount)`` and think "money moves from src to dst".
* A customer's accounts can never show a balance below zero: such a posting raises
  ``InsufficientBalance`` before anything is written.
* ``post`` with a reference that already exists returns the first posting
  (``created=False``) and moves nothing; the same reference with different legs raises
  ``ReferenceConflict``.
* ``post`` never commits: the caller's transaction makes the posting durable together
  with whatever business change caused it.

Concurrency (PostgreSQL)
------------------------
Customer balance rows are locked with ``SELECT … FOR UPDATE`` in ascending account id
order, then system balance rows are updated in ascending (account, shard) order: one
global lock order, so two postings never deadlock.  System accounts are hot (every
order touches ``network_receivable``), so each has ``shards`` balance rows and a posting
updates only the shard ``posting_id % shards``: concurrent postings do not queue on one
row.  An account's balance is the sum of its shards.
"""
from __future__ import annotations

import weakref
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Sequence

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from portal import observability
from portal.errors import Conflict, DomainError, Invalid
from portal.i18n import _l
from portal.models import Account, AccountBalance, Entry, Posting
from portal.models.types import from_micros, to_micros, utcnow
from portal.services.audit import Actor
from portal.services.db import insert_or_ignore
from portal.services.money import CURRENCIES, is_ledger_exact

DEFAULT_HOT_SHARDS = 16


@dataclass(frozen=True)
class AccountKind:
    name: str
    customer: bool  # per-customer (True) or system-wide (False)
    normal: str  # "credit" or "debit"
    needs_sub: bool = False  # e.g. provider_float:<code>


ACCOUNT_KINDS: dict[str, AccountKind] = {
    k.name: k
    for k in (
        AccountKind("pending", True, "credit"),
        AccountKind("available", True, "credit"),
        AccountKind("on_hold", True, "credit"),
        AccountKind("receivable", True, "debit"),
        AccountKind("network_receivable", False, "debit"),
        AccountKind("provider_float", False, "debit", needs_sub=True),
        AccountKind("fees_expense", False, "debit"),
        AccountKind("promo_expense", False, "debit"),
        AccountKind("adjustments", False, "debit"),
    )
}
CUSTOMER_KINDS = tuple(k for k, v in ACCOUNT_KINDS.items() if v.customer)


# --- errors ---------------------------------------------------------------------------

class LedgerError(DomainError):
    code = "ledger_error"


class UnbalancedPosting(LedgerError, Invalid):
    code = "ledger_unbalanced"
    default_message = _l("The posting does not balance.")


class InsufficientBalance(LedgerError, Conflict):
    code = "insufficient_balance"
    default_message = _l("Not enough money on the balance for this operation.")


class ReferenceConflict(LedgerError, Conflict):
    code = "ledger_reference_conflict"
    default_message = _l("This operation was already recorded with different amounts.")


# --- keys and legs --------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class AccountKey:
    """Identifies an account: its name and currency (kind and owner derive from the name)."""

    name: str
    currency: str
    kind: str = field(compare=False)
    customer_id: int | None = field(default=None, compare=False)

    @property
    def spec(self) -> AccountKind:
        return ACCOUNT_KINDS[self.kind]


def customer_account(customer_id: int, kind: str, currency: str = "USD") -> AccountKey:
    spec = ACCOUNT_KINDS.get(kind)
    if spec is None or not spec.customer:
        raise ValueError(f"{kind!r} is not a customer account kind")
    return AccountKey(f"customer:{int(customer_id)}:{kind}", currency, kind, int(customer_id))


def system_account(kind: str, currency: str = "USD", sub: str | None = None) -> AccountKey:
    spec = ACCOUNT_KINDS.get(kind)
    if spec is None or spec.customer:
        raise ValueError(f"{kind!r} is not a system account kind")
    if spec.needs_sub != bool(sub):
        raise ValueError(f"{kind!r} {'needs' if spec.needs_sub else 'takes no'} sub-code")
    return AccountKey(f"{kind}:{sub}" if sub else kind, currency, kind)


@dataclass(frozen=True)
class Leg:
    account: AccountKey
    #: Positive = credit to ``account``, negative = debit.
    amount: Decimal


def transfer(src: AccountKey, dst: AccountKey, amount: Decimal) -> list[Leg]:
    """Legs moving ``amount`` from ``src`` to ``dst`` (same currency)."""
    return [Leg(src, -amount), Leg(dst, amount)]


@dataclass(frozen=True)
class PostResult:
    posting_id: int
    #: False when the reference existed already and nothing moved.
    created: bool


# --- validation -------------------------------------------------------------------------

def validate_legs(legs: Sequence[Leg]) -> None:
    """Raise ``UnbalancedPosting`` unless the legs make a valid posting."""
    if len(legs) < 2:
        raise UnbalancedPosting(_l("A posting needs at least two entries."))
    seen: set[AccountKey] = set()
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for leg in legs:
        if not isinstance(leg.amount, Decimal) or not leg.amount.is_finite():
            raise UnbalancedPosting(_l("Amounts must be exact decimal numbers."))
        if leg.amount == 0:
            raise UnbalancedPosting(_l("A posting entry cannot be zero."))
        if not is_ledger_exact(leg.amount):
            raise UnbalancedPosting(_l("Amounts are kept to 6 decimal places at most."))
        if leg.account.currency not in CURRENCIES:
            raise UnbalancedPosting(_l("Unknown currency."))
        if leg.account in seen:
            raise UnbalancedPosting(_l("An account appears twice in one posting."))
        seen.add(leg.account)
        totals[leg.account.currency] += leg.amount
    if any(total != 0 for total in totals.values()):
        raise UnbalancedPosting()


# --- accounts ---------------------------------------------------------------------------

def hot_shards() -> int:
    """Balance rows of a new system account (``LEDGER_HOT_SHARDS``)."""
    if has_app_context():
        return int(current_app.config.get("LEDGER_HOT_SHARDS", DEFAULT_HOT_SHARDS))
    return DEFAULT_HOT_SHARDS


@dataclass(frozen=True)
class _Acct:
    id: int
    shards: int


#: Account ids never change once committed (accounts are never deleted), so each process
#: remembers them per engine.  Accounts created by a transaction that has not committed
#: yet are kept out (``session.info[_NEW]``) until a later lookup finds them committed.
_ACCOUNT_CACHE: "weakref.WeakKeyDictionary[sa.Engine, dict[tuple[str, str], _Acct]]" = weakref.WeakKeyDictionary()
_NEW = "ledger_uncommitted_account_ids"


def reset_account_cache() -> None:
    """Forget cached account ids (tests that TRUNCATE the ledger call this)."""
    _ACCOUNT_CACHE.clear()


@sa.event.listens_for(Session, "after_commit")
@sa.event.listens_for(Session, "after_rollback")
def _forget_uncommitted(session: Session) -> None:
    session.info.pop(_NEW, None)


def _lookup(session: Session, keys: Iterable[AccountKey]) -> dict[AccountKey, _Acct]:
    engine = session.get_bind()
    cache = _ACCOUNT_CACHE.setdefault(engine, {})
    found = {k: cache[(k.name, k.currency)] for k in keys if (k.name, k.currency) in cache}
    by_name = {}
    for k in keys:
        if k not in found:
            by_name.setdefault(k.name, []).append(k)
    if not by_name:
        return found
    rows = session.connection().execute(
        sa.select(Account.id, Account.name, Account.currency, Account.shards)
        .where(Account.name.in_(list(by_name)))
    )
    uncommitted = session.info.get(_NEW, ())
    for r in rows:
        for k in by_name[r.name]:
            if k.currency == r.currency:
                found[k] = _Acct(r.id, r.shards)
                if r.id not in uncommitted:
                    cache[(r.name, r.currency)] = found[k]
    return found


def ensure_accounts(session: Session, keys: Iterable[AccountKey]) -> dict[AccountKey, _Acct]:
    """Find the accounts, creating missing ones (with their balance rows) in ``session``."""
    keys = set(keys)
    found = _lookup(session, keys)
    missing = keys - found.keys()
    if missing:
        shards = hot_shards()
        session.execute(
            insert_or_ignore(session, Account.__table__).on_conflict_do_nothing(
                index_elements=["name", "currency"]
            ),
            [
                {"name": k.name, "currency": k.currency, "kind": k.kind,
                 "customer_id": k.customer_id, "shards": 1 if k.spec.customer else shards}
                for k in sorted(missing)
            ],
        )
        session.info.setdefault(_NEW, set()).update(
            session.execute(sa.select(Account.id).where(Account.name.in_([k.name for k in missing]))).scalars()
        )
        created = _lookup(session, missing)
        session.execute(
            insert_or_ignore(session, AccountBalance.__table__).on_conflict_do_nothing(
                index_elements=["account_id", "shard"]
            ),
            [{"account_id": a.id, "shard": s, "balance": Decimal(0)}
             for a in created.values() for s in range(a.shards)],
        )
        found.update(created)
    return found


def open_customer_accounts(session: Session, customer_id: int, currency: str = "USD") -> None:
    """Create a new customer's accounts up front (``post`` would also create them)."""
    ensure_accounts(session, [customer_account(customer_id, k, currency) for k in CUSTOMER_KINDS])


# --- posting ------------------------------------------------------------------------------

def _display(key: AccountKey, stored: Decimal) -> Decimal:
    return stored if key.spec.normal == "credit" else -stored


def _same_legs(session: Session, posting_id: int, kind: str, legs: Sequence[Leg]) -> bool:
    posting_kind = session.execute(sa.select(Posting.kind).where(Posting.id == posting_id)).scalar_one()
    rows = session.execute(
        sa.select(Account.name, Account.currency, Entry.amount)
        .join(Account, Account.id == Entry.account_id)
        .where(Entry.posting_id == posting_id)
    )
    stored = Counter((r.name, r.currency, r.amount) for r in rows)
    wanted = Counter((l.account.name, l.account.currency, l.amount) for l in legs)
    return posting_kind == kind and stored == wanted


def _guard(key: AccountKey) -> int:
    """1 / -1 for a customer account (credit- / debit-normal), 0 for a system account."""
    if not key.spec.customer:
        return 0
    return 1 if key.spec.normal == "credit" else -1


def _insufficient(leg: Leg, stored: Decimal) -> InsufficientBalance:
    return InsufficientBalance(account=leg.account.name, balance=str(_display(leg.account, stored)),
                               needed=str(-_display(leg.account, leg.amount)))


def post(session: Session, *, kind: str, reference: str, legs: Sequence[Leg],
         actor: Actor, memo: str = "") -> PostResult:
    """Record one balanced posting and update balances, in the caller's transaction.

    On PostgreSQL the steps, finding or opening the accounts included, run server-side in
    one call of ``ledger_post_named()`` (migrations 0011, 0013); elsewhere (SQLite) the same steps
    run here.  Both are held to one test suite.
    """
    validate_legs(legs)
    if not reference or len(reference) > 200:
        raise UnbalancedPosting(_l("A posting needs a reference of at most 200 characters."))
    if session.get_bind().dialect.name == "postgresql":
        posting_id, created = _post_postgres(session, kind, reference, legs, actor, memo)
    else:
        accounts = ensure_accounts(session, (leg.account for leg in legs))
        posting_id, created = _post_python(session, accounts, kind, reference, legs, actor, memo)
    if not created and not _same_legs(session, posting_id, kind, legs):
        raise ReferenceConflict(reference=reference)
    if created:
        observability.count_on_commit(session, observability.LEDGER_POSTINGS, kind=kind)
    return PostResult(posting_id, created)


#: One posting, server-side, in one round trip (migrations 0011, 0013): the accounts go by name and
#: are found, or opened, by the function, so no account lookup precedes it.  Run on the
#: session's own DBAPI connection (same transaction): SQLAlchemy's statement machinery cost
#: as much client CPU as the rest of the posting on this hot path.  psycopg prepares the
#: statement on a connection after a few calls.
_PG_POST = (
    "SELECT posting_id, created, refused_leg, refused_balance FROM ledger_post_named("
    "%s, %s, %s, %s, %s, %s::text[], %s::text[], %s::bigint[], %s::smallint[], %s::text[], %s::integer[], %s)"
)


def _pg_array(values) -> str:
    """A PostgreSQL array literal (sent as text, cast server-side: psycopg's list adaptation
    inspects every element).  Elements are quoted; ``None`` is NULL."""
    return "{" + ",".join("NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "}"


def pg_post_arguments(legs: Sequence[Leg]) -> tuple:
    """``ledger_post_named()``'s leg arguments (after ``p_created_at``) for ``legs``: for a
    server-side function that posts as part of its work (``payout_apply_success``); the caller
    has validated them (:func:`validate_legs`)."""
    keys = [l.account for l in legs]
    return (_pg_array(k.name for k in keys), _pg_array(k.currency for k in keys),
            _pg_array(to_micros(l.amount) for l in legs), _pg_array(_guard(k) for k in keys),
            _pg_array(k.kind for k in keys), _pg_array(k.customer_id for k in keys), hot_shards())


def _post_postgres(session, kind, reference, legs, actor, memo) -> tuple[int, bool]:
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(_PG_POST, (kind, reference, actor.label, memo, utcnow(), *pg_post_arguments(legs)))
        posting_id, created, refused_leg, refused_balance = cursor.fetchone()
    finally:
        cursor.close()
    if refused_leg is not None:
        raise _insufficient(legs[refused_leg], from_micros(refused_balance))
    return posting_id, created


def _post_python(session, accounts, kind, reference, legs, actor, memo) -> tuple[int, bool]:
    conn = session.connection()  # Core statements: the ORM adds nothing on this path
    guarded = sorted((l for l in legs if _guard(l.account)), key=lambda l: accounts[l.account].id)
    stored: dict[int, Decimal] = {}
    if guarded:
        rows = conn.execute(
            sa.select(AccountBalance.account_id, AccountBalance.balance)
            .where(AccountBalance.account_id.in_([accounts[l.account].id for l in guarded]),
                   AccountBalance.shard == 0)
            .order_by(AccountBalance.account_id)
            .with_for_update()
        )
        stored = {r.account_id: r.balance for r in rows}

    # After the locks: a concurrent twin with the same reference has committed by now.
    existing = conn.execute(sa.select(Posting.id).where(Posting.reference == reference)).scalar_one_or_none()
    if existing is not None:
        return existing, False

    for leg in guarded:
        before = stored[accounts[leg.account].id]
        if _display(leg.account, leg.amount) < 0 and _display(leg.account, before + leg.amount) < 0:
            raise _insufficient(leg, before)

    posting_id = conn.execute(
        insert_or_ignore(session, Posting.__table__)
        .values(kind=kind, reference=reference, actor=actor.label, memo=memo, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["reference"])
        .returning(Posting.__table__.c.id)
    ).scalar_one_or_none()
    if posting_id is None:  # lost a race to an identical reference without customer locks
        return conn.execute(sa.select(Posting.id).where(Posting.reference == reference)).scalar_one(), False

    conn.execute(
        sa.insert(Entry.__table__),
        [{"posting_id": posting_id, "account_id": accounts[l.account].id,
          "amount": l.amount, "currency": l.account.currency} for l in legs],
    )
    updates = sorted(
        (0 if _guard(leg.account) else 1, accounts[leg.account].id,
         posting_id % accounts[leg.account].shards, leg.amount)
        for leg in legs
    )
    table = AccountBalance.__table__
    conn.execute(
        table.update()
        .where(table.c.account_id == sa.bindparam("b_account"), table.c.shard == sa.bindparam("b_shard"))
        .values(balance=table.c.balance + sa.bindparam("b_delta", type_=table.c.balance.type)),
        [{"b_account": a, "b_shard": s, "b_delta": d} for _, a, s, d in updates],
    )
    return posting_id, True


# --- reading --------------------------------------------------------------------------------

def stored_balance(session: Session, key: AccountKey) -> Decimal:
    """The signed sum of the account's entries as kept in its balance rows."""
    total = session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(AccountBalance.balance), 0))
        .join(Account, Account.id == AccountBalance.account_id)
        .where(Account.name == key.name, Account.currency == key.currency)
    ).scalar_one()
    return Decimal(total)


def balance(session: Session, key: AccountKey) -> Decimal:
    """The balance as people read it (debit-normal accounts negated)."""
    return _display(key, stored_balance(session, key))


def customer_balances(session: Session, customer_id: int, currency: str = "USD", *,
                      lock: bool = False) -> dict[str, Decimal]:
    """``{"pending": …, "available": …, "on_hold": …, "receivable": …}`` as displayed.

    ``lock=True`` takes the customer's balance rows ``FOR UPDATE`` (in the ledger's lock
    order) so a decision made on these figures holds until the transaction ends.
    """
    query = (
        sa.select(Account.kind, AccountBalance.balance)
        .join(AccountBalance, AccountBalance.account_id == Account.id)
        .where(Account.customer_id == customer_id, Account.currency == currency)
        .order_by(Account.id)
    )
    if lock:
        query = query.with_for_update(of=AccountBalance)
    result = {k: Decimal("0.000000") for k in CUSTOMER_KINDS}
    for kind, stored in session.execute(query):
        result[kind] = _display(customer_account(customer_id, kind, currency), stored)
    return result


def lock_customers(session: Session, customer_ids, currency: str = "USD") -> None:
    """Take several customers' balance rows ``FOR UPDATE`` in the ledger's lock order (account
    id), before any system row: a transaction that posts for two customers (an order's
    cashback and the referrer's reward) then cannot deadlock with one posting for either."""
    session.execute(
        sa.select(AccountBalance.account_id)
        .join(Account, AccountBalance.account_id == Account.id)
        .where(Account.customer_id.in_(sorted(set(customer_ids))), Account.currency == currency)
        .order_by(Account.id)
        .with_for_update(of=AccountBalance)
    ).all()


# --- verification ---------------------------------------------------------------------------

@dataclass
class VerifyReport:
    accounts: int = 0
    postings: int = 0
    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = (f"ledger: {self.accounts} accounts, {self.postings} postings, "
                f"{self.entries} entries: {'OK' if self.ok else f'{len(self.problems)} PROBLEM(S)'}")
        return "\n".join([head, *("  - " + p for p in self.problems)])


def verify(session: Session, *, limit: int = 50) -> VerifyReport:
    """Re-sum every entry and compare with the stored balances; check every posting."""
    report = VerifyReport(
        accounts=session.execute(sa.text("SELECT count(*) FROM ledger_account")).scalar_one(),
        postings=session.execute(sa.text("SELECT count(*) FROM ledger_posting")).scalar_one(),
        entries=session.execute(sa.text("SELECT count(*) FROM ledger_entry")).scalar_one(),
    )
    checks = {
        "balance mismatch": """
            SELECT a.name || ' ' || a.currency, COALESCE(e.s, 0), COALESCE(b.s, 0)
            FROM ledger_account a
            LEFT JOIN (SELECT account_id, SUM(amount) AS s FROM ledger_entry GROUP BY account_id) e
                   ON e.account_id = a.id
            LEFT JOIN (SELECT account_id, SUM(balance) AS s FROM ledger_balance GROUP BY account_id) b
                   ON b.account_id = a.id
            WHERE COALESCE(e.s, 0) <> COALESCE(b.s, 0)""",
        "unbalanced posting": """
            SELECT 'posting ' || posting_id || ' ' || currency, SUM(amount), 0
            FROM ledger_entry GROUP BY posting_id, currency HAVING SUM(amount) <> 0""",
        "posting with fewer than 2 entries": """
            SELECT 'posting ' || p.id, COUNT(e.id), 2
            FROM ledger_posting p LEFT JOIN ledger_entry e ON e.posting_id = p.id
            GROUP BY p.id HAVING COUNT(e.id) < 2""",
        "entry currency differs from its account": """
            SELECT 'entry ' || e.id, 0, 0 FROM ledger_entry e
            JOIN ledger_account a ON a.id = e.account_id WHERE e.currency <> a.currency""",
        "negative customer balance": """
            SELECT a.name || ' ' || a.currency, SUM(b.balance), 0
            FROM ledger_account a JOIN ledger_balance b ON b.account_id = a.id
            WHERE a.customer_id IS NOT NULL
            GROUP BY a.id, a.name, a.currency, a.kind
            HAVING (a.kind = 'receivable' AND SUM(b.balance) > 0)
                OR (a.kind <> 'receivable' AND SUM(b.balance) < 0)""",
    }
    for label, sql in checks.items():
        for what, got, expected in session.execute(sa.text(sql + f" LIMIT {int(limit)}")):
            report.problems.append(f"{label}: {what}: {from_micros(got)} (expected {from_micros(expected)})"
                                   if label != "posting with fewer than 2 entries"
                                   else f"{label}: {what} has {got}")
    return report
