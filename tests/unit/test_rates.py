"""Unit tests for portal.services.rates (CBR XML_daily.asp parsing)."""
from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal

import pytest
from flask_babel import LazyString
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.services.rates import (
    RATE_MAX_PLACES, DailyRates, RateFileError, parse_cbr_daily, usd_rub,
)

# A realistic excerpt of https://www.cbr.ru/scripts/XML_daily.asp, as the CBR serves it.
SAMPLE_TEXT = """<?xml version="1.0" encoding="windows-1251"?>
<ValCurs Date="25.11.2026" name="Foreign Currency Market">
<Valute ID="R01010"><NumCode>036</NumCode><CharCode>AUD</CharCode><Nominal>1</Nominal><Name>Австралийский доллар</Name><Value>51,0713</Value><VunitRate>51,0713</VunitRate></Valute>
<Valute ID="R01135"><NumCode>348</NumCode><CharCode>HUF</CharCode><Nominal>100</Nominal><Name>Форинтов</Name><Value>23,5678</Value><VunitRate>0,235678</VunitRate></Valute>
<Valute ID="R01150"><NumCode>704</NumCode><CharCode>VND</CharCode><Nominal>10000</Nominal><Name>Донгов</Name><Value>31,6987</Value><VunitRate>0,00316987</VunitRate></Valute>
<Valute ID="R01235"><NumCode>840</NumCode><CharCode>USD</CharCode><Nominal>1</Nominal><Name>Доллар США</Name><Value>78,1234</Value><VunitRate>78,1234</VunitRate></Valute>
<Valute ID="R01239"><NumCode>978</NumCode><CharCode>EUR</CharCode><Nominal>1</Nominal><Name>Евро</Name><Value>90,4012</Value><VunitRate>90,4012</VunitRate></Valute>
<Valute ID="R01335"><NumCode>398</NumCode><CharCode>KZT</CharCode><Nominal>100</Nominal><Name>Тенге</Name><Value>15,0712</Value><VunitRate>0,150712</VunitRate></Valute>
<Valute ID="R01375"><NumCode>156</NumCode><CharCode>CNY</CharCode><Nominal>1</Nominal><Name>Юань</Name><Value>10,8830</Value><VunitRate>10,883</VunitRate></Valute>
<Valute ID="R01820"><NumCode>392</NumCode><CharCode>JPY</CharCode><Nominal>100</Nominal><Name>Иен</Name><Value>50,1234</Value><VunitRate>0,501234</VunitRate></Valute>
</ValCurs>
"""
SAMPLE_CP1251 = SAMPLE_TEXT.encode("cp1251")

EXPECTED = {
    "AUD": Decimal("51.0713"),
    "HUF": Decimal("0.235678"),
    "VND": Decimal("0.00316987"),
    "USD": Decimal("78.1234"),
    "EUR": Decimal("90.4012"),
    "KZT": Decimal("0.150712"),
    "CNY": Decimal("10.883"),
    "JPY": Decimal("0.501234"),
}


def doc(valutes: str, *, date: str = 'Date="25.11.2026"', root: str = "ValCurs",
        encoding: str = "utf-8") -> bytes:
    """A small document around the given <Valute> elements."""
    text = (f'<?xml version="1.0" encoding="{encoding}"?>\n'
            f'<{root} {date} name="Foreign Currency Market">{valutes}</{root}>')
    return text.encode("cp1251" if encoding == "windows-1251" else encoding)


def valute(code: str = "USD", nominal: str = "1", value: str = "78,1234",
           unit: str | None = None, ident: str = "R01235") -> str:
    """One <Valute> element; ``unit`` is the VunitRate text (omitted when None)."""
    unit_xml = "" if unit is None else f"<VunitRate>{unit}</VunitRate>"
    return (f'<Valute ID="{ident}"><NumCode>840</NumCode><CharCode>{code}</CharCode>'
            f"<Nominal>{nominal}</Nominal><Name>Доллар США</Name><Value>{value}</Value>{unit_xml}</Valute>")


def error_of(data: bytes) -> str:
    with pytest.raises(RateFileError) as info:
        parse_cbr_daily(data)
    return str(info.value)


