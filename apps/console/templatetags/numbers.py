"""Numbers written for people: ``{% load numbers %}``, then ``percent``, ``count`` and ``number``.

The console shows scores, probabilities and counts; raw floats (``0.8541666666666666``) and
unseparated counts say less than ``85.4%`` and ``12,480``. A missing value reads as a dash.
"""

from __future__ import annotations

import math

from django import template

register = template.Library()

MISSING = "–"


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@register.filter
def percent(value, places: int = 1) -> str:
    """A ratio in [0, 1] as a percent with one decimal: 0.85416 -> "85.4%"."""
    number = _finite(value)
    if number is None:
        return MISSING
    return f"{100.0 * number:.{int(places)}f}%"


@register.filter
def count(value) -> str:
    """A count with thousands separators: 12480 -> "12,480"."""
    number = _finite(value)
    if number is None:
        return MISSING
    return f"{round(number):,}"


@register.filter
def number(value, places: int = 3) -> str:
    """A measured value (an error in target units, a loss) with a fixed number of decimals and
    thousands separators: 1234.56789 -> "1,234.568"."""
    figure = _finite(value)
    if figure is None:
        return MISSING
    return f"{figure:,.{int(places)}f}"


_SIZE_UNITS = ("bytes", "kB", "MB", "GB", "TB", "PB")


@register.filter
def size(value) -> str:
    """A number of bytes in decimal units with one decimal: 1234567 -> "1.2 MB", 900 -> "900 bytes"."""
    figure = _finite(value)
    if figure is None:
        return MISSING
    unit = 0
    while abs(figure) >= 1000 and unit < len(_SIZE_UNITS) - 1:
        figure /= 1000
        unit += 1
    return f"{round(figure):,} bytes" if unit == 0 else f"{figure:,.1f} {_SIZE_UNITS[unit]}"
