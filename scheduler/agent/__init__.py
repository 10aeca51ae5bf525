"""The agent (the daemon), by concern.

``loop`` (the :class:`Daemon` composing the rest), ``timers`` (APScheduler date triggers),
``leases`` (heartbeat, mirroring, fencing), ``recovery`` (adoption, reclaim and take-over,
the one sweep for claims that never started), ``launcher`` (claims, sweep gates, GPUs,
launch), ``pauses`` (interruptible runs, explicit phases), ``outcome`` (finish,
requeue-or-lost, accounting), ``metering`` (sampler begin/end windows), ``runs`` (the
registry of followed runs, events, polling), ``engines`` (executors by name) and
``trials`` (what the agent asks of sweeps). Import :class:`Daemon` from
:mod:`scheduler.agent.loop` (or :mod:`scheduler.dispatch`)."""
