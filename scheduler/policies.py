"""Moved to :mod:`scheduler.domain.policies`; this name stays so that every import keeps working.

The old name is the same module object (``sys.modules`` points it there): classes, enums,
module state and monkeypatching are shared, and pickles naming ``scheduler.policies`` still load.
"""

import sys

from scheduler.domain import policies as _moved
from scheduler.domain.policies import *  # noqa: F403 - what type checkers and readers see here

sys.modules[__name__] = _moved
