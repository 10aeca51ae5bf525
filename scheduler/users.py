"""Who runs this process: the OS user a job submitted from here belongs to."""

from __future__ import annotations

import os


def current_user() -> str:
    """The OS user running this process. Not ``getpass.getuser()``: that believes
    ``$USER``/``$LOGNAME``, and a job's owner must not be a variable anyone can set."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        import getpass  # (imports termios: only on this rare path)

        try:
            return getpass.getuser()
        except Exception:
            return str(os.getuid())


__all__ = ["current_user"]
