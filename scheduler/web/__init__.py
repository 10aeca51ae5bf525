"""The read-only dashboard: ``carbonshift dashboard`` serves it on 127.0.0.1.

:mod:`scheduler.web.page` renders the page from the same rows as the CLI;
:mod:`scheduler.web.server` is the standard library HTTP server around it.
"""
