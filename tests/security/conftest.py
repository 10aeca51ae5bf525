"""Security and bad-input tests run the real CLI in-process (the ``cs`` fixture)."""

from tests.cli.conftest import cs  # noqa: F401 (a fixture)
