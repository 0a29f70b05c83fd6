"""What a person reads instead of a stored code: the one place for enum labels.

Every stored code a page shows — a payout's state, an order's status, a claim's reason, a
provider's code, a yes/no column — goes through a table here (messages in the catalog,
Russian first), so each code reads the same on every page::

    {{ label('payout_state', payout.state) }}     {{ provider_name(row.provider_code) }}
    {{ yes_no(customer.is_blocked) }}

FAB list and show columns use :func:`column` (``formatters_columns``).  A code no table
knows is shown as it is (a new state is visible, not hidden); the walk test
(``tests/integration/test_russian_ui.py``) fails on such a code in a Russian page.

Flask-AppBuilder's roles, permissions and pages are names in its tables that permission
checks match (``can_list`` on ``CustomerView``): they are labelled, never renamed —
:func:`role_name` («Администратор»), :func:`permission_view_name` («просмотр списка — Клиенты»;
a menu entry reads as the menu shows it), used by ``portal/views/security.py``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, current_app, has_app_context

from portal.i18n import _l

__all__ = ["ENUMS", "label", "column", "shown", "provider_name", "yes_no", "country", "account_name", "account_owner", "actor_name", "mapping",
           "full_name", "last_name", "person", "role_name", "roles", "names", "permission_name", "view_menu_name", "permission_view_name",
           "permission_views", "init_app"]

EMPTY = "—"

#: kind → {code: label}.  The tables other modules name (``ORDER_STATUS_LABELS`` …) are these.
ENUMS: dict[str, Mapping[str, Any]] = {
    # --- payouts (staff) ---
    "payout_state": {
        "requested": _l("Requested"), "in_review": _l("In review"), "approved": _l("Approved"),
        "submitting": _l("Being sent"), "unknown": _l("Outcome unknown"), "succeeded": _l("Paid out"),
        "failed": _l("Failed"), "rejected": _l("Rejected"), "cancelled": _l("Cancelled"),
        "reversed": _l("Returned by the provider"),
    },
    #: What a customer reads for each payout state (cabinet, API).
    "payout_state_customer": {
        "requested": _l("Requested"),
        "in_review": _l("Being checked"),
        "approved": _l("Waiting to be sent"),
        "submitting": _l("Being sent"),
        "unknown": _l("Being confirmed by the payment service"),
        "succeeded": _l("Paid"),
        "failed": _l("Failed: the money is back on your balance"),
        "rejected": _l("Rejected: the money is back on your balance"),
        "cancelled": _l("Cancelled: the money is back on your balance"),
        "reversed": _l("Returned by the payment service: the money is back on your balance"),
    },
    "attempt_status": {
        "submitting": _l("Being sent"), "accepted": _l("Accepted"), "pending": _l("Pending at the provider"),
        "succeeded": _l("Paid out"), "failed_final": _l("Failed for good"), "failed_retryable": _l("Failed, will retry"),
        "unknown": _l("Outcome unknown"), "reversed": _l("Returned by the provider"),
    },
    "breaker": {"closed": _l("working"), "open": _l("paused")},
    "review_reason": {
        "amount_above_threshold": _l("Amount above the review threshold"),
        "new_payout_details": _l("New payout details"),
        "many_withdrawals_today": _l("Many withdrawals today"),
        "wallet_shared_by_customers": _l("Wallet used by several customers"),
    },
    "decision": {"approve": _l("Approved"), "reject": _l("Rejected")},
    "failure_code": {
        "invalid_account": _l("Invalid account"), "account_blocked": _l("Account blocked"),
        "identification_required": _l("Identification required"), "recipient_limit": _l("Recipient's limit"),
        "amount_too_small": _l("Amount too small"), "amount_too_large": _l("Amount too large"),
        "rejected_by_recipient": _l("Rejected by the recipient"), "declined": _l("Declined"),
        "duplicate_conflict": _l("Same key, different data"), "insufficient_funds": _l("Our balance too low"),
        "sender_limit": _l("Our limit reached"), "auth": _l("Credentials refused"), "config": _l("Configuration refused"),
        "rate_limited": _l("Too many requests"), "provider_unavailable": _l("Provider unavailable"),
        "timeout": _l("No answer in time"), "not_found": _l("Not known to the provider"),
    },
    # --- orders and the network ---
    "order_status": {
        "paid": _l("Paid"), "confirmed": _l("Confirmed"), "cancelled": _l("Cancelled"), "refunded": _l("Refunded"),
    },
    "booked_in": {"none": _l("No cashback"), "pending": _l("Pending"), "available": _l("Available")},
    "channel": {"web": _l("website"), "extension": _l("browser extension"), "app": _l("mobile app"),
                "api": _l("API"), "staff": _l("staff")},
    "event_source": {"postback": _l("postback"), "reconciliation": _l("reconciliation")},
    "event_outcome": {"applied": _l("applied"), "stale": _l("out of date, ignored"), "orphan": _l("orphan")},
    "rejection_reason": {
        "bad_signature": _l("Bad signature"), "missing_signature": _l("No signature"),
        "missing_timestamp": _l("No timestamp"), "stale_timestamp": _l("Timestamp too old or in the future"),
        "unknown_network": _l("Unknown network"), "malformed_body": _l("Malformed body"),
        "invalid_event": _l("Invalid event"), "event_conflict": _l("Event conflicts with an earlier one"),
    },
    "recon_kind": {
        "missing_here": _l("Missing here"), "missing_there": _l("Missing at the network"),
        "status_drift": _l("Status differs"), "amount_drift": _l("Amounts differ"), "match": _l("Match"),
    },
    "fx_source": {"cbr": _l("Bank of Russia"), "manual": _l("corrected by hand")},
    # --- the ledger ---
    "account_kind": {
        "pending": _l("Pending"), "available": _l("Available"), "on_hold": _l("On hold"),
        "receivable": _l("Receivable"), "network_receivable": _l("Network receivable"),
        "provider_float": _l("Float at the provider"), "fees_expense": _l("Provider fees"),
        "promo_expense": _l("Promo expense"), "adjustments": _l("Adjustments"),
    },
    "posting_kind": {
        "cashback.pending": _l("Cashback booked to pending"), "cashback.available": _l("Cashback made available"),
        "cashback.reversed": _l("Cashback reversed"), "withdrawal.hold": _l("Withdrawal held"),
        "withdrawal.release": _l("Withdrawal released"), "payout.succeeded": _l("Payout sent"),
        "payout.reversed": _l("Payout returned"), "adjustment.claim": _l("Claim credit"),
        "referral.reward": _l("Referral reward"), "referral.clawback": _l("Referral reward clawed back"),
    },
    # --- claims ---
    "claim_state": {
        "open": _l("Open"),
        "diagnosed": _l("Checked"),
        "escalated": _l("Sent to the network"),
        "resolved_credit": _l("Resolved: cashback credited"),
        "resolved_rejected": _l("Resolved: no cashback due"),
    },
    "claim_reason": {
        "no_click": _l("No click before the order"),
        "click_after_order": _l("Click after the order"),
        "channel_mismatch": _l("Paid in the app after a browser click"),
        "cart_before_click": _l("Items in the cart before the click"),
        "click_spam": _l("Too many clicks"),
        "foreign_coupon": _l("Coupon or bonus programme used"),
        "not_reported": _l("Not reported to us by the network"),
        "awaiting_confirmation": _l("Awaiting confirmation"),
        "cancelled_or_refunded": _l("Cancelled or refunded"),
        "credited": _l("Already credited"),
    },
    "credit_state": {"proposed": _l("Awaiting Finance"), "approved": _l("Approved"), "rejected": _l("Rejected")},
    "opened_by": {"customer": _l("the customer"), "staff": _l("Support")},
    # --- the audit log ---
    "audit_action": {
        "payout.requested": _l("Withdrawal requested"), "payout.in_review": _l("Payout sent to review"),
        "payout.approval": _l("Payout approval given"), "payout.approved": _l("Payout approved"),
        "payout.rejected": _l("Payout rejected"), "payout.cancelled": _l("Payout cancelled"),
        "payout.submitting": _l("Payout being sent"), "payout.unknown": _l("Payout outcome unknown"),
        "payout.succeeded": _l("Payout paid out"), "payout.failed": _l("Payout failed"),
        "payout.reversed": _l("Payout returned by the provider"), "payout.fixed": _l("Payout state fixed by hand"),
        "payout_details.created": _l("Payout details saved"),
        "provider.enabled": _l("Provider switched on"), "provider.disabled": _l("Provider switched off"),
        "provider.paused": _l("Provider paused"), "provider.resumed": _l("Provider resumed"),
        "provider.balance.low": _l("Provider balance low"),
        "claim.opened": _l("Claim opened"), "claim.diagnosed": _l("Claim checked"),
        "claim.escalated": _l("Claim sent to the network"), "claim.replied": _l("Reply sent"),
        "claim.rejected": _l("Claim rejected"), "claim.credited": _l("Claim credited"),
        "claim.credit.proposed": _l("Credit proposed"), "claim.credit.approved": _l("Credit approved"),
        "claim.credit.rejected": _l("Credit rejected"),
        "customer.created": _l("Customer created"), "customer.registered": _l("Customer registered"),
        "customer.email_confirmed": _l("E-mail confirmed"), "customer.password_reset": _l("Password reset"),
        "customer.blocked": _l("Customer blocked"), "customer.unblocked": _l("Customer unblocked"),
        "customer.partner_created": _l("Partner account created"),
        "customer.partner_linked": _l("Partner account linked"),
        "customer.partner_updated": _l("Partner account updated"),
        "referral.attributed": _l("Referral recorded"), "referral.flagged": _l("Referral flagged"),
        "referral.review.dismissed": _l("Referral review dismissed"),
        "referral.review.confirmed": _l("Self-referral confirmed"),
        "fx.rate.corrected": _l("Exchange rate corrected"), "fx.rate.reimported": _l("Exchange rate re-imported"),
        "fx.rates.imported": _l("Exchange rates imported"),
        "order.orphan.attached": _l("Orphan order attached"),
        "recon.import.created": _l("Network report imported"), "recon.line.applied": _l("Report line applied"),
        "promo.created": _l("Promo created"), "promo.updated": _l("Promo changed"),
        "job.requeued": _l("Job queued again"), "user.created": _l("Login created"),
    },
    "object_type": {
        "payout": _l("payout"), "payout_details": _l("payout details"), "provider": _l("provider"),
        "claim": _l("claim"), "claim_credit": _l("claim credit"), "customer": _l("customer"),
        "fx_day": _l("exchange rates of a day"), "fx_rate": _l("exchange rate"), "order": _l("order"),
        "recon_import": _l("network report"), "recon_line": _l("report line"), "promo": _l("promo"),
        "rq_job": _l("job"), "user": _l("login"), "posting": _l("posting"),
    },
    "system_actor": {
        "breaker": _l("circuit breaker"), "claims.diagnosis": _l("claim diagnosis"), "cli": _l("command line"),
        "janitor": _l("janitor"), "network": _l("the network"), "partner-login": _l("partner login"),
        "risk": _l("risk rules"), "seed-demo": _l("demo data"), "worker": _l("payout worker"),
    },
    #: The keys of an audit record's before/after and of other stored mappings.
    "field": {
        "account": _l("Account"), "amount_usd": _l("Amount, USD"), "approvals": _l("Approvals"),
        "args": _l("Arguments"), "attempt": _l("Attempt"), "balance": _l("Balance"), "base": _l("Currency"),
        "block_reason": _l("Block reason"), "channel": _l("Channel"), "claim_id": _l("Claim"),
        "code": _l("Code"), "country": _l("Country"), "created": _l("Added"), "customer_id": _l("Customer"),
        "day": _l("Day"), "email": _l("E-mail"), "enabled": _l("Switched on"), "error": _l("Error"),
        "fee": _l("Our fee"), "function": _l("Function"), "fx_rate": _l("Rate"), "is_blocked": _l("Blocked"),
        "key": _l("Idempotency key"), "kind": _l("Kind"), "locale": _l("Language"), "needed": _l("Needed"),
        "opened_by": _l("Opened by"), "order_date": _l("Order date"), "order_number": _l("Order number"),
        "ours": _l("Ours"), "partner_cabinet_url": _l("Partner cabinet"), "partner_id": _l("Partner id"),
        "partner_linked": _l("Partner account"), "payout_amount": _l("Payout amount"), "provider": _l("Provider"),
        "queue": _l("Queue"), "rate": _l("Rate"), "reason": _l("Reason"), "reason_code": _l("Verdict"),
        "reasons": _l("Reasons"), "referral_flag": _l("Self-referral flag"), "referrer_id": _l("Referred by"),
        "relevant": _l("Relevant records"), "reply_sent": _l("Reply sent"), "review": _l("Review"),
        "screenshot": _l("Screenshot"), "source": _l("Source"), "stage": _l("Stage"), "state": _l("State"),
        "threshold": _l("Threshold"), "updated": _l("Updated"), "order_id": _l("Order"), "click_id": _l("Click"),
        "click_ids": _l("Clicks"), "name": _l("Name"), "starts_at": _l("Starts"), "ends_at": _l("Ends"),
        "first_order_only": _l("First order only"), "cap_usd": _l("Cap per order, USD"),
        "pays_difference": _l("We pay the difference above the commission"), "is_active": _l("Active"),
        "id": _l("No."), "customer": _l("Customer"), "currency": _l("Currency"), "amount": _l("Amount"),
        "coupon_used": _l("Coupon used"), "items_in_cart_before_click": _l("Items in the cart before the click"),
        "network": _l("Network"), "sub_id": _l("Sub-id"), "moved": _l("Amount"),
    },
    "network": {"epn": "ePN"},
    "stage": {"registration": _l("registration"), "payout": _l("payout details"), "click": _l("click")},
    # --- customers ---
    "locale": {"ru": _l("Russian"), "en": _l("English")},
    "referral_reason": {
        "same_email": _l("Same e-mail address after normalization"),
        "same_device": _l("Same device fingerprint at registration"),
        "same_ip": _l("Same IP address as the referrer's registration or clicks"),
        "same_payout_account": _l("Same payout wallet or phone number"),
    },
    "review_state": {
        "open": _l("Open"), "dismissed": _l("Dismissed: not the same person"),
        "confirmed": _l("Confirmed: self-referral"),
    },
    # --- logins, roles and permissions: Flask-AppBuilder's tables.  Permission checks match the
    # stored names (``can_list`` on ``CustomerView``), so these are labels, never renames. ---
    "role": {
        "Admin": _l("Administrator"), "Support": _l("Support"), "Finance": _l("Finance"),
        "Developer": _l("Developer"), "Customer": _l("Customer"), "Public": _l("Guest"),
    },
    #: What a permission lets a role do (``ab_permission.name``).
    "permission": {
        "can_list": _l("view the list"), "can_show": _l("view a record"), "can_add": _l("add records"),
        "can_edit": _l("edit records"), "can_delete": _l("delete records"), "can_download": _l("download files"),
        "can_read": _l("open the pages"), "can_write": _l("act on the pages"),
        "can_userinfo": _l("own profile"),
        "can_this_form_get": _l("open the form"), "can_this_form_post": _l("send the form"),
        "can_chart": _l("view the chart"),
        "can_get": _l("read through the API"), "can_info": _l("field descriptions through the API"),
        "can_post": _l("create through the API"), "can_put": _l("change through the API"),
        "can_list_role_permissions": _l("list a role's permissions through the API"),
        "can_add_role_permissions": _l("add permissions to a role through the API"),
        "can_update_role_users": _l("set a role's users through the API"),
        "can_update_role_groups": _l("set a role's groups through the API"),
        "can_attach": _l("propose the customer of an orphan order"), "can_pii": _l("full payout accounts"),
        "block": _l("block and unblock"), "copyrole": _l("copy roles"),
        "resetmypassword": _l("change one's own password"), "resetpasswords": _l("reset passwords"),
        "userinfoedit": _l("edit one's own details"),
        "menu_access": _l("menu item"),
    },
    #: The views and APIs permissions name (a view's class); menu entries are named by the menu.
    "view": {
        # Flask-AppBuilder's own
        "HomeView": _l("Start page"), "UtilView": _l("Going back"), "LocaleView": _l("Language switch"),
        "AuthDBView": _l("Login page"), "SecurityApi": _l("Login through the API"),
        "UserInfoEditView": _l("Own details form"), "ResetPasswordView": _l("Password reset form"),
        "ResetMyPasswordView": _l("Own password form"), "UserDBModelView": _l("User accounts"),
        "RoleModelView": _l("Roles"), "UserGroupModelView": _l("Groups"),
        "UserStatsChartView": _l("Login statistics"), "PermissionModelView": _l("Kinds of permission"),
        "ViewMenuModelView": _l("Pages and menu items"), "PermissionViewModelView": _l("Permissions on pages"),
        "Permission": _l("Kinds of permission (API)"), "Role": _l("Roles (API)"), "User": _l("Users (API)"),
        "ViewMenu": _l("Pages and menu items (API)"), "PermissionViewMenu": _l("Permissions on pages (API)"),
        "Group": _l("Groups (API)"), "OpenApi": _l("API description"), "SwaggerView": _l("API description page"),
        "MenuApi": _l("Menu (API)"),
        # the portal's
        "CustomerView": _l("Customers"), "EntryInline": _l("Lines of a posting"), "PostingView": _l("Postings"),
        "AccountView": _l("Accounts"), "AuditLogView": _l("Audit log"), "GoView": _l("Tracked product links"),
        "CustomerCabinet": _l("Cabinet: balance, orders, clicks"), "CustomerWithdrawals": _l("Cabinet: withdrawals"),
        "CustomerClaims": _l("Cabinet: missing cashback"), "CustomerReferrals": _l("Cabinet: invite friends"),
        "CustomerProfile": _l("Cabinet: profile"),
        "OrderView": _l("All orders"), "OrphanOrderView": _l("Orphan orders"),
        "OrphanAttachments": _l("Attachments to confirm"), "NetworkEventView": _l("Network events"),
        "FxRateView": _l("Exchange rates"), "ReconciliationView": _l("Reconciliation"), "PromoView": _l("Promos"),
        "FinanceDashboard": _l("Finance dashboard"), "PostbackRejectionView": _l("Postback rejections"),
        "DeveloperDesk": _l("Developer desk"), "PayoutReview": _l("Review queue"),
        "PayoutAttention": _l("Needs attention"), "PayoutProviders": _l("Payout providers"),
        "PayoutReport": _l("Payouts by day"), "PayoutView": _l("All payouts"),
        "PayoutTechView": _l("Payouts (technical)"), "ClaimDesk": _l("Claims desk"),
        "ClaimCredits": _l("Credits to approve"), "CustomerTimeline": _l("Customer search and timeline"),
        "RegisterView": _l("Registration"), "ConfirmView": _l("E-mail confirmation"),
        "PasswordView": _l("Password reset by e-mail"), "ReferralLinkView": _l("Referral links"),
        "CustomerBlocking": _l("Blocking customers"), "ReferralReviews": _l("Self-referral reviews"),
        "NetworkPostbackApi": _l("Network postbacks (API)"), "LinksApi": _l("Product links (API)"),
        "CustomerApi": _l("Customer's data (API)"), "CustomerPayoutApi": _l("Customer's withdrawals (API)"),
        "CustomerClaimApi": _l("Customer's claims (API)"), "ProviderCallbackApi": _l("Provider notifications (API)"),
    },
}


def label(kind: str | Mapping[str, Any], code: Any) -> str:
    """The label of ``code`` in table ``kind`` (a name in :data:`ENUMS` or the table itself);
    the code itself when the table does not know it, an em dash for nothing."""
    if code is None or code == "" or code == []:
        return EMPTY
    if isinstance(code, (list, tuple)):  # a JSON list of codes (a payout's review reasons)
        return ", ".join(label(kind, c) for c in code)
    if isinstance(kind, str) and kind in NAMED:
        return NAMED[kind](code)
    table = ENUMS[kind] if isinstance(kind, str) else kind
    return str(table.get(code, code))


def column(kind: str) -> Callable[[Any], str]:
    """A FAB ``formatters_columns`` entry showing the column's codes through table ``kind``."""
    return lambda code: label(kind, code)


