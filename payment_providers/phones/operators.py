"""Russian mobile numbers: normalization to E.164 (``+79XXXXXXXXX``) and the three operators.

Accepted input (spaces, dashes, dots and brackets are ignored): ``+7 (9XX) XXX-XX-XX``,
``8 9XX XXX XX XX``, ``7 9XX…`` (11 digits), ``9XX…`` (10 digits). Validity is checked with
``phonenumbers`` (a Russian number of type *mobile*). Kazakhstan shares the country code +7
(``+7 7XX``) and is refused as another country.

Since 2013-12-01 numbers can be ported between operators, so a DEF prefix (916 MTS, 903 Beeline,
926 MegaFon) does not prove the current operator: the operator the customer picked is a *hint*,
and a mismatch is only learned from the payout service's answer (an ``invalid_account``).
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import phonenumbers
from phonenumbers import PhoneNumberType

from plugins import InvalidAccount
from portal.i18n import _l

__all__ = ["OPERATORS", "allocated_operator", "dst_account", "normalize_mobile"]

#: Operator code -> display names.
OPERATORS: Mapping[str, Mapping[str, str]] = {
    "mts": {"ru": "МТС", "en": "MTS"},
    "megafon": {"ru": "МегаФон", "en": "MegaFon"},
    "beeline": {"ru": "Билайн", "en": "Beeline"},
}
_CARRIER_NAMES = {"MTS": "mts", "MegaFon": "megafon", "Beeline": "beeline"}

_ALLOWED = re.compile(r"^\+?[\d\s().\-]+$")
_E164 = re.compile(r"^\+79\d{9}$")


def _format_error() -> InvalidAccount:
    return InvalidAccount("format", _l(
        "Enter a Russian mobile number: +7 and 10 digits, for example +7 912 345-67-89."))


def normalize_mobile(raw: str) -> str:
    """``raw`` as E.164 ``+79XXXXXXXXX``.

    :raises InvalidAccount: ``empty``, ``characters``, ``format``, ``country``, ``not_mobile``
        or ``invalid``, with a customer-readable message.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidAccount("empty", _l("Enter the mobile phone number."))
    if not _ALLOWED.match(text):
        raise InvalidAccount("characters", _l(
            "A phone number may contain only digits, spaces, brackets, dashes and a leading +."))
    digits = re.sub(r"\D", "", text)
    if text.startswith("+"):
        if not digits.startswith("7"):
            raise InvalidAccount("country", _l(
                "Only Russian mobile numbers (+7 9XX) can be topped up."))
        candidate = "+" + digits
    elif len(digits) == 11 and digits[0] in "78":
        candidate = "+7" + digits[1:]
    elif len(digits) == 10:
        candidate = "+7" + digits
    else:
        raise _format_error()
    if len(candidate) != 12:
        raise _format_error()
    try:
        number = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException as exc:
        raise _format_error() from exc
    region = phonenumbers.region_code_for_number(number)
    if region not in (None, "RU") or (region is None and not candidate.startswith("+79")):
        raise InvalidAccount("country", _l(
            "Only Russian mobile numbers (+7 9XX) can be topped up."))
    if not candidate.startswith("+79"):
        raise InvalidAccount("not_mobile", _l(
            "This is not a mobile number: enter a number that starts with +7 9."))
    if not phonenumbers.is_valid_number(number) or phonenumbers.number_type(number) not in (
            PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise InvalidAccount("invalid", _l(
            "This phone number does not exist: please check the digits."))
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not _E164.match(e164):  # pragma: no cover - phonenumbers agrees with the checks above
        raise _format_error()
    return e164


def dst_account(e164: str) -> str:
    """The YooKassa ``dstAccount`` form: ``79XXXXXXXXX``."""
    if not _E164.match(e164):
        raise ValueError(f"not a normalized Russian mobile number: {e164!r}")
    return e164[1:]


def allocated_operator(e164: str) -> str | None:
    """The operator the number's block was *originally allocated* to (``phonenumbers``' carrier
    data), or None. Never proof of the current operator: numbers are portable."""
    from phonenumbers import carrier

    name = carrier.name_for_number(phonenumbers.parse(e164, None), "en")
    return _CARRIER_NAMES.get(name)
