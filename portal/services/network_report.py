"""The affiliate network's order report (CSV), parsed for reconciliation.

Columns, named in a required header row (any order, any letter case; a UTF-8 BOM is ignored)::

    order_id, sub_id, status, order_amount, currency, commission, event_time[, refunded_amount]

* the delimiter is ``,`` or ``;``, chosen from the header row;
* ``status`` is one of ``paid``, ``confirmed``, ``cancelled``, ``refunded`` (``canceled`` is read
  as ``cancelled``);
* amounts are non-negative decimals with ``.`` or ``,`` as the decimal mark (no thousands
  separators, no exponent) and become :class:`~decimal.Decimal` exactly as written;
* ``event_time`` is ISO 8601 with a time of day; a time without an offset is UTC. Times are
  returned as aware datetimes in UTC;
* ``refunded_amount`` is optional: ``None`` when the column is absent or the cell is empty;
  when given it must not exceed ``order_amount``;
* extra columns are ignored; rows whose cells are all empty (spreadsheet padding) are skipped.

Every other problem becomes a :class:`ReportLineError` and parsing goes on with the next line:
a bad line is reported, never silently dropped, and never stops the others. An ``order_id``
appearing on more than one line is ambiguous, so *all* its lines are reported and none of them is
returned as a row. Problems with the header itself are reported on the header's line (line 1
unless blank lines precede it) and yield no rows.

The bytes are read as UTF-8; a file that is not valid UTF-8 is read as windows-1251 (what Excel
writes on Russian systems). :func:`file_digest` identifies a file so a re-import can be detected.
"""
from __future__ import annotations

import csv
import datetime
import hashlib
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Iterator, Literal, Optional, Union

from flask_babel import LazyString

from portal.i18n import _l

__all__ = [
    "ReportRow", "ReportLineError", "ReportParse", "OrderStatus", "STATUSES",
    "REQUIRED_COLUMNS", "OPTIONAL_COLUMNS", "parse_order_report", "file_digest",
]

Message = Union[str, LazyString]
OrderStatus = Literal["paid", "confirmed", "cancelled", "refunded"]

STATUSES: tuple[OrderStatus, ...] = ("paid", "confirmed", "cancelled", "refunded")
REQUIRED_COLUMNS = ("order_id", "sub_id", "status", "order_amount", "currency", "commission",
                    "event_time")
OPTIONAL_COLUMNS = ("refunded_amount",)
_KNOWN_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
_DELIMITERS = (",", ";")
_STATUS_ALIASES: dict[str, OrderStatus] = {"canceled": "cancelled"}
_AMOUNT_RE = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?")
_CURRENCY_RE = re.compile(r"[A-Za-z]{3}")
_HAS_TIME_RE = re.compile(r"[0-9]{4}-?[0-9]{2}-?[0-9]{2}[T ][0-9]{2}.*")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # line breaks, tabs, NUL... in an id
_MAX_TEXT = 200  # longest order_id / sub_id accepted


@dataclass(frozen=True)
class ReportRow:
    """One valid order line of the report."""

    line: int
    order_id: str
    sub_id: str
    status: OrderStatus
    order_amount: Decimal
    currency: str
    commission: Decimal
    event_time: datetime.datetime
    refunded_amount: Optional[Decimal] = None


@dataclass(frozen=True)
class ReportLineError:
    """A problem on one line. ``field`` is the column concerned, or None for the whole line."""

    line: int
    field: Optional[str]
    message: Message

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"


