"""How a run ends: :meth:`Outcome.finish` (last samples, exit code, job state, accounting,
one event) and :meth:`Outcome.lost` (requeue while the deadline allows, else ``lost``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from scheduler.agent.metering import Metering
from scheduler.agent.runs import ActiveRun, Events
from scheduler.agent.trials import Trials
from scheduler.clock import Clock, SystemClock
from scheduler.contracts import AccountingPoints, Executor, ExitStatus, Handle, JobStore
from scheduler.domain.accounting import account, counterfactual_window
from scheduler.domain.model import Job, JobState, Run, Site
from scheduler.errors import CarbonshiftError
from scheduler.mlflow_log import log_job_metrics, metric_names
from scheduler.text.quantities import fmt_energy_kwh, fmt_mass_g
from scheduler.text.times import format_duration

log = logging.getLogger("carbonshift.daemon")

#: A lost run (its agent, supervisor or host died; its lease ran out) is not an attempt of
#: the job: the job did not fail, and nothing else counts against it, however often
#: carbonshift crashes. Only a job whose runs keep being lost this often is given up (it
#: may be what brings its host down: out of memory, a kernel panic), so that it is not
#: retried forever.
MAX_LOST_RUNS = 10


class Outcome:
    def __init__(self, store: JobStore, clock: Clock, metering: Metering, events: Events, *,
                 sites: Callable[[], dict[str, Site]], intensity: Callable[[], AccountingPoints],
                 trials: Trials | None = None) -> None:
        self.store, self.clock, self.metering, self.events = store, clock, metering, events
        #: the sites and the intensity service, asked when a run is accounted
        self.sites, self.intensity, self.trials = sites, intensity, trials

    def finish(self, act: ActiveRun, status: ExitStatus) -> None:
        """Close a run: last samples, exit code, job state, accounting, one event."""
        job, run = act.job, act.run
        assert job.id is not None and run.id is not None
        self.metering.end(act, final_cpu_s=status.cpu_s)
        if act.process:  # a checkpointed job's old group is long gone (its id may be reused)
            self.cleanup_group(act)
        now = self.clock.now()
        current = self.store.get_job(job.id)
        state = JobState(status.state)
        if current.state is JobState.CANCELLED:
            state = JobState.CANCELLED
        run.finished_at = now
        run.exit_code = status.exit_code
        run.state = state
        run.reason = status.reason
        self._engine_times(run, status)
        if not self.store.close_run(run):
            stored = self.store.get_run(run.id)
            if not (stored.state is run.state and stored.reason == run.reason):
                self.events.emit(job.id, "finished", f"run {run.id} ended ({state}) but another agent "
                                 "had already closed it (its lease had run out)")
                return
            # closed by our own earlier try, cut short by a database error: carry on
        if state is JobState.LOST:
            self.lost(current, run, status.reason)
        elif current.state is not JobState.CANCELLED:
            self.store.transition(job.id, state, expected={JobState.RUNNING, JobState.SUSPENDED},
                                  note=status.reason or None)
        extra = self._account(current, run, act.executor)
        code = f"exit {status.exit_code}" if status.exit_code is not None else status.reason
        took = format_duration((now - run.started_at).total_seconds())
        if job.interruptible:
            spans = [(iv.start, iv.end or now) for iv in self.store.run_intervals(run.id)]
            if len(spans) > 1:
                ran = sum((b - a).total_seconds() for a, b in spans)
                took += f" (ran {format_duration(ran)} in {len(spans)} intervals)"
        self.events.emit(job.id, "finished", f"{state} ({code}) after {took}{extra}")
        self._check_sweep_budget(current)

    def lost(self, job: Job, run: Run, reason: str) -> None:
        """A run died unobserved: requeue if the deadline still allows (and the job has not
        lost :data:`MAX_LOST_RUNS` runs), else mark lost."""
        assert job.id is not None
        now = self.clock.now()
        can_finish = job.deadline_at is None or now + timedelta(seconds=job.duration_s) <= job.deadline_at
        lost = sum(r.state is JobState.LOST for r in self.store.runs_for_job(job.id))
        if lost >= MAX_LOST_RUNS:
            reason = f"{reason}; given up after {lost} lost runs (it may be what brings its host down)"
        if (
            can_finish
            and lost < MAX_LOST_RUNS
            and self.store.transition(
                job.id, JobState.PENDING, expected={JobState.RUNNING, JobState.SUSPENDED},
                note=f"requeued after a lost run: {reason}",
            )
        ):
            self.events.emit(job.id, "requeued", f"run {run.id} lost ({reason}); the job will run again")
            return
        self.store.transition(job.id, JobState.LOST, expected={JobState.RUNNING, JobState.SUSPENDED}, note=reason)
        self.events.emit(job.id, "lost", f"run {run.id}: {reason}")

    def cleanup_group(self, act: ActiveRun) -> None:
        """End what a finished (or checkpointed) run left behind."""
        try:
            if act.executor.cleanup_group(act.handle):
                self.events.emit(act.job.id, "cleanup", "ended processes the job left behind")
        except Exception as exc:
            log.warning("cleanup of run %s: %s", act.run.id, exc)

    def _engine_times(self, run: Run, status: ExitStatus) -> None:
        """An engine-side run (Slurm) started when the engine started it, not when it was
        submitted: take the engine's start and end (real UTC) when the clock is real."""
        if not isinstance(self.clock, SystemClock):
            return  # a simulated clock: engine times are real, keep ours
        for key, attr in (("slurm_start", "started_at"), ("slurm_end", "finished_at")):
            text = status.extra.get(key)
            if not text:
                continue
            try:
                value = datetime.fromisoformat(text)
            except ValueError:
                continue
            if value.tzinfo is not None and (attr == "finished_at" or value >= run.started_at):
                setattr(run, attr, value)

    def _account(self, job: Job, run: Run, executor: Executor) -> str:
        assert run.id is not None
        try:
            samples = self.store.samples_for_run(run.id)
            engine = executor.energy(Handle(run.handle or ""))
            if engine:
                self.store.add_samples(run.id, engine)
                samples = engine
            if not samples or run.finished_at is None:
                return ""
            site = self.sites().get(run.site)
            zone = site.zone if site is not None else job.zone
            pue = site.pue if site is not None else 1.0
            first = min(s.start for s in samples)
            last = max(s.end for s in samples)
            intensity = self.intensity()
            pts = intensity.points_for_accounting(zone, first, last + timedelta(seconds=1))
            # a paused run: its intervals, laid end to end from submission for run-now
            spans = [(iv.start, iv.end or run.finished_at) for iv in self.store.run_intervals(run.id)] \
                if job.interruptible else []
            intervals = spans if len(spans) > 1 else None
            cf_first, cf_last = counterfactual_window(
                samples, started_at=run.started_at, submitted_at=job.submitted_at, intervals=intervals)
            cf_pts = intensity.points_for_accounting(job.zone, cf_first, cf_last + timedelta(seconds=1))
            acct = account(samples, pts, started_at=run.started_at, submitted_at=job.submitted_at,
                           pue=pue, counterfactual_points=cf_pts, intervals=intervals)
            self.store.set_accounting(run.id, acct)
            log_job_metrics(job.env, metric_names(acct.energy_j, acct.emissions_g, acct.saved_g),
                            what=f"job {job.id} run {run.id}")
            pct = f" ({100 * acct.saved_g / acct.counterfactual_g:.1f}%)" if acct.counterfactual_g > 0 else ""
            return (f": {fmt_energy_kwh(acct.energy_kwh)} ({acct.energy_method}), "
                    f"{fmt_mass_g(acct.emissions_g)} ({acct.intensity_kind}, {acct.intensity_provider}), "
                    f"saved {fmt_mass_g(acct.saved_g)} vs run-now{pct}")
        except CarbonshiftError as exc:
            self.events.emit(job.id, "error", f"accounting failed: {exc}")
            return ""

    def _check_sweep_budget(self, job: Job) -> None:
        """After a trial's run is accounted: stop its sweep if the rest would break its budget."""
        if job.sweep_id is None or self.trials is None:
            return
        try:
            line = self.trials.check_budget(job.sweep_id, self.clock.now())
        except CarbonshiftError as exc:
            log.warning("sweep of job %s: could not check its budget: %s", job.id, exc)
            return
        if line is not None:
            self.events.emit(None, "sweep", line)
