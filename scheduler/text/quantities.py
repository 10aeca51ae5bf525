"""Quantities for people: masses, energies, intensities, percentages and comparisons.

The one place where a figure becomes text for a person (tables, lines, the web page, the
daemon's log), and where a person's text becomes a figure (``1.5kg``, ``0.5kWh``,
``150g/kWh``: the parsers the CLI, the API and the web share). Three significant digits, an
SI prefix chosen per value (µg, mg, g, kg, t; mWh, Wh, kWh, MWh), never e-notation. JSON
keeps the raw numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scheduler.errors import BadInput

#: (factor, name) from small to large; values are in the base unit (g, Wh)
MASS_PREFIXES = ((1e-9, "ng"), (1e-6, "µg"), (1e-3, "mg"), (1.0, "g"), (1e3, "kg"), (1e6, "t"))
ENERGY_PREFIXES = ((1e-6, "µWh"), (1e-3, "mWh"), (1.0, "Wh"), (1e3, "kWh"), (1e6, "MWh"), (1e9, "GWh"))
J_PER_WH = 3600.0
J_PER_KWH = 1000 * J_PER_WH


def _round_sig(value: float, digits: int) -> float:
    return float(f"{value:.{digits - 1}e}")


def fmt_number(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits in plain decimals (``0.000123``,
    ``12.3``, ``12,300``): never e-notation."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    rounded = _round_sig(value, digits)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:,.{decimals}f}"


def _si(value: float | None, prefixes: tuple[tuple[float, str], ...], zero: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return f"0 {zero}"
    a = _round_sig(abs(value), 3)  # 999.6 mg is 1.00 g, not "1,000 mg"
    factor, name = prefixes[0]
    for f, n in prefixes:
        if a >= f * (1 - 1e-9):
            factor, name = f, n
    return f"{fmt_number(value / factor)} {name}"


def fmt_mass_g(grams: float | None) -> str:
    """Grams for people: ``221 µg``, ``1.12 mg``, ``45.6 g``, ``1.23 kg``, ``4.5 t``."""
    return _si(grams, MASS_PREFIXES, "g")


def fmt_energy_j(joules: float | None) -> str:
    """Joules for people, in watt-hours: ``2.78 mWh``, ``12.3 Wh``, ``1.5 kWh``."""
    return _si(None if joules is None else joules / J_PER_WH, ENERGY_PREFIXES, "Wh")


def fmt_energy_kwh(kwh: float | None) -> str:
    """:func:`fmt_energy_j` of a figure in kWh."""
    return fmt_energy_j(None if kwh is None else kwh * 3.6e6)


def fmt_pct(value: float | None, decimals: int = 1) -> str:
    """``67.2%``; ``-`` when unknown."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.{decimals}f}%"


def fmt_vs(estimate: float | None, final: float | None) -> str:
    """How an estimate compared with the final figure, in words that cannot be read
    backwards: ``12% over``, ``30% under``, ``on the mark``, and past twice or half the
    final figure a ratio (``3.1x too high``, ``4x too low``) instead of a percentage
    like +2519751%. ``-`` when either is unknown or the final figure is not positive."""
    if estimate is None or final is None or not (final > 0) or not math.isfinite(estimate):
        return "-"
    ratio = estimate / final
    if ratio >= 2:
        return f"{fmt_number(ratio, 2)}x too high"
    if ratio <= 0:
        return "none expected"
    if ratio <= 0.5:
        return f"{fmt_number(1 / ratio, 2)}x too low"
    pct = 100.0 * (ratio - 1.0)
    if abs(pct) < 0.5:
        return "on the mark"
    return f"{abs(pct):.0f}% {'over' if pct > 0 else 'under'}"


def fmt_less(saving_pct: float, decimals: int = 1) -> str:
    """A saving in percent as words: ``66.9% less``; a negative one ``12.0% more``
    (never "-12.0% less")."""
    return f"{fmt_pct(abs(saving_pct), decimals)} {'more' if saving_pct < 0 else 'less'}"


