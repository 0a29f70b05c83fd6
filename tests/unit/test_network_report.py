"""Unit tests for portal.services.network_report (network order report CSV)."""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
from decimal import Decimal

import pytest
from flask_babel import LazyString
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.services.network_report import (
    REQUIRED_COLUMNS, STATUSES, ReportLineError, ReportParse, ReportRow, file_digest, parse_order_report,
)

UTC = datetime.timezone.utc
HEADER = "order_id,sub_id,status,order_amount,currency,commission,event_time,refunded_amount"

COMMA_FILE = f"""{HEADER}
A-1,click-1,paid,1500.00,RUB,75.00,2026-11-25T10:15:00,
A-2,click-2,confirmed,99.99,USD,4.5,2026-11-25T10:16:00Z,0
A-3,click-3,refunded,"1000,00",RUB,0,2026-11-25 13:17:00+03:00,250.00
""".encode("utf-8")

SEMICOLON_FILE = """order_id;sub_id;status;order_amount;currency;commission;event_time;refunded_amount
A-1;click-1;paid;1500,00;RUB;75,00;2026-11-25T10:15:00;
A-2;click-2;confirmed;99,99;USD;4,5;2026-11-25T10:16:00Z;0
A-3;click-3;refunded;1000,00;RUB;0;2026-11-25 13:17:00+03:00;250,00
""".encode("utf-8")

EXPECTED = [
    ReportRow(line=2, order_id="A-1", sub_id="click-1", status="paid", order_amount=Decimal("1500.00"),
              currency="RUB", commission=Decimal("75.00"),
              event_time=datetime.datetime(2026, 11, 25, 10, 15, tzinfo=UTC), refunded_amount=None),
    ReportRow(line=3, order_id="A-2", sub_id="click-2", status="confirmed", order_amount=Decimal("99.99"),
              currency="USD", commission=Decimal("4.5"),
              event_time=datetime.datetime(2026, 11, 25, 10, 16, tzinfo=UTC), refunded_amount=Decimal("0")),
    ReportRow(line=4, order_id="A-3", sub_id="click-3", status="refunded", order_amount=Decimal("1000.00"),
              currency="RUB", commission=Decimal("0"),
              event_time=datetime.datetime(2026, 11, 25, 10, 17, tzinfo=UTC), refunded_amount=Decimal("250.00")),
]

GOOD = "A-1,click-1,paid,100.00,RUB,5.00,2026-11-25T10:00:00"
SHORT_HEADER = ",".join(REQUIRED_COLUMNS)


def parse(*lines: str, header: str = SHORT_HEADER) -> ReportParse:
    return parse_order_report("\n".join([header, *lines]).encode("utf-8"))


def errors(result: ReportParse) -> list[tuple[int, str | None, str]]:
    return [(e.line, e.field, str(e.message)) for e in result.errors]


def line_with(**cells: str) -> str:
    """GOOD with some cells replaced (by column name)."""
    values = dict(zip(REQUIRED_COLUMNS, GOOD.split(",")))
    values.update(cells)
    return ",".join(values[name] for name in REQUIRED_COLUMNS)


# --- good files ------------------------------------------------------------------------------------

def test_comma_file() -> None:
    result = parse_order_report(COMMA_FILE)
    assert result.errors == []
    assert result.rows == EXPECTED
    assert result.ok


def test_semicolon_file_with_decimal_commas() -> None:
    result = parse_order_report(SEMICOLON_FILE)
    assert result.errors == []
    assert result.rows == EXPECTED


def test_amounts_are_decimals_and_times_are_aware_utc() -> None:
    for row in parse_order_report(COMMA_FILE).rows:
        assert type(row.order_amount) is Decimal and type(row.commission) is Decimal
        assert row.event_time.utcoffset() == datetime.timedelta(0)


def test_bom_crlf_and_reordered_upper_case_columns() -> None:
    data = ("\ufeffEVENT_TIME;Currency;Order_ID;Sub_Id;STATUS;Commission;Order_Amount\r\n"
            "2026-11-25T10:15:00;rub;A-1;click-1;PAID;75,00;1500,00\r\n").encode("utf-8")
    result = parse_order_report(data)
    assert result.errors == []
    assert result.rows == [dataclasses.replace(EXPECTED[0])]


def test_header_with_spaces_and_extra_columns() -> None:
    data = ("Order ID,Sub ID,Status,Order Amount,Currency,Commission,Event Time,Offer,Refunded-Amount\n"
            "A-1,click-1,paid,1500.00,RUB,75.00,2026-11-25T10:15:00,Shop 1,\n").encode("utf-8")
    result = parse_order_report(data)
    assert result.errors == []
    assert result.rows == [EXPECTED[0]]


