"""Roles and permissions as code (the RBAC matrix of DESIGN.md).

Roles are built from named permission sets by ``sync_roles`` (CLI ``cashback sync-roles``):
idempotent, run on deploy, never on every boot.  Each role's permissions are *replaced*
by its definition, so a permission removed here is removed from the role too.  Admin
gets every permission that exists.
"""
from __future__ import annotations

from flask_appbuilder import AppBuilder

Perm = tuple[str, str]  # (permission, view or menu name)


def _view(view: str, *perms: str) -> list[Perm]:
    return [(p, view) for p in perms]


def _menu(*names: str) -> list[Perm]:
    return [("menu_access", n) for n in names]


#: Named permission sets: what a capability needs in FAB terms.
PERMISSION_SETS: dict[str, list[Perm]] = {
    # every staff login may see its own profile and change its password
    "self.profile": [
        ("can_userinfo", "UserDBModelView"),
        ("can_this_form_get", "ResetMyPasswordView"),
        ("can_this_form_post", "ResetMyPasswordView"),
    ],
    "customers.read": _view("CustomerView", "can_list", "can_show") + _menu("People", "Customers"),
    "ledger.read": (
        _view("PostingView", "can_list", "can_show")
        + _view("AccountView", "can_list", "can_show")
        + _menu("Ledger", "Postings", "Accounts")
    ),
    "audit.read": _view("AuditLogView", "can_list", "can_show") + _menu("Security", "Audit log"),
    # orders, orphan orders and the network's events, read-only (portal/views/support.py)
    "orders.read": (
        _view("OrderView", "can_list", "can_show")
        + _view("OrphanOrderView", "can_list", "can_show")
        + _view("NetworkEventView", "can_list", "can_show")
        + _menu("Orders", "All orders", "Orphan orders", "Network events")
    ),
    # propose the customer of an orphan order (nothing is booked yet; audited)
    "orphans.attach": [("can_attach", "OrphanOrderView")],
    # confirm (books its cashback) or reject a proposed attachment; four eyes is the service's
    "orphans.confirm": (_view("OrphanAttachments", "can_read", "can_write")
                        + _menu("Orders", "Attachments to confirm")),
    # exchange rates: list, CBR upload, corrections (portal/views/finance.py)
    "fx.manage": _view("FxRateView", "can_list", "can_show", "can_write") + _menu("Finance", "Exchange rates"),
    # the network's order report: import, differences, apply
    "recon.manage": _view("ReconciliationView", "can_read", "can_write") + _menu("Finance", "Reconciliation"),
    "promos.manage": (_view("PromoView", "can_list", "can_show", "can_add", "can_edit")
                      + _menu("Finance", "Promos")),
    # refused postbacks, for Developers (no customer data)
    "postbacks.read": (_view("PostbackRejectionView", "can_list", "can_show")
                       + _menu("Developers", "Postback rejections")),
    # a customer's own data through the JSON API (portal/api/customer.py): read = balance,
    # orders, clicks; write = create clicks.  Scoped to the login's customer row, never by id.
    "customer.self": _view("CustomerApi", "can_read", "can_write"),
    # the customer's cabinet pages (portal/views/cabinet.py) and their menu
    "customer.cabinet": (
        _view("CustomerCabinet", "can_read", "can_write")
        + _menu("Cabinet", "Cabinet balance", "Cabinet statistics", "Cabinet clicks")
    ),
    # the customer's own withdrawals: the API (portal/api/payouts.py) and the cabinet's
    # withdraw page; read = methods, details, withdrawals; write = add details, withdraw, cancel
    "customer.payouts": (
        _view("CustomerPayoutApi", "can_read", "can_write")
        + _view("CustomerWithdrawals", "can_read", "can_write")
        + _menu("Cabinet", "Cabinet withdraw")
    ),
    # every payout, read-only, account masked (portal/views/payouts_desk.py)
    "payouts.read": _view("PayoutView", "can_list", "can_show") + _menu("Payouts", "All payouts"),
    # full payout accounts where payouts are shown
    "payouts.pii": [("can_pii", "PayoutView")],
    # payouts without customer data (no customer, no account), for Developers
    "payouts.read_no_pii": _view("PayoutTechView", "can_list", "can_show") + _menu("Payouts", "Payouts (no PII)"),
    # the review queue: approve/reject (maker-checker is the service's)
    "payouts.review": _view("PayoutReview", "can_read", "can_write") + _menu("Payouts", "Review queue"),
    # payouts in unknown / needing attention, and fixing their state by hand
    "payouts.fix": _view("PayoutAttention", "can_read", "can_write") + _menu("Payouts", "Needs attention"),
    # the provider switchboard, read: kill switch, breaker, balances, held payouts
    "providers.read": _view("PayoutProviders", "can_read") + _menu("Payouts", "Payout providers"),
    # the kill switch, resuming a paused provider, refreshing its balance
    "providers.manage": [("can_write", "PayoutProviders")],
    "payouts.report": _view("PayoutReport", "can_read") + _menu("Payouts", "Payouts by day"),
    # missing-cashback claims (portal/views/claims.py): the desk, read-only
    "claims.read": (_view("ClaimDesk", "can_read")
                    + _menu("Claims", "Claims list", "Claims breaching SLA")),
    # work claims: open one for a customer, reply, reject, escalate, propose a credit
    "claims.work": [("can_write", "ClaimDesk")],
    # manual credits proposed by Support: list, approve/reject (four eyes is the service's)
    "claims.credits": _view("ClaimCredits", "can_read", "can_write") + _menu("Claims", "Credits to approve"),
    # the customer's own claims: the API (portal/api/claims.py) and the cabinet pages
    "customer.claims": (_view("CustomerClaimApi", "can_read", "can_write")
                        + _view("CustomerClaims", "can_read", "can_write") + _menu("Cabinet", "Cabinet claims")),
    # customer search and the customer timeline (portal/views/timeline.py); wallets masked
    # unless the role also has payouts.pii
    "customers.timeline": _view("CustomerTimeline", "can_read") + _menu("People", "Customer search"),
    # the Developer desk (portal/views/devdesk.py): plugins, queues, failed jobs, sandbox page
    "developers.desk": (_view("DeveloperDesk", "can_read")
                        + _menu("Developers", "Developer desk", "Failed jobs", "Payout sandbox")),
    # requeue a failed job, fire a test payout at a local provider sandbox (both audited)
    "developers.operate": [("can_write", "DeveloperDesk")],
    # the Finance dashboard: figures, charts, CSV exports (portal/views/dashboard.py)
    "finance.dashboard": _view("FinanceDashboard", "can_read") + _menu("Finance", "Finance dashboard"),
    # the customer's own profile page (portal/views/home.py): language, password
    "customer.profile": _view("CustomerProfile", "can_read", "can_write") + _menu("Cabinet", "Cabinet profile"),
    # the customer's referral page (portal/views/accounts.py): link, referred friends, rewards
    "customer.referrals": _view("CustomerReferrals", "can_read") + _menu("Cabinet", "Cabinet referrals"),
    # block/unblock a customer with a reason; self-referral reviews: dismiss or confirm (audited)
    "customers.block": (_view("CustomerBlocking", "can_read", "can_write")
                        + _view("ReferralReviews", "can_read", "can_write") + _menu("People", "Referral reviews")
                        + [("block", "CustomerView")]),  # the "Block or unblock" action
}

