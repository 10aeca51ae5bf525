"""Parsing and rendering shared by the CLI, the API and the web: one parser per kind of value.

* :mod:`.times`: durations (``3h``, ``PT3H``; ``0`` where none is allowed), instants (ISO
  8601 with a zone, read by :func:`intensity.timefmt.read_iso`, the program's one ISO
  reader), "an instant or a duration from a base" (:func:`~.times.parse_when`, deadlines),
  "an instant or a duration back" (:func:`~.times.parse_since`), and their rendering.
* :mod:`.quantities`: masses, energies, intensities, percentages.

Each parser is split from the rule its value keeps (``check_*``), so the Python API, given
numbers and datetimes, keeps the CLI's rules without writing them as text and parsing again.
``scheduler.timeutil`` and ``scheduler.units`` stay as shims of the old import paths.
"""
