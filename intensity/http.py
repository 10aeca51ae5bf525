"""The one HTTP client of the intensity package.

All providers talk to the outside through :class:`HttpClient`, which wraps the package's
single :class:`requests.Session` (connection pooling, one ``User-Agent``) and adds:

- explicit connect and read timeouts on every request;
- retries with exponential backoff on 429 and 5xx and on connection errors and timeouts,
  honouring ``Retry-After`` (delta seconds or an HTTP-date); a ``Retry-After`` longer
  than :attr:`RetryPolicy.retry_after_max_s` is not waited for: carbon data never blocks
  work, so the provider is reported unavailable at once;
- no retry on 401/403: :class:`HttpAuthError` (an :class:`~intensity.errors.AuthError`);
- a body that is not JSON: :class:`~intensity.errors.MalformedResponse`;
  an empty body (or 204): :class:`~intensity.errors.EmptyData`;
- every ``requests`` exception mapped to an :mod:`intensity.errors` type, raised
  ``from None`` so the request object (and its headers) never travel with it.

Secrets: messages and log lines name the provider, the HTTP status and the URL *path*
only; query strings, headers and auth are never logged or put into messages.

``sleep`` and ``clock`` are injectable so tests run retries without waiting.

``requests`` (about 0.1 s to import) is imported only when a request is really made or a
session created: a command served from the cache, or one whose providers are all in
back-off after a failure, never pays for it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from intensity.errors import AuthError, EmptyData, MalformedResponse, ProviderUnavailable

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

USER_AGENT = "carbonshift/0.1 (+https://example.invalid/carbonshift)"

#: Statuses worth retrying: rate limited, and server-side failures.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

_session_lock = threading.Lock()
_shared_session: requests.Session | None = None


def shared_session() -> requests.Session:
    """The package's one :class:`requests.Session`, created on first use."""
    global _shared_session
    with _session_lock:
        if _shared_session is None:
            import requests

            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            session.headers["Accept"] = "application/json"
            _shared_session = session
        return _shared_session


class HttpStatusError(ProviderUnavailable):
    """The provider answered with an HTTP error status that retrying did not (or would not) fix."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class HttpAuthError(AuthError):
    """HTTP 401 or 403: credentials missing, wrong, expired or without access (never retried)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry.

    The n-th retry (n = 1, 2...) waits ``backoff_base_s * 2 ** (n - 1)`` seconds, capped
    at ``backoff_max_s``, unless the server's ``Retry-After`` asks for longer.
    """

    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0

    def backoff_s(self, retry_number: int) -> float:
        """Delay before retry number ``retry_number`` (1-based), without ``Retry-After``."""
        return float(min(self.backoff_max_s, self.backoff_base_s * 2 ** (retry_number - 1)))


def redact_url(url: str) -> str:
    """``scheme://host/path`` only: the query string may carry keys, so it is dropped."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or HTTP-date).

    Returns ``None`` when absent or unparseable; never negative.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    # a Retry-After date: rare, and the email package is not cheap to import
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110: HTTP-dates are GMT
        return None
    return max(0.0, when.timestamp() - now_s)


