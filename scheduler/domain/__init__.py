"""The scheduler's nouns and pure rules: no I/O, no clock (``now`` is always an argument).

:mod:`~scheduler.domain.model` (jobs, runs, sites, policies, plans),
:mod:`~scheduler.domain.policies` (a policy's bounds), :mod:`~scheduler.domain.intervals`
(where a run is in its planned intervals), :mod:`~scheduler.domain.holds` (the ONE rule of
what capacity a job holds), :mod:`~scheduler.domain.acceptance` (the ONE rule of refusing a
job with the earliest finish that fits) and :mod:`~scheduler.domain.accounting` (grams from
samples and intensity). The old top-level names (``scheduler.model``...) are the same modules.
"""
