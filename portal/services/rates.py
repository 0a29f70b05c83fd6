"""Central Bank of Russia daily exchange rates (the ``XML_daily.asp`` format).

The CBR publishes one document per business day::

    <?xml version="1.0" encoding="windows-1251"?>
    <ValCurs Date="25.11.2026" name="Foreign Currency Market">
      <Valute ID="R01235">
        <NumCode>840</NumCode><CharCode>USD</CharCode><Nominal>1</Nominal>
        <Name>Доллар США</Name><Value>78,1234</Value><VunitRate>78,1234</VunitRate>
      </Valute>
      ...
    </ValCurs>

``Value`` is the price in roubles of ``Nominal`` units of the currency (e.g. 100 JPY), with a
decimal comma. ``VunitRate`` (absent from older files) is the same price for one unit.

:func:`parse_cbr_daily` turns such a document into :class:`DailyRates`, whose ``rates`` are
RUB per ONE unit of each currency, always computed as ``Value / Nominal`` in exact decimal
arithmetic (never float). When ``VunitRate`` is present it is cross-checked against that quotient
and a disagreement is an error, so a corrupt file is refused rather than half-trusted.

Security: documents with a ``DOCTYPE`` (and so any ``ENTITY`` declaration) are refused before the
tree is built, which rules out entity-expansion attacks ("billion laughs") and external entities.
"""
from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET
import xml.parsers.expat
from dataclasses import dataclass
from decimal import Decimal, localcontext
from types import MappingProxyType
from typing import Mapping, NoReturn, TypeVar, Union

from flask_babel import LazyString

from portal.i18n import _l

__all__ = ["DailyRates", "RateFileError", "parse_cbr_daily", "usd_rub", "RATE_MAX_PLACES"]

Message = Union[str, LazyString]
_N = TypeVar("_N", int, Decimal)

#: A rate that is not an exact decimal (a Nominal that is not a power of ten) is rounded to this
#: many decimal places (half-even). Exact quotients such as 78.1234/100 keep all their digits.
RATE_MAX_PLACES = 12

_ROOT_TAG = "ValCurs"
_ITEM_TAG = "Valute"
_DATE_RE = re.compile(r"([0-9]{2})[./]([0-9]{2})[./]([0-9]{4})")
_NUMBER_RE = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?")
_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
_CODE_RE = re.compile(r"[A-Z]{3}")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_XML_DECL_RE = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*encoding\s*=", re.IGNORECASE)


class RateFileError(ValueError):
    """The rates document cannot be used; ``message`` says why (lazy, translatable)."""

    def __init__(self, message: Message) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


@dataclass(frozen=True)
class DailyRates:
    """The rates of one CBR business day.

    ``rates`` maps an ISO 4217 letter code (``"USD"``) to the price in RUB of ONE unit of that
    currency. It is a read-only mapping.
    """

    date: datetime.date
    rates: Mapping[str, Decimal]


def parse_cbr_daily(data: bytes) -> DailyRates:
    """Parse one ``XML_daily.asp`` document (windows-1251 or UTF-8 bytes).

    Raises :class:`RateFileError` naming the problem when the bytes are not such a document.
    """
    root = _parse_xml(data)
    if root.tag != _ROOT_TAG:
        _fail(_l("Wrong root element <%(tag)s>: expected <ValCurs>.", tag=_short(root.tag)))
    day = _parse_date(root.get("Date"))
    rates: dict[str, Decimal] = {}
    for index, item in enumerate(root.findall(_ITEM_TAG), start=1):
        code, rate = _parse_valute(item, index)
        if code in rates:
            _fail(_l("Duplicate currency %(code)s in the rates file.", code=code))
        rates[code] = rate
    if not rates:
        _fail(_l("The rates file contains no currencies."))
    return DailyRates(date=day, rates=MappingProxyType(rates))


def usd_rub(d: DailyRates) -> Decimal:
    """RUB per one US dollar on that day; :class:`RateFileError` if the file had no USD."""
    try:
        return d.rates["USD"]
    except KeyError:
        _fail(_l("The rates file for %(date)s has no USD rate.", date=d.date.isoformat()))


# --- XML -----------------------------------------------------------------------------------------