# --- good documents --------------------------------------------------------------------------------

def test_sample_is_really_windows_1251() -> None:
    assert "Доллар США".encode("cp1251") in SAMPLE_CP1251
    with pytest.raises(UnicodeDecodeError):
        SAMPLE_CP1251.decode("utf-8")


def test_parses_windows_1251_sample() -> None:
    rates = parse_cbr_daily(SAMPLE_CP1251)
    assert rates.date == datetime.date(2026, 11, 25)
    assert dict(rates.rates) == EXPECTED
    assert all(type(rate) is Decimal for rate in rates.rates.values())


@pytest.mark.parametrize("code, expected", [("JPY", "0.501234"), ("KZT", "0.150712"), ("HUF", "0.235678")])
def test_nominal_100_is_divided_exactly(code: str, expected: str) -> None:
    rate = parse_cbr_daily(SAMPLE_CP1251).rates[code]
    assert rate == Decimal(expected)
    assert rate.as_tuple().exponent == -6  # six places kept, nothing rounded away


def test_nominal_10000_keeps_eight_places() -> None:
    assert str(parse_cbr_daily(SAMPLE_CP1251).rates["VND"]) == "0.00316987"


def test_utf8_variant_gives_the_same_rates() -> None:
    utf8 = SAMPLE_TEXT.replace('encoding="windows-1251"', 'encoding="utf-8"').encode("utf-8")
    assert parse_cbr_daily(utf8) == parse_cbr_daily(SAMPLE_CP1251)


def test_utf8_with_bom_and_no_declaration() -> None:
    body = SAMPLE_TEXT.split("\n", 1)[1]
    assert parse_cbr_daily(b"\xef\xbb\xbf" + body.encode("utf-8")).rates == EXPECTED


def test_utf16_with_declaration() -> None:
    utf16 = SAMPLE_TEXT.replace('encoding="windows-1251"', 'encoding="utf-16"').encode("utf-16")
    assert parse_cbr_daily(utf16).rates == EXPECTED


def test_windows_1251_without_prolog_is_still_read() -> None:
    body = SAMPLE_TEXT.split("\n", 1)[1].encode("cp1251")
    assert parse_cbr_daily(body).rates == EXPECTED


def test_old_files_without_vunitrate() -> None:
    old = SAMPLE_TEXT
    for line in SAMPLE_TEXT.splitlines():
        if "<VunitRate>" in line:
            start = line.index("<VunitRate>")
            end = line.index("</VunitRate>") + len("</VunitRate>")
            old = old.replace(line[start:end], "")
    assert "VunitRate" not in old
    assert parse_cbr_daily(old.encode("cp1251")).rates == EXPECTED


def test_slash_date_of_old_files() -> None:
    assert parse_cbr_daily(doc(valute(), date='Date="02/03/2002"')).date == datetime.date(2002, 3, 2)


def test_dot_decimal_and_whitespace_tolerated() -> None:
    rates = parse_cbr_daily(doc(valute(value=" 78.5 ", nominal=" 10 ")))
    assert rates.rates["USD"] == Decimal("7.85")


def test_lower_case_code_is_upper_cased() -> None:
    assert "USD" in parse_cbr_daily(doc(valute(code="usd"))).rates


def test_non_power_of_ten_nominal_rounds_to_max_places() -> None:
    rate = parse_cbr_daily(doc(valute(nominal="3", value="100,0000"))).rates["USD"]
    assert rate == Decimal("33.333333333333")
    assert -rate.as_tuple().exponent == RATE_MAX_PLACES


def test_vunitrate_may_be_rounded_by_one_unit_in_its_last_place() -> None:
    rate = parse_cbr_daily(doc(valute(nominal="3", value="100,0000", unit="33,3333"))).rates["USD"]
    assert rate == Decimal("33.333333333333")  # always Value/Nominal, never the rounded VunitRate


def test_result_is_immutable() -> None:
    rates = parse_cbr_daily(SAMPLE_CP1251)
    with pytest.raises(TypeError):
        rates.rates["USD"] = Decimal(1)  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rates.date = datetime.date.today()  # type: ignore[misc]


