"""Interruptible runs follow their planned intervals: paused at the end of each interval
that has a successor, resumed (or, for a checkpointing job, launched again) at the next
one's start.

A run's :class:`~scheduler.agent.runs.Phase` says where it stands: ``RUNNING``; ``ASKED``
(checkpoint mode: sent its pause signal, given a grace to exit); ``STOPPED`` (its process
kept: SIGSTOP, or the engine's suspend); ``CHECKPOINTED`` (exited after its signal, no
process until its re-launch). Each transition is won in the database first
(``running -> suspended`` and back, the run's interval closed or opened in the same
transaction), so a cancel or another agent always finds one consistent state."""

from __future__ import annotations

import logging
import signal
import time
from datetime import datetime, timedelta

from scheduler.agent.metering import Metering
from scheduler.agent.outcome import Outcome
from scheduler.agent.runs import Active, ActiveRun, Events, cancel_in_background
from scheduler.clock import Clock
from scheduler.config import Settings
from scheduler.contracts import ExitStatus, JobStore, LaunchSpec
from scheduler.domain.intervals import (
    PAUSE,
    checkpoint_exit_ok,
    next_boundary,
    position,
    signal_number,
)
from scheduler.domain.model import Job, JobState
from scheduler.errors import CarbonshiftError, ExecutorError
from scheduler.executors.base import job_environment
from scheduler.progress import progress_path_for, read_progress
from scheduler.text.times import format_duration, iso, spans_text

log = logging.getLogger("carbonshift.daemon")


def pause_mode(act: ActiveRun) -> str:
    """``checkpoint`` or ``stop`` for a local run; ``engine`` (the executor's own suspend:
    Slurm's ``scontrol suspend``) for any other."""
    if not act.executor.host_bound:
        return "engine"
    return "checkpoint" if act.job.pause_mode == "checkpoint" else "stop"


