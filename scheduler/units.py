"""Moved to :mod:`scheduler.text.quantities` (the text package: parsing and rendering shared
by the CLI, the API and the web); this module keeps the old import path working."""

from scheduler.text.quantities import (
    ENERGY_PREFIXES,
    J_PER_KWH,
    J_PER_WH,
    MASS_PREFIXES,
    check_energy_j,
    check_grams,
    check_threshold,
    fmt_energy_j,
    fmt_energy_kwh,
    fmt_less,
    fmt_mass_g,
    fmt_number,
    fmt_pct,
    fmt_saved,
    fmt_vs,
    parse_energy_j,
    parse_grams,
    parse_threshold,
)

__all__ = [
    "ENERGY_PREFIXES", "J_PER_KWH", "J_PER_WH", "MASS_PREFIXES", "check_energy_j", "check_grams",
    "check_threshold", "fmt_energy_j", "fmt_energy_kwh", "fmt_less", "fmt_mass_g", "fmt_number", "fmt_pct",
    "fmt_saved", "fmt_vs", "parse_energy_j", "parse_grams", "parse_threshold",
]
