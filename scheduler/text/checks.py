"""The rule every free text a user gives keeps (names, descriptions, arguments): no control
characters, a bounded length. Shared by the queue's submit, the policies and the edges."""

from __future__ import annotations

import unicodedata

from scheduler.errors import BadInput

MAX_NAME_LEN = 200


def check_text(value: str, what: str, *, max_len: int = MAX_NAME_LEN, allow: str = "") -> str:
    """Refuse control characters (except those in ``allow``) and overlong strings."""
    if len(value) > max_len:
        raise BadInput(f"{what} is {len(value)} characters long: keep it under {max_len}")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs") and ch not in allow:
            raise BadInput(f"{what} {value[:40]!r} contains a control character: remove it")
    return value
