"""Energy measurement of a run, as begin/end windows: :meth:`Metering.begin` starts a
sampler when a run starts or resumes, :meth:`Metering.end` takes its last reading at its
exit or pause, so paused time is never measured."""

from __future__ import annotations

import logging

from probes.detect import ProbeConfig, default_probes
from probes.model import ProbeTarget, Sample
from probes.sampler import Sampler
from scheduler.agent.runs import ActiveRun, Events
from scheduler.clock import Clock
from scheduler.contracts import Handle, JobStore
from scheduler.domain.model import Job, Run
from scheduler.errors import CarbonshiftError

log = logging.getLogger("carbonshift.daemon")


class Metering:
    def __init__(self, store: JobStore, clock: Clock, events: Events, *, interval_s: float,
                 probe: ProbeConfig) -> None:
        self.store, self.clock, self.events = store, clock, events
        self.interval_s, self.probe = interval_s, probe

    def begin(self, job: Job, run: Run, handle: Handle, gpus: tuple[int, ...] = ()) -> Sampler | None:
        """A sampler of the run's process tree (and GPUs), started; ``None`` for an
        engine-side run (measured by its own wrapper or accounting) or when nothing measures."""
        if handle.pid is None:
            return None  # engine-side job (Slurm): measured by its own wrapper/accounting
        run_id = run.id
        assert run_id is not None

        def sink(batch: list[Sample]) -> None:
            self.store.add_samples(run_id, batch)

        def note(text: str) -> None:
            self.events.emit(job.id, "probe", text)

        try:
            sampler = Sampler(
                ProbeTarget(pid=handle.pid, pgid=handle.pid, gpu_indices=gpus),
                now=self.clock.now, sink=sink, interval_s=self.interval_s,
                probes=default_probes(self.probe), on_note=note,
                # flushed every reading (the sampler's default): the live line must not
                # read zero for the first ~50 s of a run
            )
            sampler.start()
            return sampler
        except Exception as exc:
            self.events.emit(job.id, "probe", f"no energy measurement for this run: {exc}")
            return None

    def end(self, act: ActiveRun, *, final_cpu_s: float | None = None) -> None:
        """Take a run's last reading (at exit, or at a pause) and store what is left."""
        sampler, act.sampler = act.sampler, None
        if sampler is None:
            return
        try:
            sampler.stop(final_cpu_s=final_cpu_s)
            left = list(sampler.unflushed)
            if left and act.run.id is not None:  # refused at stop: one more try, then say so
                try:
                    self.store.add_samples(act.run.id, left)
                except CarbonshiftError as exc:
                    self.events.emit(act.job.id, "probe", f"{len(left)} energy samples could not be stored: {exc}")
        except Exception as exc:
            log.warning("sampler of run %s: %s", act.run.id, exc)

    @staticmethod
    def let_go(act: ActiveRun) -> None:
        """Stop measuring a run this agent no longer follows (it stopped, or lost the lease)."""
        if act.sampler is not None:
            try:
                act.sampler.stop()
            except Exception as exc:
                log.warning("sampler of run %s: %s", act.run.id, exc)
