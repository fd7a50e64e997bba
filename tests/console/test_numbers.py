"""Numbers in the console are written for people (apps/console/templatetags/numbers.py)."""

from __future__ import annotations

import math

import pytest

from apps.console.templatetags.numbers import count, number, percent, size


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.8541666666666666, "85.4%"), (1, "100.0%"), (0.0, "0.0%"), (None, "–"), ("x", "–"), (math.nan, "–")],
)
def test_a_ratio_reads_as_a_percent_with_one_decimal(value, text):
    assert percent(value) == text


@pytest.mark.parametrize(
    ("value", "text"), [(12480, "12,480"), (0, "0"), (1234567.0, "1,234,567"), (None, "–")]
)
def test_a_count_has_thousands_separators(value, text):
    assert count(value) == text


def test_a_measured_value_has_fixed_decimals_and_separators():
    assert number(1234.56789) == "1,234.568"
    assert number(0.51234, 4) == "0.5123"
    assert number(math.inf) == "–"


@pytest.mark.parametrize(
    ("value", "text"),
    [(900, "900 bytes"), (4_400, "4.4 kB"), (1_234_567, "1.2 MB"), (5_000_000_000, "5.0 GB"), (None, "–")],
)
def test_a_number_of_bytes_reads_in_decimal_units_with_one_decimal(value, text):
    assert size(value) == text
