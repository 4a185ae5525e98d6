"""HTTP with timeouts, retries, rate limits and verified, resumable downloads.

The network is a dependency that fails. Every request here:

* waits for a token from a thread-safe token bucket (NCBI allows 3 requests/s, 10 with an API
  key; EBI asks for similar restraint);
* is retried with exponential backoff and jitter on connection errors, timeouts, a body cut
  short (reset mid-body, fewer bytes than Content-Length), HTTP 429 (honouring Retry-After)
  and 500/502/503/504; any other 4xx fails at once;
* reports failures as :class:`~scatlas.errors.ServiceError` naming the URL (never the API key).

:class:`Services` builds one client per configured service and maps the real service URLs
found inside records (GEO FTP, ENA FASTQ, BioStudies files) onto the configured base URLs.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from scatlas.errors import ServiceError
from scatlas.fileio import md5_file
from scatlas.settings import ServicesSettings

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_DELAY_S = 120.0
_CHUNK = 1 << 16  # small chunks: a reset mid-body loses at most one chunk of a resumable part
USER_AGENT = "scatlas/0.1 (+https://github.com/scatlas; single-cell atlas builder)"


class _ShortBody(Exception):
    """The body ended before Content-Length bytes arrived."""


class ChecksumError(ServiceError):
    """A download kept failing its size or md5 check; ``field`` names the record field
    (``fastq_md5`` or ``fastq_bytes``) the file disagreed with."""

    def __init__(self, message: str, *, url: str, reason: str, field: str):
        super().__init__(message, url=url, reason=reason)
        self.field = field


# Failures worth another try: the connection, not the request, was at fault.
_RETRY_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    http.client.IncompleteRead,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    ConnectionResetError,
    _ShortBody,
)


class RateLimiter:
    """Token bucket: at most ``rate`` acquisitions per second, bursts of ``burst``.

    ``acquire`` reserves a token under the lock and sleeps outside it, so concurrent callers
    queue up at ``1/rate`` spacing. ``rate`` of None or 0 means unlimited.
    """

    def __init__(self, rate: float | None, burst: float = 1.0):
        if rate is not None and rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        self.rate = float(rate) if rate else 0.0
        self.capacity = max(1.0, float(burst))
        self._tokens = self.capacity
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a request may start; return the seconds waited."""
        if not self.rate:
            return 0.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)
        return wait


def looks_like_html(head: bytes | str) -> bool:
    """True when a body starts like an HTML page (an error or login page, not data)."""
    if isinstance(head, bytes):
        head = head[:512].decode("utf-8", "replace")
    start = head.lstrip("\ufeff \t\r\n")[:64].lower()
    return start.startswith(("<!doctype html", "<html", "<head", "<body"))


def file_matches(path: str | os.PathLike, *, md5: str | None, size: int | None) -> bool:
    """True when ``path`` exists and has the expected size and md5 (those that are known).

    With neither known, an existing file cannot be verified and does not match.
    """
    p = Path(path)
    if not p.is_file() or (md5 is None and size is None):
        return False
    if size is not None and p.stat().st_size != size:
        return False
    return md5 is None or md5_file(p) == md5.lower()


