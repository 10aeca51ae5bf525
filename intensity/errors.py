"""The intensity package's exceptions: one root, :class:`IntensityError`.

Providers map every HTTP, parsing and transport error to one of these; nothing from
``requests`` crosses the package boundary.
"""

from __future__ import annotations


class IntensityError(Exception):
    """Carbon-intensity data could not be had or was not usable."""


class BadTrace(IntensityError):
    """A trace file is malformed: missing columns, unparseable times, negative values."""


class UnknownZone(IntensityError):
    """No provider (or not the named one) serves this zone."""


class UnknownProvider(IntensityError):
    """There is no provider of that name."""


class ProviderUnavailable(IntensityError):
    """The provider did not answer usefully (timeout, 5xx after retries, connection refused)."""


class AuthError(IntensityError):
    """The provider refused our credentials, or none were configured (never retried)."""


class MalformedResponse(IntensityError):
    """The provider answered with a body we could not parse."""


class EmptyData(IntensityError):
    """The provider answered, but with no data for the zone and interval asked."""