@dataclass
class ReportParse:
    """The outcome of parsing: valid rows and every problem found, both in line order."""

    rows: list[ReportRow] = field(default_factory=list)
    errors: list[ReportLineError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the whole file was clean."""
        return not self.errors


def file_digest(data: bytes) -> str:
    """SHA-256 (lowercase hex) of the raw file bytes, to recognise a file imported before."""
    return hashlib.sha256(data).hexdigest()


def parse_order_report(data: bytes) -> ReportParse:
    """Parse a network order report; see the module docstring for the format and rules."""
    result = ReportParse()
    text = _decode(data)
    lines = list(io.StringIO(text, newline=""))  # split on \n, \r, \r\n only, as csv expects
    header_index = _first_non_blank(lines)
    if header_index is None:
        result.errors.append(ReportLineError(
            1, None, _l("The file is empty: a header row is required.")))
        return result
    delimiter = _sniff_delimiter(lines[header_index])
    records = _records(lines[header_index:], delimiter, first_line=header_index + 1)
    header_line, header = next(records, (header_index + 1, None))
    columns = _header_columns(header, header_line, result.errors)
    if columns is None or header is None:
        return result
    parsed: list[tuple[int, str | None, ReportRow | None]] = []
    for line, cells in records:
        row, order_id = _parse_record(line, cells, columns, len(header), result.errors)
        parsed.append((line, order_id, row))
    result.rows = _drop_duplicates(parsed, result.errors)
    result.errors.sort(key=lambda error: error.line)
    return result


# --- file level ----------------------------------------------------------------------------------

def _decode(data: bytes) -> str:
    """UTF-8 (BOM removed), falling back to windows-1251 for files that are not UTF-8."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("parse_order_report() takes bytes")
    try:
        return bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError:
        return bytes(data).decode("cp1251", errors="replace")


def _first_non_blank(lines: list[str]) -> int | None:
    """Index of the first line with content other than blanks, quotes and delimiters."""
    filler = " \t\r\n\"" + "".join(_DELIMITERS)
    return next((i for i, line in enumerate(lines) if line.strip(filler)), None)


def _sniff_delimiter(header_line: str) -> str:
    """The delimiter that splits the header into the most known column names (ties: more cells,
    then ``,``)."""
    def score(delimiter: str) -> tuple[int, int]:
        cells = next(csv.reader([header_line], delimiter=delimiter))
        known = sum(1 for cell in cells if _column_name(cell) in _KNOWN_COLUMNS)
        return known, len(cells)
    return max(_DELIMITERS, key=lambda d: (score(d), d == ","))


def _records(lines: list[str], delimiter: str, *,
             first_line: int) -> Iterator[tuple[int, list[str] | None]]:
    """(first physical line number, cells) for each CSV record that has a non-empty cell.

    A record the csv module cannot read (a cell beyond its field size limit) is yielded with
    ``None`` for cells so that the caller reports it and carries on.
    """
    reader = csv.reader(lines, delimiter=delimiter, strict=False)
    offset = first_line - 1
    previous_end = 0
    while True:
        start = offset + previous_end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            previous_end = reader.line_num
            yield start, None
            continue
        previous_end = reader.line_num
        if any(cell.strip() for cell in cells):
            yield start, cells


def _column_name(cell: str) -> str:
    """Normalise a header cell: trimmed, lower case, spaces and dashes as underscores."""
    return re.sub(r"[\s\-]+", "_", cell.strip().lower())


def _header_columns(header: list[str] | None, line: int,
                    errors: list[ReportLineError]) -> dict[str, int] | None:
    """Map each known column to its cell index, or report why the header is unusable."""
    columns: dict[str, int] = {}
    problems: list[ReportLineError] = []
    for index, cell in enumerate(header or []):
        name = _column_name(cell)
        if name not in _KNOWN_COLUMNS:
            continue
        if name in columns:
            problems.append(ReportLineError(line, name, _l(
                "Column %(column)s appears more than once in the header.", column=name)))
        columns[name] = index
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            problems.append(ReportLineError(line, name, _l(
                "Required column %(column)s is missing from the header.", column=name)))
    errors.extend(problems)
    return None if problems else columns


# --- line level ----------------------------------------------------------------------------------

class _FieldError(Exception):
    def __init__(self, column: str, message: Message) -> None:
        super().__init__(column, message)
        self.column = column
        self.message = message


def _parse_record(line: int, cells: list[str] | None, columns: dict[str, int], width: int,
                  errors: list[ReportLineError]) -> tuple[ReportRow | None, str | None]:
    """Parse one record; report its problems. Returns (row or None, order_id if readable)."""
    if cells is None:
        errors.append(ReportLineError(line, None, _l("The line cannot be read as CSV.")))
        return None, None
    if len(cells) != width:
        errors.append(ReportLineError(line, None, _l(
            "The line has %(count)s fields but the header has %(expected)s.",
            count=len(cells), expected=width)))
        return None, _order_id_or_none(cells, columns)
    values = {name: cells[index].strip() for name, index in columns.items()}
    line_errors: list[ReportLineError] = []
    parsed: dict[str, object] = {}
    for name, parser in _FIELD_PARSERS.items():
        if name not in values:
            continue
        try:
            parsed[name] = parser(values[name])
        except _FieldError as exc:
            line_errors.append(ReportLineError(line, exc.column, exc.message))
    refunded = parsed.get("refunded_amount")
    amount = parsed.get("order_amount")
    if isinstance(refunded, Decimal) and isinstance(amount, Decimal) and refunded > amount:
        line_errors.append(ReportLineError(line, "refunded_amount", _l(
            "refunded_amount %(refunded)s is greater than order_amount %(amount)s.",
            refunded=str(refunded), amount=str(amount))))
    errors.extend(line_errors)
    order_id = parsed.get("order_id")
    order_id = order_id if isinstance(order_id, str) else None
    if line_errors:
        return None, order_id
    return ReportRow(line=line, **parsed), order_id  # type: ignore[arg-type]


def _order_id_or_none(cells: list[str], columns: dict[str, int]) -> str | None:
    """The order_id of a malformed line, if its cell is there, for duplicate detection."""
    index = columns["order_id"]
    value = cells[index].strip() if index < len(cells) else ""
    return value or None


def _drop_duplicates(parsed: list[tuple[int, str | None, ReportRow | None]],
                     errors: list[ReportLineError]) -> list[ReportRow]:
    """Report every line of an order_id seen more than once; keep only unique, valid rows."""
    lines_by_id: dict[str, list[int]] = {}
    for line, order_id, _row in parsed:
        if order_id is not None:
            lines_by_id.setdefault(order_id, []).append(line)
    for order_id, lines in lines_by_id.items():
        if len(lines) < 2:
            continue
        listed = ", ".join(str(n) for n in lines)
        for line in lines:
            errors.append(ReportLineError(line, "order_id", _l(
                "Duplicate order_id %(order_id)s: it appears on lines %(lines)s.",
                order_id=_quote(order_id), lines=listed)))
    return [row for _line, order_id, row in parsed
            if row is not None and len(lines_by_id.get(order_id or "", [])) < 2]


# --- fields --------------------------------------------------------------------------------------

def _text(column: str) -> Callable[[str], str]:
    """A parser for a required, reasonably short text cell."""
    def parse(value: str) -> str:
        if not value:
            raise _FieldError(column, _l("%(column)s is empty.", column=column))
        if len(value) > _MAX_TEXT:
            raise _FieldError(column, _l("%(column)s is longer than %(limit)s characters.",
                                         column=column, limit=_MAX_TEXT))
        if _CONTROL_RE.search(value):
            raise _FieldError(column, _l("%(column)s contains control characters.", column=column))
        return value
    return parse


def _status(value: str) -> OrderStatus:
    """One of :data:`STATUSES`, any letter case."""
    status = _STATUS_ALIASES.get(value.lower(), value.lower())
    if status not in STATUSES:
        raise _FieldError("status", _l(
            "Unknown status %(value)s: expected paid, confirmed, cancelled or refunded.",
            value=_quote(value)))
    return status  # type: ignore[return-value]


def _amount(column: str, *, optional: bool = False) -> Callable[[str], Decimal | None]:
    """A parser for a non-negative decimal cell (``.`` or ``,`` as the decimal mark)."""
    def parse(value: str) -> Decimal | None:
        if not value:
            if optional:
                return None
            raise _FieldError(column, _l("%(column)s is empty.", column=column))
        if not _AMOUNT_RE.fullmatch(value):
            raise _FieldError(column, _l("%(column)s %(value)s is not a number.",
                                         column=column, value=_quote(value)))
        amount = Decimal(value.replace(",", "."))
        if value.startswith("-"):  # "-0" too: a sign there is a mistake, not a zero
            raise _FieldError(column, _l("%(column)s %(value)s is negative.",
                                         column=column, value=_quote(value)))
        return amount
    return parse


def _currency(value: str) -> str:
    """A three-letter currency code, returned in upper case."""
    if not _CURRENCY_RE.fullmatch(value):
        raise _FieldError("currency", _l("Currency %(value)s is not a three-letter code.",
                                         value=_quote(value)))
    return value.upper()


def _event_time(value: str) -> datetime.datetime:
    """ISO 8601 date and time; naive means UTC; returned in UTC."""
    try:
        if not _HAS_TIME_RE.fullmatch(value):
            raise ValueError(value)
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise _FieldError("event_time", _l(
            "event_time %(value)s is not an ISO 8601 date and time.", value=_quote(value))) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


_FIELD_PARSERS: dict[str, Callable[[str], object]] = {
    "order_id": _text("order_id"),
    "sub_id": _text("sub_id"),
    "status": _status,
    "order_amount": _amount("order_amount"),
    "currency": _currency,
    "commission": _amount("commission"),
    "event_time": _event_time,
    "refunded_amount": _amount("refunded_amount", optional=True),
}


def _quote(text: str, limit: int = 40) -> str:
    """A value for an error message: quoted and cut short so a huge cell cannot flood logs."""
    if len(text) > limit:
        text = text[:limit] + "…"
    return f"'{text}'"
