"""Customers: creation (login + customer row + ledger accounts), lookup."""
from __future__ import annotations

from sqlalchemy.orm import Session

from portal.errors import Conflict
from portal.i18n import _l
from portal.models import Customer
from portal.services import audit, ledger
from portal.services.audit import Actor


class EmailTaken(Conflict):
    code = "email_taken"
    default_message = _l("An account with this e-mail already exists.")


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create_customer(session: Session, security_manager, *, email: str, name: str, password: str,
                    actor: Actor, locale: str = "ru", country: str | None = None) -> Customer:
    """Create a customer with a login (role Customer) and open their ledger accounts."""
    email = normalize_email(email)
    if session.query(Customer).filter_by(email=email).first() is not None:
        raise EmailTaken()
    first, _, last = (name.strip() or email.split("@")[0]).partition(" ")
    user = security_manager.add_user(
        username=email, first_name=first, last_name=last, email=email,
        role=security_manager.find_role("Customer"), password=password, commit=False,
    )
    if not user:
        raise EmailTaken()
    customer = Customer(user_id=user.id, email=email, name=name.strip(), locale=locale, country=country)
    session.add(customer)
    session.flush()
    ledger.open_customer_accounts(session, customer.id)
    audit.record(session, actor, "customer.created", "customer", customer.id,
                 after={"email": email, "locale": locale, "country": country})
    return customer
