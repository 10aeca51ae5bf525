"""An executor with scripted exits, for tests of the agent without processes.

Each launched run follows a :class:`Script`: it "runs" for ``duration_s`` seconds of the
clock it is given (paused time does not count), then exits with ``exit_code``; it may
refuse to start, vanish without an exit record (a killed host), or be told what to do
when asked to checkpoint. What it can do beyond the basics is declared per instance, as
:class:`~scheduler.contracts.Executor` asks (``host_bound``, ``can_ask``, ``can_suspend``).

    clock = ManualClock(T0)
    fake = FakeExecutor(clock, scripts={job_id: Script(exit_code=3, duration_s=60)})
    ...launch through the agent...; clock.advance(61); fake.poll(handle).exit_code == 3
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from scheduler.clock import Clock
from scheduler.contracts import Executor, ExitStatus, Handle, LaunchSpec
from scheduler.domain.model import Job, JobState
from scheduler.errors import ExecutorError


@dataclass(frozen=True)
class Script:
    """What one job's runs do."""

    exit_code: int = 0
    #: seconds of the clock the run takes (its paused time excluded), over all its launches
    duration_s: float = 0.0
    #: the engine refuses to start it with this message (launch raises ExecutorError)
    fail_to_start: str | None = None
    #: asked to checkpoint (:meth:`FakeExecutor.ask`), it exits at once with this code;
    #: ``None``: it ignores the signal
    checkpoint_exit_code: int | None = 0
    #: it vanishes this many clock seconds after launch, leaving no exit record
    vanish_after_s: float | None = None


@dataclass
class FakeRun:
    """One launch as the fake engine knows it."""

    spec: LaunchSpec
    script: Script
    started: datetime
    #: seconds run before this launch (earlier launches of the same run)
    ran_before_s: float = 0.0
    paused_s: float = 0.0
    paused_since: datetime | None = None
    exit_code: int | None = None
    ended: datetime | None = None
    cancelled: bool = False
    vanished: bool = False
    suspends: int = 0
    resumes: int = 0
    asked: list[int] = field(default_factory=list)
    adopted: int = 0
    detached: int = 0
    lease_until_epoch_s: float | None = None

    def ran_s(self, now: datetime) -> float:
        """Seconds run in this launch by ``now`` (paused time excluded)."""
        paused = self.paused_s + ((now - self.paused_since).total_seconds() if self.paused_since else 0.0)
        return max(0.0, (now - self.started).total_seconds() - paused)


class FakeExecutor(Executor):
    """Runs nothing; each run ends as its :class:`Script` says, on ``clock``."""

    name = "fake"

    def __init__(self, clock: Clock, *, scripts: Mapping[int, Script] | Callable[[Job], Script] | None = None,
                 default: Script | None = None, host_bound: bool = True, can_ask: bool = False,
                 can_suspend: bool = True) -> None:
        self.clock = clock
        self._scripts = scripts if scripts is not None else {}
        self.default = default or Script()
        self.host_bound, self.can_ask, self.can_suspend = host_bound, can_ask, can_suspend
        #: every launch, in order
        self.launched: list[LaunchSpec] = []
        self.runs: dict[str, FakeRun] = {}
        self._ids = itertools.count(1)

    def script_for(self, job: Job) -> Script:
        if callable(self._scripts):
            return self._scripts(job)
        return self._scripts.get(job.id or 0, self.default)

    def run_of(self, handle: Handle | str) -> FakeRun:
        return self.runs[handle.handle if isinstance(handle, Handle) else handle]

    # -- the contract ------------------------------------------------------------------------
    def launch(self, spec: LaunchSpec) -> Handle:
        script = self.script_for(spec.job)
        self.launched.append(spec)
        if script.fail_to_start is not None:
            raise ExecutorError(script.fail_to_start)
        before = sum(r.ran_s(r.ended or self.clock.now()) for r in self.runs.values()
                     if r.spec.run_id == spec.run_id)
        handle = Handle(f"fake-{next(self._ids)}", host="fake")
        self.runs[handle.handle] = FakeRun(spec, script, self.clock.now(), ran_before_s=before,
                                           lease_until_epoch_s=spec.lease_until_epoch_s)
        return handle

    def poll(self, handle: Handle) -> ExitStatus | None:
        run = self.run_of(handle)
        self._advance(run)
        if run.vanished:
            return ExitStatus(None, JobState.LOST.value, "fake run vanished without an exit record")
        if run.ended is None:
            return None
        if run.cancelled:
            return ExitStatus(-15, JobState.FAILED.value, "terminated by SIGTERM")
        code = run.exit_code
        return ExitStatus(code, (JobState.SUCCEEDED if code == 0 else JobState.FAILED).value,
                          "" if code == 0 else f"exit code {code}")

    def alive(self, handle: Handle) -> bool:
        run = self.runs.get(handle.handle)
        if run is None:
            return False
        self._advance(run)
        return run.ended is None and not run.vanished

    def cancel(self, handle: Handle, grace_s: float = 10.0) -> None:
        run = self.run_of(handle)
        self._advance(run)
        if run.ended is None and not run.vanished:
            run.cancelled, run.ended, run.paused_since = True, self.clock.now(), None

    # -- declared capabilities -----------------------------------------------------------------
    def suspend(self, handle: Handle) -> None:
        if not self.can_suspend:
            super().suspend(handle)
        run = self.run_of(handle)
        run.suspends += 1
        if run.paused_since is None and run.ended is None:
            run.paused_since = self.clock.now()

    def resume(self, handle: Handle) -> None:
        if not self.can_suspend:
            super().resume(handle)
        run = self.run_of(handle)
        run.resumes += 1
        if run.paused_since is not None:
            run.paused_s += (self.clock.now() - run.paused_since).total_seconds()
            run.paused_since = None

    def ask(self, handle: Handle, signum: int) -> None:
        if not self.can_ask:
            super().ask(handle, signum)
        run = self.run_of(handle)
        run.asked.append(signum)
        if run.script.checkpoint_exit_code is not None and run.ended is None:
            run.exit_code, run.ended = run.script.checkpoint_exit_code, self.clock.now()

    def adopt(self, handle: Handle) -> None:
        self.run_of(handle).adopted += 1

    def detach(self, handle: Handle) -> None:
        self.run_of(handle).detached += 1

    def renewed(self, handle: Handle, until_epoch_s: float | None) -> None:
        run = self.runs.get(handle.handle)
        if run is not None:
            run.lease_until_epoch_s = until_epoch_s

    def _advance(self, run: FakeRun) -> None:
        """End the run if its script says it has by now."""
        if run.ended is not None or run.vanished:
            return
        now = self.clock.now()
        script = run.script
        if script.vanish_after_s is not None and (now - run.started).total_seconds() >= script.vanish_after_s:
            run.vanished = True
            return
        if run.paused_since is None and run.ran_before_s + run.ran_s(now) >= script.duration_s:
            run.exit_code, run.ended = script.exit_code, now


__all__ = ["FakeExecutor", "FakeRun", "Script"]