def _parse_xml(data: bytes) -> ET.Element:
    """Check the document is well-formed and has no DTD, then build the element tree."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("parse_cbr_daily() takes bytes")
    data = _assume_cp1251_if_undeclared(bytes(data))
    _reject_dtd(data)
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:  # pragma: no cover - _reject_dtd already parsed the same bytes
        _fail(_l("The rates file is not valid XML: %(error)s", error=str(exc)))


def _assume_cp1251_if_undeclared(data: bytes) -> bytes:
    """A document without an encoding declaration that is not UTF-8 is read as windows-1251.

    The CBR always writes windows-1251; a copy whose prolog was lost (e.g. saved by a proxy or an
    editor) would otherwise be refused as malformed UTF-8.
    """
    if _XML_DECL_RE.match(data) or data.startswith(_UTF16_BOMS):
        return data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1251", errors="replace").encode("utf-8")
    return data


def _reject_dtd(data: bytes) -> None:
    """Run expat over the bytes, refusing any DOCTYPE/ENTITY declaration and malformed XML."""
    parser = xml.parsers.expat.ParserCreate()

    def forbid(*_args: object) -> NoReturn:
        raise _DtdFound()

    parser.StartDoctypeDeclHandler = forbid
    parser.EntityDeclHandler = forbid
    parser.ExternalEntityRefHandler = forbid
    try:
        parser.Parse(data, True)
    except _DtdFound:
        _fail(_l("The rates file contains a DOCTYPE or ENTITY declaration, which is not allowed."))
    except (xml.parsers.expat.ExpatError, ValueError, LookupError) as exc:
        _fail(_l("The rates file is not valid XML: %(error)s", error=str(exc)))


class _DtdFound(Exception):
    """Internal signal raised from inside expat when a DTD shows up."""


# --- fields --------------------------------------------------------------------------------------

def _parse_date(raw: str | None) -> datetime.date:
    """``DD.MM.YYYY`` (the CBR format; ``/`` as in some old files is also accepted)."""
    if raw is None or not raw.strip():
        _fail(_l("The rates file has no Date attribute on <ValCurs>."))
    match = _DATE_RE.fullmatch(raw.strip())
    if match is None:
        _fail(_l("Bad date %(value)s: expected DD.MM.YYYY.", value=_quote(raw)))
    day, month, year = (int(part) for part in match.groups())
    try:
        return datetime.date(year, month, day)
    except ValueError:
        _fail(_l("Bad date %(value)s: expected DD.MM.YYYY.", value=_quote(raw)))


def _parse_valute(item: ET.Element, index: int) -> tuple[str, Decimal]:
    """One ``<Valute>``: its letter code and the exact RUB price of one unit."""
    where = _valute_label(item, index)
    code = _text(item, "CharCode", where).upper()
    if not _CODE_RE.fullmatch(code):
        _fail(_l("Bad currency code %(value)s at Valute %(valute)s.", value=_quote(code), valute=where))
    nominal = _positive(_integer(_text(item, "Nominal", where), "Nominal", where), "Nominal", where)
    value = _positive(_number(_text(item, "Value", where), "Value", where), "Value", where)
    rate = _per_unit(value, nominal)
    unit_text = item.findtext("VunitRate")
    if unit_text is not None:
        unit = _positive(_number(unit_text, "VunitRate", where), "VunitRate", where)
        if not _agrees(unit, rate):
            _fail(_l("VunitRate %(unit)s does not match Value/Nominal %(rate)s at Valute %(valute)s.",
                     unit=str(unit), rate=str(rate), valute=where))
    return code, rate


def _valute_label(item: ET.Element, index: int) -> str:
    """How messages name a ``<Valute>``: its ID and code when known, else its position."""
    ident = (item.get("ID") or "").strip()
    code = (item.findtext("CharCode") or "").strip()
    if ident and code:
        return f"{ident} ({code})"
    return ident or code or f"#{index}"


def _text(item: ET.Element, tag: str, where: str) -> str:
    """The stripped text of a required child element."""
    text = item.findtext(tag)
    if text is None or not text.strip():
        _fail(_l("Missing %(field)s at Valute %(valute)s.", field=tag, valute=where))
    return text.strip()


def _number(text: str, field: str, where: str) -> Decimal:
    """A decimal written with a comma (CBR) or a dot; no exponent, no thousands separators."""
    cleaned = text.strip()
    if not _NUMBER_RE.fullmatch(cleaned):
        _bad_number(text, field, where)
    return Decimal(cleaned.replace(",", "."))


def _integer(text: str, field: str, where: str) -> int:
    """A whole number (``Nominal``)."""
    if not _INTEGER_RE.fullmatch(text.strip()):
        _bad_number(text, field, where)
    return int(text.strip())


def _positive(number: _N, field: str, where: str) -> _N:
    """Return the number unchanged if it is > 0, else fail."""
    if number <= 0:
        _fail(_l("Non-positive %(field)s %(value)s at Valute %(valute)s.",
                 field=field, value=str(number), valute=where))
    return number


def _per_unit(value: Decimal, nominal: int) -> Decimal:
    """``value / nominal`` exactly; rounded to :data:`RATE_MAX_PLACES` only if it does not end.

    With the CBR's nominals (powers of ten) the quotient is always exact: 50,1234 / 100 = 0.501234.
    """
    with localcontext() as ctx:
        ctx.prec = 60
        quotient = value / Decimal(nominal)
        if _places(quotient) > RATE_MAX_PLACES:
            quotient = quotient.quantize(Decimal(1).scaleb(-RATE_MAX_PLACES))
    return quotient


def _places(number: Decimal) -> int:
    """How many decimal places the number is written with."""
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite numbers only: the regexes exclude NaN/Infinity
    return max(0, -exponent)


def _agrees(unit: Decimal, rate: Decimal) -> bool:
    """``VunitRate`` agrees with ``Value/Nominal`` to within one unit of its last written place."""
    last_place = Decimal(1).scaleb(-_places(unit))
    return abs(unit - rate) <= last_place


# --- errors --------------------------------------------------------------------------------------

def _bad_number(text: str, field: str, where: str) -> NoReturn:
    _fail(_l("Bad number %(value)s in %(field)s at Valute %(valute)s.",
             value=_quote(text), field=field, valute=where))


def _fail(message: Message) -> NoReturn:
    raise RateFileError(message)


def _quote(text: str, limit: int = 40) -> str:
    """A value for an error message: quoted and cut short so a huge field cannot flood logs."""
    text = text.strip()
    if len(text) > limit:
        text = text[:limit] + "…"
    return f"'{text}'"


def _short(tag: str) -> str:
    """A tag name for messages, without a namespace URI."""
    return tag.rsplit("}", 1)[-1][:40]