def test_quoted_decimal_comma_in_comma_file() -> None:
    result = parse(line_with(order_amount='"100,50"'))
    assert result.rows[0].order_amount == Decimal("100.50")


def test_refunded_amount_column_is_optional() -> None:
    result = parse(GOOD)
    assert result.errors == []
    assert result.rows[0].refunded_amount is None


def test_canceled_spelling_and_case() -> None:
    assert parse(line_with(status="Canceled")).rows[0].status == "cancelled"
    assert parse(line_with(status=" CANCELLED ")).rows[0].status == "cancelled"


@pytest.mark.parametrize("value, expected", [
    ("2026-11-25T10:00:00", datetime.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)),
    ("2026-11-25 10:00", datetime.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)),
    ("2026-11-25T10:00:00.123456", datetime.datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)),
    ("2026-11-25T10:00:00Z", datetime.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)),
    ("2026-11-25T13:00:00+03:00", datetime.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)),
    ("2026-11-25T00:30:00-05:00", datetime.datetime(2026, 11, 25, 5, 30, tzinfo=UTC)),
    ("20261125T100000", datetime.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)),
])
def test_event_time_formats(value: str, expected: datetime.datetime) -> None:
    result = parse(line_with(event_time=value))
    assert result.errors == []
    assert result.rows[0].event_time == expected
    assert result.rows[0].event_time.tzinfo is UTC


@pytest.mark.parametrize("value, expected", [("100", "100"), ("100.5", "100.5"), ("100,5", "100.5"),
                                             ("0.0001", "0.0001"), ("+7", "7"), ("0", "0")])
def test_amount_formats(value: str, expected: str) -> None:
    row = parse(line_with(commission=f'"{value}"')).rows[0]
    assert row.commission == Decimal(expected)


def test_blank_and_padding_lines_are_skipped_and_line_numbers_stay_physical() -> None:
    result = parse("", GOOD, ",,,,,,", "   ", line_with(order_id="A-2"), "")
    assert [row.line for row in result.rows] == [3, 6]
    assert result.errors == []


def test_multiline_quoted_cell_keeps_line_numbers() -> None:
    header = SHORT_HEADER + ",comment"
    result = parse(GOOD + ',"two\nlines"', line_with(order_id="A-2") + ",", line_with(order_id="A-3", status="x") + ",",
                   header=header)
    assert [row.line for row in result.rows] == [2, 4]
    assert errors(result)[0][0] == 5


def test_blank_lines_before_the_header() -> None:
    data = ("\n\n" + SHORT_HEADER + "\n" + GOOD + "\n").encode("utf-8")
    assert [row.line for row in parse_order_report(data).rows] == [4]


def test_header_only() -> None:
    result = parse()
    assert result.rows == [] and result.errors == []


def test_windows_1251_file() -> None:
    data = (SHORT_HEADER + "\n" + line_with(sub_id="клик-1") + "\n").encode("cp1251")
    assert parse_order_report(data).rows[0].sub_id == "клик-1"