class HttpClient:
    """A client for one service: base URL, timeouts, retries, rate limit.

    ``params`` are sent with every request (e.g. NCBI's ``api_key``) and never appear in error
    messages. Each thread gets its own ``requests.Session`` unless ``session`` is given.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 1.0,
        requests_per_s: float | None = None,
        params: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        limiter: RateLimiter | None = None,
        name: str = "",
    ):
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.params = dict(params or {})
        self.limiter = limiter if limiter is not None else RateLimiter(requests_per_s)
        self.name = name or urlsplit(self.base_url).netloc
        self._session = session
        self._local = threading.local()
        self._rng = random.Random(0)  # jitter only; seeded so runs are reproducible
        self._rng_lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------
    @property
    def session(self) -> requests.Session:
        if self._session is not None:
            return self._session
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers["User-Agent"] = USER_AGENT
            self._local.session = s
        return s

    def url(self, path_or_url: str) -> str:
        """Absolute URLs pass through; anything else is joined onto the base URL."""
        if re.match(r"^[a-z][a-z0-9+.-]*://", path_or_url, re.I):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    @staticmethod
    def display_url(url: str, params: Mapping[str, Any] | None) -> str:
        """The URL with the caller's parameters, never the client's secret ones."""
        if not params:
            return url
        return requests.Request("GET", url, params=dict(params)).prepare().url or url

    def _delay(self, attempt: int) -> float:
        with self._rng_lock:
            jitter = 1.0 + 0.5 * self._rng.random()
        return min(_MAX_DELAY_S, self.backoff * (2**attempt) * jitter)

    @staticmethod
    def _retry_after(resp: requests.Response) -> float | None:
        value = resp.headers.get("Retry-After")
        if not value:
            return None
        value = value.strip()
        if value.isdigit():
            return min(float(value), 600.0)
        with contextlib.suppress(TypeError, ValueError):
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, min(600.0, when.timestamp() - time.time()))
        return None

    @staticmethod
    def _check_length(resp: requests.Response, received: int, expected: int | None) -> None:
        if expected is not None and received != expected:
            raise _ShortBody(f"received {received} of {expected} bytes")

    @staticmethod
    def _content_length(resp: requests.Response) -> int | None:
        if resp.headers.get("Content-Encoding", "identity") not in ("", "identity"):
            return None  # Content-Length counts compressed bytes
        value = resp.headers.get("Content-Length")
        return int(value) if value and value.isdigit() else None

    def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = self.url(path_or_url)
        shown = self.display_url(url, params)
        sent_params = {**self.params, **(params or {})} or None
        last = ""
        attempts = self.retries + 1
        for attempt in range(attempts):
            self.limiter.acquire()
            delay: float | None = None
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=sent_params,
                    data=dict(data) if data else None,
                    headers=dict(headers or {}),
                    timeout=self.timeout,
                )
                if resp.status_code in RETRY_STATUS:
                    last = f"HTTP {resp.status_code} {resp.reason or ''}".strip()
                    delay = self._retry_after(resp)
                    resp.close()
                elif resp.status_code >= 400:
                    snippet = re.sub(r"\s+", " ", resp.text[:300]).strip()
                    reason = f"HTTP {resp.status_code} {resp.reason or ''}".strip()
                    raise ServiceError(
                        f"{method} failed with {reason}: {snippet}"
                        if snippet
                        else f"{method} failed with {reason}",
                        url=shown,
                        reason=reason,
                    )
                else:
                    # .content reads the body; a reset mid-body surfaces here
                    self._check_length(resp, len(resp.content), self._content_length(resp))
                    return resp
            except _RETRY_EXCEPTIONS as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt + 1 < attempts:
                wait = delay if delay is not None else self._delay(attempt)
                log.warning(
                    "%s %s: %s; retry %d/%d in %.2fs",
                    method,
                    shown,
                    last,
                    attempt + 1,
                    self.retries,
                    wait,
                )
                time.sleep(wait)
        raise ServiceError(
            f"{method} failed after {attempts} attempts: {last}", url=shown, reason=last
        )

    # -- public API -----------------------------------------------------------------------
    def get(self, path_or_url: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        """GET with retries; the body is read (and checked against Content-Length)."""
        return self._request("GET", path_or_url, params=params)

    def post(
        self, path_or_url: str, data: Mapping[str, Any], params: Mapping[str, Any] | None = None
    ) -> requests.Response:
        """POST a form (E-utilities take long id lists this way)."""
        return self._request("POST", path_or_url, params=params, data=data)

    def _text(self, resp: requests.Response, shown: str, expect: str) -> str:
        ctype = resp.headers.get("Content-Type", "").lower()
        if "html" in ctype or looks_like_html(resp.content[:512]):
            raise ServiceError(
                f"expected {expect} but the service answered an HTML page",
                url=shown,
                reason=f"HTML instead of {expect}",
            )
        m = re.search(r"charset=([\w.:-]+)", ctype)
        encoding = m.group(1) if m else "utf-8"
        try:
            return resp.content.decode(encoding)
        except LookupError:  # an unknown charset name: read it as UTF-8
            encoding = "utf-8"
            try:
                return resp.content.decode(encoding)
            except UnicodeDecodeError as exc:
                raise _not_text(exc, resp.content, shown, expect) from exc
        except UnicodeDecodeError as exc:
            raise _not_text(exc, resp.content, shown, expect, encoding) from exc

    def get_text(
        self, path_or_url: str, params: Mapping[str, Any] | None = None, *, expect: str = "text"
    ) -> str:
        """GET a text body (``expect`` names the format, e.g. "TSV", for error messages)."""
        resp = self.get(path_or_url, params)
        return self._text(resp, self.display_url(self.url(path_or_url), params), expect)

    def parse_json(self, resp: requests.Response, shown: str) -> Any:
        text = self._text(resp, shown, "JSON")
        try:
            return json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except _DuplicateKey as exc:
            raise ServiceError(
                f"JSON object has the field {exc.key!r} twice",
                url=shown,
                reason=f"duplicated JSON field {exc.key!r}",
            ) from exc
        except json.JSONDecodeError as exc:
            raise ServiceError(
                f"invalid JSON ({exc})", url=shown, reason=f"invalid JSON: {exc}"
            ) from exc

    def get_json(self, path_or_url: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET and decode JSON; an HTML page or malformed JSON is a ServiceError."""
        resp = self.get(path_or_url, params)
        return self.parse_json(resp, self.display_url(self.url(path_or_url), params))

    def post_json(
        self, path_or_url: str, data: Mapping[str, Any], params: Mapping[str, Any] | None = None
    ) -> Any:
        resp = self.post(path_or_url, data, params)
        return self.parse_json(resp, self.display_url(self.url(path_or_url), params))

    def download(
        self,
        path_or_url: str,
        dest: str | os.PathLike,
        *,
        md5: str | None = None,
        size: int | None = None,
    ) -> dict[str, Any]:
        """Stream a file to ``dest`` + ".part", verify it, and rename it into place.

        A ".part" left by an earlier attempt is resumed with ``Range: bytes=N-`` when the
        server answers 206 (a 200 restarts from zero). After the transfer, size and md5 are
        checked when known; a mismatch deletes the part and starts again from zero. Returns
        ``{url, path, bytes, md5, attempts, resumed}``; raises ServiceError when every attempt
        failed (the reason names the URL and, for a checksum, the expected and actual md5).
        """
        url = self.url(path_or_url)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        md5 = md5.lower() if md5 else None
        attempts = self.retries + 1
        last = ""
        resumed = False
        mismatch = ""  # the field the last attempt's file disagreed with, if any
        for attempt in range(attempts):
            delay: float | None = None
            offset = part.stat().st_size if part.exists() else 0
            if size is not None and offset > size:
                part.unlink()
                offset = 0
            self.limiter.acquire()
            try:
                resumed = self._fetch_into(url, part, offset, size) or resumed
                got_size = part.stat().st_size
                if size is not None and got_size != size:
                    part.unlink()
                    last = f"size mismatch for {url}: expected {size} bytes, got {got_size}"
                    mismatch = "fastq_bytes"
                else:
                    got_md5 = md5_file(part)
                    if md5 is not None and got_md5 != md5:
                        part.unlink()
                        last = f"md5 mismatch for {url}: expected {md5}, got {got_md5}"
                        mismatch = "fastq_md5"
                    else:
                        os.replace(part, dest)
                        return {
                            "url": url,
                            "path": str(dest),
                            "bytes": got_size,
                            "md5": got_md5,
                            "attempts": attempt + 1,
                            "resumed": resumed,
                        }
            except _RetryStatus as exc:
                last, delay, mismatch = exc.reason, exc.delay, ""
            except _RETRY_EXCEPTIONS as exc:
                last, mismatch = f"{type(exc).__name__}: {exc}", ""
            if attempt + 1 < attempts:
                wait = delay if delay is not None else self._delay(attempt)
                log.warning(
                    "download %s: %s; retry %d/%d in %.2fs",
                    url,
                    last,
                    attempt + 1,
                    self.retries,
                    wait,
                )
                time.sleep(wait)
        if mismatch:
            raise ChecksumError(
                f"download failed after {attempts} attempts: {last}",
                url=url,
                reason=last,
                field=mismatch,
            )
        raise ServiceError(
            f"download failed after {attempts} attempts: {last}", url=url, reason=last
        )

    def _fetch_into(self, url: str, part: Path, offset: int, size: int | None) -> bool:
        """One transfer attempt into ``part``; returns True when it resumed a partial file.

        Raises _RetryStatus for retryable statuses, ServiceError for other HTTP errors, and
        lets connection errors propagate (the caller retries and resumes).
        """
        # the bytes as stored: a .gz must not be decompressed by Content-Encoding handling
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with self.session.get(
            url, params=self.params or None, headers=headers, timeout=self.timeout, stream=True
        ) as resp:
            if resp.status_code == 416 and offset and size is not None and offset == size:
                return True  # the part is already complete; verification decides
            if resp.status_code in RETRY_STATUS:
                raise _RetryStatus(
                    f"HTTP {resp.status_code} {resp.reason or ''}".strip(), self._retry_after(resp)
                )
            if resp.status_code >= 400:
                reason = f"HTTP {resp.status_code} {resp.reason or ''}".strip()
                raise ServiceError(
                    f"download failed with {reason}", url=url, reason=f"{reason} for {url}"
                )
            resuming = (
                bool(offset) and resp.status_code == 206 and self._range_start(resp) == offset
            )
            mode = "ab" if resuming else "wb"
            cl = resp.headers.get("Content-Length", "")
            expected = int(cl) if cl.isdigit() else None  # raw bytes, as written
            received = 0
            with open(part, mode) as fh:
                for chunk in resp.raw.stream(_CHUNK, decode_content=False):
                    fh.write(chunk)
                    received += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            self._check_length(resp, received, expected)
            return resuming

    @staticmethod
    def _range_start(resp: requests.Response) -> int | None:
        m = re.match(r"bytes\s+(\d+)-", resp.headers.get("Content-Range", ""))
        return int(m.group(1)) if m else None


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: a field given twice is malformed (json.loads keeps the last)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _not_text(
    exc: UnicodeDecodeError, body: bytes, shown: str, expect: str, encoding: str = "utf-8"
) -> ServiceError:
    line = body.count(b"\n", 0, exc.start) + 1
    return ServiceError(
        f"{expect} body is not {encoding} text: byte 0x{body[exc.start]:02x} at offset "
        f"{exc.start} (line {line})",
        url=shown,
        reason=f"not {encoding} text at byte {exc.start} (line {line})",
    )


