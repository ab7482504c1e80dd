"""Ids compared as the original's JavaScript `==` compared them, and page parameters."""

from __future__ import annotations

import math

import pytest

from microforum.services.params import js_number, loose_id

NUMBERS = [
    ("1", 1.0),
    ("01", 1.0),
    ("1.0", 1.0),
    ("1e0", 1.0),
    (" 1 ", 1.0),
    ("+1", 1.0),
    ("0x1f", 31.0),
    ("0o7", 7.0),
    ("0b11", 3.0),
    (".5e1", 5.0),
    ("1.", 1.0),
    ("", 0.0),
    ("-2", -2.0),
    ("Infinity", math.inf),
    ("-Infinity", -math.inf),
]
NOT_NUMBERS = ["abc", "1a", "1_0", "0x", "--1", "1e", "infinity", "nan", "\u0661", "+0x1", "1 2"]


@pytest.mark.parametrize(("text", "expected"), NUMBERS)
def test_js_number(text: str, expected: float) -> None:
    assert js_number(text) == expected


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_js_number_nan(text: str) -> None:
    assert math.isnan(js_number(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4", 4),
        ("004", 4),
        ("4.0", 4),
        ("4e0", 4),
        ("0x4", 4),
        ("40e-1", 4),
        ("4.5", None),
        ("0", None),
        ("-4", None),
        ("abc", None),
        ("Infinity", None),
        ("9223372036854775807", 2**63 - 1),
        ("9223372036854775808", None),
        ("1e300", None),
    ],
)
def test_loose_id(text: str, expected: int | None) -> None:
    assert loose_id(text) == expected