def test_result_rows_are_frozen() -> None:
    row = parse(GOOD).rows[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.commission = Decimal(0)  # type: ignore[misc]


# --- errors: file level ----------------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"", b"\n\n", b"\xef\xbb\xbf", b" ;;; \r\n"])
def test_empty_file(data: bytes) -> None:
    result = parse_order_report(data)
    assert errors(result) == [(1, None, "The file is empty: a header row is required.")]


def test_missing_required_columns() -> None:
    result = parse(GOOD.rsplit(",", 2)[0], header="order_id,sub_id,status,order_amount,currency")
    assert errors(result) == [
        (1, "commission", "Required column commission is missing from the header."),
        (1, "event_time", "Required column event_time is missing from the header."),
    ]
    assert result.rows == []


def test_no_header_row() -> None:
    result = parse_order_report((GOOD + "\n" + GOOD + "\n").encode("utf-8"))
    assert len(result.errors) == len(REQUIRED_COLUMNS)
    assert all(e.line == 1 for e in result.errors)
    assert result.rows == []


def test_duplicate_column() -> None:
    result = parse(GOOD + ",B", header=SHORT_HEADER + ",Order_ID")
    assert errors(result) == [(1, "order_id", "Column order_id appears more than once in the header.")]
    assert result.rows == []


# --- errors: line level ----------------------------------------------------------------------------

@pytest.mark.parametrize("cells, field, message", [
    ({"order_id": ""}, "order_id", "order_id is empty."),
    ({"order_id": "x" * 201}, "order_id", "order_id is longer than 200 characters."),
    ({"sub_id": "  "}, "sub_id", "sub_id is empty."),
    ({"sub_id": "a\x00b"}, "sub_id", "sub_id contains control characters."),
    ({"sub_id": '"a\nb"'}, "sub_id", "sub_id contains control characters."),
    ({"order_id": "A\t1"}, "order_id", "order_id contains control characters."),
    ({"status": "pending"}, "status", "Unknown status 'pending': expected paid, confirmed, cancelled or refunded."),
    ({"status": ""}, "status", "Unknown status '': expected paid, confirmed, cancelled or refunded."),
    ({"order_amount": ""}, "order_amount", "order_amount is empty."),
    ({"order_amount": "abc"}, "order_amount", "order_amount 'abc' is not a number."),
    ({"order_amount": "1.2.3"}, "order_amount", "order_amount '1.2.3' is not a number."),
    ({"order_amount": '"1 000"'}, "order_amount", "order_amount '1 000' is not a number."),
    ({"order_amount": "1e3"}, "order_amount", "order_amount '1e3' is not a number."),
    ({"order_amount": "NaN"}, "order_amount", "order_amount 'NaN' is not a number."),
    ({"order_amount": "١٠٠"}, "order_amount", "order_amount '١٠٠' is not a number."),
    ({"order_amount": "-1"}, "order_amount", "order_amount '-1' is negative."),
    ({"commission": "-0.00"}, "commission", "commission '-0.00' is negative."),
    ({"commission": "x" * 60}, "commission", f"commission '{'x' * 40}…' is not a number."),
    ({"currency": "RUBL"}, "currency", "Currency 'RUBL' is not a three-letter code."),
    ({"currency": "р"}, "currency", "Currency 'р' is not a three-letter code."),
    ({"currency": "12$"}, "currency", "Currency '12$' is not a three-letter code."),
    ({"event_time": "2026-11-25"}, "event_time", "event_time '2026-11-25' is not an ISO 8601 date and time."),
    ({"event_time": "25.11.2026 10:00"}, "event_time", "event_time '25.11.2026 10:00' is not an ISO 8601 date and time."),
    ({"event_time": "2026-02-30T10:00:00"}, "event_time", "event_time '2026-02-30T10:00:00' is not an ISO 8601 date and time."),
    ({"event_time": "1764065700"}, "event_time", "event_time '1764065700' is not an ISO 8601 date and time."),
    ({"event_time": ""}, "event_time", "event_time '' is not an ISO 8601 date and time."),
])
def test_field_errors(cells: dict[str, str], field: str, message: str) -> None:
    result = parse(GOOD.replace("A-1", "A-0"), line_with(**cells), line_with(order_id="A-2"))
    assert errors(result) == [(3, field, message)]
    assert [row.order_id for row in result.rows] == ["A-0", "A-2"]  # the others are not stopped


def test_refunded_amount_errors() -> None:
    header = SHORT_HEADER + ",refunded_amount"
    result = parse(GOOD + ",100.01", line_with(order_id="A-2") + ",x", line_with(order_id="A-3") + ",-1",
                   line_with(order_id="A-4") + ",100,00", line_with(order_id="A-5") + ",100.00", header=header)
    assert errors(result) == [
        (2, "refunded_amount", "refunded_amount 100.01 is greater than order_amount 100.00."),
        (3, "refunded_amount", "refunded_amount 'x' is not a number."),
        (4, "refunded_amount", "refunded_amount '-1' is negative."),
        (5, None, "The line has 9 fields but the header has 8."),
    ]
    assert [row.order_id for row in result.rows] == ["A-5"]


def test_every_bad_field_of_a_line_is_reported() -> None:
    result = parse("A-1,,unknown,x,RUBLE,-5,yesterday")
    assert [(e.line, e.field) for e in result.errors] == [
        (2, "sub_id"), (2, "status"), (2, "order_amount"), (2, "currency"), (2, "commission"), (2, "event_time"),
    ]
    assert result.rows == []


@pytest.mark.parametrize("line, count", [(GOOD + ",extra", 8), (GOOD.rsplit(",", 1)[0], 6), ("lonely", 1)])
def test_wrong_number_of_fields(line: str, count: int) -> None:
    result = parse(line, line_with(order_id="A-2"))
    assert errors(result) == [(2, None, f"The line has {count} fields but the header has 7.")]
    assert [row.order_id for row in result.rows] == ["A-2"]


def test_unreadable_line_does_not_stop_the_others() -> None:
    result = parse(line_with(sub_id="x" * 200_000), line_with(order_id="A-2"))
    assert errors(result) == [(2, None, "The line cannot be read as CSV.")]
    assert [row.order_id for row in result.rows] == ["A-2"]


def test_error_messages_are_lazy_and_printable() -> None:
    error = parse(line_with(status="x")).errors[0]
    assert isinstance(error.message, LazyString)
    assert str(error) == "line 2, status: Unknown status 'x': expected paid, confirmed, cancelled or refunded."
    assert str(ReportLineError(3, None, "Whole line.")) == "line 3: Whole line."


# --- duplicates ------------------------------------------------------------------------------------

def test_duplicate_order_id_reports_every_line_and_keeps_none() -> None:
    result = parse(GOOD, line_with(order_id="B-1"), line_with(status="confirmed"), line_with(status="cancelled"))
    message = "Duplicate order_id 'A-1': it appears on lines 2, 4, 5."
    assert errors(result) == [(2, "order_id", message), (4, "order_id", message), (5, "order_id", message)]
    assert [row.order_id for row in result.rows] == ["B-1"]


def test_identical_duplicate_lines_are_reported_too() -> None:
    result = parse(GOOD, GOOD)
    assert [(e.line, e.field) for e in result.errors] == [(2, "order_id"), (3, "order_id")]
    assert result.rows == []


def test_duplicate_with_an_invalid_line_is_still_a_duplicate() -> None:
    result = parse(GOOD, line_with(commission="bad"))
    assert errors(result) == [
        (2, "order_id", "Duplicate order_id 'A-1': it appears on lines 2, 3."),
        (3, "commission", "commission 'bad' is not a number."),
        (3, "order_id", "Duplicate order_id 'A-1': it appears on lines 2, 3."),
    ]
    assert result.rows == []


def test_duplicate_includes_lines_with_the_wrong_field_count() -> None:
    result = parse(GOOD, GOOD + ",extra")
    assert [(e.line, e.field) for e in result.errors] == [(2, "order_id"), (3, None), (3, "order_id")]


def test_order_ids_differing_in_case_or_spaces() -> None:
    result = parse(GOOD, line_with(order_id="a-1"), line_with(order_id=" A-1 "))
    assert [row.order_id for row in result.rows] == ["a-1"]
    assert [e.line for e in result.errors] == [2, 4]


# --- digest ----------------------------------------------------------------------------------------

def test_file_digest() -> None:
    assert file_digest(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert file_digest(COMMA_FILE) == hashlib.sha256(COMMA_FILE).hexdigest()
    assert file_digest(COMMA_FILE) == file_digest(bytes(COMMA_FILE))
    assert file_digest(COMMA_FILE) != file_digest(COMMA_FILE + b"\n")


# --- property --------------------------------------------------------------------------------------

IDS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_/:.", min_size=1, max_size=20)
AMOUNTS = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False)
TIMES = st.datetimes(min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1))
ROWS = st.fixed_dictionaries({
    "sub_id": IDS, "status": st.sampled_from(STATUSES), "order_amount": AMOUNTS,
    "currency": st.sampled_from(["RUB", "USD", "EUR", "KZT"]), "commission": AMOUNTS, "event_time": TIMES,
})


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(ROWS, max_size=15), delimiter=st.sampled_from([",", ";"]), bom=st.booleans(),
       columns=st.permutations(REQUIRED_COLUMNS), newline=st.sampled_from(["\n", "\r\n"]))
