"""The inline SVG bar chart: well-formed, one bar per category and series, titles, escaping."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from portal.services.charts import Series, bar_chart

NS = {"svg": "http://www.w3.org/2000/svg"}
D = Decimal


def parse(markup) -> ET.Element:
    return ET.fromstring(str(markup))


def bars(root: ET.Element) -> list[ET.Element]:
    return root.findall(".//svg:rect[@class='bar']", NS)


def test_one_bar_per_day_with_a_hover_title():
    """Three days, one series: three bars, each titled with its day, series and formatted value."""
    svg = parse(bar_chart(["1 Nov", "2 Nov", "3 Nov"], [Series("Paid", [D("1.50"), D("0"), D("3.00")])],
                          title="Paid per day", x_label="Day", y_label="USD", fmt=lambda v: f"${v}"))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert svg.find("svg:title", NS).text == "Paid per day"
    found = bars(svg)
    assert [b.find("svg:title", NS).text for b in found] == [
        "1 Nov — Paid: $1.50", "2 Nov — Paid: $0", "3 Nov — Paid: $3.00"]
    heights = [float(b.get("height")) for b in found]
    assert heights[1] == 0 and heights[2] == pytest.approx(2 * heights[0])
    labels = [t.text for t in svg.findall(".//svg:text[@class='axis-label']", NS)]
    assert labels == ["Day", "USD"]


def test_grouped_series_have_a_legend_and_bars_for_every_day():
    """Two series over 40 days: 80 bars, a legend with both names, at most 12 day labels."""
    days = [f"d{i}" for i in range(40)]
    svg = parse(bar_chart(days, [Series("Opened", list(range(40))), Series("Resolved", [1] * 40)],
                          title="Claims", x_label="Day", y_label="Claims"))
    groups = svg.findall(".//svg:g[@class='series']", NS)
    assert [g.get("data-series") for g in groups] == ["Opened", "Resolved"]
    assert [len(g.findall("svg:rect", NS)) for g in groups] == [40, 40]
    assert [t.text for t in svg.findall(".//svg:g[@class='legend']/svg:text", NS)] == ["Opened", "Resolved"]
    assert 1 < len(svg.findall(".//svg:g[@class='x-labels']/svg:text", NS)) <= 12


def test_text_is_escaped():
    """Labels with markup characters stay text: the SVG still parses and shows them verbatim."""
    svg = parse(bar_chart(["<b>&"], [Series('a "quoted" <series>', [1])], title="T & <x>", x_label="<",
                          y_label=">"))
    assert svg.find("svg:title", NS).text == "T & <x>"
    assert bars(svg)[0].find("svg:title", NS).text == '<b>& — a "quoted" <series>: 1'


def test_negative_values_hang_below_the_zero_line():
    """A negative value's bar starts at the zero line and goes down; a positive one goes up."""
    svg = parse(bar_chart(["a", "b"], [Series("net", [D("-2"), D("2")])], title="t", x_label="x", y_label="y"))
    down, up = bars(svg)
    zero = float(svg.find(".//svg:line[@class='x-axis']", NS).get("y1"))
    assert float(down.get("y")) == pytest.approx(zero) and float(down.get("height")) > 0
    assert float(up.get("y")) + float(up.get("height")) == pytest.approx(zero)


def test_all_zero_and_empty_charts_are_well_formed():
    """No data still draws a valid chart (zero-height bars), and a length mismatch is refused."""
    svg = parse(bar_chart(["a", "b"], [Series("s", [0, 0])], title="t", x_label="x", y_label="y"))
    assert [float(b.get("height")) for b in bars(svg)] == [0, 0]
    parse(bar_chart([], [Series("s", [])], title="t", x_label="x", y_label="y"))
    with pytest.raises(ValueError):
        bar_chart(["a"], [Series("s", [1, 2])], title="t", x_label="x", y_label="y")
