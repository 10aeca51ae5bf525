"""NVML through a fake ``pynvml`` injected at ``probes.nvml``, the one module that uses it."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from fake_pynvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_SUPPORTED,
    FakeGpu,
    FakeNvml,
    NVMLError,
    proc,
    util,
)

from probes.errors import DeviceLost, ProbeError, ProbeUnavailable
from probes.model import Method, ProbeTarget, Sample
from probes.nvml import NotSupported, NvmlProbe, map_error, nvml_status
from probes.process import ProcessTree, TreeState
from probes.sampler import Sampler

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
JOB = ProbeTarget(pid=100, pgid=100, gpu_indices=(0,))
JOB_PIDS = frozenset({100, 101})
INVISIBLE_PID = 2**22 + 17  # above the default pid_max: no such process here


class FakeTree(ProcessTree):
    """The job's processes, as the sampler's shared tree would report them."""

    def __init__(self, pids: frozenset[int] = JOB_PIDS) -> None:
        super().__init__()
        self.pids = pids
        self._attached = False

    def attach(self, target: ProbeTarget, key: object = None) -> TreeState:
        self._attached = True
        return self.read(key)

    def read(self, key: object = None) -> TreeState:
        return TreeState(0.0, 0, self.pids, 0.0)


class Mono:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def begun(nv: FakeNvml, target: ProbeTarget = JOB, mono: Mono | None = None) -> NvmlProbe:
    probe = NvmlProbe(tree=FakeTree(), nvml=nv, monotonic=mono or Mono(), power_period_s=None)
    probe.begin(target, T0)
    return probe


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_energy_counter_deltas_per_device() -> None:
    g0, g1 = FakeGpu(energy_mj=5_000_000), FakeGpu(energy_mj=9_000_000)
    nv = FakeNvml([g0, g1])
    probe = begun(nv, ProbeTarget(100, 100, gpu_indices=(0, 1)))
    g0.energy_mj += 250_000  # 250 J
    g1.energy_mj += 1_500_000  # 1500 J
    samples = {s.device: s for s in probe.read(at(5))}
    assert samples["gpu:0"].energy_j == pytest.approx(250.0)
    assert samples["gpu:1"].energy_j == pytest.approx(1500.0)
    assert all(s.method is Method.NVML_ENERGY_COUNTER and not s.estimated for s in samples.values())
    probe.close()
    assert nv.shutdowns == 1


def test_counter_unsupported_falls_back_to_power_integration_and_says_so() -> None:
    g = FakeGpu(counter=False, power_mw=100_000)
    mono = Mono()
    probe = begun(FakeNvml([g]), mono=mono)
    assert probe.method is Method.NVML_POWER_INTEGRATION
    assert any("power integration" in n for n in probe.drain_notes())
    g.power_mw, mono.t = 200_000, mono.t + 2.0  # 100 W -> 200 W over 2 real seconds
    (sample,) = probe.read(at(60))  # the scheduler clock may run faster: energy uses real time
    assert sample.energy_j == pytest.approx(300.0)
    assert sample.method is Method.NVML_POWER_INTEGRATION


def test_power_samples_between_readings_make_shorter_trapezoids() -> None:
    g = FakeGpu(counter=False, power_mw=100_000)
    mono = Mono()
    probe = begun(FakeNvml([g]), mono=mono)
    for power_mw in (300_000, 300_000):  # a burst the readings alone would not see
        mono.t += 1.0
        g.power_mw = power_mw
        probe.poll_power()
    mono.t += 1.0
    g.power_mw = 100_000
    (sample,) = probe.read(at(3))
    # 100 -> 300 -> 300 -> 100 W at 1 s steps: 200 + 300 + 200 J (end points alone: 300 J)
    assert sample.energy_j == pytest.approx(700.0)


def test_power_thread_samples_in_real_time_and_stops_at_close() -> None:
    g = FakeGpu(counter=False, power_mw=50_000)
    probe = NvmlProbe(tree=FakeTree(), nvml=FakeNvml([g]), power_period_s=0.01)
    t0 = time.monotonic()
    probe.begin(JOB, T0)
    time.sleep(0.2)
    (sample,) = probe.read(at(1))
    elapsed_s = time.monotonic() - t0
    assert sample.energy_j == pytest.approx(50.0 * elapsed_s, rel=0.1)  # constant 50 W
    assert probe._power_thread is not None
    probe.close()
    assert probe._power_thread is None


def test_no_driver_is_unavailable_with_the_reason() -> None:
    nv = FakeNvml([], init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    with pytest.raises(ProbeUnavailable):
        NvmlProbe(nvml=nv).begin(JOB, T0)
    ((method, available, reason, fix),) = nvml_status(nv)
    assert (method, available) == ("nvml_energy_counter", False)
    assert "no NVIDIA driver" in reason and "install the NVIDIA driver" in fix
    notes: list[str] = []
    s = Sampler(
        JOB, now=lambda: T0, sink=lambda b: None, probes=[NvmlProbe(nvml=nv)], on_note=notes.append
    )
    s.start()
    s.stop()
    assert len(notes) == 1 and notes[0].startswith(
        "nvml_energy_counter not available: nvmlInit: NVML error code 12"
    )
    assert notes[0].endswith("gpu: not measured")


def test_job_without_gpus_does_not_touch_nvml() -> None:
    nv = FakeNvml([], init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    probe = NvmlProbe(nvml=nv)
    probe.begin(ProbeTarget(100, 100), T0)
    assert probe.read(at(1)) == [] and nv.inits == 0


def test_gpu_lost_mid_run_drops_that_gpu_then_the_probe() -> None:
    g0, g1 = FakeGpu(), FakeGpu()
    probe = begun(FakeNvml([g0, g1]), ProbeTarget(100, 100, gpu_indices=(0, 1)))
    g1.lost = True
    g0.energy_mj += 10_000
    assert [s.device for s in probe.read(at(1))] == ["gpu:0"]
    assert any(n.startswith("gpu:1 lost mid-run") for n in probe.drain_notes())
    g0.lost = True
    with pytest.raises(DeviceLost):
        probe.read(at(2))


def test_gpu_lost_mid_run_in_the_sampler_is_a_note_not_a_failure() -> None:
    g = FakeGpu()
    got: list[Sample] = []
    probe = NvmlProbe(tree=FakeTree(), nvml=FakeNvml([g]))
    s = Sampler(JOB, now=lambda: T0, sink=got.extend, interval_s=60, probes=[probe])
    s.start()
    g.lost = True
    s.stop()
    assert any("failed mid-run" in n and "gpu: not measured" in n for n in s.notes)


def test_mig_parent_energy_attributed_by_instance_share() -> None:
    mine = FakeGpu(memory_total_b=10 * 2**30, processes=[proc(101)])
    other = FakeGpu(memory_total_b=40 * 2**30, processes=[proc(555)])
    parent = FakeGpu(memory_total_b=80 * 2**30, mig=[mine, other])
    probe = begun(FakeNvml([parent]))
    parent.energy_mj += 800_000  # 800 J on the whole GPU
    (sample,) = probe.read(at(5))
    assert sample.energy_j == pytest.approx(100.0)  # 10 of 80 GiB
    assert sample.estimated and "MIG on gpu:0" in sample.note and "share 0.125" in sample.note


def test_mig_instance_not_identified_gets_an_equal_split() -> None:
    parent = FakeGpu(mig=[FakeGpu(processes=[]), FakeGpu(processes=[])])
    probe = begun(FakeNvml([parent]))
    parent.energy_mj += 100_000
    (sample,) = probe.read(at(5))
    assert sample.energy_j == pytest.approx(50.0) and "1/2" in sample.note


def test_shared_gpu_attributed_by_sm_utilisation() -> None:
    other = os.getpid()  # a process that exists here
    g = FakeGpu(processes=[proc(100), proc(other)], utilisation=[util(100, 30), util(other, 90)])
    probe = begun(FakeNvml([g]))
    g.energy_mj += 400_000
    (sample,) = probe.read(at(5))
    assert sample.energy_j == pytest.approx(100.0)
    assert sample.estimated and "shared gpu:0" in sample.note and "SM utilisation" in sample.note


def test_shared_gpu_by_memory_when_no_utilisation_samples() -> None:
    other = os.getpid()
    g = FakeGpu(processes=[proc(100, 3 * 2**30), proc(other, 1 * 2**30)], utilisation=None)
    probe = begun(FakeNvml([g]))
    g.energy_mj += 400_000
    (sample,) = probe.read(at(5))
    assert sample.energy_j == pytest.approx(300.0) and "GPU memory" in sample.note


def test_shared_gpu_whose_processes_we_cannot_see_is_attributed_whole_and_said_so() -> None:
    g = FakeGpu(processes=[proc(INVISIBLE_PID)])
    probe = begun(FakeNvml([g]))
    g.energy_mj += 400_000
    (sample,) = probe.read(at(5))
    assert sample.energy_j == pytest.approx(400.0)
    assert sample.estimated and "not visible here" in sample.note


def test_gpu_used_only_by_others_visible_here_gets_nothing() -> None:
    g = FakeGpu(processes=[proc(os.getpid())])
    probe = begun(FakeNvml([g]))
    g.energy_mj += 400_000
    (sample,) = probe.read(at(5))
    assert sample.energy_j == 0.0 and "share 0" in sample.note


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (NVML_ERROR_NOT_SUPPORTED, NotSupported),
        (NVML_ERROR_GPU_IS_LOST, DeviceLost),
        (NVML_ERROR_LIBRARY_NOT_FOUND, ProbeUnavailable),
        (NVML_ERROR_DRIVER_NOT_LOADED, ProbeUnavailable),
        (NVML_ERROR_NO_PERMISSION, ProbeUnavailable),
        (999, ProbeError),
    ],
)
def test_nvml_errors_map_to_ours(code: int, expected: type[ProbeError]) -> None:
    err = map_error(FakeNvml([]), NVMLError(code), "nvmlSomething")
    assert type(err) is expected and "nvmlSomething" in str(err)


def test_status_of_a_mixed_machine() -> None:
    nv = FakeNvml([FakeGpu(), FakeGpu(counter=False)])
    rows = nvml_status(nv)
    assert rows == [
        ("nvml_energy_counter", True, "energy counter on gpu 0", ""),
        ("nvml_energy_counter", False, "gpu 1: energy counter not supported (pre-Volta)", ""),
        ("nvml_power_integration", True, "power integration on gpu 1", ""),
    ]
    assert nv.shutdowns == 1


def test_status_when_driver_not_loaded_or_no_permission() -> None:
    assert "not loaded" in nvml_status(FakeNvml([], init_error=NVML_ERROR_DRIVER_NOT_LOADED))[0][2]
    assert "/dev/nvidia" in nvml_status(FakeNvml([], init_error=NVML_ERROR_NO_PERMISSION))[0][3]