def test_property_generated_files_parse_back(rows: list[dict[str, object]], delimiter: str, bom: bool,
                                             columns: list[str], newline: str) -> None:
    decimal_mark = "," if delimiter == ";" else "."
    lines = [delimiter.join(columns)]
    for number, row in enumerate(rows):
        cells = {**row, "order_id": f"ORD-{number}"}
        cells["event_time"] = row["event_time"].isoformat()  # type: ignore[attr-defined]
        for amount in ("order_amount", "commission"):
            cells[amount] = format(row[amount], "f").replace(".", decimal_mark)
        lines.append(delimiter.join(str(cells[name]) for name in columns))
    data = ("\ufeff" if bom else "") + newline.join(lines) + newline

    result = parse_order_report(data.encode("utf-8"))

    assert result.errors == []
    assert len(result.rows) == len(rows)
    for number, (row, parsed) in enumerate(zip(rows, result.rows)):
        assert parsed.line == number + 2
        assert parsed.order_id == f"ORD-{number}"
        assert parsed.sub_id == row["sub_id"] and parsed.status == row["status"]
        assert parsed.order_amount == row["order_amount"] and parsed.commission == row["commission"]
        assert parsed.currency == row["currency"]
        assert parsed.event_time == row["event_time"].replace(tzinfo=UTC)  # type: ignore[attr-defined]
