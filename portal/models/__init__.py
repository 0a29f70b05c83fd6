"""SQLAlchemy models, one module per aggregate.  Importing this registers them all."""
from .audit import AuditRecord
from .customers import Customer
from .ledger import Account, AccountBalance, Entry, Posting

__all__ = ["Account", "AccountBalance", "AuditRecord", "Customer", "Entry", "Posting"]