class Pauses:
    def __init__(self, store: JobStore, clock: Clock, settings: Settings, active: Active,
                 metering: Metering, outcome: Outcome, events: Events, *, lease: timedelta) -> None:
        self.store, self.clock, self.settings, self.active = store, clock, settings, active
        self.metering, self.outcome, self.events, self.lease = metering, outcome, events, lease

    def signum(self, job: Job) -> int:
        return signal_number(job.pause_signal, self.settings.pause_signal)

    def grace_s(self, job: Job) -> float:
        return job.pause_grace_s if job.pause_grace_s is not None else self.settings.pause_grace_s

    # -- when ------------------------------------------------------------------------------
    def follow(self) -> None:
        """Pause or resume the interruptible runs whose boundary has come (timers do it on
        time; this catches the rest), after reading their planned intervals again: a
        re-plan may have moved a paused job's."""
        acts = [a for a in self.active.values() if a.job.interruptible and a.job.id is not None]
        if not acts:
            return
        spans = self.store.planned_intervals(a.job.id for a in acts)  # type: ignore[misc]
        now = self.clock.now()
        for act in acts:
            act.intervals = spans.get(act.job.id, [])  # type: ignore[arg-type]
            self.boundary(act, now)

    def fire(self, run_id: int) -> None:
        """A pause or resumption timer fired."""
        act = self.active.get(run_id)
        if act is None or act.job.id is None:
            return
        try:
            act.intervals = self.store.planned_intervals([act.job.id]).get(act.job.id, [])
            self.boundary(act, self.clock.now())
        except CarbonshiftError as exc:
            log.warning("run %s: interval timer: %s (the next tick retries)", run_id, exc)

    def next_boundaries(self) -> dict[int, datetime]:
        """When each interruptible run's next pause or resumption comes (for its timer)."""
        now = self.clock.now()
        wanted: dict[int, datetime] = {}
        for run_id, act in self.active.items():
            if not act.job.interruptible or act.asked:
                continue
            step = next_boundary(act.intervals, paused=act.paused, now=now)
            if step is not None and step[1] > now:
                wanted[run_id] = step[1]
        return wanted

    def boundary(self, act: ActiveRun, now: datetime) -> None:
        if act.asked or act.cancel_sent or act.run.id not in self.active or time.monotonic() < act.retry_at:
            return
        step = next_boundary(act.intervals, paused=act.paused, now=now)
        if step is None:
            return
        kind, at = step
        delay = self.clock.real_delay_s(at)
        if delay > 0.05:
            if act.paused:
                self.tell_resume_by(act, at)  # a re-plan may have moved it
            return
        if delay > 0:
            # a timer may fire a few milliseconds early (minutes of an accelerated clock):
            # acting before the boundary would pause inside the interval, or resume before it
            time.sleep(delay)
            now = max(self.clock.now(), at)
        try:
            if kind == PAUSE:
                self.pause(act, now)
            else:
                self.resume(act, now)
        except ExecutorError as exc:  # e.g. a Slurm job not started yet: try again later
            act.retry_at = time.monotonic() + 30.0
            self.events.emit(act.job.id, "error", f"could not {kind} run {act.run.id} (trying again in 30 s): {exc}")

    def tell_resume_by(self, act: ActiveRun, at: datetime) -> None:
        """A stopped local job's supervisor continues it by itself if nobody has resumed it
        a third of a lease after ``at`` (its agent stopped and no successor came)."""
        if pause_mode(act) != "stop" or not act.process or act.resume_at == at:
            return
        if act.executor.resume_by(
                act.handle, time.time() + self.clock.real_delay_s(at) + self.lease.total_seconds() / 3):
            act.resume_at = at

    @staticmethod
    def _where(act: ActiveRun, now: datetime, *, ending: bool) -> str:
        if not act.intervals:
            return "no planned interval left"
        k, n = position(act.intervals, now)
        a, b = sorted(act.intervals)[k - 1]
        return f"{'end of ' if ending else ''}interval {k} of {n} ({spans_text([(a, b)])})"

    # -- RUNNING -> ASKED | STOPPED -----------------------------------------------------------
    def pause(self, act: ActiveRun, now: datetime) -> None:
        """End of an interval: win ``running -> suspended`` in the database, then pause."""
        job, run = act.job, act.run
        assert job.id is not None and run.id is not None
        if self.store.get_job(job.id).state is not JobState.RUNNING:
            return  # cancelled meanwhile: the follow loop stops it
        step = next_boundary(act.intervals, paused=True, now=now)
        resume_at = step[1] if step is not None else now
        where = self._where(act, now, ending=True)
        when = (f"resumes {iso(resume_at)} (in "
                f"{format_duration(max(0.0, (resume_at - now).total_seconds()))})")
        mode = pause_mode(act)
        if mode == "checkpoint":
            signum = self.signum(job)
            if not act.executor.can_ask or not self.store.pause_run(job.id, run.id, now, how=None):
                return
            grace = self.grace_s(job)
            act.ask(time.monotonic() + grace)
            act.executor.ask(act.handle, signum)
            self.events.emit(job.id, "paused", f"{where}: sent {signal.Signals(signum).name} to checkpoint "
                             f"and exit (grace {format_duration(grace)}); {when}")
            return
        # stop first, then the last reading, then the record: the samples end inside it
        act.executor.suspend(act.handle)
        self.metering.end(act)
        at = self.clock.now()
        how = "paused: SIGSTOP" if mode == "stop" else f"paused: {run.executor} suspend"
        if not self.store.pause_run(job.id, run.id, at, how=how):
            act.executor.resume(act.handle)  # lost to a cancel: let the follow loop stop it
            act.sampler = self.metering.begin(job, run, act.handle, act.gpu_indices)
            return
        act.stopped()
        act.resume_at = None
        self.tell_resume_by(act, resume_at)
        what = "process group stopped (SIGSTOP)" if mode == "stop" else f"{run.executor} job suspended"
        self.events.emit(job.id, "paused", f"{where}: {what}; {when}")

    # -- ASKED -> CHECKPOINTED ----------------------------------------------------------------
    def check_grace(self, act: ActiveRun) -> None:
        """A checkpointing job that has not exited within its grace is stopped."""
        if not act.asked or act.pause_forced or time.monotonic() < (act.pausing_until or 0.0):
            return
        act.pause_forced = True
        self.events.emit(act.job.id, "paused", "the job did not exit within its grace after the pause "
                         "signal: stopping it (SIGTERM, then SIGKILL); it resumes from its last checkpoint")
        cancel_in_background(act, grace_s=5.0)

    def checkpointed(self, act: ActiveRun, status: ExitStatus) -> bool:
        """A job asked to checkpoint has exited. Returns ``True`` when that is a pause (it
        exited cleanly or of its signal, or was stopped after the grace), so it waits for its
        next interval without a process; ``False`` when it has finished (it says it is
        done through the progress protocol) or failed: then the run is to be finished."""
        job, run = act.job, act.run
        assert job.id is not None and run.id is not None
        signum = self.signum(job)
        progress = read_progress(progress_path_for(run.out_path)) if run.out_path else None
        if status.exit_code == 0 and progress is not None and progress.fraction >= 1.0:
            return False  # it finished its work meanwhile
        if not (act.pause_forced or checkpoint_exit_ok(status.exit_code, signum)):
            return False  # it failed
        self.metering.end(act, final_cpu_s=status.cpu_s)
        self.outcome.cleanup_group(act)
        code = f"exit {status.exit_code}" if status.exit_code is not None else "no exit record"
        how = "checkpointed: " + (f"stopped after its grace ({code})" if act.pause_forced else code)
        self.store.close_run_interval(run.id, self.clock.now(), how)
        act.checkpointed()
        step = next_boundary(act.intervals, paused=True, now=self.clock.now())
        self.events.emit(job.id, "checkpointed", f"the job exited ({code}) after its pause signal; it is "
                         f"launched again at {iso(step[1]) if step else 'once'} to resume")
        return True

    def cancelled_while_paused(self, act: ActiveRun) -> bool:
        """A checkpointed (process-less) paused job that was cancelled: close its run."""
        assert act.job.id is not None
        if self.store.get_job(act.job.id).state is not JobState.CANCELLED:
            return False
        self.outcome.finish(act, ExitStatus(None, JobState.CANCELLED.value, "cancelled while paused"))
        return True

    # -- STOPPED | CHECKPOINTED -> RUNNING ------------------------------------------------------
    def resume(self, act: ActiveRun, now: datetime) -> None:
        """Start of an interval: win ``suspended -> running`` (opening the run's next
        interval) in the database, then continue the job, or launch it again."""
        job, run = act.job, act.run
        assert job.id is not None and run.id is not None
        where = self._where(act, now, ending=False)
        if not act.process:
            self._relaunch(act, now, where)
            return
        if not self.store.resume_run(job.id, run.id, now, handle=run.handle):
            return  # cancelled, or moved later by a re-plan: the next tick sees it
        act.executor.resume(act.handle)
        act.running()
        act.resume_at = None
        act.sampler = self.metering.begin(job, run, act.handle, act.gpu_indices)
        what = "process group continued (SIGCONT)" if pause_mode(act) == "stop" \
            else f"{run.executor} job resumed"
        self.events.emit(job.id, "resumed", f"{where}: {what}")

    def _relaunch(self, act: ActiveRun, now: datetime, where: str) -> None:
        """Resume a checkpointed job: the same command again, in the same run."""
        job, run = act.job, act.run
        assert job.id is not None and run.id is not None
        # forget the old process first: should this agent die between the claim below and
        # the launch, its successor finds no handle and looks for the new one's pid file
        run.handle = None
        self.store.update_run(run)
        if not self.store.resume_run(job.id, run.id, now):
            return
        try:
            assert run.out_path is not None and run.err_path is not None
            handle = act.executor.launch(LaunchSpec(
                job=job, run_id=run.id, out_path=run.out_path, err_path=run.err_path,
                env=job_environment(job, run.id, run.site), gpu_indices=act.gpu_indices,
                lease_until_epoch_s=act.lease_until_epoch_s,
            ))
        except (ExecutorError, OSError) as exc:
            self.outcome.finish(act, ExitStatus(None, JobState.FAILED.value, f"re-launch to resume failed: {exc}"))
            self.active.pop(run.id, None)
            return
        act.handle, run.handle = handle, handle.handle
        self.store.update_run(run)
        self.store.set_interval_handle(run.id, handle.handle)
        act.running()
        act.sampler = self.metering.begin(job, run, handle, act.gpu_indices)
        self.events.emit(job.id, "resumed", f"{where}: launched the same command again "
                         f"({run.executor} {handle.handle.split(':')[0]}) to resume from its checkpoint")
