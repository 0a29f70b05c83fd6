"""CPA-partner accounts: the partner directory client, partner login and the partner-linked rules.

A person with a partner account on the CPA platform logs in to the cashback service with
those credentials.  The platform's **partner directory** answers for them over HTTP (the
protocol is in ``docs/partner-directory.md``; ``portal/partner_directory.py`` is a local
directory speaking it, for the demo and the tests)::

    POST /api/v1/auth                          {"login", "password"}
         200 {"partner_id", "email", "name", "locale", "cabinet_url", "referral_code"}
         401 {"error": "invalid_credentials"}
    GET  /api/v1/partners/by-referral/<code>   200 the same partner object | 404 {"error": "not_found"}

Every request carries ``Authorization: Bearer <CASHBACK_PARTNER_DIRECTORY_TOKEN>``.  An empty
``CASHBACK_PARTNER_DIRECTORY_URL`` switches partner login off.

Rules kept here (plain functions; the security manager and the views only call them):

* **No local fallback.**  A directory that cannot be reached in time, or answers anything
  but the protocol's shapes, is :class:`DirectoryUnavailable` ("try later"): the login is
  refused, it is never retried against a local password.  A partner-linked login has a
  random local password nobody knows, so only the directory can let it in.
* **No takeover by e-mail.**  An existing customer is linked (:func:`login_partner`) only
  by the e-mail the directory returned for the credentials just checked: the directory
  proves the e-mail is the partner's.  A staff login with that e-mail is never linked
  (:class:`PartnerLoginRefused`).  Linking replaces the customer's local password by an
  unusable one and is audited (``customer.partner_linked``); a new account is audited as
  ``customer.partner_created``.
* **Partner-linked accounts** still earn (clicks, orders), but their statistics and
  withdrawals live in the partner account: the cabinet shows :func:`partner_notice` with
  a link, and a withdrawal is refused with :class:`PartnerLinked` (409, ``partner_linked``).
* **Self-referral** (the FAQ's rule): registering through the referral code of one's own
  partner account is refused (:func:`partner_self_referral`).
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from portal.errors import Conflict, DomainError
from portal.i18n import _l
from portal.models import Customer
from portal.models.types import utcnow
from portal.services import audit, customers
from portal.services.audit import Actor

log = logging.getLogger(__name__)

#: The audit actor of everything a partner login does.
ACTOR = Actor.system("partner-login")
#: The header carrying the service token.
TOKEN_HEADER = "Authorization"
AUTH_PATH = "/api/v1/auth"
BY_REFERRAL_PATH = "/api/v1/partners/by-referral/"


class DirectoryUnavailable(DomainError):
    """The directory could not be asked (down, slow, broken answer): try later, never fall back."""

    status = 503
    code = "partner_directory_unavailable"
    default_message = _l("The partner directory is unavailable right now: partner logins cannot be "
                         "checked. Please try again later.")


class PartnerLoginRefused(DomainError):
    """The directory accepted the credentials, but this service cannot let them in."""

    status = 403
    code = "partner_login_refused"
    default_message = _l("This e-mail belongs to a staff login: a partner account cannot be used to "
                         "log in to it. Please contact support.")


class PartnerLinked(Conflict):
    """A partner-linked customer asked for what lives in the partner account."""

    code = "partner_linked"
    default_message = _l("Your statistics and withdrawals are in your partner account.")


class SelfReferral(Conflict):
    code = "partner_self_referral"
    default_message = _l("You cannot register through the referral link of your own partner account.")


@dataclass(frozen=True)
class PartnerInfo:
    """A partner as the directory describes them."""

    partner_id: str
    email: str
    name: str
    locale: str
    #: The partner's own cabinet on the CPA platform (statistics, withdrawals).
    cabinet_url: str
    referral_code: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> PartnerInfo:
        """:raises DirectoryUnavailable: not the protocol's partner object."""
        if not isinstance(data, dict):
            raise DirectoryUnavailable()
        try:
            partner_id, email = str(data["partner_id"]).strip(), str(data["email"]).strip()
        except KeyError:
            raise DirectoryUnavailable() from None
        cabinet_url = str(data.get("cabinet_url") or "")
        if not partner_id or len(partner_id) > 64 or "@" not in email or len(cabinet_url) > 300 \
                or not cabinet_url.startswith(("https://", "http://")):
            raise DirectoryUnavailable()
        locale = str(data.get("locale") or "ru")
        return cls(partner_id=partner_id, email=customers.normalize_email(email),
                   name=str(data.get("name") or "")[:120], locale=locale if locale in ("ru", "en") else "ru",
                   cabinet_url=cabinet_url, referral_code=data.get("referral_code") or None)


