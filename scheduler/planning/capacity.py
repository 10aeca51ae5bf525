"""The capacity ledger: GPUs and CPUs in use per site per slot, and trials running per
capped sweep (Slurm's ``%N``), with a plain reference beside it.

A job holds every slot of ``PlanOptions.slot_s`` its run overlaps, so no slot is ever
over-committed. A site capacity of 0 means the planner does not manage that resource
there (no ledger). A trial of a capped sweep also takes one unit of its sweep's ledger, a
:class:`Ledger` whose one resource is "trials running" with the cap as capacity, over
each of its run intervals on whatever site it is on; the searches read a site's ledger
and the sweep's together (:class:`Capped`), so the cap is one more capacity.

Speed lives here: :class:`Ledger` keeps its counts as numpy arrays, so a capacity search
tests every candidate start of a window at once (:class:`Blocked`: a start fits iff the
running count of blocked slots does not change over the slots it holds).
:class:`NaiveLedger` is the same ledger as plain per-slot counts; the property tests
compare the two (and :class:`Capped` over either).

:class:`Capacity` is one plan's ledgers: made on first use per site and per sweep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from intensity.series import np
from scheduler.domain.holds import holds, sweep_holds, takes
from scheduler.domain.model import Job, Site
from scheduler.planning.types import Choice, Task, epoch


class Room(Protocol):
    """What a capacity search reads: a :class:`Ledger`, or a :class:`Capped` pair."""

    k0: int
    slot_s: int

    def manages(self, gpus: int, cpus: int) -> bool: ...
    def can_ever(self, gpus: int, cpus: int) -> bool: ...
    def span(self, a_s: int, b_s: int) -> tuple[int, int]: ...
    def free(self, a_s: int, b_s: int, gpus: int, cpus: int) -> bool: ...
    def blocked(self, a: int, b: int, gpus: int, cpus: int) -> Any: ...


class Ledger:
    """GPU and CPU use of one site, per slot of ``slot_s`` seconds from slot ``k0``, as
    numpy counts: a capacity search reads which slots of a window cannot take a job with
    one comparison over the window (:meth:`blocked`)."""

    __slots__ = ("cpu", "cpu_used", "gpu", "gpu_used", "k0", "slot_s")

    def __init__(self, site: Site, slot_s: int, k0: int) -> None:
        self.gpu = max(0, site.gpus)
        self.cpu = max(0, site.cpus)
        self.slot_s = slot_s
        self.k0 = k0
        self.gpu_used = np().zeros(0, dtype=np().int64)
        self.cpu_used = np().zeros(0, dtype=np().int64)

    def manages(self, gpus: int, cpus: int) -> bool:
        return (self.gpu > 0 and gpus > 0) or (self.cpu > 0 and cpus > 0)

    def can_ever(self, gpus: int, cpus: int) -> bool:
        return not ((self.gpu > 0 and gpus > self.gpu) or (self.cpu > 0 and cpus > self.cpu))

    def _grow(self, b: int) -> None:
        """Make the ledger cover slots ``[0, b)`` (unused slots are empty)."""
        n = len(self.gpu_used)
        if b > n:
            grow = max(b - n + 64, n)  # doubling: growing to the horizon stays linear
            zeros = np().zeros(grow, dtype=np().int64)
            self.gpu_used = np().concatenate((self.gpu_used, zeros))
            self.cpu_used = np().concatenate((self.cpu_used, zeros))

    def span(self, a_s: int, b_s: int) -> tuple[int, int]:
        """The slots ``[a, b)`` (indices from ``k0``) a run over ``[a_s, b_s)`` holds
        (:func:`slots_of`, written out: the searches ask it most)."""
        a = a_s // self.slot_s - self.k0
        if a < 0:
            a = 0
        b = -(-b_s // self.slot_s) - self.k0
        if b <= a:
            b = a + 1
        if b > len(self.gpu_used):
            self._grow(b)
        return a, b

    def free(self, a_s: int, b_s: int, gpus: int, cpus: int) -> bool:
        """Whether ``[a_s, b_s)`` has ``gpus`` GPUs and ``cpus`` CPUs left in every slot."""
        a, b = self.span(a_s, b_s)
        if self.gpu > 0 and gpus > 0 and self.gpu_used[a:b].max() + gpus > self.gpu:
            return False
        return not (self.cpu > 0 and cpus > 0 and self.cpu_used[a:b].max() + cpus > self.cpu)

    def blocked(self, a: int, b: int, gpus: int, cpus: int) -> Any:
        """A boolean per ledger slot of ``[a, b)`` (indices from ``k0``): true where the
        slot cannot take ``gpus`` GPUs and ``cpus`` CPUs more."""
        self._grow(b)
        gpu = self.gpu_used[a:b] > self.gpu - gpus if self.gpu > 0 and gpus > 0 else None
        cpu = self.cpu_used[a:b] > self.cpu - cpus if self.cpu > 0 and cpus > 0 else None
        if gpu is not None and cpu is not None:
            return gpu | cpu
        if gpu is None and cpu is None:
            return np().zeros(b - a, dtype=bool)
        return gpu if gpu is not None else cpu

    def take(self, a_s: int, b_s: int, gpus: int, cpus: int, sign: int = 1) -> None:
        a, b = self.span(a_s, b_s)
        if self.gpu > 0 and gpus > 0:
            self.gpu_used[a:b] += sign * gpus
        if self.cpu > 0 and cpus > 0:
            self.cpu_used[a:b] += sign * cpus


def slots_of(a_s: int, b_s: int, slot_s: int, k0: int) -> tuple[int, int]:
    """The slots ``[a, b)`` (indices from ``k0``, at least one) a run over ``[a_s, b_s)``
    overlaps."""
    a = max(0, a_s // slot_s - k0)
    b = -(-b_s // slot_s) - k0
    return a, max(b, a + 1)


class NaiveLedger:
    """The plain reference of :class:`Ledger`: a dict of per-slot counts, read one slot at
    a time (``blocked`` gives a list). The same questions; the property tests compare the two."""

    def __init__(self, site: Site, slot_s: int, k0: int) -> None:
        self.gpu = max(0, site.gpus)
        self.cpu = max(0, site.cpus)
        self.slot_s = slot_s
        self.k0 = k0
        self.used: dict[int, tuple[int, int]] = {}  # slot -> (gpus, cpus)

    def manages(self, gpus: int, cpus: int) -> bool:
        return (self.gpu > 0 and gpus > 0) or (self.cpu > 0 and cpus > 0)

    def can_ever(self, gpus: int, cpus: int) -> bool:
        return not ((self.gpu > 0 and gpus > self.gpu) or (self.cpu > 0 and cpus > self.cpu))

    def span(self, a_s: int, b_s: int) -> tuple[int, int]:
        return slots_of(a_s, b_s, self.slot_s, self.k0)

    def _full(self, k: int, gpus: int, cpus: int) -> bool:
        g, c = self.used.get(k, (0, 0))
        return (self.gpu > 0 and gpus > 0 and g + gpus > self.gpu) or (
            self.cpu > 0 and cpus > 0 and c + cpus > self.cpu)

    def free(self, a_s: int, b_s: int, gpus: int, cpus: int) -> bool:
        a, b = self.span(a_s, b_s)
        return not any(self._full(k, gpus, cpus) for k in range(a, b))

    def blocked(self, a: int, b: int, gpus: int, cpus: int) -> list[bool]:
        return [self._full(k, gpus, cpus) for k in range(a, b)]

    def take(self, a_s: int, b_s: int, gpus: int, cpus: int, sign: int = 1) -> None:
        a, b = self.span(a_s, b_s)
        for k in range(a, b):
            g, c = self.used.get(k, (0, 0))
            self.used[k] = (g + sign * gpus * (self.gpu > 0), c + sign * cpus * (self.cpu > 0))


class Capped:
    """What a trial of a capped sweep finds on a site: the site's ledger (``None`` where
    the site's capacity is not managed) and its sweep's (one "trial running" per run
    interval, the cap as capacity). The interface of :class:`Ledger` for the searches: a
    slot is blocked where either cannot take the trial."""

    __slots__ = ("k0", "site", "slot_s", "sweep")

    def __init__(self, site: Room | None, sweep: Room) -> None:
        self.site = site
        self.sweep = sweep
        self.k0 = sweep.k0
        self.slot_s = sweep.slot_s

    def manages(self, gpus: int, cpus: int) -> bool:
        return True

    def can_ever(self, gpus: int, cpus: int) -> bool:
        return self.site is None or self.site.can_ever(gpus, cpus)

    def span(self, a_s: int, b_s: int) -> tuple[int, int]:
        if self.site is not None:
            self.site.span(a_s, b_s)
        return self.sweep.span(a_s, b_s)

    def free(self, a_s: int, b_s: int, gpus: int, cpus: int) -> bool:
        return self.sweep.free(a_s, b_s, 1, 0) and (
            self.site is None or self.site.free(a_s, b_s, gpus, cpus))

    def blocked(self, a: int, b: int, gpus: int, cpus: int) -> Any:
        out = self.sweep.blocked(a, b, 1, 0)
        if self.site is not None and self.site.manages(gpus, cpus):
            out = out | self.site.blocked(a, b, gpus, cpus)
        return out


class Blocked:
    """The blocked slots of the ledger slots ``[lo, hi)`` for one job, read in O(1) per
    window: ``clear(a, b)`` (no blocked slot in ``[a, b)``) and ``last(a, b)`` (the last
    blocked one, or ``-1``)."""

    __slots__ = ("_blocked", "_count", "_last", "lo")

    def __init__(self, room: Room, lo: int, hi: int, gpus: int, cpus: int) -> None:
        n = np()
        self._blocked = room.blocked(lo, hi, gpus, cpus)
        self.lo = lo
        self._count = n.zeros(hi - lo + 1, dtype=n.int64)
        n.cumsum(self._blocked, out=self._count[1:])
        self._last: Any = None

    def clear(self, a: int, b: int) -> bool:
        return bool(self._count[b - self.lo] == self._count[a - self.lo])

    def clear_many(self, first: Any, after: Any) -> Any:
        """``clear`` for arrays of windows ``[first, after)``."""
        return self._count[after - self.lo] == self._count[first - self.lo]

    def last(self, a: int, b: int) -> int:
        if self.clear(a, b):
            return -1
        if self._last is None:
            n, lo = np(), self.lo
            self._last = n.maximum.accumulate(
                n.where(self._blocked, n.arange(lo, lo + len(self._blocked)), -1))
        return int(self._last[b - 1 - self.lo])


class Capacity:
    """One plan's ledgers: per site (``None`` where nothing is managed) and per capped
    sweep, made on first use."""

    def __init__(self, sites: Mapping[str, Site], slot_s: int, now_s: int, *,
                 enforce: bool, sweep_reserved: Sequence[tuple[int, datetime, datetime]]) -> None:
        self.sites = sites
        self.slot_s = slot_s
        self.now_s = now_s
        self.k0 = now_s // slot_s
        self.enforce = enforce
        self.sweep_reserved = sweep_reserved
        self.ledgers: dict[str, Ledger | None] = {}
        self.sweeps: dict[int, Ledger] = {}

    def ledger(self, site_name: str) -> Ledger | None:
        """The site's ledger; ``None`` where no capacity is managed."""
        try:
            return self.ledgers[site_name]
        except KeyError:
            site = self.sites.get(site_name)
            managed = site is not None and self.enforce and (site.gpus > 0 or site.cpus > 0)
            led = Ledger(site, self.slot_s, self.k0) if site is not None and managed else None
            self.ledgers[site_name] = led
            return led

    def sweep(self, job: Job) -> Ledger | None:
        """The ledger of running trials of ``job``'s sweep (``None`` outside a capped
        sweep); made at first use, holding the trials already running outside the plan."""
        sid = job.sweep_id
        if sid is None or job.sweep_limit is None:
            return None
        led = self.sweeps.get(sid)
        if led is None:
            cap = Site(f"sweep {sid}", "", gpus=max(1, job.sweep_limit))
            led = self.sweeps[sid] = Ledger(cap, self.slot_s, self.k0)
            for s, a, b in self.sweep_reserved:
                if s == sid and epoch(b) > self.now_s:
                    led.take(max(self.now_s, epoch(a)), epoch(b), 1, 0)
        return led

    def room(self, job: Job, site_name: str) -> Room | None:
        """What a capacity search for ``job`` on ``site_name`` reads: the site's ledger,
        and for a trial of a capped sweep its sweep's too."""
        led = self.ledger(site_name)
        sw = self.sweep(job)
        return led if sw is None else Capped(led, sw)

    def fits(self, t: Task, c: Choice) -> bool:
        sw = self.sweep(t.job)
        if sw is not None and not all(sw.free(a, b, 1, 0) for a, b in c.intervals):
            return False
        led = self.ledger(c.option.site)
        if led is None:
            return True
        g, cp = t.job.gpus, t.job.cpus
        if not led.manages(g, cp):
            return True
        if len(c.intervals) == 1:  # the common case, without a generator
            return led.free(*c.intervals[0], g, cp)
        return all(led.free(a, b, g_, c_) for a, b, g_, c_ in takes(t.job, c.intervals))

    def reserve(self, t: Task, c: Choice, sign: int = 1) -> None:
        sw = self.sweep(t.job)
        if sw is not None:
            for a, b in c.intervals:
                sw.take(a, b, 1, 0, sign)
        led = self.ledger(c.option.site)
        if led is None:
            return
        for a, b, g, cp in takes(t.job, c.intervals):
            led.take(a, b, g, cp, sign)

    def hold_running(self, job: Job, now: datetime) -> None:
        """A running or suspended job holds its site's capacity as :func:`holds` says, and
        a trial its sweep's as :func:`sweep_holds` says."""
        for site, a, b, gpus, cpus in holds(job, None, now):
            led = self.ledger(site)
            if led is not None:
                led.take(max(self.now_s, epoch(a)), epoch(b), gpus, cpus)
        sw = self.sweep(job)
        if sw is not None:
            for _, a, b in sweep_holds(job, None, now):
                sw.take(max(self.now_s, epoch(a)), epoch(b), 1, 0)

    def hold_reserved(self, reserved: Sequence[tuple[str, datetime, datetime, int, int]],
                      now: datetime) -> None:
        """Capacity held outside the plan's jobs (``PlanOptions.reserved``)."""
        for site_name, a, b, gpus, cpus in reserved:
            led = self.ledger(site_name)
            if led is not None and b > now:
                led.take(max(self.now_s, epoch(a)), epoch(b), gpus, cpus)
