"""The daemon: plans, waits, launches, measures, accounts.

The database is the source of truth. APScheduler (3.x) is only this process's timer: at
start-up a date trigger is created for every planned job of this agent's sites, and the
set is kept in step with the database every tick (new submissions, re-plans,
cancellations). A timer that fires must first win an atomic claim of its job
(``planned -> running``) before launching it, so two daemons never start one job.

On start-up the daemon looks at the runs left open by an earlier daemon on this host: a
run whose process still lives is adopted and measured on; a dead one is closed from the
supervisor's exit record, or marked ``lost`` with the reason and requeued when its
deadline still allows. Stopping the daemon (Ctrl-C) leaves running jobs running and
recorded; the next daemon adopts them.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probes.detect import ProbeConfig, default_probes
from probes.model import ProbeTarget, Sample
from probes.sampler import Sampler
from scheduler.accounting import account
from scheduler.errors import CarbonshiftError, ExecutorError, StorageError
from scheduler.executors.base import Executor, ExitStatus, Handle, LaunchSpec
from scheduler.model import TERMINAL_STATES, Event, Job, JobState, Run
from scheduler.timeutil import format_duration, iso

if TYPE_CHECKING:
    from scheduler.app import App

log = logging.getLogger("carbonshift.daemon")

MAX_ATTEMPTS = 3


@dataclass
class ActiveRun:
    job: Job
    run: Run
    handle: Handle
    executor: Executor
    sampler: Sampler | None
    cancel_sent: bool = False
    notes: list[str] = field(default_factory=list)
    gpu_indices: tuple[int, ...] = ()


class Daemon:
    """One agent: launches the jobs planned on its sites and follows them to the end."""

    def __init__(
        self,
        app: App,
        *,
        sites: Iterable[str] | None = None,
        executors: dict[str, Executor] | None = None,
        sample_interval_s: float | None = None,
        tick_s: float = 1.0,
        exit_when_idle: bool = False,
        on_event: Callable[[str], None] | None = None,
        planner: bool = True,
    ) -> None:
        self.app = app
        self.store = app.store
        self.clock = app.clock
        self.sites = set(sites) if sites else None
        self.host = socket.gethostname()
        self.executors: dict[str, Executor] = executors or {}
        self.sample_interval_s = sample_interval_s or app.settings.sampling_interval_s
        self.tick_s = tick_s
        self.exit_when_idle = exit_when_idle
        self.on_event = on_event or (lambda line: log.info("%s", line))
        self.planner = planner
        self.active: dict[int, ActiveRun] = {}
        self._timers: dict[int, datetime] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._scheduler: Any = None
        self._last_replan: datetime | None = None
        self._probe_config = ProbeConfig(
            cpu_w_per_core=app.settings.cpu_w_per_core,
            memory_w_per_gb=app.settings.memory_w_per_gb,
            sysfs_root=app.settings.rapl_root,
            use_nvml=app.settings.use_nvml,
            use_rapl=app.settings.use_rapl,
        )

    # -- executors ----------------------------------------------------------------------
    def executor_for(self, name: str) -> Executor:
        if name not in self.executors:
            if name == "local":
                from scheduler.executors.local import LocalExecutor

                self.executors[name] = LocalExecutor(log_max_bytes=self.app.settings.log_max_bytes)
            elif name == "slurm":
                from scheduler.executors.slurm import SlurmExecutor

                self.executors[name] = SlurmExecutor()
            else:
                raise ExecutorError(f"unknown executor {name!r}: use local or slurm")
        return self.executors[name]

    def _emit(self, job_id: int | None, kind: str, message: str) -> None:
        now = self.clock.now()
        if job_id is not None:
            try:
                self.store.add_event(Event(job_id, now, kind, message))
            except CarbonshiftError as exc:
                log.warning("could not record event for job %s: %s", job_id, exc)
        self.on_event(f"{kind:<10} job {job_id}: {message}" if job_id is not None else f"{kind:<10} {message}")

    # -- life cycle ---------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run_forever(self) -> None:
        """Recover, plan, then tick until stopped (or idle, with ``exit_when_idle``)."""
        from apscheduler.schedulers.background import BackgroundScheduler

        self.recover()
        if self.planner:
            self.replan()
        sched = BackgroundScheduler(timezone=UTC, job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1})
        self._scheduler = sched
        sched.start()
        try:
            self.sync_timers()
            while not self._stop.is_set():
                try:
                    self.tick()
                except StorageError as exc:
                    self._emit(None, "error", f"database trouble, retrying: {exc}")
                    self._stop.wait(min(30.0, self.tick_s * 5))
                    continue
                if self.exit_when_idle and self.idle():
                    break
                self._stop.wait(self.tick_s)
        finally:
            sched.shutdown(wait=False)
            self._scheduler = None
            self.detach()

    def idle(self) -> bool:
        if self.active:
            return False
        waiting = self.store.list_jobs(
            [JobState.PENDING, JobState.PLANNED, JobState.RUNNING, JobState.SUSPENDED],
            sites=self.sites, limit=1,
        )
        return not waiting

    def detach(self) -> None:
        """Stop measuring (flushing samples) but leave jobs running, recorded as running."""
        with self._lock:
            for act in list(self.active.values()):
                if act.sampler is not None:
                    try:
                        act.sampler.stop()
                    except Exception as exc:
                        log.warning("sampler of run %s: %s", act.run.id, exc)
                self._emit(act.job.id, "detached", "daemon stopped; the job keeps running and will be adopted by the next daemon")
            self.active.clear()

    def tick(self) -> None:
        """One round: follow running jobs, renew leases, re-plan when due, sync timers."""
        with self._lock:
            self.follow_runs()
            self.launch_due()
        now = self.clock.now()
        interval = timedelta(seconds=self.app.settings.replan_interval_s)
        if self.planner and (self._last_replan is None or now - self._last_replan >= interval):
            self.replan()
        else:
            self.plan_pending()
        self.sync_timers()

    # -- planning -----------------------------------------------------------------------
    def replan(self) -> None:
        now = self.clock.now()
        self._last_replan = now
        try:
            _, moved = self.app.queue.replan(now)
        except CarbonshiftError as exc:
            self._emit(None, "error", f"re-planning failed: {exc}")
            return
        for job, entry in moved:
            saving = ""
            if math.isfinite(entry.run_now_g) and entry.run_now_g > 0 and math.isfinite(entry.expected_g):
                saving = f", expected {entry.expected_g:.3g} g vs {entry.run_now_g:.3g} g run now"
            self._emit(job.id, "planned", f"start {iso(entry.start)} on {entry.site} ({entry.reason}{saving})")

    def plan_pending(self) -> None:
        """Plan jobs that are pending (requeued) without waiting for the next re-plan."""
        if self.store.list_jobs([JobState.PENDING], limit=1):
            self.replan()

    # -- timers -------------------------------------------------------------------------
    def sync_timers(self) -> None:
        sched = self._scheduler
        if sched is None:
            return
        planned = {
            j.id: j.planned_start
            for j in self.store.list_jobs([JobState.PLANNED], sites=self.sites)
            if j.id is not None and j.planned_start is not None
        }
        for job_id in list(self._timers):
            if job_id not in planned:
                self._timers.pop(job_id, None)
                try:
                    sched.remove_job(f"job-{job_id}")
                except Exception:
                    pass
        for job_id, start in planned.items():
            if self._timers.get(job_id) == start:
                continue
            run_at = datetime.now(UTC) + timedelta(seconds=self.clock.real_delay_s(start))
            sched.add_job(
                self._fire, "date", run_date=run_at, args=[job_id], id=f"job-{job_id}",
                replace_existing=True,
            )
            self._timers[job_id] = start

    def _fire(self, job_id: int) -> None:
        """A timer fired: claim the job, then launch it."""
        with self._lock:
            self._timers.pop(job_id, None)
            try:
                job = self.store.get_job(job_id)
            except CarbonshiftError:
                return
            if job.state is not JobState.PLANNED or job.planned_start is None:
                return
            if self.clock.real_delay_s(job.planned_start) > 0.05:
                return  # moved later meanwhile; sync_timers sets a new timer
            self._claim_and_launch(job)

    def launch_due(self) -> None:
        """Safety net for timers that could not fire (clock jumps, a busy machine)."""
        now = self.clock.now()
        for job in self.store.list_jobs([JobState.PLANNED], sites=self.sites):
            if job.planned_start is not None and job.planned_start <= now:
                self._claim_and_launch(job)

    def _claim_and_launch(self, job: Job) -> None:
        assert job.id is not None
        if self.sites is not None and (job.planned_site or job.site) not in self.sites:
            return
        if not self.store.transition(job.id, JobState.RUNNING, expected={JobState.PLANNED}):
            return  # another agent won, or it was cancelled
        job = self.store.get_job(job.id)
        self.launch(job)

    # -- launching ----------------------------------------------------------------------
    def launch(self, job: Job) -> None:
        """Start a claimed job (state ``running``) and its energy sampler."""
        assert job.id is not None
        now = self.clock.now()
        site_name = job.planned_site or job.site
        site = self.app.queue.sites().get(site_name)
        executor_name = site.executor if site is not None else "local"
        job.attempts += 1
        run = self.store.add_run(
            Run(job_id=job.id, site=site_name, executor=executor_name, started_at=now,
                host=self.host, state=JobState.RUNNING,
                lease_until=now + timedelta(seconds=self.app.settings.lease_s))
        )
        assert run.id is not None
        log_dir = self.app.settings.log_dir / f"job-{job.id}"
        run.out_path = str(log_dir / f"run-{run.id}.out")
        run.err_path = str(log_dir / f"run-{run.id}.err")
        gpus = self._allocate_gpus(job, site_name, site.gpus if site is not None else 0)
        try:
            executor = self.executor_for(executor_name)
            handle = executor.launch(LaunchSpec(
                job=job, run_id=run.id, out_path=run.out_path, err_path=run.err_path,
                env=dict(job.env), begin_at=job.planned_start, gpu_indices=gpus,
            ))
        except (ExecutorError, OSError) as exc:
            run.finished_at = self.clock.now()
            run.state = JobState.FAILED
            run.reason = f"launch failed: {exc}"
            self.store.update_run(run)
            self.store.transition(job.id, JobState.FAILED, expected={JobState.RUNNING}, note=run.reason)
            self._emit(job.id, "failed", run.reason)
            return
        run.handle = handle.handle
        run.host = handle.host or self.host
        self.store.update_run(run)
        self.store.update_job(job)
        sampler = self._start_sampler(job, run, handle, gpus)
        self.active[run.id] = ActiveRun(job, run, handle, executor, sampler, gpu_indices=gpus)
        late = (now - job.planned_start).total_seconds() if job.planned_start else 0.0
        late_real_s = late / self.clock.factor
        self._emit(job.id, "started", f"run {run.id} on {site_name} ({executor_name} {handle.handle.split(':')[0]})"
                   + (f", {format_duration(late)} after its planned start" if late_real_s > 30 else ""))

    def _allocate_gpus(self, job: Job, site_name: str, site_gpus: int) -> tuple[int, ...]:
        """Distinct GPU indices for a local job: the lowest ones no active run holds."""
        if job.gpus <= 0 or site_gpus <= 0:
            return ()
        held = {i for a in self.active.values() if a.run.site == site_name for i in a.gpu_indices}
        free = [i for i in range(site_gpus) if i not in held]
        if len(free) < job.gpus:
            self._emit(job.id, "gpus", f"needs {job.gpus} GPUs but only {len(free)} are free on {site_name}; sharing")
            free += sorted(held)
        return tuple(free[: job.gpus])

    def _start_sampler(
        self, job: Job, run: Run, handle: Handle, gpus: tuple[int, ...] = ()
    ) -> Sampler | None:
        if handle.pid is None:
            return None  # engine-side job (Slurm): measured by its own wrapper/accounting
        run_id = run.id
        assert run_id is not None

        def sink(batch: list[Sample]) -> None:
            self.store.add_samples(run_id, batch)

        def note(text: str) -> None:
            self._emit(job.id, "probe", text)

        try:
            sampler = Sampler(
                ProbeTarget(pid=handle.pid, pgid=handle.pid, gpu_indices=gpus),
                now=self.clock.now, sink=sink, interval_s=self.sample_interval_s,
                probes=default_probes(self._probe_config), on_note=note,
                # flush every ~10 samples: a daemon killed with SIGKILL loses at most those
                flush_interval_s=max(1.0, min(60.0, 10 * self.sample_interval_s)),
            )
            sampler.start()
            return sampler
        except Exception as exc:
            self._emit(job.id, "probe", f"no energy measurement for this run: {exc}")
            return None

    # -- following ----------------------------------------------------------------------
    def follow_runs(self) -> None:
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.app.settings.lease_s)
        if self.active:
            try:
                self.store.renew_leases(list(self.active), lease_until)
            except CarbonshiftError as exc:
                log.warning("lease renewal failed: %s", exc)
        for run_id, act in list(self.active.items()):
            status = act.executor.poll(act.handle)
            if status is None:
                self._check_cancel(act)
                continue
            self.finish(act, status)
            self.active.pop(run_id, None)

    def _check_cancel(self, act: ActiveRun) -> None:
        if act.cancel_sent:
            return
        assert act.job.id is not None
        job = self.store.get_job(act.job.id)
        if job.state is JobState.CANCELLED:
            act.cancel_sent = True
            self._emit(job.id, "cancel", "stopping the job's processes (SIGTERM, then SIGKILL)")
            threading.Thread(target=act.executor.cancel, args=(act.handle,), daemon=True).start()

    def finish(self, act: ActiveRun, status: ExitStatus) -> None:
        """Close a run: last samples, exit code, job state, accounting, one event."""
        job, run = act.job, act.run
        assert job.id is not None and run.id is not None
        if act.sampler is not None:
            try:
                act.sampler.stop(final_cpu_s=status.cpu_s)
                left = list(act.sampler.unflushed)
                if left:  # the database refused them at stop: one more try, then say so
                    try:
                        self.store.add_samples(run.id, left)
                    except CarbonshiftError as exc:
                        self._emit(job.id, "probe", f"{len(left)} energy samples could not be stored: {exc}")
            except Exception as exc:
                log.warning("sampler of run %s: %s", run.id, exc)
        cleanup = getattr(act.executor, "cleanup_group", None)
        if cleanup is not None:
            try:
                if cleanup(act.handle):
                    self._emit(job.id, "cleanup", "killed processes the job left behind in its group")
            except Exception as exc:
                log.warning("cleanup of run %s: %s", run.id, exc)
        now = self.clock.now()
        current = self.store.get_job(job.id)
        state = JobState(status.state)
        if current.state is JobState.CANCELLED:
            state = JobState.CANCELLED
        run.finished_at = now
        run.exit_code = status.exit_code
        run.state = state
        run.reason = status.reason
        self.store.update_run(run)
        if state is JobState.LOST:
            self._lost(current, run, status.reason)
        elif current.state is not JobState.CANCELLED:
            self.store.transition(job.id, state, expected={JobState.RUNNING, JobState.SUSPENDED}, note=status.reason or None)
        extra = self._account(current, run, act.executor)
        code = f"exit {status.exit_code}" if status.exit_code is not None else status.reason
        self._emit(job.id, "finished", f"{state} ({code}) after {format_duration((now - run.started_at).total_seconds())}{extra}")

    def _account(self, job: Job, run: Run, executor: Executor) -> str:
        assert run.id is not None
        try:
            samples = self.store.samples_for_run(run.id)
            engine = executor.energy(Handle(run.handle or "")) if run.executor != "local" else None
            if engine:
                self.store.add_samples(run.id, engine)
                samples = engine
            if not samples or run.finished_at is None:
                return ""
            site = self.app.queue.sites().get(run.site)
            zone = site.zone if site is not None else job.zone
            pue = site.pue if site is not None else 1.0
            span = run.finished_at - run.started_at
            first = min(s.start for s in samples)
            last = max(s.end for s in samples)
            pts = self.app.intensity.points_for_accounting(zone, first, last + timedelta(seconds=1))
            shift = job.submitted_at - run.started_at
            cf_pts = self.app.intensity.points_for_accounting(
                job.zone, first + shift, last + shift + timedelta(seconds=1)
            )
            acct = account(samples, pts, started_at=run.started_at, submitted_at=job.submitted_at,
                           pue=pue, counterfactual_points=cf_pts)
            self.store.set_accounting(run.id, acct)
            _ = span
            pct = f" ({100 * acct.saved_g / acct.counterfactual_g:.1f}%)" if acct.counterfactual_g > 0 else ""
            return (f": {acct.energy_kwh * 1000:.3f} Wh ({acct.energy_method}), "
                    f"{acct.emissions_g:.4g} g ({acct.intensity_kind}, {acct.intensity_provider}), "
                    f"saved {acct.saved_g:.3g} g vs run-now{pct}")
        except CarbonshiftError as exc:
            self._emit(job.id, "error", f"accounting failed: {exc}")
            return ""

    def _lost(self, job: Job, run: Run, reason: str) -> None:
        """A run died unobserved: requeue if the deadline still allows, else mark lost."""
        assert job.id is not None
        now = self.clock.now()
        can_finish = job.deadline_at is None or now + timedelta(seconds=job.duration_s) <= job.deadline_at
        if (
            can_finish
            and job.attempts < MAX_ATTEMPTS
            and self.store.transition(
                job.id, JobState.PENDING, expected={JobState.RUNNING, JobState.SUSPENDED},
                note=f"requeued after a lost run: {reason}",
            )
        ):
            self._emit(job.id, "requeued", f"run {run.id} lost ({reason}); the job will run again")
            return
        self.store.transition(job.id, JobState.LOST, expected={JobState.RUNNING, JobState.SUSPENDED}, note=reason)
        self._emit(job.id, "lost", f"run {run.id}: {reason}")

    # -- recovery -----------------------------------------------------------------------
    def recover(self) -> None:
        """Adopt live runs left by an earlier daemon on this host; close dead ones."""
        with self._lock:
            open_runs = self.store.open_runs(host=self.host)
            open_job_ids = {r.job_id for r in open_runs}
            for run in open_runs:
                if run.id in self.active:
                    continue
                job = self.store.get_job(run.job_id)
                if self.sites is not None and run.site not in self.sites:
                    continue
                if not run.handle:
                    run.handle = self._find_launched(run)
                if not run.handle:
                    run.finished_at = self.clock.now()
                    run.state = JobState.LOST
                    run.reason = "the daemon stopped while launching this run"
                    self.store.update_run(run)
                    self._lost(job, run, run.reason)
                    continue
                if not run.out_path and run.id is not None:
                    run.out_path = str(log_path(self.app, run.job_id, run.id))
                    run.err_path = run.out_path[: -len(".out")] + ".err"
                    self.store.update_run(run)  # the handle, found by _find_launched
                executor = self.executor_for(run.executor)
                handle = Handle(run.handle, host=run.host, pid=_pid_of(run.handle))
                if executor.alive(handle):
                    gpus = _gpus_of_pid(handle.pid)
                    sampler = self._start_sampler(job, run, handle, gpus)
                    self.active[run.id] = ActiveRun(  # type: ignore[index]
                        job, run, handle, executor, sampler, gpu_indices=gpus
                    )
                    self._emit(job.id, "adopted", f"run {run.id} is still running; measuring it again")
                    continue
                status = executor.poll(handle)
                if status is None:
                    continue
                self.finish(ActiveRun(job, run, handle, executor, None), status)
            # jobs claimed by a daemon that died before it recorded a run
            for job in self.store.list_jobs([JobState.RUNNING], sites=self.sites):
                if job.id in open_job_ids or job.id is None:
                    continue
                runs = self.store.runs_for_job(job.id)
                if runs and runs[-1].finished_at is None:
                    continue  # another host's open run
                if runs and runs[-1].state is not JobState.RUNNING:
                    # the daemon died between closing the run and updating the job: the run
                    # holds the outcome; planning the job again would run it twice
                    last = runs[-1]
                    if last.state is JobState.LOST:
                        self._lost(job, last, last.reason or "lost")
                    elif self.store.transition(job.id, last.state, expected={JobState.RUNNING},
                                               note=last.reason or None):
                        self._emit(job.id, "recovered", f"run {last.id} had ended ({last.state}); job closed")
                    continue
                if self.store.transition(job.id, JobState.PLANNED, expected={JobState.RUNNING},
                                         note="claimed but never started; planned again"):
                    self._emit(job.id, "recovered", "was claimed but never started; planned again")


    def _find_launched(self, run: Run) -> str | None:
        """The handle of a run recorded without one: the daemon may have died just after
        starting its process. Executors that can look (``find``) are asked."""
        if run.id is None:
            return None
        try:
            find = getattr(self.executor_for(run.executor), "find", None)
        except ExecutorError:
            return None
        handle = find(run.out_path or str(log_path(self.app, run.job_id, run.id))) if find else None
        return handle.handle if handle is not None else None


def _gpus_of_pid(pid: int | None) -> tuple[int, ...]:
    """The GPUs an adopted run was given: its supervisor's ``CUDA_VISIBLE_DEVICES``."""
    if pid is None:
        return ()
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return ()
    for item in env:
        if item.startswith(b"CUDA_VISIBLE_DEVICES="):
            text = item.split(b"=", 1)[1].decode(errors="replace")
            return tuple(int(x) for x in text.split(",") if x.strip().isdigit())
    return ()


def _pid_of(handle: str) -> int | None:
    head = handle.split(":", 1)[0]
    return int(head) if head.isdigit() else None


def log_path(app: App, job_id: int, run_id: int) -> Path:
    return app.settings.log_dir / f"job-{job_id}" / f"run-{run_id}.out"


__all__ = ["TERMINAL_STATES", "Daemon"]
