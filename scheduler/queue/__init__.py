"""The queue: submitting, re-planning, cancelling, as services over the ports they are handed.

``ports`` (what the services need), ``catalog`` (sites, policies, forecasts), ``capacity``
(what is already held), ``submit``, ``replan`` (waiting and paused jobs in ONE plan()
call), ``cancel`` (the one cancel rule), and ``facade`` (:class:`Queue`, the surface the
edges and the daemon use). Every name importers use is re-exported here.
"""

from scheduler.domain.acceptance import deadline_refusal
from scheduler.queue.cancel import CANCELLABLE, CancelService, check_owner
from scheduler.queue.capacity import HeldCapacity
from scheduler.queue.catalog import CONFIG_CACHE_S, DEFAULT_SITE, QueueCatalog, zone_of
from scheduler.queue.facade import Queue
from scheduler.queue.ports import Catalog, QueuePorts
from scheduler.queue.replan import ReplanService, consume
from scheduler.queue.submit import (
    ENV_ALLOW_LIST,
    MAX_ARGV_BYTES,
    MAX_TRANSFER_DELAY_S,
    MAX_TRANSFER_ENERGY_J,
    PLANNING_CPU_W_PER_CORE,
    SubmitRequest,
    SubmitResult,
    SubmitService,
    SweepResult,
    apply_entry,
    check_env_entry,
)
from scheduler.text.checks import MAX_NAME_LEN, check_text

__all__ = [
    "CANCELLABLE", "CONFIG_CACHE_S", "DEFAULT_SITE", "ENV_ALLOW_LIST", "MAX_ARGV_BYTES", "MAX_NAME_LEN",
    "MAX_TRANSFER_DELAY_S", "MAX_TRANSFER_ENERGY_J", "PLANNING_CPU_W_PER_CORE", "CancelService", "Catalog",
    "HeldCapacity", "Queue", "QueueCatalog", "QueuePorts", "ReplanService", "SubmitRequest", "SubmitResult",
    "SubmitService", "SweepResult", "apply_entry", "check_env_entry", "check_owner", "check_text", "consume",
    "deadline_refusal", "zone_of",
]