class _RetryStatus(Exception):
    def __init__(self, reason: str = "", delay: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


# -- the configured services ------------------------------------------------------------------

SERVICE_NAMES = ("eutils", "geo", "ena_portal", "ena_files", "biostudies")
# the schema's defaults (config services.*), for a Services built from a partial mapping
DEFAULT_BASES = {name: getattr(ServicesSettings, name) for name in SERVICE_NAMES}
_NCBI = ("eutils", "geo")
NCBI_LIMIT = 3.0
NCBI_LIMIT_WITH_KEY = 10.0

_GEO_URL = re.compile(r"^(?:ftp|https?)://ftp\.ncbi\.nlm\.nih\.gov/geo/(.+)$", re.I)
_ENA_URL = re.compile(r"^(?:(?:ftp|https?)://)?ftp\.sra\.ebi\.ac\.uk/(vol1/.+)$", re.I)
# BioStudies' file store, and the old ArrayExpress FTP layout, both served under /files/{acc}/
_BIOSTUDIES_URL = re.compile(
    r"^(?:ftp|https?)://ftp\.ebi\.ac\.uk/biostudies/[a-z]+/E-[A-Z]{4}-/\d+/(E-[A-Z]{4}-\d+)/Files/(.+)$",
    re.I,
)
_AE_FTP_URL = re.compile(
    r"^(?:ftp|https?)://ftp\.ebi\.ac\.uk/pub/databases/(?:microarray|arrayexpress)/data/experiment/[A-Z]{4}/(E-[A-Z]{4}-\d+)/(.+)$",
    re.I,
)


class Services:
    """One :class:`HttpClient` per configured service, built from ``config["services"]``.

    NCBI clients (``eutils``, ``geo``) share one rate limiter: at most 3 requests/s, or 10
    with ``NCBI_API_KEY`` in the environment (then ``api_key`` is sent to E-utilities).
    ``ncbi_requests_per_s`` of None means that limit; a number is capped at it.
    """

    def __init__(
        self,
        services_cfg: Mapping[str, Any] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
    ):
        cfg = dict(services_cfg or {})
        env = os.environ if env is None else env
        self.bases = {
            name: str(cfg.get(name) or DEFAULT_BASES[name]).rstrip("/") for name in SERVICE_NAMES
        }
        self.timeout = float(cfg.get("timeout_s", ServicesSettings.timeout_s))
        self.retries = int(cfg.get("retries", ServicesSettings.retries))
        self.backoff = float(cfg.get("backoff_s", ServicesSettings.backoff_s))
        self.api_key = (env.get("NCBI_API_KEY") or "").strip() or None
        limit = NCBI_LIMIT_WITH_KEY if self.api_key else NCBI_LIMIT
        wanted = cfg.get("ncbi_requests_per_s")
        self.ncbi_rate = limit if wanted is None else min(float(wanted), limit)
        self.other_rate = float(
            cfg.get("other_requests_per_s", ServicesSettings.other_requests_per_s)
        )
        self._session = session
        self._ncbi_limiter = RateLimiter(self.ncbi_rate)
        self._clients: dict[str, HttpClient] = {}
        self._lock = threading.Lock()

    def client(self, name: str) -> HttpClient:
        if name not in SERVICE_NAMES:
            raise KeyError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}")
        with self._lock:
            if name not in self._clients:
                ncbi = name in _NCBI
                self._clients[name] = HttpClient(
                    self.bases[name],
                    timeout=self.timeout,
                    retries=self.retries,
                    backoff=self.backoff,
                    requests_per_s=None if ncbi else self.other_rate,
                    limiter=self._ncbi_limiter if ncbi else None,
                    params={"api_key": self.api_key} if name == "eutils" and self.api_key else None,
                    session=self._session,
                    name=name,
                )
            return self._clients[name]

    @property
    def eutils(self) -> HttpClient:
        return self.client("eutils")

    @property
    def geo(self) -> HttpClient:
        return self.client("geo")

    @property
    def ena_portal(self) -> HttpClient:
        return self.client("ena_portal")

    @property
    def ena_files(self) -> HttpClient:
        return self.client("ena_files")

    @property
    def biostudies(self) -> HttpClient:
        return self.client("biostudies")

    def client_for(self, url: str) -> HttpClient:
        """The client whose configured base URL ``url`` is under (its rate limit applies).

        URLs outside every configured service are refused: metadata from the outside world
        never makes scatlas fetch from an arbitrary host.
        """
        for name in sorted(SERVICE_NAMES, key=lambda n: -len(self.bases[n])):
            base = self.bases[name]
            if url == base or url.startswith(base + "/"):
                return self.client(name)
        raise ServiceError(
            f"URL is not under any configured service base ({', '.join(self.bases.values())})",
            url=url,
            reason=f"URL {url} is not under a configured service base URL",
        )

    def map_url(self, url: str) -> str:
        """Map a service URL found inside a record onto the configured base URLs.

        ``ftp://ftp.ncbi.nlm.nih.gov/geo/X`` → ``{geo}/X``; ``ftp.sra.ebi.ac.uk/vol1/X`` (bare,
        as ENA's ``fastq_ftp``), ``ftp://`` or ``http(s)://`` → ``{ena_files}/vol1/X``;
        BioStudies / old ArrayExpress FTP files → ``{biostudies}/files/{acc}/X``. Anything
        else is returned unchanged (stripped).
        """
        u = (url or "").strip()
        if m := _GEO_URL.match(u):
            return f"{self.bases['geo']}/{m.group(1)}"
        if m := _ENA_URL.match(u):
            return f"{self.bases['ena_files']}/{m.group(1)}"
        if (m := _BIOSTUDIES_URL.match(u)) or (m := _AE_FTP_URL.match(u)):
            return f"{self.bases['biostudies']}/files/{m.group(1)}/{m.group(2)}"
        return u