def shown(value: Any) -> Any:
    """A value as a page shows it: yes/no for a flag, an em dash for nothing, else as it is."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return yes_no(value)
    return value


def yes_no(value: Any) -> str:
    """``True`` → «да», ``False`` → «нет», ``None`` → an em dash."""
    if value is None:
        return EMPTY
    return str(_l("yes") if value else _l("no"))


def _locale() -> str:
    from portal.formatting import _locale as reader_locale

    return reader_locale()


def provider_name(code: str | None) -> str:
    """A payout provider's name in the reader's language (its plugin's ``verbose_name``); the
    code for a provider this app does not load."""
    if not code:
        return EMPTY
    provider = None
    if has_app_context():
        from portal import providers

        provider = providers.all_providers(current_app).get(code) if "payout_providers" in current_app.extensions \
            else None
    return provider.display_name(_locale()) if provider is not None else code


def country(code: str | None) -> str:
    """A country's name in the reader's language (Babel's territory names): ``UZ`` → «Узбекистан»."""
    if not code:
        return EMPTY
    from babel import Locale

    return Locale.parse(_locale()).territories.get(code.upper(), code)


def account_owner(name: str | None) -> str:
    """Whose a ledger account is, from its key: ``customer:1:available`` → «Клиент №1»,
    ``provider_float:yoomoney`` → «ЮMoney», ``network_receivable`` → «Долг сети»."""
    from portal.i18n import _

    if not name:
        return EMPTY
    parts = name.split(":")
    if parts[0] == "customer" and len(parts) >= 2:
        return _("Customer #%(id)s", id=parts[1])
    if len(parts) == 2:
        return provider_name(parts[1])
    return label("account_kind", parts[0])


def account_name(account: Any) -> str:
    """A ledger account as a person reads it: «Клиент #1: Доступно, USD», «Баланс у провайдера
    (ЮMoney), RUB» — never its key (``customer:1:available``)."""
    from portal.i18n import _

    kind = label("account_kind", account.kind)
    if account.customer_id is not None:
        return _("Customer #%(id)s: %(kind)s, %(currency)s", id=account.customer_id, kind=kind,
                 currency=account.currency)
    sub = account.name.split(":", 1)[1] if ":" in (account.name or "") else None
    if sub:
        kind = f"{kind} ({provider_name(sub)})"
    return f"{kind}, {account.currency}"


def actor_name(actor: str | None) -> str:
    """Who did it (an audit record's or a posting's ``actor``): a login's name as it is,
    the system's part in words («система: janitor» → «система (janitor)» in the catalog)."""
    from portal.i18n import _

    if not actor:
        return EMPTY
    kind, _sep, who = actor.partition(":")
    if kind == "system":
        return _("system (%(part)s)", part=label("system_actor", who))
    if kind in ("user", "customer"):
        return who
    return actor


def role_name(role: Any) -> str:
    """A role as a person reads it (a role or its name): ``Admin`` → «Администратор»; a role
    an administrator made up is shown as named."""
    return label("role", getattr(role, "name", role))


#: What logins made before it was left empty hold as a last name (``ab_user.last_name`` is NOT NULL).
NO_LAST_NAME = "-"


def full_name(user: Any) -> str:
    """A login's name as a person reads it: «Анна», never «Анна -» (a one-word name)."""
    last = (user.last_name or "").strip()
    return " ".join(part for part in ((user.first_name or "").strip(), "" if last == NO_LAST_NAME else last) if part)


def last_name(value: Any) -> str:
    """A login's last name as a column shows it: nothing stored (or the old ``-``) is an em dash."""
    return EMPTY if not value or value.strip() == NO_LAST_NAME else value


def roles(items: Any) -> str:
    """A login's or group's roles: «Поддержка, Финансы» (an em dash for none)."""
    return ", ".join(sorted(role_name(r) for r in items or ())) or EMPTY


def names(items: Any) -> str:
    """Related records (a role's users, a login's groups) by their names, an em dash for none."""
    return ", ".join(full_name(item) if hasattr(item, "first_name") else str(item) for item in items or ()) or EMPTY


def person(user: Any) -> str:
    """One login (who created or changed a record) by its name, an em dash for nobody."""
    return full_name(user) if user is not None else EMPTY


def _menu_entries() -> dict[str, tuple[Any, bool]]:
    """The app's menu: entry name → (its label, whether it is a section with entries)."""
    if not has_app_context() or getattr(current_app, "appbuilder", None) is None:
        return {}
    extensions = current_app.extensions
    if "cashback.menu_entries" not in extensions:
        found: dict[str, tuple[Any, bool]] = {}

        def visit(items) -> None:
            for item in items:
                found.setdefault(item.name, (item.label or item.name, bool(item.childs)))
                visit(item.childs)

        visit(current_app.appbuilder.menu.get_list())
        extensions["cashback.menu_entries"] = found
    return extensions["cashback.menu_entries"]


def permission_name(name: str | None) -> str:
    """What a permission lets a role do: ``can_list`` → «просмотр списка»."""
    return label("permission", name)


def view_menu_name(name: str | None) -> str:
    """A view, an API or a menu entry that permissions name: ``CustomerView`` → «Клиенты»;
    a menu entry (``Audit log``) reads as the menu shows it."""
    from portal.i18n import _

    if not name:
        return EMPTY
    if name in ENUMS["view"]:
        return label("view", name)
    entry = _menu_entries().get(name)
    # FAB's own entries carry an English label that its navbar translates when shown
    return _(str(entry[0])) if entry is not None else name


def _is_menu_section(name: str) -> bool:
    return _menu_entries().get(name, (None, False))[1]


def _verb(pv: Any) -> str:
    from portal.i18n import _

    permission, view = pv.permission.name, pv.view_menu.name
    return _("menu section") if permission == "menu_access" and _is_menu_section(view) else permission_name(permission)


def permission_view_name(pv: Any) -> str:
    """A permission on a view as a person reads it: ``can_list on CustomerView`` → «просмотр
    списка — Клиенты», ``menu_access on Finance`` → «раздел меню — Финансы»."""
    return f"{_verb(pv)} — {view_menu_name(pv.view_menu.name)}"


def permission_sort_key(pv: Any) -> tuple[str, int, str]:
    """Permissions listed by what they open, then by what they let do (in the order of the
    ``permission`` table: list, show, add, edit, delete … menu)."""
    verbs = list(ENUMS["permission"])
    name = pv.permission.name
    return (view_menu_name(pv.view_menu.name).casefold(), verbs.index(name) if name in verbs else len(verbs),
            _verb(pv).casefold())


def permission_views(items: Any) -> str:
    """A role's permissions, one line per view: «Клиенты: просмотр списка, просмотр записи»."""
    lines: dict[str, list[str]] = {}
    for pv in sorted(items or (), key=permission_sort_key):
        lines.setdefault(view_menu_name(pv.view_menu.name), []).append(_verb(pv))
    return "\n".join(f"{view}: {', '.join(verbs)}" for view, verbs in lines.items()) or EMPTY


#: The table a stored mapping's value goes through, by key (``state``: the first state table
#: that knows the code — payouts, claims, credits and reviews use different codes).
FIELD_ENUMS: dict[str, tuple[str, ...]] = {
    "state": ("payout_state", "claim_state", "credit_state", "review_state"),
    "reason_code": ("claim_reason",), "channel": ("channel",), "opened_by": ("opened_by",),
    "locale": ("locale",), "provider": ("provider",), "reasons": ("review_reason", "referral_reason"),
    "review": ("review_reason",), "stage": ("stage",), "country": ("country",), "kind": ("account_kind",),
}


def field_value(key: str, value: Any) -> str:
    """One value of a stored mapping as a person reads it (codes through their table)."""
    if isinstance(value, dict):
        return mapping(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(field_value(key, v) for v in value) or EMPTY
    if isinstance(value, bool) or value is None or value == "":
        return str(shown(value))
    for kind in FIELD_ENUMS.get(key, ()):
        if kind in NAMED or value in ENUMS[kind]:
            return label(kind, value)
    return str(value)


def mapping(value: Any) -> str:
    """A stored mapping (an audit record's before/after) as «Состояние: Открыта; Причина: …»."""
    if not isinstance(value, dict):
        return str(shown(value))
    return "; ".join(f"{label('field', key)}: {field_value(key, v)}" for key, v in sorted(value.items()))


#: Codes named by a function rather than a table: ``label("provider", "qiwi")``.
NAMED: dict[str, Callable[[str], str]] = {"provider": provider_name, "country": country, "actor": actor_name}


def init_app(app: Flask) -> None:
    """``label``, ``provider_name`` and ``yes_no`` as Jinja globals (and filters)."""
    helpers = {"label": label, "provider_name": provider_name, "yes_no": yes_no, "country": country,
               "mapping": mapping, "field_value": field_value, "full_name": full_name}
    app.jinja_env.globals.update(helpers)
    app.jinja_env.filters.update(helpers)
