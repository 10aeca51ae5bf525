"""The SQL job store, split by aggregate (see the module docstrings of each part).

Nothing is imported here: :mod:`scheduler.storage.sql.fast_sqlite` (the standard-library
side doors) must stay importable without SQLAlchemy.
"""
