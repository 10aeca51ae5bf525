"""The Python API: what the CLI does, for notebooks and pipelines.

::

    from carbonshift import Client

    with Client() as cs:                      # same config, database and env as the CLI
        job = cs.submit("python train.py", duration="2h", deadline="12h")
        print(job.id, job.planned_start, job.expected_g, job.run_now_g)
        cs.queue()                            # waiting and running jobs
        code = cs.wait(job.id)                # the job's exit code
        cs.history(since="7d")                # HistoryRow list, same fields as the CLI's JSON
        cs.report(since="30d", by="owner", carbon_price="80EUR/t").total.saved_pct

A :class:`Client` is an edge like the CLI: unless given ``env``, it reads the process
environment once (``CARBONSHIFT_DB``, ``CARBONSHIFT_CONFIG``, ``CARBONSHIFT_*`` settings)
and passes the allow-listed part of it to submitted jobs. Errors are the package's own
(:class:`scheduler.errors.CarbonshiftError` and subclasses), never a traceback from a
dependency. Times are timezone-aware UTC datetimes; masses are grams, energies kWh.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from types import TracebackType
from typing import TYPE_CHECKING, Any

from scheduler.domain.model import TERMINAL_STATES, Event, Job, JobState, Run
from scheduler.errors import BadInput, CarbonshiftError

if TYPE_CHECKING:
    from intensity.chain import ForecastAnswer
    from scheduler.app import App
    from scheduler.clock import Clock
    from scheduler.history import HistoryRow
    from scheduler.progress import Projection, StoredProjection
    from scheduler.queue import SubmitRequest, SweepResult
    from scheduler.reporting import Report
    from scheduler.windows import WindowChoice

When = str | datetime | timedelta | int | float


class WaitTimeout(CarbonshiftError):
    """The job did not end within the time given to :meth:`Client.wait`."""


@dataclass(frozen=True)
class JobDetails:
    """Everything ``carbonshift show`` shows: the job, its runs, its story, its figures."""

    job: Job
    runs: list[Run]
    events: list[Event]
    history: HistoryRow
    projection: Projection | None = None
    projections: list[StoredProjection] = field(default_factory=list)


def _seconds(value: When, what: str) -> int:
    """A duration given as text (``"3h"``), seconds or a ``timedelta``, under the CLI's rule
    (:func:`~scheduler.text.times.check_duration_s`), never written out as text first."""
    from scheduler.text.times import check_duration_s, parse_duration_s

    if isinstance(value, str):
        return parse_duration_s(value, what=what)
    if isinstance(value, timedelta):
        return check_duration_s(value.total_seconds(), what=what, shown=repr(value))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return check_duration_s(value, what=what)
    raise BadInput(f"{what} {value!r} is not a duration: give '3h', seconds or a timedelta")


def _zero_or_seconds(value: When | None, what: str) -> int | None:
    """A duration that may be zero (a transfer delay, a pause grace), in seconds."""
    from scheduler.text.times import parse_duration_or_zero_s

    if value is None:
        return None
    if isinstance(value, str):
        return parse_duration_or_zero_s(value, what=what)
    if isinstance(value, timedelta | int | float) and not isinstance(value, bool) and (
            (value.total_seconds() if isinstance(value, timedelta) else value) == 0):
        return 0
    return _seconds(value, what)


def _instant(value: When | None, now: datetime, what: str) -> datetime | None:
    """A deadline-like value: an aware ``datetime``, text (an ISO time or a duration from
    ``now``) or a duration from ``now`` as seconds or a ``timedelta``."""
    from scheduler.text.times import check_when, parse_when

    if value is None:
        return None
    if isinstance(value, datetime):
        return check_when(value, now, what=what)
    if isinstance(value, str):
        return parse_when(value, now, what=what)
    return now + timedelta(seconds=_seconds(value, what))


#: the longest forecast asked for at once (a forecast's cost grows with its length)
MAX_FORECAST_HOURS = 14 * 24


class Client:
    """A carbonshift instance for Python code: submit, queue, show, cancel, history,
    report, forecast, wait and run, with the CLI's semantics."""

    def __init__(
        self,
        db: str | None = None,
        *,
        config: str | None = None,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        user: str | None = None,
    ) -> None:
        """Open the database of ``db`` (URL or SQLite path), else ``$CARBONSHIFT_DB``,
        the config file's ``db``, or the default file under the data directory."""
        from scheduler.app import App

        environ = dict(os.environ) if env is None else dict(env)
        self.app: App = App.from_cli(db=db, config=config, env=environ)
        if clock is not None:
            self.app.clock = clock
        if user is not None:
            self.app.user = user

    @classmethod
    def from_app(cls, app: App) -> Client:
        """Wrap an existing :class:`~scheduler.app.App` (tests, the demo)."""
        self = cls.__new__(cls)
        self.app = app
        return self

    # -- life cycle -----------------------------------------------------------------------
    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def now(self) -> datetime:
        return self.app.clock.now()

    # -- jobs -------------------------------------------------------------------------------
    def submit(
        self,
        command: str | Sequence[str],
        *,
        duration: When,
        name: str | None = None,
        policy: str | None = None,
        deadline: When | None = None,
        latest_start: When | None = None,
        max_delay: When | None = None,
        threshold: float | None = None,
        budget: float | str | None = None,
        run_now: bool = False,
        interruptible: bool = False,
        zone: str | None = None,
        site: str | Sequence[str] | None = None,
        gpus: int = 0,
        cpus: int = 1,
        power_w: float | None = None,
        priority: int = 0,
        after: When | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        shell: bool = False,
        transfer_delay: When | None = None,
        transfer_energy: float | str | None = None,
        pause_mode: str | None = None,
        pause_signal: str | None = None,
        pause_grace: When | None = None,
    ) -> Job:
        """Submit a job like ``carbonshift submit`` and return it, planned.

        ``command`` is an argv list, or a string split like a shell would (``shell=True``
        runs it through ``/bin/sh`` instead). Durations are ``"3h"``, seconds or a
        ``timedelta``; deadlines also an aware ``datetime``. ``budget`` is grams or text
        like ``"1.5kg"``. ``transfer_delay`` and ``transfer_energy`` (joules, or text like
        ``"0.5kWh"``) are what moving the job away from its home site costs.
        ``pause_mode`` (``"stop"`` or ``"checkpoint"``, implying ``interruptible``),
        ``pause_signal`` and ``pause_grace`` say how an interruptible job is paused. The
        returned job carries ``planned_start``, ``planned_site``, ``expected_g`` and
        ``run_now_g``.
        """
        given = {k: v for k, v in locals().items() if k not in ("self", "command", "duration")}
        req, now = self._request(command, duration, given)
        return self.app.queue.submit(req, now=now).job

    def submit_sweep(
        self,
        command: str | Sequence[str],
        *,
        duration: When,
        array: str | Sequence[int] | None = None,
        trials: Sequence[str | Sequence[str]] | None = None,
        max_concurrent: int | None = None,
        sweep_budget: float | str | None = None,
        name: str | None = None,
        **options: Any,
    ) -> SweepResult:
        """Submit a sweep like ``carbonshift submit --array``/``--sweep`` and return it
        with its trials, planned together (refused as the CLI refuses: the whole sweep past
        its deadline, or expected over ``sweep_budget``).

        ``array`` is ``"0-99%4"`` (Slurm's syntax) or a list of indices; ``trials`` one
        entry of extra arguments per trial (a string split like a shell, or a list), the
        ``--sweep FILE`` lines. ``{index}`` (and ``{args}``) in ``command`` are substituted
        per trial. ``max_concurrent`` caps trials running at once (``%N``);
        ``sweep_budget`` is the whole sweep's carbon budget in grams or text like
        ``"5kg"``. Every other keyword is :meth:`submit`'s, shared by all trials.
        """
        from scheduler.sweeps import expand, parse_array
        from scheduler.text.quantities import check_grams, parse_grams

        if (array is None) == (trials is None):
            raise BadInput("give a sweep either array= (indices like '0-9%2') or trials= (one "
                           "entry of arguments per trial)")
        limit = max_concurrent
        lines: list[list[str]] | None = None
        if isinstance(array, str):
            spec = parse_array(array, what="array")
            indices, limit = list(spec.indices), spec.limit if spec.limit is not None else limit
            if not indices:
                raise BadInput(f"array {array!r} gives no index: give indices like 0-9%2")
        elif array is not None:
            indices = [int(i) for i in array]
            if len(set(indices)) != len(indices) or any(i < 0 for i in indices):
                raise BadInput(f"array {list(array)[:10]!r}: give each index once, none negative")
        else:
            assert trials is not None
            lines = [shlex.split(t) if isinstance(t, str) else [str(a) for a in t] for t in trials]
            indices = list(range(len(lines)))
        if isinstance(limit, bool) or (limit is not None and (not isinstance(limit, int) or limit < 1)):
            raise BadInput(f"max_concurrent {limit!r} must be a whole number of at least 1")
        budget_g = None if sweep_budget is None else (
            parse_grams(sweep_budget, what="sweep budget") if isinstance(sweep_budget, str)
            else check_grams(sweep_budget, what="sweep budget"))
        req, now = self._request(command, duration, {**options, "name": name})
        base, reqs = expand(req, indices, lines)
        return self.app.queue.submit_sweep(reqs, indices, name=base, limit=limit, budget_g=budget_g, now=now)

    def _request(
        self, command: str | Sequence[str], duration: When, given: Mapping[str, Any],
    ) -> tuple[SubmitRequest, datetime]:
        """The checked request of :meth:`submit` (and of each trial of :meth:`submit_sweep`):
        ``given`` holds any of :meth:`submit`'s keywords, the others take its defaults."""
        import inspect

        params = inspect.signature(Client.submit).parameters
        o = {n: p.default for n, p in params.items() if p.kind is p.KEYWORD_ONLY and n != "duration"}
        unknown = sorted(set(given) - set(o))
        if unknown:
            raise BadInput(f"unknown option {unknown[0]!r}: use submit's keywords ({', '.join(sorted(o))})")
        o.update(given)
        from scheduler.domain.policies import policy_from_values
        from scheduler.queue import SubmitRequest
        from scheduler.text.quantities import (
            check_energy_j,
            check_grams,
            parse_energy_j,
            parse_grams,
            parse_threshold,
        )

        if isinstance(command, str):
            argv = [command] if o["shell"] else shlex.split(command)
        else:
            argv = [str(a) for a in command]
        now = self.now()
        duration_s = _seconds(duration, "duration")
        overrides = policy_from_values(
            now,
            deadline=_instant(o["deadline"], now, "deadline"),
            latest_start=_instant(o["latest_start"], now, "latest start"),
            max_delay_s=None if o["max_delay"] is None else _seconds(o["max_delay"], "max delay"),
            threshold_g_per_kwh=parse_threshold(o["threshold"]) if isinstance(o["threshold"], str) else o["threshold"],
            budget_g=(None if o["budget"] is None else parse_grams(o["budget"]) if isinstance(o["budget"], str)
                      else check_grams(o["budget"])),
            run_now=o["run_now"], interruptible=o["interruptible"],
        )
        sites = [o["site"]] if isinstance(o["site"], str) else list(o["site"] or [])
        req = SubmitRequest(
            argv=argv, duration_s=duration_s, name=o["name"], zone=o["zone"],
            site=sites[0] if sites else None, allowed_sites=sites, policy=o["policy"],
            overrides=overrides, cwd=o["cwd"], env=dict(o["env"] or {}), submitter_env=self.app.env,
            shell=o["shell"], gpus=o["gpus"], cpus=o["cpus"], power_w=o["power_w"], priority=o["priority"],
            not_before=_instant(o["after"], now, "after"),
            transfer_delay_s=_zero_or_seconds(o["transfer_delay"], "transfer delay"),
            transfer_energy_j=(None if o["transfer_energy"] is None
                               else parse_energy_j(o["transfer_energy"], what="transfer energy")
                               if isinstance(o["transfer_energy"], str)
                               else check_energy_j(o["transfer_energy"], what="transfer energy")),
            pause_mode=o["pause_mode"], pause_signal=o["pause_signal"],
            pause_grace_s=_zero_or_seconds(o["pause_grace"], "pause grace"),
        )
        return req, now

    def queue(self, *, all: bool = False) -> list[Job]:
        """Waiting and running jobs (``all=True``: every job), by id."""
        states = None if all else [JobState.PENDING, JobState.PLANNED, JobState.RUNNING,
                                   JobState.SUSPENDED]
        return self.app.store.list_jobs(states)

    def job(self, job_id: int) -> Job:
        """One job as stored now."""
        return self.app.store.get_job(job_id)

    def show(self, job_id: int) -> JobDetails:
        """A job with its runs, events, history figures, live projection (if running)
        and the projections recorded while it ran."""
        from scheduler.history import row_for
        from scheduler.progress import live_projection, stored_projections

        job = self.app.store.get_job(job_id)
        runs = self.app.store.runs_for_job(job_id)
        events = self.app.store.events_for_job(job_id)
        last = runs[-1] if runs else None
        projection = None
        if last is not None and last.finished_at is None and job.state in (JobState.RUNNING, JobState.SUSPENDED):
            projection = live_projection(self.app, job, last, self.now())
        return JobDetails(job, runs, events, row_for(job, last), projection, stored_projections(events))

    def cancel(self, job_id: int, *, grace_s: float = 10.0) -> Job:
        """Cancel a job; a job running on this host under the local executor is stopped
        (SIGTERM, then SIGKILL after ``grace_s``), elsewhere its agent stops it."""
        job, was_running = self.app.queue.cancel(job_id)
        if was_running:
            self.app.queue.stop_here(job_id, grace_s)
        return job

    def logs(self, job_id: int, *, stream: str = "out") -> str:
        """The last run's stdout (``stream="err"``: stderr) as text, '' if none yet."""
        runs = self.app.store.runs_for_job(job_id)
        if not runs:
            return ""
        path = runs[-1].out_path if stream == "out" else runs[-1].err_path
        if not path or not os.path.exists(path):
            return ""
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def wait(self, job_id: int, *, timeout: float | None = None, poll_s: float = 0.5) -> int:
        """Block until the job ends; return its exit code like ``carbonshift wait`` (0 for
        success, the job's code on failure, 1 if cancelled or lost). ``timeout`` is in
        real seconds; past it :class:`WaitTimeout`. Like the CLI, it records the running
        job's projected total as ``projection`` events (see :mod:`scheduler.progress`)."""
        from scheduler.progress import ProjectionRecorder, live_projection

        recorder = ProjectionRecorder()
        limit = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.app.store.get_job(job_id)
            if job.state in (JobState.RUNNING, JobState.SUSPENDED):
                runs = self.app.store.runs_for_job(job_id)
                if runs and runs[-1].finished_at is None:
                    proj = live_projection(self.app, job, runs[-1], self.now())
                    if proj is not None:
                        recorder.offer(self.app, job_id, proj, self.now())
            if job.state in TERMINAL_STATES:
                runs = self.app.store.runs_for_job(job_id)
                run = runs[-1] if runs else None
                if job.state is JobState.SUCCEEDED:
                    return 0
                if run is not None and run.exit_code not in (None, 0):
                    return int(run.exit_code)
                return 1
            if limit is not None and time.monotonic() >= limit:
                raise WaitTimeout(f"job {job_id} is still {job.state} after {timeout:g} s")
            time.sleep(poll_s)

    def run(self, *, until_idle: bool = True, sites: Iterable[str] | None = None,
            sample_interval_s: float | None = None, tick_s: float = 1.0) -> list[str]:
        """Run the daemon in this thread (``carbonshift run``); with ``until_idle`` it
        returns once no job is waiting or running. Returns the event lines it logged."""
        from scheduler.agent.loop import Daemon

        lines: list[str] = []
        daemon = Daemon(self.app, sites=sites, sample_interval_s=sample_interval_s,
                        tick_s=tick_s, exit_when_idle=until_idle, on_event=lines.append)
        daemon.run_forever()
        return lines

    # -- figures ----------------------------------------------------------------------------
    def _since(self, value: When | None, what: str) -> datetime | None:
        from scheduler.text.times import parse_since, require_aware

        if value is None:
            return None
        if isinstance(value, datetime):
            return require_aware(value, what=what)
        if isinstance(value, str):
            return parse_since(value, self.now(), what)
        return self.now() - timedelta(seconds=_seconds(value, what))

    def history(
        self,
        *,
        since: When | None = None,
        until: When | None = None,
        states: Iterable[JobState | str] | None = None,
        limit: int | None = None,
    ) -> list[HistoryRow]:
        """History rows (the fields of ``carbonshift history --format json``).
        ``since``/``until`` are aware datetimes or durations back from now (``"7d"``)."""
        from scheduler.history import history_rows

        return history_rows(
            self.app.store,
            states=[JobState(s) for s in states] if states else None,
            since=self._since(since, "since"),
            until=self._since(until, "until"),
            limit=limit,
        )

    def report(
        self,
        *,
        since: When | None = "30d",
        until: When | None = None,
        by: str = "day",
        carbon_price: str | None = None,
        tz: tzinfo = UTC,
    ) -> Report:
        """A report like ``carbonshift report`` (``since=None`` for all time); the carbon
        price defaults to the config's ``carbon_price``."""
        from scheduler.reporting import CarbonPrice, build_report

        t_since = self._since(since, "since")
        t_until = self._since(until, "until")
        price_text = carbon_price or self.app.settings.carbon_price
        price = CarbonPrice.parse(price_text) if price_text else None
        rows = self.history(since=t_since, until=t_until)
        return build_report(rows, by=by, tz=tz, price=price, since=t_since, until=t_until,
                            now=self.now())

    def forecast(self, zone: str | None = None, *, hours: float = 48.0) -> ForecastAnswer:
        """The zone's forecast through the provider chain (default: the config's zone),
        with where it came from (``answer.describe()``, ``answer.fallback``)."""
        if not (0 < hours <= MAX_FORECAST_HOURS):
            raise BadInput(f"hours {hours!r} is out of range: give a number of hours above 0 and "
                           f"at most {MAX_FORECAST_HOURS} (two weeks)")
        from intensity.errors import UnknownZone

        z = zone or self.app.settings.default_zone
        try:
            self.app.intensity.check_zone(z)
        except UnknownZone as exc:
            raise BadInput(str(exc)) from None
        return self.app.intensity.forecast(z, self.now(), int(hours * 3600))

    def best_window(self, *, duration: When, deadline: When = "24h",
                    zone: str | None = None) -> WindowChoice:
        """The cleanest window of ``duration`` ending by ``deadline`` in ``zone`` (default:
        the config's), exactly as ``carbonshift forecast ZONE`` picks it: ``.start``,
        ``.end``, ``.mean_g_per_kwh``, ``.saving_pct`` against starting now, and
        ``.answer`` saying which provider or fallback the forecast came from."""
        from intensity.errors import UnknownZone
        from scheduler.windows import choose_window

        now = self.now()
        duration_s = _seconds(duration, "duration")
        deadline_at = _instant(deadline, now, "deadline") or now + timedelta(hours=24)
        z = zone or self.app.settings.default_zone
        try:
            self.app.intensity.check_zone(z)
        except UnknownZone as exc:
            raise BadInput(str(exc)) from None
        return choose_window(self.app.intensity, z, now, duration_s, deadline_at,
                             deadline_text=deadline if isinstance(deadline, str) else "",
                             duration_text=duration if isinstance(duration, str) else "")

    def wait_for_window(self, *, duration: When, deadline: When = "24h", zone: str | None = None,
                        sleep: Callable[[float], object] = time.sleep) -> WindowChoice:
        """Block until the start of :meth:`best_window` (never past it: the window ends by
        the deadline) and return the window. The clock may be accelerated (replay)."""
        from scheduler.clock import sleep_until

        choice = self.best_window(duration=duration, deadline=deadline, zone=zone)
        sleep_until(self.app.clock, choice.start, sleep=sleep)
        return choice


__all__ = ["Client", "JobDetails", "WaitTimeout"]
