"""SQLAlchemy models, one module per aggregate.  Importing this registers them all."""
from .audit import AuditRecord
from .cashback import (Click, ClickVisit, FxRate, NetworkEvent, Order, PostbackRejection, Promo,
                       ReconImport, ReconLine)
from .customers import Customer
from .claims import Claim, ClaimCredit
from .ledger import Account, AccountBalance, Entry, Posting
from .referrals import ReferralReview
from .payouts import (Payout, PayoutApproval, PayoutAttempt, PayoutDetails, ProviderCounter, ProviderHandle,
                      ProviderState)

__all__ = ["Account", "AccountBalance", "AuditRecord", "Claim", "ClaimCredit", "Click", "ClickVisit", "Customer", "Entry",
           "FxRate", "NetworkEvent", "Order", "Posting", "PostbackRejection", "Promo", "ReconImport",
           "ReconLine", "ReferralReview", "Payout", "PayoutApproval", "PayoutAttempt", "PayoutDetails", "ProviderState", "ProviderHandle", "ProviderCounter"]
