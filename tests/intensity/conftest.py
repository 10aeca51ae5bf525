"""Fixtures for the intensity tests: the shared recorded data, and a fast HTTP client.

The recorded provider answers live in ``../shared/data`` beside the repository (or where
``CARBONSHIFT_SHARED_DATA`` points); tests that need them are skipped, with the reason,
when that folder is absent. Providers are pointed at pytest-httpserver's real local HTTP
server through their ``base_url``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from intensity.http import HttpClient, RetryPolicy

SHARED_DATA_ENV = "CARBONSHIFT_SHARED_DATA"


def _shared_data_dir() -> Path | None:
    env = os.environ.get(SHARED_DATA_ENV)
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / ".." / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder, or a skip naming where it was looked for."""
    path = _shared_data_dir()
    if path is None:
        pytest.skip(
            "recorded provider responses not found: expected ../shared/data beside the "
            f"repository, or set {SHARED_DATA_ENV}"
        )
    return path


@pytest.fixture(scope="session")
def recorded(shared_data: Path) -> Callable[[str], Any]:
    """Load a recorded JSON answer by its path under the shared data folder."""

    def load(relative: str) -> Any:
        path = shared_data / relative
        if not path.is_file():
            pytest.skip(f"recorded response {relative} is missing from {shared_data}")
        return json.loads(path.read_text(encoding="utf-8"))

    return load


@pytest.fixture
def sleeps() -> list[float]:
    """Every delay the client asked to sleep, instead of sleeping."""
    return []


@pytest.fixture
def http(sleeps: list[float]) -> Iterator[HttpClient]:
    """An :class:`HttpClient` on a fresh session, short timeouts, a recording no-op sleep."""
    session = requests.Session()
    client = HttpClient(
        session,
        connect_timeout_s=2.0,
        read_timeout_s=3.0,
        retry=RetryPolicy(max_attempts=3, backoff_base_s=0.5),
        sleep=sleeps.append,
    )
    yield client
    session.close()


@pytest.fixture
def drain(httpserver: Any) -> Callable[[], None]:
    """Call to wait until the (single-threaded) test server has finished every request.

    A handler that outlives the client's timeout would otherwise log its request into the
    next test's ``httpserver.log``. The server answers one request at a time, so once this
    probe is answered the slow one is done; the fixture's teardown then clears both.
    """

    def wait() -> None:
        requests.get(httpserver.url_for("/__drain__"), timeout=10)

    return wait
