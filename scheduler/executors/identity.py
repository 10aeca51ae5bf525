"""Who a pid is: its start time and the boot it started in (standard library only).

A pid recorded before a daemon crash or a reboot may belong to any process later. A pid's
*identity* is ``<start>@<boot>``: the start time in clock ticks since boot (field 22 of
``/proc/PID/stat``) and the first hex digits of ``/proc/sys/kernel/random/boot_id``.
Recorded with a run's handle when it starts, it is checked before a run is adopted or
signalled: a pid whose identity differs is another process (:func:`same_process`).

Where ``/proc`` cannot be read (not Linux) identities are ``None`` and checks pass, as
before identities existed; so do handles recorded without one.
"""

from __future__ import annotations

import re

#: how many hex digits of the boot id an identity keeps (2**-32 chance two boots match)
BOOT_DIGITS = 8

#: an identity as written in handles and pid files
IDENTITY = re.compile(r"^\d+@[0-9a-f]{1,32}$")

_boot: str | None = None


def boot_id() -> str | None:
    """This boot's id, shortened (``None`` where the kernel does not say)."""
    global _boot
    if _boot is None:
        try:
            with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
                _boot = f.read().strip().replace("-", "")[:BOOT_DIGITS].lower()
        except OSError:
            return None
    return _boot or None


def start_ticks(pid: int | str) -> int | None:
    """When process ``pid`` started (clock ticks since boot), ``None`` if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        return int(data[data.rfind(b")") + 2 :].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def identity(pid: int | str) -> str | None:
    """``<start>@<boot>`` of a live process, ``None`` if it cannot be told."""
    start, boot = start_ticks(pid), boot_id()
    if start is None or boot is None:
        return None
    return f"{start}@{boot}"


def same_process(pid: int, recorded: str | None) -> bool:
    """Whether ``pid`` is still the process whose identity was ``recorded``.

    ``False`` when the boot changed (nothing of the recorded process survived a reboot) or
    ``pid`` now names a process that started at another time. ``True`` when there is no
    recorded identity (an old handle), when ``pid`` exists no more (nothing to confuse it
    with; callers find out it is gone), or when ``/proc`` cannot say.
    """
    if not recorded or not IDENTITY.match(recorded):
        return True
    start_text, _, boot = recorded.partition("@")
    now_boot = boot_id()
    if now_boot is not None and boot != now_boot:
        return False
    start = start_ticks(pid)
    return start is None or start == int(start_text)


def split_identity(text: str) -> tuple[str, str | None]:
    """``(text, identity)`` from ``text|identity``; ``(text, None)`` without one."""
    head, sep, tail = text.rpartition("|")
    if sep and IDENTITY.match(tail):
        return head, tail
    return text, None


def with_identity(text: str, ident: str | None) -> str:
    """``text|identity`` (``text`` alone without an identity): the inverse of :func:`split_identity`."""
    return f"{text}|{ident}" if ident else text


__all__ = ["boot_id", "identity", "same_process", "split_identity", "start_ticks", "with_identity"]