class HttpClient:
    """GET JSON from a provider with timeouts, retries and error mapping.

    :param session: the :class:`requests.Session` to use; default the package's shared one.
    :param connect_timeout_s: seconds to establish a connection.
    :param read_timeout_s: seconds to wait between bytes of the answer.
    :param retry: the :class:`RetryPolicy`.
    :param sleep: called with seconds to wait between attempts (inject a no-op in tests).
    :param clock: unix seconds now, for ``Retry-After`` HTTP-dates.
    """

    def __init__(
        self,
        session: requests.Session | None = None,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if connect_timeout_s <= 0 or read_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        self._session = session
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock

    @property
    def session(self) -> requests.Session:
        """The session given, else the package's shared one (made, and ``requests``
        imported, on the first request)."""
        if self._session is None:
            self._session = shared_session()
        return self._session

    def get_json(
        self,
        url: str,
        *,
        provider: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Any:
        """GET ``url`` and return its decoded JSON body.

        Raises :class:`HttpAuthError` (401/403, no retry), :class:`HttpStatusError` (other
        4xx, or 429/5xx after the last attempt), :class:`ProviderUnavailable` (connection
        error or timeout after the last attempt), :class:`EmptyData` (empty body or 204),
        :class:`MalformedResponse` (not JSON).
        """
        response = self.get(url, provider=provider, params=params, headers=headers, auth=auth)
        where = redact_url(url)
        secrets = _secrets(params, headers, auth)
        if response.status_code == 204 or not response.content.strip():
            raise EmptyData(f"{provider}: empty answer from {where}")
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            snippet = _scrub(response.content[:60].decode("utf-8", "replace"), secrets)
            raise MalformedResponse(
                f"{provider}: answer from {where} is not JSON (starts {snippet!r})"
            ) from None

    def get(
        self,
        url: str,
        *,
        provider: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> requests.Response:
        """GET with retries; return the first response with a status below 400."""
        import requests

        where = redact_url(url)
        secrets = _secrets(params, headers, auth)
        policy = self.retry
        attempts = max(1, policy.max_attempts)
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                response = self.session.get(
                    url,
                    params=dict(params) if params else None,
                    headers=dict(headers) if headers else None,
                    auth=auth,
                    timeout=(self.connect_timeout_s, self.read_timeout_s),
                    allow_redirects=True,
                )
            except requests.Timeout:
                reason = f"timeout (connect {self.connect_timeout_s:g} s, read {self.read_timeout_s:g} s)"
                if last:
                    raise ProviderUnavailable(
                        f"{provider}: {where}: {reason} after {attempts} attempts"
                    ) from None
                self._wait(provider, where, reason, policy.backoff_s(attempt))
                continue
            except requests.ConnectionError as exc:
                if _is_name_resolution_failure(exc):
                    # no DNS answer (offline, a closed network): retrying within seconds
                    # cannot help, and carbon data must never hold up work
                    raise ProviderUnavailable(
                        f"{provider}: {where}: cannot resolve the host (offline?)"
                    ) from None
                reason = "connection failed"
                if last:
                    raise ProviderUnavailable(
                        f"{provider}: {where}: {reason} after {attempts} attempts"
                    ) from None
                self._wait(provider, where, reason, policy.backoff_s(attempt))
                continue
            except requests.RequestException as exc:
                raise ProviderUnavailable(
                    f"{provider}: {where}: request failed ({type(exc).__name__})"
                ) from None

            status = response.status_code
            if status < 400:
                return response
            detail = _scrub(_error_detail(response), secrets)
            if status in (401, 403):
                raise HttpAuthError(
                    f"{provider}: HTTP {status} from {where}: credentials refused or no "
                    f"access{detail} (not retried)",
                    status,
                )
            if status not in RETRY_STATUSES:
                raise HttpStatusError(f"{provider}: HTTP {status} from {where}{detail}", status)
            delay = policy.backoff_s(attempt)
            asked = parse_retry_after(response.headers.get("Retry-After"), self._clock())
            if asked is not None:
                if asked > policy.retry_after_max_s:
                    raise HttpStatusError(
                        f"{provider}: HTTP {status} from {where}: asked to retry after "
                        f"{asked:.0f} s (more than {policy.retry_after_max_s:g} s); not waiting",
                        status,
                    )
                # 429: the server's wait exactly; 5xx: at least our own backoff.
                delay = asked if status == 429 else max(delay, asked)
            if last:
                raise HttpStatusError(
                    f"{provider}: HTTP {status} from {where}{detail} after {attempts} attempts",
                    status,
                )
            self._wait(provider, where, f"HTTP {status}", delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, provider: str, where: str, reason: str, delay_s: float) -> None:
        log.warning("%s: %s from %s; retrying in %.1f s", provider, reason, where, delay_s)
        self._sleep(delay_s)


def _secrets(
    params: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    auth: tuple[str, str] | None,
) -> list[str]:
    """Values that must never be echoed: header values, the password, secret-named params."""
    found = [str(v) for v in (headers or {}).values()]
    found += [
        str(v)
        for k, v in (params or {}).items()
        if any(word in k.lower() for word in ("key", "token", "secret", "password", "auth"))
    ]
    if auth:
        found.append(auth[1])
    # Bearer tokens: hide the token alone too; skip short values (zones, flags) to keep
    # messages readable: a secret is long.
    found += [v.split(" ", 1)[1] for v in found if " " in v]
    return sorted({v for v in found if len(v) >= 8}, key=len, reverse=True)


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _error_detail(response: requests.Response) -> str:
    """A short, safe excerpt of an error body: its ``error``/``message`` fields, if JSON."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body[k]) for k in ("error", "message", "detail") if isinstance(body.get(k), str)]
    text = "; ".join(parts)[:200]
    return f": {text}" if text else ""


_default_client: HttpClient | None = None


def default_client() -> HttpClient:
    """An :class:`HttpClient` on the shared session with the default timeouts and retries."""
    global _default_client
    with _session_lock:
        if _default_client is None:
            _default_client = HttpClient()
        return _default_client


def _is_name_resolution_failure(exc: BaseException) -> bool:
    """Whether a connection error is a failed DNS lookup (walks the cause chain)."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 8:
        text = f"{type(cur).__name__} {cur}"
        if "NameResolutionError" in text or "Name or service not known" in text or (
            "Temporary failure in name resolution" in text
        ) or "nodename nor servname" in text:
            return True
        nxt = cur.__cause__ or cur.__context__
        if nxt is None and cur.args and isinstance(cur.args[0], BaseException):
            nxt = cur.args[0]
        cur = nxt
        seen += 1
    return False
