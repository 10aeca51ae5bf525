"""scheduler.units: the figures people read (three significant digits, SI prefixes per
value, never e-notation, comparisons that read the right way)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.units import (
    fmt_energy_j,
    fmt_energy_kwh,
    fmt_less,
    fmt_mass_g,
    fmt_number,
    fmt_saved,
    fmt_vs,
)


@pytest.mark.parametrize(("grams", "text"), [
    (0, "0 g"), (2.213e-4, "221 µg"), (1.12e-3, "1.12 mg"), (0.9996, "1.00 g"), (45.6, "45.6 g"),
    (999.6, "1.00 kg"), (4400, "4.40 kg"), (12_345_678, "12.3 t"), (3.663e-05, "36.6 µg"), (-0.5, "-500 mg"),
    (None, "-"), (float("nan"), "-"),
])
def test_mass(grams: float | None, text: str) -> None:
    assert fmt_mass_g(grams) == text


def test_energy() -> None:
    assert fmt_energy_j(9) == "2.50 mWh" and fmt_energy_j(3600) == "1.00 Wh" and fmt_energy_j(0) == "0 Wh"
    assert fmt_energy_kwh(13.5) == "13.5 kWh" and fmt_energy_kwh(3300 / 1000) == "3.30 kWh"
    assert fmt_energy_j(3.6e12) == "1.00 GWh"


def test_comparisons_read_the_right_way() -> None:
    assert fmt_vs(25.2, 3.663e-05) == "690,000x too high"  # not "+68795961%"
    assert fmt_vs(1.1, 1.0) == "10% over" and fmt_vs(0.7, 1.0) == "30% under"
    assert fmt_vs(0.2, 1.0) == "5.0x too low" and fmt_vs(1.002, 1.0) == "on the mark"
    assert fmt_vs(1.0, 0.0) == "-" and fmt_vs(None, 1.0) == "-"
    assert fmt_less(66.94) == "66.9% less" and fmt_less(-12.0) == "12.0% more"
    assert fmt_saved(-1.2, -322.0) == "1.20 g more (322.0%)"
    assert fmt_saved(4.5e-4, 67.2, verb="saved ") == "saved 450 µg (67.2%)"
    assert fmt_saved(-1.2, None, verb="saved ") == "1.20 g more"


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))
def test_never_e_notation(value: float) -> None:
    for text in (fmt_number(value), fmt_mass_g(value), fmt_energy_j(value)):
        assert not re.search(r"\d[eE][+-]?\d", text), text