class PartnerDirectory:
    """The directory's HTTP client (``requests``; connect and read timeouts, in seconds)."""

    def __init__(self, base_url: str, token: str, *, connect_timeout: float = 2.0, read_timeout: float = 5.0,
                 http: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = (connect_timeout, read_timeout)
        self.http = http or requests.Session()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PartnerDirectory | None:
        """The configured directory, or None when partner login is off (empty URL)."""
        url = config.get("PARTNER_DIRECTORY_URL") or ""
        if not url:
            return None
        return cls(url, config.get("PARTNER_DIRECTORY_TOKEN") or "",
                   connect_timeout=float(config.get("PARTNER_DIRECTORY_CONNECT_TIMEOUT", 2.0)),
                   read_timeout=float(config.get("PARTNER_DIRECTORY_READ_TIMEOUT", 5.0)))

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.http.request(method, self.base_url + path, timeout=self.timeout,
                                     headers={TOKEN_HEADER: f"Bearer {self.token}"}, **kwargs)
        except requests.RequestException as exc:
            log.warning("partner directory: %s %s failed: %s", method, path, type(exc).__name__)
            raise DirectoryUnavailable() from None

    @staticmethod
    def _partner(response: requests.Response) -> PartnerInfo:
        try:
            data = response.json()
        except ValueError:
            log.warning("partner directory: an answer that is not JSON (HTTP %s)", response.status_code)
            raise DirectoryUnavailable() from None
        return PartnerInfo.from_json(data)

    def authenticate(self, login: str, password: str) -> PartnerInfo | None:
        """The partner these credentials belong to; None when the directory says they are wrong.

        :raises DirectoryUnavailable: no answer in time, or an answer outside the protocol.
        """
        response = self._call("POST", AUTH_PATH, json={"login": login, "password": password})
        if response.status_code == 401:
            return None
        if response.status_code != 200:
            log.warning("partner directory: auth answered HTTP %s", response.status_code)
            raise DirectoryUnavailable()
        return self._partner(response)

    def by_referral(self, code: str) -> PartnerInfo | None:
        """The partner whose referral code this is, or None.  :raises DirectoryUnavailable:"""
        response = self._call("GET", BY_REFERRAL_PATH + quote(code, safe=""))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            log.warning("partner directory: by-referral answered HTTP %s", response.status_code)
            raise DirectoryUnavailable()
        return self._partner(response)


# --- partner login -------------------------------------------------------------------------------

def _unusable_password() -> str:
    """A hash of a random secret nobody is told: no local password opens this login."""
    return generate_password_hash(secrets.token_urlsafe(32))


def _partner_fields(customer: Customer) -> dict[str, Any]:
    return {"partner_linked": customer.partner_linked, "partner_id": customer.partner_id,
            "partner_cabinet_url": customer.partner_cabinet_url}


def login_partner(session: Session, sm, info: PartnerInfo) -> Customer:
    """The customer (with a login) for a partner the directory has just authenticated.

    Found by ``partner_id``, else linked by the directory-confirmed e-mail, else created
    (role Customer, an unusable local password).  Not committed.

    :raises PartnerLoginRefused: the e-mail is a staff login's, or the account is another
        partner's, or its login has more than the Customer role.
    """
    customer = session.execute(sa.select(Customer).where(Customer.partner_id == info.partner_id)
                               .with_for_update()).scalar_one_or_none()
    if customer is None:
        customer = session.execute(sa.select(Customer).where(Customer.email == info.email)
                                   .with_for_update()).scalar_one_or_none()
        if customer is not None and customer.partner_id not in (None, info.partner_id):
            raise PartnerLoginRefused(_l("This e-mail is linked to another partner account. "
                                         "Please contact support."))
        if customer is not None and customer.awaiting_email_confirmation:
            # Nobody has proven this mailbox: whoever registered it may not be the partner, and
            # linking would hand them (their session, their JWT) the partner's account.
            raise PartnerLoginRefused(_l("A cashback account with this e-mail was registered but its e-mail "
                                         "address was never confirmed. Please contact support."))
    customer_role = sm.find_role("Customer")
    if customer is None:
        if sm.find_user(email=info.email) is not None or sm.find_user(username=info.email) is not None:
            raise PartnerLoginRefused()  # a staff login (no customer row) has this e-mail
        customer = customers.create_customer(session, sm, email=info.email, name=info.name or info.email,
                                             password=secrets.token_urlsafe(32), actor=ACTOR,
                                             locale=info.locale)
        action, before = "customer.partner_created", None
    else:
        if customer.user is None:  # known only from the network so far: give it a login
            if sm.find_user(username=customer.email) is not None or sm.find_user(email=customer.email) is not None:
                raise PartnerLoginRefused()
            first, _, last = (info.name or customer.email.split("@")[0]).partition(" ")
            user = sm.add_user(username=customer.email, first_name=first, last_name=last,
                               email=customer.email, role=customer_role, password=secrets.token_urlsafe(32),
                               commit=False)
            if not user:
                raise PartnerLoginRefused()
            customer.user_id = user.id
            session.flush()
            session.refresh(customer)
        elif any(role.name != "Customer" for role in customer.user.roles):
            raise PartnerLoginRefused()
        action, before = ("customer.partner_linked", _partner_fields(customer)) \
            if not customer.partner_linked else ("customer.partner_updated", _partner_fields(customer))
    if not customer.partner_linked:
        customer.user.password = _unusable_password()  # from now on only the directory opens it
        customer.tokens_valid_after = utcnow()  # and the tokens of the old password stop working
    customer.partner_linked = True
    customer.partner_id = info.partner_id
    customer.partner_cabinet_url = info.cabinet_url
    after = _partner_fields(customer)
    if before != after:
        audit.record(session, ACTOR, action, "customer", customer.id, before=before,
                     after={**after, "email": customer.email})
    session.flush()
    return customer


def customer_of(session: Session, user: Any) -> Customer | None:
    """The customer whose login is ``user``, or None (staff)."""
    user_id = getattr(user, "id", None)
    if user_id is None:
        return None
    return session.execute(sa.select(Customer).where(Customer.user_id == user_id)).scalar_one_or_none()


def linked_customer(session: Session, user: Any) -> Customer | None:
    """The partner-linked customer whose login is ``user``, or None."""
    user_id = getattr(user, "id", None)
    if user_id is None:
        return None
    return session.execute(sa.select(Customer).where(Customer.user_id == user_id,
                                                     Customer.partner_linked.is_(True))).scalar_one_or_none()


# --- partner-linked rules ------------------------------------------------------------------------

@dataclass(frozen=True)
class PartnerNotice:
    """What the cabinet shows a partner-linked customer instead of figures."""

    message: str
    cabinet_url: str | None


def partner_notice(customer: Customer) -> PartnerNotice | None:
    """The notice for a partner-linked customer; None for everyone else."""
    if not customer.partner_linked:
        return None
    return PartnerNotice(str(PartnerLinked.default_message), customer.partner_cabinet_url)


def ensure_not_partner_linked(customer: Customer) -> None:
    """:raises PartnerLinked: (409, ``partner_linked``) for a partner-linked customer."""
    if getattr(customer, "partner_linked", False):
        raise PartnerLinked(_l("Your statistics and withdrawals are in your partner account: "
                               "withdraw there (%(url)s).", url=customer.partner_cabinet_url or ""),
                            partner_cabinet_url=customer.partner_cabinet_url)


def ensure_statistics_here(customer: Customer) -> None:
    """:raises PartnerLinked: (409, ``partner_linked``) when the customer's balance, orders
    and clicks are shown in the partner account (the customer API of the app/extension)."""
    if getattr(customer, "partner_linked", False):
        raise PartnerLinked(_l("Your statistics and withdrawals are in your partner account: %(url)s",
                               url=customer.partner_cabinet_url or ""),
                            partner_cabinet_url=customer.partner_cabinet_url)


def partner_self_referral(session: Session, email: str, referral_code: str | None,
                          directory: PartnerDirectory | None = None) -> str | None:
    """Why registering ``email`` through ``referral_code`` is refused, or None.

    Refused when the code belongs to a partner account whose e-mail (normalized) is the
    registrant's: a partner-linked customer's code here, or a partner code the directory
    knows (asked only when no local customer has the code and a directory is configured).

    :raises DirectoryUnavailable: the code is not ours and the directory cannot be asked.
    """
    from portal.services.referrals import identity_email  # one mailbox, however it is spelled

    code = (referral_code or "").strip()
    if not code:
        return None
    email = identity_email(email)
    local = session.execute(sa.select(Customer).where(Customer.referral_code == code.lower())).scalar_one_or_none()
    if local is not None:
        if local.partner_linked and identity_email(local.email) == email:
            return str(SelfReferral.default_message)
        return None
    if directory is None:
        return None
    partner = directory.by_referral(code)
    if partner is not None and identity_email(partner.email) == email:
        return str(SelfReferral.default_message)
    return None


# --- demo ----------------------------------------------------------------------------------------

#: The demo's partner-linked customer: its partner id in the local directory and its e-mail.
DEMO_LINKED = ("P-1020", "customer20@demo.cashback.local")


def seed_demo(session: Session, sm, config: Mapping[str, Any]) -> Customer | None:
    """Link demo customer 20 to partner ``P-1020`` of the local directory (idempotent; not committed)."""
    partner_id, email = DEMO_LINKED
    customer = session.execute(sa.select(Customer).where(Customer.email == email)).scalar_one_or_none()
    if customer is None:
        return None
    base = (config.get("PARTNER_DIRECTORY_URL") or "http://127.0.0.1:8790").rstrip("/")
    return login_partner(session, sm, PartnerInfo(partner_id=partner_id, email=email, name=customer.name,
                                                  locale=customer.locale, cabinet_url=f"{base}/cabinet/{partner_id}"))