ADMIN = "Admin"

#: Role -> permission sets.  Admin is special: it receives every permission.
ROLE_DEFINITIONS: dict[str, list[str]] = {
    "Support": ["self.profile", "customers.timeline", "customers.read", "orders.read", "orphans.attach", "payouts.read", "claims.read", "claims.work", "customers.block"],
    "Finance": ["self.profile", "customers.timeline", "customers.read", "ledger.read", "orders.read", "fx.manage", "recon.manage",
                "promos.manage", "payouts.read", "payouts.pii", "payouts.review", "payouts.fix",
                "providers.read", "providers.manage", "payouts.report", "claims.read", "claims.credits", "finance.dashboard",
                "orphans.confirm"],
    "Developer": ["self.profile", "postbacks.read", "payouts.read_no_pii", "providers.read", "developers.desk",
                  "developers.operate"],
    "Customer": ["customer.profile", "customer.self", "customer.cabinet", "customer.payouts", "customer.claims", "customer.referrals"],
}
ROLES = (ADMIN, *ROLE_DEFINITIONS)


def customer_only_menus() -> frozenset[str]:
    """Menu entries only the customer's sets open (the cabinet).  Admin, who is never a customer,
    does not get them: every page there would only say "not a customer"."""
    def menus(customer: bool) -> set[str]:
        return {view for name, perms in PERMISSION_SETS.items() if name.startswith("customer.") == customer
                for perm, view in perms if perm == "menu_access"}

    return frozenset(menus(True) - menus(False))


class RoleSyncError(RuntimeError):
    """A role definition names a permission that no view declares."""


def sync_roles(appbuilder: AppBuilder) -> dict[str, int]:
    """Create all permissions, then make every role match its definition.

    Returns ``{role: number of permissions}``.  Safe to run any number of times.
    """
    sm = appbuilder.sm
    for name in ROLES:  # FAB grants new permissions to Admin: it must exist first
        if sm.find_role(name) is None:
            sm.add_role(name)
    appbuilder.add_permissions(update_perms=True)
    result: dict[str, int] = {}
    for name, sets in ROLE_DEFINITIONS.items():
        wanted = []
        for set_name in sets:
            for perm, view in PERMISSION_SETS[set_name]:
                pv = sm.find_permission_view_menu(perm, view)
                if pv is None:
                    raise RoleSyncError(f"role {name}: permission {perm} on {view} does not exist "
                                        f"(set {set_name!r}); is the view registered?")
                wanted.append(pv)
        role = sm.find_role(name)
        role.permissions = sorted(set(wanted), key=lambda pv: pv.id)
        result[name] = len(role.permissions)
    admin = sm.find_role(ADMIN)
    hidden = customer_only_menus()
    admin.permissions = [pv for pv in appbuilder.session.query(sm.permissionview_model).order_by(
        sm.permissionview_model.id) if not (pv.permission.name == "menu_access" and pv.view_menu.name in hidden)]
    result[ADMIN] = len(admin.permissions)
    appbuilder.session.commit()
    return result
