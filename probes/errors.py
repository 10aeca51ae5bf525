"""The probes package's exceptions: one root, :class:`ProbeError`.

NVML, RAPL and psutil errors are mapped to these where they are raised; a probe failure
never fails a job: the sampler degrades to the next method and records that it did.
"""

from __future__ import annotations


class ProbeError(Exception):
    """Energy could not be measured with this method."""


class ProbeUnavailable(ProbeError):
    """The method does not work on this machine (no driver, no sysfs file, no permission)."""


class DeviceLost(ProbeError):
    """A device disappeared while it was being measured."""
