"""The Nightscout REST v1 client over one keep-alive httpx.Client. Layer: nightscout adapter.

The only module that imports httpx (STYLE.md 3.4). Every httpx exception and every answer
that is not a 2xx JSON array is translated here, ``from`` the cause, into
:class:`~bridge.errors.UploadUnavailableError` (retry later: network, timeouts, 408, 429, 5xx,
a 2xx that is not the expected JSON) or :class:`~bridge.errors.UploadRejectedError` (never
retried: 401/403 with a message naming the cause, redirects, other 4xx). Raised upload errors
carry ``status`` (HTTP status or None) and ``retry_after_s`` (seconds or None) attributes,
and a batched POST's errors carry ``delivered``: how many leading documents were
acknowledged before it.

Requests: ``Content-Type: application/json``, JSON arrays in batches (halved on 413),
connect and read timeouts, redirects never followed (a redirected POST turns into a GET and
the data is lost), certificates verified, plain ``http://`` only to loopback unless allowed.
The secret travels only in a header: it never appears in a URL, a log line, an exception
message or a repr. (An access token exchanged for a JWT is in the exchange's path, as
Nightscout requires; that path is redacted in messages and in httpx's log lines.)
"""

from __future__ import annotations

import ipaddress
import functools
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from bridge import __version__
from bridge.errors import ConfigError, UploadError, UploadRejectedError, UploadUnavailableError
from bridge.nightscout.auth import JWT_REFRESH_MARGIN_S, JWT_REQUEST_PATH, Credentials, JWTGrant, parse_jwt_grant
from bridge.nightscout.payloads import epoch_ms
from bridge.nightscout.retry import DEFAULT_RETRY, RetryPolicy, parse_retry_after

__all__ = [
    "AUDIT_PAGE_SIZE",
    "BATCH_SIZE",
    "CONNECT_TIMEOUT_S",
    "DEVICESTATUS_PATH",
    "ENTRIES_PATH",
    "READ_TIMEOUT_S",
    "TREATMENTS_PATH",
    "VERIFYAUTH_PATH",
    "NightscoutClient",
]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # TCP + TLS handshake
READ_TIMEOUT_S = 30.0  # between bytes of an answer (a 2,000-entry POST takes ~1.2 s)
BATCH_SIZE = 100  # documents per POST (FIELD_NOTES F6: <= 100, halved on 413)
AUDIT_PAGE_SIZE = 1000  # entries per GET of the gap audit

ENTRIES_PATH = "/api/v1/entries.json"
TREATMENTS_PATH = "/api/v1/treatments.json"
DEVICESTATUS_PATH = "/api/v1/devicestatus.json"
VERIFYAUTH_PATH = "/api/v1/verifyauth"

_BODY_EXCERPT = 200  # characters of an error answer quoted in a message
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
_JWT_PATH_RE = re.compile(re.escape(JWT_REQUEST_PATH) + r"[^\s\"'?#]+")

T = TypeVar("T")


