"""The in-memory store, one module per aggregate (see :mod:`scheduler.storage.mem.store`)."""
