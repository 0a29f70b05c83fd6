"""Double-entry ledger tables.

* ``ledger_account`` — one row per (name, currency); ``name`` is e.g.
  ``customer:42:available`` or ``provider_float:yoomoney``.
* ``ledger_balance`` — the materialized balance, split in ``shards`` rows per account.
  Customer accounts have one shard (locked with ``SELECT … FOR UPDATE``); hot system
  accounts have several, so concurrent postings update different rows.
* ``ledger_posting`` — a journal entry with a unique ``reference`` (idempotency).
* ``ledger_entry`` — its lines; per posting and currency they sum to zero.

Sign convention: an entry's amount is positive for a credit.  See
``portal.services.ledger`` for the rules.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask_appbuilder.models.sqla import Model
from sqlalchemy.orm import relationship

from .types import BigId, Money, UtcDateTime, utcnow


class Account(Model):
    __tablename__ = "ledger_account"
    __table_args__ = (
        sa.UniqueConstraint("name", "currency", name="uq_ledger_account_name_currency"),
        {"extend_existing": True},
    )

    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(120), nullable=False)
    #: pending, available, on_hold, receivable, network_receivable, provider_float, …
    kind = sa.Column(sa.String(40), nullable=False)
    customer_id = sa.Column(sa.Integer, sa.ForeignKey("customer.id"), nullable=True, index=True)
    currency = sa.Column(sa.String(3), nullable=False)
    #: Number of ``ledger_balance`` rows (1 for customer accounts).
    shards = sa.Column(sa.SmallInteger, nullable=False, default=1)
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)

    customer = relationship("Customer")

    def __repr__(self) -> str:
        return f"<Account {self.name} {self.currency}>"

    def __str__(self) -> str:  # as pages show it (FAB's related columns)
        from portal.labels import account_name

        return account_name(self)


class AccountBalance(Model):
    __tablename__ = "ledger_balance"

    account_id = sa.Column(sa.Integer, sa.ForeignKey("ledger_account.id"), primary_key=True)
    shard = sa.Column(sa.SmallInteger, primary_key=True, autoincrement=False)
    balance = sa.Column(Money, nullable=False, default=0)


class Posting(Model):
    __tablename__ = "ledger_posting"

    id = sa.Column(BigId, primary_key=True)
    #: What kind of movement: ``cashback.pending``, ``withdrawal.hold``, ``adjustment`` …
    kind = sa.Column(sa.String(40), nullable=False, index=True)
    #: Unique business reference: posting twice with it is a no-op.
    reference = sa.Column(sa.String(200), nullable=False, unique=True)
    actor = sa.Column(sa.String(120), nullable=False)
    memo = sa.Column(sa.Text, nullable=False, default="")
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow, index=True)

    entries = relationship("Entry", back_populates="posting", order_by="Entry.id")

    def __repr__(self) -> str:
        return f"<Posting {self.id} {self.kind} {self.reference}>"

    def __str__(self) -> str:
        from portal.i18n import _

        return _("Posting #%(id)s", id=self.id)


class Entry(Model):
    __tablename__ = "ledger_entry"

    id = sa.Column(BigId, primary_key=True)
    posting_id = sa.Column(BigId, sa.ForeignKey("ledger_posting.id"), nullable=False, index=True)
    account_id = sa.Column(sa.Integer, sa.ForeignKey("ledger_account.id"), nullable=False, index=True)
    #: Positive = credit, negative = debit.
    amount = sa.Column(Money, nullable=False)
    currency = sa.Column(sa.String(3), nullable=False)

    posting = relationship("Posting", back_populates="entries")
    account = relationship("Account")


# --- figures the staff lists show (FAB's account and posting lists call these per row) ---

def _balance(self: Account):
    """The balance as the ledger reads it (``ledger.balance``): credit-normal accounts as
    stored, debit-normal ones (what others owe us) with the sign turned."""
    from portal.services.ledger import ACCOUNT_KINDS

    stored = sa.orm.object_session(self).execute(  # SUM keeps the column's type: a Decimal
        sa.select(sa.func.coalesce(sa.func.sum(AccountBalance.balance), 0))
        .where(AccountBalance.account_id == self.id)).scalar_one()
    spec = ACCOUNT_KINDS.get(self.kind)
    return stored if spec is None or spec.normal == "credit" else -stored


def _moved(self: Posting):
    """What the posting moved, ``(amount, currency)``: the sum of its credits."""
    total, currency = sa.orm.object_session(self).execute(
        sa.select(sa.func.coalesce(sa.func.sum(Entry.amount), 0), sa.func.min(Entry.currency))
        .where(Entry.posting_id == self.id, Entry.amount > 0)).one()
    return total, currency


Account.balance = _balance
Posting.moved = _moved
