"""Customer accounts: self-registration, e-mail confirmation, password reset, blocking.

Rules (plain functions; the views only parse forms and commit):

* **Registration** (:func:`register`) creates the login and the customer row through
  ``customers.create_customer`` (role Customer, ledger accounts), gives the customer a
  referral code, keeps keyed hashes of the registration device and IP (never the raw
  values), attributes a referral code (first touch, see ``portal.services.referrals``)
  and queues the confirmation mail for after the commit.  Customers come from every
  country: there is no country check.  A duplicate e-mail is refused with
  ``customers.EmailTaken`` (compared after ``normalize_email``).
* **Unconfirmed customers may log in** (they see the cabinet and can buy with cashback,
  so nothing is lost while the mail is on its way) **but cannot withdraw** until they
  confirm (:func:`ensure_can_withdraw`, called by ``payouts.request_withdrawal``).  Only
  self-registered customers (those with a registration fingerprint) need to confirm:
  customers created by staff, the demo or the network import are vouched for.
* **Tokens** are itsdangerous ``URLSafeTimedSerializer`` signatures under ``SECRET_KEY``
  with one salt per purpose; confirmation links live ``CONFIRM_TOKEN_MAX_AGE`` seconds,
  reset links ``RESET_TOKEN_MAX_AGE``.  A reset token carries a digest of the current
  password hash, so it works once: the new password changes the hash.  Asking for a reset
  never says whether the address has an account.
* **Blocking** (:func:`block` / :func:`unblock`, Support) locks the row, re-checks, changes
  and audits in the caller's transaction.  A blocked customer keeps the money where it is
  and can still log in and look, but new clicks and withdrawals are refused (``clicks`` and
  ``payouts`` check ``is_blocked``).
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Mapping

import sqlalchemy as sa
from flask_appbuilder.security.sqla.models import User
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from portal.errors import Conflict, DomainError, Invalid, NotFound
from portal.i18n import _l
from portal.models import Customer
from portal.models.types import utcnow
from portal.services import audit, customers, mail, referrals
from portal.services.audit import Actor
from portal.services.clicks import hash_ip

CONFIRM_SALT = "cashback.account.confirm"
RESET_SALT = "cashback.account.reset"
MIN_PASSWORD = 8
MAX_PASSWORD = 128
_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\]]{2,}$")


class BadToken(DomainError):
    status = 400
    code = "bad_token"
    default_message = _l("This link is not valid. Ask for a new one.")


class ExpiredToken(BadToken):
    code = "token_expired"
    default_message = _l("This link has expired. Ask for a new one.")


class EmailNotConfirmed(Conflict):
    code = "email_not_confirmed"
    default_message = _l("Confirm your e-mail address first: follow the link in the mail we sent you. "
                         "You can ask for a new mail in the cabinet.")


class AlreadyBlocked(Conflict):
    code = "already_blocked"
    default_message = _l("This customer is blocked already.")


class NotBlocked(Conflict):
    code = "not_blocked"
    default_message = _l("This customer is not blocked.")


# --- device and address ---------------------------------------------------------------------

@dataclass(frozen=True)
class Device:
    """What the registration request tells about the device (kept only as keyed hashes)."""

    user_agent: str = ""
    accept_language: str = ""
    #: A fingerprint computed by the page's script (optional; empty without JavaScript).
    client_fingerprint: str = ""
    ip: str | None = None


def fingerprint_hash(device: Device, secret: str) -> str:
    """HMAC-SHA256 (under the app secret) of user agent + languages + client fingerprint."""
    raw = "\x1f".join((device.user_agent.strip(), device.accept_language.strip(),
                       device.client_fingerprint.strip()[:200]))
    return hmac.new(secret.encode(), raw.encode(), hashlib.sha256).hexdigest()


# --- validation --------------------------------------------------------------------------------

def _check(email: str, name: str, password: str, locale: str, languages) -> list[dict]:
    errors = []
    if not _EMAIL.match(email) or len(email) > 254:
        errors.append({"field": "email", "code": "bad_email", "message": _l("Enter a valid e-mail address.")})
    if len(name) > 120:
        errors.append({"field": "name", "code": "name_too_long", "message": _l("The name is too long.")})
    errors += password_errors(password)
    if locale not in languages:
        errors.append({"field": "locale", "code": "bad_locale", "message": _l("Unknown language.")})
    return errors


def password_errors(password: str) -> list[dict]:
    if len(password) < MIN_PASSWORD:
        return [{"field": "password", "code": "password_too_short",
                 "message": _l("The password needs at least %(n)s characters.", n=MIN_PASSWORD)}]
    if len(password) > MAX_PASSWORD:
        return [{"field": "password", "code": "password_too_long", "message": _l("The password is too long.")}]
    return []


# --- registration ---------------------------------------------------------------------------------

def register(session: Session, security_manager, *, email: str, name: str, password: str, locale: str,
             country: str | None, referral_code: str | None, device: Device, config: Mapping,
             base_url: str) -> Customer:
    """Self-registration (the caller commits; the confirmation mail leaves after the commit)."""
    email = customers.normalize_email(email or "")
    name = (name or "").strip()
    errors = _check(email, name, password or "", locale, config["LANGUAGES"])
    if errors:
        raise Invalid(errors[0]["message"], code="invalid_registration", errors=errors)
    if referral_code:  # the FAQ's rule: not through the referral link of one's own partner account
        from portal.services import partners

        refusal = partners.partner_self_referral(session, email, referral_code,
                                                 partners.PartnerDirectory.from_config(config))
        if refusal:
            raise partners.SelfReferral(refusal)
    actor = Actor(label=f"customer:{email}")
    customer = customers.create_customer(session, security_manager, email=email, name=name, password=password,
                                         actor=actor, locale=locale, country=(country or None))
    secret = config["SECRET_KEY"]
    customer.registration_fingerprint = fingerprint_hash(device, secret)
    customer.registration_ip_hash = hash_ip(device.ip, secret) or None
    referrals.ensure_code(session, customer)
    session.flush()
    audit.record(session, Actor(label=f"customer:{email}", user_id=customer.user_id), "customer.registered",
                 "customer", customer.id, after={"locale": locale, "country": country,
                                                 "referral_code": referral_code or None})
    if referral_code:
        referrals.attribute(session, customer, referral_code, actor=actor)
    mail.send_account_mail_after_commit(session, "confirm", customer.id, base_url)
    return customer


def resend_confirmation(session: Session, customer: Customer, base_url: str) -> bool:
    """Queue a new confirmation mail; False when the address is confirmed already."""
    if customer.email_confirmed_at is not None or customer.is_blocked:
        return False
    mail.send_account_mail_after_commit(session, "confirm", customer.id, base_url)
    return True


def _serializer(config: Mapping, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(config["SECRET_KEY"], salt=salt)


def confirmation_token(config: Mapping, customer: Customer) -> str:
    return _serializer(config, CONFIRM_SALT).dumps({"c": customer.id, "e": customer.email})


def _load(config: Mapping, salt: str, token: str, max_age: int) -> dict:
    try:
        data = _serializer(config, salt).loads(token, max_age=max_age)
    except SignatureExpired:
        raise ExpiredToken() from None
    except BadSignature:
        raise BadToken() from None
    if not isinstance(data, dict) or not isinstance(data.get("c"), int):
        raise BadToken()
    return data


def _lock(session: Session, customer_id: int) -> Customer:
    customer = session.execute(sa.select(Customer).where(Customer.id == customer_id).with_for_update()
                               .execution_options(populate_existing=True)).scalar_one_or_none()
    if customer is None:
        raise NotFound(_l("No such customer."), code="unknown_customer")
    return customer


def confirm_email(session: Session, config: Mapping, token: str) -> tuple[Customer, bool]:
    """Confirm the address in ``token``; ``(customer, changed)`` — a second use changes nothing."""
    data = _load(config, CONFIRM_SALT, token, int(config["CONFIRM_TOKEN_MAX_AGE"]))
    try:
        customer = _lock(session, data["c"])
    except NotFound:
        raise BadToken() from None
    if customer.email != data.get("e"):
        raise BadToken()
    if customer.email_confirmed_at is not None:
        return customer, False
    customer.email_confirmed_at = utcnow()
    audit.record(session, Actor(label=f"customer:{customer.email}", user_id=customer.user_id),
                 "customer.email_confirmed", "customer", customer.id)
    return customer, True


def ensure_can_withdraw(customer: Customer) -> None:
    """Refuse withdrawals of self-registered customers who have not confirmed their e-mail."""
    if customer.awaiting_email_confirmation:
        raise EmailNotConfirmed()


# --- password reset ---------------------------------------------------------------------------------

def _password_digest(user: User) -> str:
    return hashlib.sha256((user.password or "").encode()).hexdigest()[:20]


def reset_token(session: Session, config: Mapping, customer: Customer) -> str | None:
    """A reset token bound to the current password hash (None: the customer has no login)."""
    user = session.get(User, customer.user_id) if customer.user_id is not None else None
    if user is None:
        return None
    return _serializer(config, RESET_SALT).dumps({"c": customer.id, "p": _password_digest(user)})


def request_password_reset(session: Session, email: str, base_url: str) -> Customer | None:
    """Queue a reset mail when a customer with a login has this address (the caller says the same
    thing either way, so nobody learns which addresses have accounts)."""
    email = customers.normalize_email(email or "")
    customer = session.execute(sa.select(Customer).where(Customer.email == email)).scalar_one_or_none()
    if customer is None or customer.user_id is None or customer.is_blocked:
        return None
    mail.send_account_mail_after_commit(session, "reset", customer.id, base_url)
    return customer


def check_reset_token(session: Session, config: Mapping, token: str) -> Customer:
    """The customer a valid, unused reset token is for (raises ``BadToken`` / ``ExpiredToken``)."""
    data = _load(config, RESET_SALT, token, int(config["RESET_TOKEN_MAX_AGE"]))
    customer = session.get(Customer, data["c"])
    user = session.get(User, customer.user_id) if customer is not None and customer.user_id else None
    if user is None or not hmac.compare_digest(str(data.get("p", "")), _password_digest(user)):
        raise BadToken()
    return customer


def reset_password(session: Session, config: Mapping, token: str, password: str) -> Customer:
    """Set a new password with a reset token (once: the token dies with the old hash)."""
    errors = password_errors(password or "")
    if errors:
        raise Invalid(errors[0]["message"], code="invalid_password", errors=errors)
    customer = check_reset_token(session, config, token)
    user = session.execute(sa.select(User).where(User.id == customer.user_id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one()
    data = _load(config, RESET_SALT, token, int(config["RESET_TOKEN_MAX_AGE"]))
    if not hmac.compare_digest(str(data.get("p", "")), _password_digest(user)):
        raise BadToken()  # another request used it meanwhile
    user.password = _hash(config, password)
    user.fail_login_count = 0
    customer.tokens_valid_after = utcnow()  # tokens minted with the old password die with it
    if customer.awaiting_email_confirmation:
        # the reset link reached the mailbox: that confirms the address as well
        customer.email_confirmed_at = utcnow()
    audit.record(session, Actor(label=f"customer:{customer.email}", user_id=customer.user_id),
                 "customer.password_reset", "customer", customer.id)
    return customer


# --- the customer's own profile (cabinet) -------------------------------------------------------------

class WrongPassword(DomainError):
    status = 422
    code = "wrong_password"
    default_message = _l("The current password is not right.")


def _hash(config: Mapping, password: str) -> str:
    return generate_password_hash(password, method=config.get("FAB_PASSWORD_HASH_METHOD", "scrypt"),
                                  salt_length=config.get("FAB_PASSWORD_HASH_SALT_LENGTH", 16))


def change_password(session: Session, config: Mapping, customer: Customer, current: str, new: str) -> None:
    """The logged-in customer's new password, after the current one (audited; the caller commits)."""
    user = session.execute(sa.select(User).where(User.id == customer.user_id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one_or_none()
    if user is None or customer.partner_linked:  # a partner's password lives in the partner account
        raise Conflict(_l("This account's password is managed elsewhere."), code="password_elsewhere")
    if not check_password_hash(user.password or "", current or ""):
        raise WrongPassword(errors=[{"field": "current", "code": "wrong_password",
                                     "message": WrongPassword.default_message}])
    errors = [{**e, "field": "password"} for e in password_errors(new or "")]
    if errors:
        raise Invalid(errors[0]["message"], code="invalid_password", errors=errors)
    user.password = _hash(config, new)
    customer.tokens_valid_after = utcnow()
    audit.record(session, Actor(label=f"customer:{customer.email}", user_id=customer.user_id),
                 "customer.password_changed", "customer", customer.id)


def set_locale(session: Session, config: Mapping, customer: Customer, locale: str) -> None:
    """The language of the customer's pages and mail (audited when it changes)."""
    if locale not in config["LANGUAGES"]:
        raise Invalid(_l("Unknown language."), code="bad_locale",
                      errors=[{"field": "locale", "code": "bad_locale", "message": _l("Unknown language.")}])
    if customer.locale != locale:
        audit.record(session, Actor(label=f"customer:{customer.email}", user_id=customer.user_id),
                     "customer.locale_changed", "customer", customer.id,
                     before={"locale": customer.locale}, after={"locale": locale})
        customer.locale = locale


# --- blocking (Support) -----------------------------------------------------------------------------

def block(session: Session, customer_id: int, reason: str, actor: Actor) -> Customer:
    """Block a customer with a reason (audited).  Their money stays where it is."""
    reason = (reason or "").strip()
    if not reason:
        raise Invalid(_l("Say why the customer is blocked."), code="reason_required")
    if len(reason) > 500:
        raise Invalid(_l("The reason is too long (500 characters at most)."), code="reason_too_long")
    customer = _lock(session, customer_id)
    if customer.is_blocked:
        raise AlreadyBlocked()
    customer.is_blocked, customer.block_reason = True, reason
    audit.record(session, actor, "customer.blocked", "customer", customer.id, reason=reason,
                 before={"is_blocked": False}, after={"is_blocked": True})
    return customer


def unblock(session: Session, customer_id: int, reason: str, actor: Actor) -> Customer:
    """Lift a block (audited, with a reason)."""
    reason = (reason or "").strip()
    if not reason:
        raise Invalid(_l("Say why the customer is unblocked."), code="reason_required")
    customer = _lock(session, customer_id)
    if not customer.is_blocked:
        raise NotBlocked()
    before = customer.block_reason
    customer.is_blocked, customer.block_reason = False, None
    audit.record(session, actor, "customer.unblocked", "customer", customer.id, reason=reason[:500],
                 before={"is_blocked": True, "block_reason": before}, after={"is_blocked": False})
    return customer
