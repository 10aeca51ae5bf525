"""``carbonshift.best_window`` and ``carbonshift.wait_for_window``: the clean window, from code.

::

    window = carbonshift.wait_for_window(duration="2h", deadline="12h", zone="GB")
    train()          # starts at window.start, the cleanest 2 h that ends within 12 h

Both answer exactly as ``carbonshift forecast ZONE --duration --deadline`` does (one
function picks the window for all of them) and open the CLI's database and config unless
given ``db`` or a ``client``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scheduler.api import Client, When
    from scheduler.windows import WindowChoice


def best_window(*, duration: When, deadline: When = "24h", zone: str | None = None,
                db: str | None = None, client: Client | None = None) -> WindowChoice:
    """The cleanest window of ``duration`` that ends by ``deadline`` in ``zone``."""
    from scheduler.api import Client

    if client is not None:
        return client.best_window(duration=duration, deadline=deadline, zone=zone)
    with Client(db) as own:
        return own.best_window(duration=duration, deadline=deadline, zone=zone)


def wait_for_window(*, duration: When, deadline: When = "24h", zone: str | None = None,
                    db: str | None = None, client: Client | None = None) -> WindowChoice:
    """Block until the cleanest window starts (never later) and return it."""
    from scheduler.api import Client

    if client is not None:
        return client.wait_for_window(duration=duration, deadline=deadline, zone=zone)
    with Client(db) as own:
        return own.wait_for_window(duration=duration, deadline=deadline, zone=zone)