class _RedactJWTPath(logging.Filter):
    """Hides the access token in the JWT exchange's path from httpx's request log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(JWT_REQUEST_PATH in str(arg) for arg in record.args):
            record.args = tuple(
                _JWT_PATH_RE.sub(JWT_REQUEST_PATH + "***", str(arg)) if JWT_REQUEST_PATH in str(arg) else arg
                for arg in record.args
            )
        if isinstance(record.msg, str) and JWT_REQUEST_PATH in record.msg:
            record.msg = _JWT_PATH_RE.sub(JWT_REQUEST_PATH + "***", record.msg)
        return True


_REDACT_FILTER = _RedactJWTPath()


def _install_log_redaction() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _REDACT_FILTER not in logger.filters:
            logger.addFilter(_REDACT_FILTER)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _normalise_base_url(url: str, *, allow_insecure_http: bool) -> str:
    """The site's root URL without a trailing slash (a pasted ``/api/v1`` is dropped).

    Raises:
        ConfigError: not an http(s) URL, a user name or secret in it, or plain http to a
            host that is not loopback without ``allow_insecure_http``.
    """
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigError("the Nightscout URL is not a valid URL", hint="e.g. https://my-site.example.org") from exc
    if parsed.userinfo:
        raise ConfigError(  # never echo the URL: the user-info is usually the secret
            "the Nightscout URL contains a user name or secret (https://SECRET@host)",
            hint="give the URL without it and the secret in API_SECRET or --secret-file",
        )
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"the Nightscout URL must be http(s)://host, got {url.strip()!r}")
    if parsed.query or parsed.fragment:
        raise ConfigError("the Nightscout URL must not have a query (?...) or fragment (#...)",
                          hint="a token goes in the configuration's token setting, never in the URL")
    if parsed.scheme == "http" and not allow_insecure_http and not _is_loopback(parsed.host):
        raise ConfigError(
            f"refusing plain http:// to {parsed.host}: the secret and the data would travel unencrypted",
            hint="use https://, or pass --allow-insecure-http for a trusted network",
        )
    path = parsed.path.rstrip("/")
    if path.lower().endswith("/api/v1"):
        path = path[: -len("/api/v1")]
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}{path}"


def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext | bool:
    if ca_bundle is None:
        return True
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the CA bundle {ca_bundle}: {exc}") from exc


class NightscoutClient:
    """Uploads documents to one Nightscout site (REST API v1).

    Args:
        base_url: the site's root URL, e.g. ``https://my-site.example.org``.
        credentials: how to authenticate.
        http: an httpx.Client to use (tests pass one with a MockTransport); the caller then
            owns it, and ``connect_timeout_s``, ``read_timeout_s`` and ``ca_bundle`` do not
            apply. Default: a client of our own, closed by :meth:`close`.
        batch_size: documents per POST; halved on 413 down to 1, and the smaller size is
            kept for the client's lifetime.
        connect_timeout_s: connect timeout.
        read_timeout_s: read (and write) timeout.
        ca_bundle: a PEM file of CA certificates to trust instead of the system's.
        allow_insecure_http: allow plain http:// to hosts other than loopback.
        retry: the in-call retry policy.
        sleep: how to wait between retries (tests pass a recorder).
        clock: unix time now (for JWT expiry and HTTP-date Retry-After).

    Attributes:
        requests_made: HTTP requests sent so far (retries and JWT exchanges included).

    Raises:
        ConfigError: a bad URL, plain http to a remote host, a bad CA bundle or batch size.
    """

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        http: httpx.Client | None = None,
        batch_size: int = BATCH_SIZE,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
        ca_bundle: str | None = None,
        allow_insecure_http: bool = False,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"the Nightscout batch size must be at least 1, got {batch_size}")
        self.base_url = _normalise_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self.credentials = credentials
        self.batch_size = batch_size
        self.requests_made = 0
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._grant: JWTGrant | None = None
        self._owns_http = http is None
        if http is None:
            http = httpx.Client(
                timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s, pool=connect_timeout_s),
                verify=_ssl_context(ca_bundle),
                follow_redirects=False,
                headers={"User-Agent": f"dexcom-bridge/{__version__}"},
            )
        self._http = http
        _install_log_redaction()

    def __repr__(self) -> str:
        return f"NightscoutClient(base_url={self.base_url!r}, credentials={self.credentials!r})"

    def __enter__(self) -> NightscoutClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool (only when this client created it)."""
        if self._owns_http:
            self._http.close()

    # --- public API ----------------------------------------------------------------------

    def post_entries(
        self,
        docs: Sequence[Mapping[str, object]],
        *,
        on_batch: Callable[[Sequence[Mapping[str, object]], list[dict[str, Any]]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """POST entries (sgv, mbg, cal) in batches; returns what Nightscout stored.

        Args:
            docs: entry documents (:mod:`bridge.nightscout.payloads`).
            on_batch: called after each acknowledged batch with (sent documents, answer), so
                the outbox can mark them sent before the next batch.

        Raises:
            UploadRejectedError: credentials refused (``status`` 401/403), a redirect, another
                4xx, or one document too large. Never retried.
            UploadUnavailableError: the site could not be reached or answered 408/429/5xx or a
                2xx that is not a JSON array, after the in-call retries.
        """
        return self._post_batched(ENTRIES_PATH, docs, "api:entries:create", on_batch)

    def post_treatments(
        self,
        docs: Sequence[Mapping[str, object]],
        *,
        on_batch: Callable[[Sequence[Mapping[str, object]], list[dict[str, Any]]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """POST treatments in batches; as :meth:`post_entries`."""
        return self._post_batched(TREATMENTS_PATH, docs, "api:treatments:create", on_batch)

    def post_devicestatus(self, doc: Mapping[str, object]) -> dict[str, Any]:
        """POST one devicestatus; returns the stored document.

        Nightscout does not de-duplicate devicestatus: post only when it changed or every
        few minutes.

        Raises:
            UploadRejectedError: as :meth:`post_entries`.
            UploadUnavailableError: as :meth:`post_entries`.
        """
        stored = self._retrying(lambda: self._post_once(DEVICESTATUS_PATH, [doc], "api:devicestatus:create"))
        if stored is None:
            raise self._error(UploadRejectedError, "the devicestatus document is too large for the server (413)",
                              status=413)
        first = stored[0]
        return first if isinstance(first, dict) else {}

    def verify_auth(self) -> dict[str, Any]:
        """Ask ``/api/v1/verifyauth`` what the credentials may do.

        Returns:
            Nightscout's answer ``message`` object, e.g. ``{"canRead": true, "canWrite": true,
            "isAdmin": true, "message": "OK", "rolefound": "FOUND", "permissions": "ROLE"}``
            (``message`` is ``UNAUTHORIZED`` when the credentials did not resolve). Servers
            that answer a bare string give ``{"message": <string>}``.

        Raises:
            UploadRejectedError: 401/403 or a redirect.
            UploadUnavailableError: the site could not be reached or answered with no JSON object.
        """

        def call() -> dict[str, Any]:
            response = self._send("GET", VERIFYAUTH_PATH, permission="api:entries:read")
            body = self._json(response, "GET", VERIFYAUTH_PATH)
            if not isinstance(body, dict):
                raise self._error(
                    UploadUnavailableError,
                    f"GET {self._shown(VERIFYAUTH_PATH)} answered {response.status_code} with JSON that is not "
                    "an object",
                    status=response.status_code,
                )
            message = body.get("message")
            if isinstance(message, dict):
                return message
            return {"message": message if message is not None else body.get("status")}

        return self._retrying(call)

    def entries_between(self, device: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """The entries of ``device`` that the site holds with ``start <= date <= end``.

        For the gap audit. Pages through the window (newest first, :data:`AUDIT_PAGE_SIZE`
        a request) with an explicit ``find[date]``, so Nightscout's implicit 4-day window
        never applies.

        Raises:
            UploadRejectedError: 401/403 or a redirect.
            UploadUnavailableError: the site could not be reached or answered no JSON array.
        """
        lo, hi = epoch_ms(start), epoch_ms(end)
        seen: set[object] = set()
        out: list[dict[str, Any]] = []
        while True:
            params = {
                "find[date][$gte]": str(lo),
                "find[date][$lte]": str(hi),
                "find[device]": device,
                "count": str(AUDIT_PAGE_SIZE),
            }
            page = self._retrying(functools.partial(self._get_array, ENTRIES_PATH, params))
            new = 0
            oldest = hi
            for doc in page:
                if not isinstance(doc, dict):
                    continue
                date = doc.get("date")
                key = doc.get("_id") or (doc.get("type"), date)
                if isinstance(date, int | float):
                    oldest = min(oldest, int(date))
                if key in seen:
                    continue
                seen.add(key)
                out.append(doc)
                new += 1
            if len(page) < AUDIT_PAGE_SIZE or new == 0:
                return out
            hi = oldest  # inclusive: documents at the boundary are de-duplicated above

    # --- requests ------------------------------------------------------------------------

    def _retrying(self, call: Callable[[], T]) -> T:
        retrying = self._retry.retrying(self._sleep)
        return retrying(call)

    def _post_batched(
        self,
        path: str,
        docs: Sequence[Mapping[str, object]],
        permission: str,
        on_batch: Callable[[Sequence[Mapping[str, object]], list[dict[str, Any]]], None] | None,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        start = 0
        while start < len(docs):
            batch = docs[start : start + self.batch_size]
            try:
                stored = self._retrying(functools.partial(self._post_once, path, batch, permission))
            except UploadError as exc:
                exc.__dict__["delivered"] = start
                raise
            if stored is None:  # 413: halve and try the same documents again
                if len(batch) == 1:
                    raise self._error(
                        UploadRejectedError,
                        f"POST {self._shown(path)}: one document is too large for the server (413)",
                        status=413, delivered=start,
                        hint="raise the body size limit of the site or of the proxy in front of it",
                    )
                self.batch_size = max(1, len(batch) // 2)
                log.warning("nightscout: %s answered 413 for %d documents; batches of %d from now on",
                            path, len(batch), self.batch_size)
                continue
            if on_batch is not None:
                on_batch(batch, stored)
            out.extend(stored)
            start += len(batch)
        return out

    def _post_once(
        self, path: str, batch: Sequence[Mapping[str, object]], permission: str
    ) -> list[dict[str, Any]] | None:
        """One POST of one batch: the stored documents, or None on 413."""
        response = self._send("POST", path, body=list(batch), permission=permission, allow_413=True)
        if response.status_code == 413:
            return None
        body = self._json(response, "POST", path)
        if not isinstance(body, list):
            raise self._error(
                UploadUnavailableError,
                f"POST {self._shown(path)} answered {response.status_code} with a JSON {type(body).__name__}, "
                "not the array of stored documents: nothing is taken as uploaded",
                status=response.status_code,
                hint="check that the URL is the Nightscout site's root",
            )
        if batch and not body:
            raise self._error(
                UploadUnavailableError,
                f"POST {self._shown(path)} answered {response.status_code} [] for {len(batch)} documents: "
                "the server stored nothing (Nightscout does this when the body's Content-Type is lost)",
                status=response.status_code,
                hint="check that no proxy in front of the site rewrites the request headers",
            )
        if len(body) != len(batch):
            log.warning("nightscout: POST %s stored %d of %d documents", path, len(body), len(batch))
        log.debug("nightscout: POST %s: %d documents -> %d", path, len(batch), response.status_code)
        return [doc if isinstance(doc, dict) else {} for doc in body]

    def _get_array(self, path: str, params: Mapping[str, str]) -> list[Any]:
        response = self._send("GET", path, params=params, permission="api:entries:read")
        body = self._json(response, "GET", path)
        if not isinstance(body, list):
            raise self._error(
                UploadUnavailableError,
                f"GET {self._shown(path)} answered {response.status_code} with JSON that is not an array",
                status=response.status_code,
            )
        return body

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        permission: str,
        allow_413: bool = False,
        authenticate: bool = True,
    ) -> httpx.Response:
        """Send one request; return a 2xx (or 413 when allowed) answer, raise for the rest."""
        headers = {"Accept": "application/json"}
        content: bytes | None = None
        if body is not None:
            try:
                content = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
            except (TypeError, ValueError) as exc:
                raise self._error(UploadRejectedError, f"{method} {self._shown(path)}: a document is not "
                                  f"valid JSON ({exc})") from exc
            headers["Content-Type"] = "application/json"
        fresh_jwt = False
        if authenticate:
            if self.credentials.bearer and self._grant_expired():
                self._grant = self._fetch_jwt()
                fresh_jwt = True
            headers.update(self.credentials.headers(self._grant.jwt if self._grant else None))
        response = self._request(method, path, content=content, params=params, headers=headers)
        status = response.status_code
        if status in (401, 403) and self.credentials.bearer and not fresh_jwt:
            # The JWT may have died (server rebuilt, new signing key): get a new one, once.
            self._grant = self._fetch_jwt()
            headers.update(self.credentials.headers(self._grant.jwt))
            response = self._request(method, path, content=content, params=params, headers=headers)
            status = response.status_code
        if 200 <= status < 300 or (allow_413 and status == 413):
            return response
        raise self._status_error(method, path, response, permission)

    def _request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
    ) -> httpx.Response:
        """One HTTP exchange; httpx errors become UploadUnavailableError."""
        url = self.base_url + path
        self.requests_made += 1
        try:
            return self._http.request(
                method, url, content=content, params=params, headers=headers, follow_redirects=False
            )
        except httpx.TimeoutException as exc:
            raise self._error(UploadUnavailableError, f"{method} {self._shown(path)}: timed out "
                              f"({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            hint = None
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                hint = "the site's certificate is not trusted: renew it, or give a CA bundle for a self-hosted CA"
            raise self._error(UploadUnavailableError, f"{method} {self._shown(path)}: {type(exc).__name__}: "
                              f"{exc or 'connection failed'}", hint=hint) from exc

    def _grant_expired(self) -> bool:
        if self._grant is None:
            return True
        return bool(self._grant.expires_at) and self._clock() >= self._grant.expires_at - JWT_REFRESH_MARGIN_S

    def _fetch_jwt(self) -> JWTGrant:
        """Exchange the access token for a JWT (``GET /api/v2/authorization/request/<token>``)."""
        path = self.credentials.jwt_request_path()
        response = self._request("GET", path, content=None, params=None, headers={"Accept": "application/json"})
        status = response.status_code
        if status in (401, 403, 404):
            raise self._error(
                UploadRejectedError,
                f"Nightscout does not know the access token (HTTP {status} from the JWT exchange)",
                status=status,
                hint="copy the token again from Nightscout's Admin Tools; tokens are per site",
            )
        if not 200 <= status < 300:
            raise self._status_error("GET", path, response, "the JWT exchange")
        try:
            return parse_jwt_grant(self._json(response, "GET", path))
        except ValueError as exc:
            raise self._error(UploadUnavailableError, f"GET {self._shown(path)}: {exc}", status=status) from exc

    # --- answers -------------------------------------------------------------------------

    def _json(self, response: httpx.Response, method: str, path: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise self._error(
                UploadUnavailableError,
                f"{method} {self._shown(path)} answered {response.status_code} with {kind}, not JSON: "
                "nothing is taken as uploaded",
                status=response.status_code,
                hint="check that the URL is the Nightscout site itself, not a login page or proxy",
            ) from exc

    def _status_error(self, method: str, path: str, response: httpx.Response, permission: str) -> UploadError:
        status = response.status_code
        shown = self._shown(path)
        if 300 <= status < 400:
            return self._redirect_error(method, path, response)
        if status in (401, 403):
            message, hint = self.credentials.refusal(status, permission=permission)
            return self._error(UploadRejectedError, f"{message} ({method} {shown})", status=status, hint=hint)
        if status in (408, 429) or status >= 500:
            retry_after = parse_retry_after(
                response.headers.get("retry-after"), datetime.fromtimestamp(self._clock(), UTC)
            )
            return self._error(
                UploadUnavailableError,
                f"{method} {shown} answered {status} {response.reason_phrase}".rstrip()
                + (f" (Retry-After {retry_after:g} s)" if retry_after is not None else ""),
                status=status, retry_after_s=retry_after,
            )
        return self._error(
            UploadRejectedError,
            f"{method} {shown} answered {status} {response.reason_phrase}: {self._excerpt(response)}".rstrip(": "),
            status=status,
        )

    def _redirect_error(self, method: str, path: str, response: httpx.Response) -> UploadError:
        status = response.status_code
        location = response.headers.get("location")
        if not location:
            return self._error(UploadRejectedError, f"{method} {self._shown(path)} answered redirect {status} "
                               "without a Location; the bridge does not follow redirects", status=status)
        target = str(self._http_url(path).join(location)).split("?", 1)[0]
        if target.endswith(path):
            suggested = target[: len(target) - len(path)]
            message = (
                f"{method} {self._shown(path)} answered {status} redirect to {target}: use {suggested} as the "
                "Nightscout URL (the bridge never follows a redirect: a redirected POST turns into a GET and "
                "the data is lost)"
            )
            hint = f"set the Nightscout URL to {suggested}"
        else:
            message = (
                f"{method} {self._shown(path)} answered {status} redirect to {target}, which is not this API "
                "path on another base URL; the bridge never follows a redirect"
            )
            hint = "check the Nightscout URL: open it in a browser and use the address it ends up at"
        return self._error(UploadRejectedError, message, status=status, hint=hint)

    def _http_url(self, path: str) -> httpx.URL:
        return httpx.URL(self.base_url + path)

    @staticmethod
    def _excerpt(response: httpx.Response) -> str:
        try:
            text = response.text
        except (UnicodeDecodeError, httpx.HTTPError):
            return ""
        text = " ".join(text.split())
        return text[:_BODY_EXCERPT] + ("..." if len(text) > _BODY_EXCERPT else "")

    def _shown(self, path: str) -> str:
        """The URL as it may be shown: the JWT exchange's token redacted."""
        return _JWT_PATH_RE.sub(JWT_REQUEST_PATH + "***", self.base_url + path)

    def _redact(self, text: str) -> str:
        text = self.credentials.redact(_JWT_PATH_RE.sub(JWT_REQUEST_PATH + "***", text))
        if self._grant is not None and self._grant.jwt:
            text = text.replace(self._grant.jwt, "***")
        return text

    def _error(
        self,
        cls: type[UploadError],
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        delivered: int | None = None,
        hint: str | None = None,
    ) -> UploadError:
        """An upload error with the secret redacted and ``status``/``retry_after_s`` attached."""
        exc = cls(self._redact(message), hint=self._redact(hint) if hint is not None else None)
        exc.__dict__.update(status=status, retry_after_s=retry_after_s)
        if delivered is not None:
            exc.__dict__["delivered"] = delivered
        return exc

    def latest_entries(self, count: int, *, entry_type: str | None = "sgv") -> list[dict[str, Any]]:
        """The site's newest entries of every device, newest first (for followers: ``bridge tail``).

        One ``GET /api/v1/entries.json?count=N`` (with ``find[type]`` unless ``entry_type``
        is None). Nightscout's implicit 4-day window applies: an older site answers ``[]``.

        Args:
            count: at most this many entries.
            entry_type: only entries of this ``type`` (``sgv``, ``mbg``, ``cal``); None for all.

        Raises:
            UploadRejectedError: 401/403 or a redirect.
            UploadUnavailableError: the site could not be reached or answered no JSON array.
        """
        params = {"count": str(max(1, count))}
        if entry_type is not None:
            params["find[type]"] = entry_type
        page = self._retrying(functools.partial(self._get_array, ENTRIES_PATH, params))
        return [doc for doc in page if isinstance(doc, dict)]
