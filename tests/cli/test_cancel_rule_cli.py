"""One cancel rule (scheduler.queue.cancel) for the CLI and the Python API: the same
refusals, word for word, and an unknown id on a fresh data folder creates no database
through either door (the CLI's copy checked that; the queue's did not)."""

from __future__ import annotations

import os

import pytest

from scheduler.errors import BadInput, NotFound, NotOwner


def test_the_cli_and_the_api_refuse_a_cancel_alike(cs) -> None:  # type: ignore[no-untyped-def]
    from scheduler import Client

    with Client(env=dict(os.environ)) as api:
        with pytest.raises(NotFound) as unknown:
            api.cancel(7)
        assert not cs.db_path.exists()  # asking made no database
        r = cs("cancel", "7")
        assert r.code != 0 and str(unknown.value) in r.err and not cs.db_path.exists()
        assert cs("submit", "--duration", "1h", "--", "true").code == 0
        assert api.cancel(1).state.value == "cancelled"
        with pytest.raises(BadInput) as over:
            api.cancel(1)
        assert str(over.value) == "job 1 is already cancelled: nothing to cancel"
        assert str(over.value) in cs("cancel", "1").err
        # with several ids the CLI says that none was cancelled, by the same rule
        assert cs("submit", "--duration", "1h", "--", "true").code == 0
        both = cs("cancel", "2", "1")
        assert f"{over.value} (no job was cancelled)" in both.err
        assert api.job(2).state.value == "planned"


def test_only_the_owner_or_an_admin_may_cancel(cs) -> None:  # type: ignore[no-untyped-def]
    from scheduler import Client

    assert cs("submit", "--duration", "1h", "--", "true").code == 0
    with Client(env=dict(os.environ), user="mallory") as other:
        with pytest.raises(NotOwner, match="belongs to"):
            other.cancel(1)
        assert other.job(1).state.value == "planned"