def test_usd_rub() -> None:
    assert usd_rub(parse_cbr_daily(SAMPLE_CP1251)) == Decimal("78.1234")


def test_usd_rub_without_usd() -> None:
    rates = DailyRates(date=datetime.date(2026, 11, 25), rates={"EUR": Decimal("90")})
    with pytest.raises(RateFileError, match=r"2026-11-25 has no USD rate"):
        usd_rub(rates)


# --- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"", b"not xml at all", b"<ValCurs Date='25.11.2026'>", b"\x00\x01\x02",
                                  b'<?xml version="1.0" encoding="utf-8"?><ValCurs Date="25.11.2026">\xff</ValCurs>',
                                  b'<?xml version="1.0" encoding="no-such-encoding"?><ValCurs/>'])
def test_not_xml(data: bytes) -> None:
    assert error_of(data).startswith("The rates file is not valid XML")


def test_html_error_page_is_not_xml() -> None:
    page = b"<html><head><title>503</title></head><body><br></body></html>"
    assert "not valid XML" in error_of(page)


def test_wrong_root() -> None:
    assert error_of(doc(valute(), root="ValCursDynamic")) == \
        "Wrong root element <ValCursDynamic>: expected <ValCurs>."


@pytest.mark.parametrize("date", ["", 'Date=""', 'Date="  "'])
def test_missing_date(date: str) -> None:
    assert error_of(doc(valute(), date=date)) == "The rates file has no Date attribute on <ValCurs>."


@pytest.mark.parametrize("value", ["2026-11-25", "25.11.26", "31.02.2026", "00.11.2026", "x"])
def test_bad_date(value: str) -> None:
    assert error_of(doc(valute(), date=f'Date="{value}"')) == f"Bad date '{value}': expected DD.MM.YYYY."


@pytest.mark.parametrize("value", ["78.12.34", "abc", "1e5", "NaN", "Infinity", "78 123,4", "7,8,1", "٧٨", ",5"])
def test_bad_number_in_value(value: str) -> None:
    assert error_of(doc(valute(value=value))) == f"Bad number '{value}' in Value at Valute R01235 (USD)."


@pytest.mark.parametrize("nominal", ["1,5", "ten", "1e2"])
def test_bad_number_in_nominal(nominal: str) -> None:
    assert error_of(doc(valute(nominal=nominal))) == f"Bad number '{nominal}' in Nominal at Valute R01235 (USD)."


def test_bad_number_in_vunitrate() -> None:
    assert error_of(doc(valute(unit="n/a"))) == "Bad number 'n/a' in VunitRate at Valute R01235 (USD)."


def test_bad_number_names_position_when_no_id_or_code() -> None:
    xml = "<Valute><CharCode>USD</CharCode><Nominal>1</Nominal><Value>1</Value></Valute><Valute><Nominal>1</Nominal><Value>1</Value></Valute>"
    assert error_of(doc(xml)) == "Missing CharCode at Valute #2."


@pytest.mark.parametrize("field", ["CharCode", "Nominal", "Value"])
def test_missing_field(field: str) -> None:
    xml = valute().replace(f"<{field}>", f"<Not{field}>").replace(f"</{field}>", f"</Not{field}>")
    assert error_of(doc(xml)).startswith(f"Missing {field} at Valute R01235")


def test_empty_value_is_missing() -> None:
    assert error_of(doc(valute(value="  "))) == "Missing Value at Valute R01235 (USD)."


@pytest.mark.parametrize("kwargs, field, shown", [
    ({"value": "0,0000"}, "Value", "0.0000"),
    ({"value": "-78,1234"}, "Value", "-78.1234"),
    ({"nominal": "0"}, "Nominal", "0"),
    ({"nominal": "-100"}, "Nominal", "-100"),
    ({"unit": "0,0"}, "VunitRate", "0.0"),
])
def test_non_positive_rate(kwargs: dict[str, str], field: str, shown: str) -> None:
    assert error_of(doc(valute(**kwargs))) == f"Non-positive {field} {shown} at Valute R01235 (USD)."


