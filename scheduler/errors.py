"""The scheduler's exceptions: one root, :class:`CarbonshiftError`.

Every error that crosses the package boundary is one of these. The CLI turns them into a
single line (the message) and an exit code: :class:`BadInput` and its children exit with 2,
the rest with 1. Third-party exceptions (SQLAlchemy, psutil, requests) are caught where
they are raised and re-raised as one of these, with the original chained.
"""

from __future__ import annotations


class CarbonshiftError(Exception):
    """Something went wrong in carbonshift."""

    exit_code: int = 1


class BadInput(CarbonshiftError):
    """A value given by the user is wrong; the message names it and says what to do."""

    exit_code = 2


class InfeasibleJob(BadInput):
    """The job cannot meet its policy (deadline, budget) with what is known now."""


class NotFound(BadInput):
    """A job, policy, site or run that does not exist."""


def no_job(job_id: int) -> NotFound:
    """The refusal of a job id that names no job (one wording for every command)."""
    return NotFound(f"no job {job_id}: see `carbonshift queue` or `carbonshift history`")


def no_policy(name: str) -> NotFound:
    """The refusal of a policy name that names no stored policy."""
    return NotFound(f"no policy named {name!r}: see `carbonshift policy list`")


class StorageError(CarbonshiftError):
    """The database could not be opened, migrated, read or written."""


class DatabaseUnreachable(StorageError):
    """The database server could not be reached, or the connection to it was lost."""


class DiskFull(StorageError):
    """The disk holding the database is full: reads work, writes wait for free space."""


class BadDatabase(StorageError):
    """The database is not one carbonshift can use (not SQLite, newer schema, not writable)."""

    exit_code = 2


class NotOwner(CarbonshiftError):
    """The job belongs to someone else."""

    exit_code = 2


class ExecutorError(CarbonshiftError):
    """An executor could not launch, follow or stop a job."""


class ConfigError(BadInput):
    """The configuration file or environment holds a bad value or an unknown key."""