def fmt_saved(saved_g: float | None, saved_pct: float | None,
              fmt_g: Callable[[float | None], str] | None = None, *, verb: str = "") -> str:
    """A saving against run-now: ``452 µg (67.2%)``; one that is negative says what it
    is, ``1.20 g more (322.0%)``, rather than "saved -1.20 g (-322.0%)". ``verb`` (like
    ``"saved "``) leads a real saving only. ``fmt_g`` formats the grams (default
    :func:`fmt_mass_g`)."""
    mass = fmt_g or fmt_mass_g
    if saved_g is None or not math.isfinite(saved_g):
        return "-"
    pct = "" if saved_pct is None else f" ({fmt_pct(abs(saved_pct))})"
    if saved_g < 0:
        return f"{mass(-saved_g)} more{pct}"
    return f"{verb}{mass(saved_g)}{pct}"


# -- text to figures ------------------------------------------------------------------------
# ``check_*`` are the rules a figure keeps however it was given (text at the CLI, a number in
# the Python API); ``parse_*`` read text and then apply them.
def check_grams(value: float, *, what: str = "budget", shown: str | None = None) -> float:
    """A mass in grams: finite and above zero."""
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"{what} {shown or repr(value)} must be a positive mass like 500g")
    return float(value)


def check_energy_j(value: float, *, what: str = "energy", shown: str | None = None) -> float:
    """An energy in joules: finite and zero or more."""
    if not math.isfinite(value) or value < 0:
        raise BadInput(f"{what} {shown or repr(value)} must be zero or more, like 0.5kWh")
    return float(value)


def check_threshold(value: float, *, shown: str | None = None) -> float:
    """A carbon intensity threshold in gCO2/kWh: finite and above zero."""
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"threshold {shown or repr(value)} must be a positive number of gCO2/kWh")
    return float(value)


def parse_grams(text: str, *, what: str = "budget") -> float:
    """``500``, ``500g``, ``1.5kg``, ``0.2t`` -> grams (``what`` names the value in errors)."""
    t = text.strip().lower().replace(" ", "")
    factor = 1.0
    for suffix, f in (("kg", 1000.0), ("t", 1e6), ("g", 1.0)):
        if t.endswith(suffix):
            t, factor = t[: -len(suffix)], f
            break
    try:
        value = float(t) * factor
    except ValueError:
        raise BadInput(f"{what} {text!r} is not a mass: use grams like 500g or 1.5kg") from None
    return check_grams(value, what=what, shown=repr(text))


_ENERGY_UNITS_J = {"j": 1.0, "kj": 1e3, "mj": 1e6, "gj": 1e9, "wh": J_PER_WH, "kwh": J_PER_KWH,
                   "mwh": 1e3 * J_PER_KWH, "gwh": 1e6 * J_PER_KWH}


def parse_energy_j(text: str, *, what: str = "energy") -> float:
    """``0.5kWh``, ``200Wh``, ``1.8MJ``, ``5000J`` -> joules (a unit is required; 0 is fine)."""
    t = text.strip().lower().replace(" ", "")
    for unit in sorted(_ENERGY_UNITS_J, key=len, reverse=True):
        if t.endswith(unit) and t[: -len(unit)]:
            try:
                value = float(t[: -len(unit)]) * _ENERGY_UNITS_J[unit]
            except ValueError:
                break
            return check_energy_j(value, what=what, shown=repr(text))
    raise BadInput(f"{what} {text!r} is not an energy: use a number with a unit, like 0.5kWh, 200Wh or 1.8MJ")


def parse_threshold(text: str) -> float:
    """``150``, ``150g``, ``150g/kWh`` -> a positive intensity in gCO2/kWh."""
    try:
        value = float(text.strip().lower().removesuffix("g/kwh").removesuffix("g"))
    except ValueError:
        raise BadInput(f"threshold {text!r} is not a number of gCO2/kWh: use e.g. 150") from None
    return check_threshold(value, shown=repr(text))


__all__ = [
    "J_PER_KWH",
    "J_PER_WH",
    "check_energy_j",
    "check_grams",
    "check_threshold",
    "fmt_energy_j",
    "fmt_energy_kwh",
    "fmt_less",
    "fmt_mass_g",
    "fmt_number",
    "fmt_pct",
    "fmt_saved",
    "fmt_vs",
    "parse_energy_j",
    "parse_grams",
    "parse_threshold",
]