def test_vunitrate_disagreeing_with_value_is_refused() -> None:
    assert error_of(doc(valute(nominal="100", value="50,1234", unit="50,1234"))) == \
        "VunitRate 50.1234 does not match Value/Nominal 0.501234 at Valute R01235 (USD)."


@pytest.mark.parametrize("code", ["US", "USDX", "12$", "ДОЛ"])
def test_bad_currency_code(code: str) -> None:
    assert error_of(doc(valute(code=code))) == f"Bad currency code '{code}' at Valute R01235 ({code})."


def test_duplicate_currency() -> None:
    xml = valute() + valute(ident="R01235A", value="79,0000")
    assert error_of(doc(xml)) == "Duplicate currency USD in the rates file."


def test_duplicate_currency_differing_only_in_case() -> None:
    assert error_of(doc(valute() + valute(code="usd"))) == "Duplicate currency USD in the rates file."


def test_no_currencies() -> None:
    assert error_of(doc("")) == "The rates file contains no currencies."


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE ValCurs [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<ValCurs Date="25.11.2026"><Valute ID="R1"><CharCode>USD</CharCode><Nominal>1</Nominal><Value>1</Value><Name>&lol3;</Name></Valute></ValCurs>"""


@pytest.mark.parametrize("data", [
    BILLION_LAUGHS,
    b'<?xml version="1.0"?><!DOCTYPE ValCurs SYSTEM "file:///etc/passwd"><ValCurs Date="25.11.2026"/>',
    b'<!DOCTYPE ValCurs [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><ValCurs Date="&xxe;"/>',
    b"<!DOCTYPE ValCurs><ValCurs/>",
    BILLION_LAUGHS.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="utf-16"?>')
    .decode("ascii").encode("utf-16"),
])
def test_dtd_and_entities_are_refused(data: bytes) -> None:
    assert error_of(data) == "The rates file contains a DOCTYPE or ENTITY declaration, which is not allowed."


def test_error_is_a_value_error_with_a_lazy_message() -> None:
    with pytest.raises(ValueError) as info:
        parse_cbr_daily(doc(""))
    assert isinstance(info.value, RateFileError)
    assert isinstance(info.value.message, LazyString)  # translated when shown, not when raised


def test_rejects_text_input() -> None:
    with pytest.raises(TypeError):
        parse_cbr_daily(SAMPLE_TEXT)  # type: ignore[arg-type]


# --- property --------------------------------------------------------------------------------------

CODES = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3)
NOMINALS = st.sampled_from([1, 10, 100, 1000, 10000])
VALUES = st.integers(min_value=1, max_value=99_999_999_999).map(lambda n: Decimal(n).scaleb(-4))


def cbr_number(value: Decimal) -> str:
    return format(value, "f").replace(".", ",")


@settings(max_examples=150, deadline=None)
@given(
    entries=st.lists(st.tuples(CODES, NOMINALS, VALUES), min_size=1, max_size=12,
                     unique_by=lambda entry: entry[0]),
    day=st.dates(min_value=datetime.date(1992, 7, 1), max_value=datetime.date(2100, 12, 31)),
    encoding=st.sampled_from(["windows-1251", "utf-8"]),
    with_unit=st.booleans(),
)
def test_generated_documents_parse_to_the_same_numbers(
        entries: list[tuple[str, int, Decimal]], day: datetime.date, encoding: str, with_unit: bool) -> None:
    valutes = "".join(
        valute(code=code, nominal=str(nominal), value=cbr_number(value), ident=f"R{i:05d}",
               unit=cbr_number(value / nominal) if with_unit else None)
        for i, (code, nominal, value) in enumerate(entries))
    data = doc(valutes, date=f'Date="{day:%d.%m.%Y}"', encoding=encoding)

    parsed = parse_cbr_daily(data)

    assert parsed.date == day
    assert set(parsed.rates) == {code for code, _, _ in entries}
    for code, nominal, value in entries:
        rate = parsed.rates[code]
        assert rate * nominal == value  # exact: no float, nothing rounded
        assert -rate.as_tuple().exponent <= 8
