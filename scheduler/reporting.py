"""Reports, pure: aggregate history rows by period, site, policy, owner, job or sweep.

Every figure is a sum or a weighted mean of the per-job figures in
:mod:`scheduler.history`, so a report always agrees with ``carbonshift history``:

- **jobs**: jobs in the group (any state); **finished**: jobs whose last run ended.
- **GPU-hours**: GPUs asked for x the last run's wall time (a running job counts so far,
  up to ``now``).
- **energy** (kWh, facility energy: measured IT energy x PUE) and **emissions** (kgCO2e)
  of jobs with accounting; **run-now** is the same measured power profile had each job
  started at submission; **saved** is run-now minus emitted, and its percentage.
- **deadline hits**: succeeded jobs with a deadline that finished by it, out of all
  succeeded jobs with a deadline (failed and cancelled jobs are not deadline misses of the
  scheduler and are left out).
- **mean delay**: mean time from submission to the start of the last run.
- **measured share**: the share of energy that was measured (NVML, RAPL) rather than
  estimated (CPU time, memory), weighted by energy; **actual share**: the share of
  emissions computed on actual (after the fact) intensity rather than forecast, weighted
  by emissions.
- **estimate**: the planner's expected grams at submission for the same jobs, to compare
  with what they really emitted.
- **carbon cost**: emissions x an internal carbon price (per tonne); **cost avoided**:
  saved x the price.

Grouping by sweep gives a row per sweep (``s3``) and one (``-``) for the jobs of no sweep.

Grouping by time uses the job's start (its submission if it never started), in the time
zone given (local time by default at the CLI, UTC with ``--utc``); empty periods between
the first and the last are filled in so charts keep a regular axis.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

from scheduler.domain.model import sweep_ref
from scheduler.errors import BadInput
from scheduler.history import HistoryRow
from scheduler.text.quantities import fmt_energy_kwh, fmt_pct, fmt_saved, fmt_vs

GROUPINGS = ("day", "week", "month", "site", "policy", "owner", "zone", "job", "sweep")
TIME_GROUPINGS = ("day", "week", "month")

#: Currency symbols and names accepted in a carbon price, mapped to their code.
_CURRENCIES = {
    "€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY", "eur": "EUR", "usd": "USD",
    "gbp": "GBP", "chf": "CHF", "sek": "SEK", "nok": "NOK", "dkk": "DKK", "jpy": "JPY",
    "cad": "CAD", "aud": "AUD", "pln": "PLN", "cny": "CNY", "inr": "INR",
}
#: ISO 4217 codes of the currencies in use (a typo like ``80XYZ/t`` is refused, not printed)
_ISO_CURRENCY_CODES = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS "
    "GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW "
    "KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD "
    "NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD "
    "SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES "
    "VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL"
)
ISO_CURRENCIES = frozenset(_ISO_CURRENCY_CODES.split())
_MASS_PER_T = {"t": 1.0, "tco2": 1.0, "tco2e": 1.0, "tonne": 1.0, "kg": 1000.0, "g": 1e6}
_PRICE_RE = re.compile(
    r"^\s*(?P<pre>[^\d\s.,/+-]+)?\s*(?P<num>[+-]?\d+(?:[.,]\d+)?(?:e[+-]?\d+)?)\s*"
    r"(?P<post>[^\d\s/]+)?\s*(?:/\s*(?P<per>[a-z0-9]+))?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CarbonPrice:
    """An internal carbon price: ``per_t`` money units per tonne of CO2e, in ``currency``."""

    per_t: float
    currency: str = ""

    @classmethod
    def parse(cls, text: str, *, default_currency: str = "") -> CarbonPrice:
        """``80/t``, ``80EUR/t``, ``€80/t``, ``EUR 80 / tCO2e``, ``0.08/kg``, ``80`` (per t)."""
        m = _PRICE_RE.match(text or "")
        if not m:
            raise BadInput(
                f"carbon price {text!r} is not a price per mass: use e.g. 80/t, 80EUR/t or 0.08/kg"
            )
        try:
            amount = float(m.group("num").replace(",", "."))
        except ValueError:
            raise BadInput(f"carbon price {text!r} is not a number") from None
        if not math.isfinite(amount) or amount < 0:
            raise BadInput(f"carbon price {text!r} must be zero or positive")
        per = (m.group("per") or "t").lower()
        if per not in _MASS_PER_T:
            raise BadInput(
                f"carbon price {text!r}: unknown mass {per!r} after '/': use t, kg or g"
            )
        cur_text = (m.group("pre") or m.group("post") or "").strip()
        currency = default_currency
        if cur_text:
            currency = _CURRENCIES.get(cur_text.lower(), cur_text.upper())
            if currency not in ISO_CURRENCIES:
                raise BadInput(
                    f"carbon price {text!r}: {cur_text!r} is not a currency: use an ISO code like "
                    "EUR, USD or GBP, or a symbol like €"
                )
        return cls(per_t=amount * _MASS_PER_T[per], currency=currency)

    def cost(self, grams: float) -> float:
        """The price of ``grams`` of CO2e."""
        return grams / 1e6 * self.per_t

    def __str__(self) -> str:
        cur = f" {self.currency}" if self.currency else ""
        return f"{self.per_t:g}{cur}/t"


@dataclass(frozen=True)
class ReportRow:
    """One group's totals. Masses in kg, energy in kWh, times in seconds.

    ``None`` means "no data in this group" (not zero): e.g. ``saved_pct`` with no
    accounted job, ``deadline_hit_pct`` with no deadline-bound job.
    """

    key: str
    start: datetime | None
    jobs: int = 0
    finished: int = 0
    succeeded: int = 0
    accounted: int = 0
    gpu_hours: float = 0.0
    energy_kwh: float = 0.0
    emissions_kg: float = 0.0
    run_now_kg: float = 0.0
    saved_kg: float = 0.0
    saved_pct: float | None = None
    deadline_hits: int = 0
    deadline_jobs: int = 0
    deadline_hit_pct: float | None = None
    mean_delay_s: float | None = None
    measured_share: float | None = None
    actual_share: float | None = None
    estimated_kg: float | None = None
    carbon_cost: float | None = None
    cost_avoided: float | None = None

    def as_dict(self) -> dict[str, object]:
        # shallow: every field is a scalar or a datetime (no deep copy, unlike asdict)
        return self.__dict__.copy()


REPORT_FIELDS = tuple(ReportRow.__dataclass_fields__)


@dataclass(frozen=True)
class Report:
    """A report: the grouping, the window, a row per group and the total."""

    by: str
    since: datetime | None
    until: datetime | None
    rows: list[ReportRow]
    total: ReportRow
    price: CarbonPrice | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "by": self.by,
            "since": self.since,
            "until": self.until,
            "carbon_price_per_t": self.price.per_t if self.price else None,
            "currency": self.price.currency if self.price else None,
            "rows": [r.as_dict() for r in self.rows],
            "total": self.total.as_dict(),
            "notes": list(self.notes),
        }


def _when(row: HistoryRow) -> datetime:
    return row.started_at or row.submitted_at


def period_start(when: datetime, by: str, tz: tzinfo) -> datetime:
    """The start (aware, in ``tz``) of the day, ISO week or month holding ``when``."""
    local = when.astimezone(tz)
    d: date = local.date()
    if by == "week":
        d = d - timedelta(days=d.weekday())
    elif by == "month":
        d = d.replace(day=1)
    elif by != "day":
        raise ValueError(f"not a time grouping: {by}")
    return datetime(d.year, d.month, d.day, tzinfo=tz)


def _next_period(start: datetime, by: str) -> datetime:
    tz = start.tzinfo
    d = start.date()
    if by == "day":
        d = d + timedelta(days=1)
    elif by == "week":
        d = d + timedelta(days=7)
    else:
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return datetime(d.year, d.month, d.day, tzinfo=tz)


def period_label(start: datetime, by: str) -> str:
    if by == "day":
        return start.strftime("%Y-%m-%d")
    if by == "week":
        iso = start.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return start.strftime("%Y-%m")


def _group_key(row: HistoryRow, by: str) -> str:
    if by == "site":
        return row.site or "-"
    if by == "policy":
        return row.policy or "-"
    if by == "owner":
        return row.owner or "-"
    if by == "zone":
        return row.zone or "-"
    if by == "job":
        return f"{row.id} {row.name}"
    if by == "sweep":
        return sweep_ref(row.sweep_id) if row.sweep_id is not None else "-"
    raise ValueError(by)


def aggregate(
    key: str,
    rows: Sequence[HistoryRow],
    *,
    start: datetime | None = None,
    price: CarbonPrice | None = None,
    now: datetime | None = None,
) -> ReportRow:
    """Totals of ``rows`` as one :class:`ReportRow` (see the module docstring)."""
    finished = [r for r in rows if r.finished_at is not None]
    acct = [r for r in rows if r.emissions_g is not None]
    gpu_h = 0.0
    for r in rows:
        if r.started_at is None or not r.gpus:
            continue
        end = r.finished_at or now
        if end is not None and end > r.started_at:
            gpu_h += r.gpus * (end - r.started_at).total_seconds() / 3600.0
    energy = sum(r.energy_kwh or 0.0 for r in acct)
    emitted_g = sum(r.emissions_g or 0.0 for r in acct)
    cf_g = sum(r.counterfactual_g or 0.0 for r in acct)
    saved_g = cf_g - emitted_g
    succeeded = [r for r in rows if r.state == "succeeded"]
    bound = [r for r in succeeded if r.deadline_at is not None and r.finished_at is not None]
    hits = sum(1 for r in bound if r.finished_at is not None and r.deadline_at is not None
               and r.finished_at <= r.deadline_at)
    delays = [(r.started_at - r.submitted_at).total_seconds() for r in rows if r.started_at]
    measured = (
        sum((r.energy_kwh or 0.0) * (r.measured_share or 0.0) for r in acct) / energy
        if energy > 0 else None
    )
    actual = (
        sum((r.emissions_g or 0.0) * (r.actual_share or 0.0) for r in acct) / emitted_g
        if emitted_g > 0 else None
    )
    est = [r.expected_g for r in acct if r.expected_g is not None]
    return ReportRow(
        key=key,
        start=start,
        jobs=len(rows),
        finished=len(finished),
        succeeded=len(succeeded),
        accounted=len(acct),
        gpu_hours=gpu_h,
        energy_kwh=energy,
        emissions_kg=emitted_g / 1000.0,
        run_now_kg=cf_g / 1000.0,
        saved_kg=saved_g / 1000.0,
        saved_pct=(100.0 * saved_g / cf_g) if cf_g > 0 else None,
        deadline_hits=hits,
        deadline_jobs=len(bound),
        deadline_hit_pct=(100.0 * hits / len(bound)) if bound else None,
        mean_delay_s=(sum(delays) / len(delays)) if delays else None,
        measured_share=measured,
        actual_share=actual,
        estimated_kg=(sum(est) / 1000.0) if est else None,
        carbon_cost=price.cost(emitted_g) if price else None,
        cost_avoided=price.cost(saved_g) if price else None,
    )


def build_report(
    rows: Iterable[HistoryRow],
    *,
    by: str = "day",
    tz: tzinfo = UTC,
    price: CarbonPrice | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
    fill_gaps: bool = True,
) -> Report:
    """Group history ``rows`` by ``by`` (one of :data:`GROUPINGS`) and total them.

    Time groups come in time order (empty periods filled in between the first and the last
    when ``fill_gaps``); other groups by descending emissions, then by name.
    """
    if by not in GROUPINGS:
        raise BadInput(f"--by {by!r} is not a grouping: use one of {', '.join(GROUPINGS)}")
    rows = list(rows)
    out: list[ReportRow] = []
    if by in TIME_GROUPINGS:
        buckets: dict[datetime, list[HistoryRow]] = {}
        for r in rows:
            buckets.setdefault(period_start(_when(r), by, tz), []).append(r)
        starts = sorted(buckets)
        if fill_gaps and starts:
            filled: list[datetime] = []
            cur = starts[0]
            while cur <= starts[-1] and len(filled) < 5000:
                filled.append(cur)
                cur = _next_period(cur, by)
            starts = filled
        for s in starts:
            out.append(aggregate(period_label(s, by), buckets.get(s, []), start=s, price=price, now=now))
    else:
        groups: dict[str, list[HistoryRow]] = {}
        for r in rows:
            groups.setdefault(_group_key(r, by), []).append(r)
        out = [aggregate(k, v, price=price, now=now) for k, v in groups.items()]
        if by == "job":
            out.sort(key=lambda x: int(x.key.split(" ", 1)[0]))
        elif by == "sweep":  # by sweep id, the jobs of no sweep ("-") last
            out.sort(key=lambda x: (x.key == "-", int(x.key[1:]) if x.key != "-" else 0))
        else:
            out.sort(key=lambda x: (-x.emissions_kg, x.key))
    total = aggregate("total", rows, price=price, now=now)
    notes = []
    if rows and not any(r.emissions_g is not None for r in rows):
        notes.append("no job in this window has energy and emissions figures yet")
    return Report(by=by, since=since, until=until, rows=out, total=total, price=price, notes=notes)


@dataclass(frozen=True)
class Accuracy:
    """How good the estimates were, over jobs that have a final figure.

    ``planned_*``: the planner's expected grams at submission against what the same jobs
    emitted. ``projection_*``: the last live projection of total energy recorded while
    each job ran (``projection`` events) against its final energy, as the mean absolute
    and the mean signed error in percent.
    """

    planned_jobs: int = 0
    planned_expected_kg: float | None = None
    planned_emitted_kg: float | None = None
    planned_error_pct: float | None = None
    projection_jobs: int = 0
    projection_mean_abs_error_pct: float | None = None
    projection_mean_error_pct: float | None = None
    projection_mean_done_pct: float | None = None

    def as_dict(self) -> dict[str, object]:
        # shallow: every field is a scalar or a datetime (no deep copy, unlike asdict)
        return self.__dict__.copy()

    def describe(self, fmt_g: Callable[[float | None], str]) -> str:
        """One line for the end of a report table ('' when nothing can be compared)."""
        parts = []
        if self.planned_jobs and self.planned_expected_kg is not None and self.planned_emitted_kg is not None:
            vs = fmt_vs(self.planned_expected_kg, self.planned_emitted_kg)
            err = f" ({vs})" if vs != "-" else ""
            parts.append(f"the planner expected {fmt_g(self.planned_expected_kg * 1000)} for "
                         f"{self.planned_jobs} measured job(s), they emitted "
                         f"{fmt_g(self.planned_emitted_kg * 1000)}{err}")
        if self.projection_jobs and self.projection_mean_abs_error_pct is not None:
            done = (f" at {self.projection_mean_done_pct:.0f}% done on average"
                    if self.projection_mean_done_pct is not None else "")
            parts.append(f"live projections of {self.projection_jobs} job(s) were off by "
                         f"{fmt_pct(self.projection_mean_abs_error_pct, 0)} of the final energy{done}")
        return ("estimates: " + "; ".join(parts)) if parts else ""


def accuracy(rows: Iterable[HistoryRow], projections: Mapping[int, object]) -> Accuracy:
    """Compare estimates with final figures. ``projections`` maps a job id to its last
    :class:`~scheduler.progress.StoredProjection`."""
    from scheduler.progress import StoredProjection

    done = [r for r in rows if r.emissions_g is not None and r.energy_kwh is not None]
    planned = [r for r in done if r.expected_g is not None]
    exp_g = sum(r.expected_g or 0.0 for r in planned)
    emit_g = sum(r.emissions_g or 0.0 for r in planned)
    errs: list[float] = []
    fracs: list[float] = []
    for r in done:
        p = projections.get(r.id)
        if isinstance(p, StoredProjection) and r.energy_kwh and r.energy_kwh > 0:
            errs.append(100.0 * (p.energy_kwh - r.energy_kwh) / r.energy_kwh)
            if p.fraction_done is not None:
                fracs.append(100.0 * p.fraction_done)
    return Accuracy(
        planned_jobs=len(planned),
        planned_expected_kg=exp_g / 1000.0 if planned else None,
        planned_emitted_kg=emit_g / 1000.0 if planned else None,
        planned_error_pct=(100.0 * (exp_g - emit_g) / emit_g) if planned and emit_g > 0 else None,
        projection_jobs=len(errs),
        projection_mean_abs_error_pct=(sum(abs(e) for e in errs) / len(errs)) if errs else None,
        projection_mean_error_pct=(sum(errs) / len(errs)) if errs else None,
        projection_mean_done_pct=(sum(fracs) / len(fracs)) if fracs else None,
    )


def fmt_kwh(kwh: float | None) -> str:
    """Energy for people, an SI prefix chosen per value (:func:`scheduler.text.quantities.fmt_energy_kwh`)."""
    return fmt_energy_kwh(kwh)


def fmt_money(value: float | None, currency: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    cur = f" {currency}" if currency else ""
    a = abs(value)
    if a == 0:
        return f"0{cur}"
    if a < 0.01:
        return f"{value:.2g}{cur}"
    return f"{value:,.2f}{cur}"


def table_rows(
    report: Report,
    fmt_g: Callable[[float | None], str],
    fmt_duration: Callable[[float], str],
) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of a report (the total last), for a text table."""
    headers = [report.by, "jobs", "GPU-h", "energy", "emissions", "run-now", "saved",
               "deadlines", "mean delay", "measured", "actual int."]
    if report.price is not None:
        headers += ["carbon cost", "avoided"]

    def pct(v: float | None, scale: float = 1.0) -> str:
        return "-" if v is None else f"{v * scale:.0f}%"

    cells = []
    for r in [*report.rows, report.total]:
        saved = fmt_saved(r.saved_kg * 1000, r.saved_pct, fmt_g) if r.accounted else "-"
        line = [
            r.key, str(r.jobs), f"{r.gpu_hours:.1f}" if r.gpu_hours else "0",
            fmt_kwh(r.energy_kwh) if r.accounted else "-",
            fmt_g(r.emissions_kg * 1000) if r.accounted else "-",
            fmt_g(r.run_now_kg * 1000) if r.accounted else "-",
            saved,
            f"{r.deadline_hits}/{r.deadline_jobs}" if r.deadline_jobs else "-",
            fmt_duration(r.mean_delay_s) if r.mean_delay_s is not None else "-",
            pct(r.measured_share, 100), pct(r.actual_share, 100),
        ]
        if report.price is not None:
            cur = report.price.currency
            line += [fmt_money(r.carbon_cost, cur), fmt_money(r.cost_avoided, cur)]
        cells.append(line)
    return headers, cells


__all__ = [
    "GROUPINGS",
    "REPORT_FIELDS",
    "Accuracy",
    "CarbonPrice",
    "Report",
    "ReportRow",
    "accuracy",
    "aggregate",
    "build_report",
    "fmt_kwh",
    "fmt_money",
    "period_label",
    "period_start",
    "table_rows",
]
