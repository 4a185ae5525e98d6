"""A loopback HTTP server that serves a demo world at the real services' URL paths.

Point the configured base URLs at it::

    NCBI E-utilities  http://127.0.0.1:P/entrez/eutils    esearch.fcgi, esummary.fcgi (db=gds)
    GEO downloads     http://127.0.0.1:P/geo              series/GSE900nnn/GSE900001/soft/...
    ENA portal API    http://127.0.0.1:P/ena/portal/api   filereport?result=read_run
    ENA files         http://127.0.0.1:P                  vol1/fastq/...
    BioStudies        http://127.0.0.1:P/biostudies       api/v1/arrayexpress/search, api/v1/studies/<acc>,
                                                          files/<acc>/<file>

Dynamic answers are computed from ``mirror/_index`` (written by the world generator);
everything else is a static file under ``mirror/`` (HEAD and ``Range: bytes=N-`` supported).
Faults (error statuses, Retry-After, delays, truncated bodies, HTML error pages) can be
injected per path prefix to exercise clients' retry logic; every request is logged.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import logging
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from scatlas.errors import InputError, ScatlasError

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    ".gz": "application/x-gzip",
    ".json": "application/json",
    ".txt": "text/plain; charset=UTF-8",
    ".tsv": "text/plain; charset=UTF-8",
    ".csv": "text/csv",
    ".soft": "text/plain; charset=UTF-8",
    ".fa": "text/plain; charset=UTF-8",
    ".gtf": "text/plain; charset=UTF-8",
}
ESEARCH_DEFAULT_RETMAX = 20
# the fields ENA's filereport returns for result=read_run when none are asked for
ENA_DEFAULT_FIELDS = (
    "run_accession",
    "fastq_ftp",
    "fastq_bytes",
    "fastq_md5",
    "submitted_ftp",
    "submitted_bytes",
    "submitted_md5",
)
ENA_MATCH_FIELDS = (
    "run_accession",
    "experiment_accession",
    "sample_accession",
    "secondary_sample_accession",
    "study_accession",
    "secondary_study_accession",
)


@dataclass
class Fault:
    """What to do to one request instead of (or on top of) normal service.

    ``status``: answer with this status (and ``body``, default a small HTML error page).
    ``headers``: extra headers (e.g. ``{"Retry-After": "1"}``). ``body`` without ``status``:
    a 200 answer with this body (an HTML page where JSON is expected), served as
    ``content_type`` (default HTML). ``transform``: serve the normal answer with its body
    passed through this function (a gzip cut short with a matching Content-Length, a record
    with a field removed or doubled, non-UTF-8 bytes). ``delay_s``: sleep first (then serve
    normally unless something else is set). ``truncate_at``: announce the full Content-Length
    but close the connection after that many body bytes. ``reset_at``: the same, but the
    connection is reset (TCP RST) instead of closed.
    """

    status: int | None = None
    headers: dict[str, str] | None = None
    body: bytes | None = None
    delay_s: float = 0.0
    truncate_at: int | None = None
    reset_at: int | None = None
    content_type: str = "text/html; charset=UTF-8"
    transform: Callable[[bytes], bytes] | None = None


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


def _error_page(status: int) -> bytes:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return (
        f"<html><head><title>{status} {phrase}</title></head><body><h1>{status} {phrase}</h1>"
        "<p>The server encountered a problem. Please try again later.</p></body></html>\n"
    ).encode()


def _json(obj: object, status: int = 200, content_type: str = "application/json") -> _Response:
    return _Response(status, (json.dumps(obj, indent=4) + "\n").encode(), content_type)


def _parse_eutils_date(value: str, end: bool) -> date | None:
    """E-utilities dates: YYYY, YYYY/MM or YYYY/MM/DD (an open end covers the whole period)."""
    m = re.fullmatch(r"(\d{4})(?:[/-](\d{1,2}))?(?:[/-](\d{1,2}))?", value.strip())
    if not m:
        return None
    y = int(m.group(1))
    if m.group(2) is None:
        return date(y, 12, 31) if end else date(y, 1, 1)
    mo = int(m.group(2))
    if m.group(3) is None:
        if not end:
            return date(y, mo, 1)
        nxt = date(y + 1, 1, 1) if mo == 12 else date(y, mo + 1, 1)
        return date.fromordinal(nxt.toordinal() - 1)
    return date(y, mo, int(m.group(3)))


class _Index:
    """What the dynamic endpoints answer from: mirror/_index/{gds.json,ena_runs.tsv,biostudies.json}."""

    def __init__(self, folder: Path):
        self.gds: dict[str, dict] = json.loads((folder / "gds.json").read_text())
        with open(folder / "ena_runs.tsv", newline="") as fh:
            self.runs: list[dict[str, str]] = list(csv.DictReader(fh, delimiter="\t"))
        self.ena_fields = list(self.runs[0]) if self.runs else []
        # ENA answers filereport from an index; so does the mirror (a scan of every run per
        # request would make a 2,000-series world measure the mirror, not the client)
        self.runs_by: dict[str, list[dict[str, str]]] = {}
        for r in self.runs:
            for value in dict.fromkeys(r.get(f, "") for f in ENA_MATCH_FIELDS):
                if value:
                    self.runs_by.setdefault(value, []).append(r)
        self.hits: list[dict] = json.loads((folder / "biostudies.json").read_text())
        # submitted files (ArrayExpress runs) are the same bytes as ENA's FASTQ files
        self.submitted: dict[str, str] = {}
        for r in self.runs:
            subs = [u for u in r.get("submitted_ftp", "").split(";") if u]
            fastqs = [u for u in r.get("fastq_ftp", "").split(";") if u]
            for sub, fq in zip(subs, fastqs, strict=False):
                self.submitted["/" + sub.split("/", 1)[1]] = "/" + fq.split("/", 1)[1]


class MirrorServer:
    """Serves ``root/mirror`` (a generated demo world) on a loopback port.

    ``MirrorServer(root, port=0)`` binds at once (port 0 = any free port, see ``url``);
    ``start()`` serves from a background thread, ``serve_forever()`` in the foreground.
    """

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0):
        self.root = Path(root)
        self.docroot = (self.root / "mirror").resolve()
        index = self.docroot / "_index"
        for name in ("gds.json", "ena_runs.tsv", "biostudies.json"):
            if not (index / name).is_file():
                raise InputError(
                    "not a demo world: the mirror index file is missing", path=str(index / name)
                )
        self.index = _Index(index)
        self.requests: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()
        self._faults: list[tuple[str, deque[Fault]]] = []
        self._thread: threading.Thread | None = None
        try:
            self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        except OSError as exc:
            hint = (
                "another program (an earlier mirror?) uses it: stop it, or choose another "
                "--port (0: any free port)"
                if exc.errno == errno.EADDRINUSE
                else "choose another --host/--port"
            )
            raise ScatlasError(f"cannot serve on {host}:{port}: {exc.strerror}; {hint}") from exc
        self._httpd.daemon_threads = True
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://{host}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> MirrorServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="scatlas-mirror",
                daemon=True,
            )
            self._thread.start()
            log.info("mirror of %s serving at %s", self.root, self.url)
        return self

    def serve_forever(self) -> None:
        log.info("mirror of %s serving at %s (Ctrl-C to stop)", self.root, self.url)
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reload(self) -> None:
        """Re-read ``mirror/_index`` (the world's records changed upstream)."""
        index = _Index(self.docroot / "_index")
        with self._lock:
            self.index = index

    # -- faults and log ------------------------------------------------------------------------
    def inject(self, path_prefix: str, *faults: Fault) -> None:
        """The next requests whose path starts with ``path_prefix`` get ``faults``, in order."""
        with self._lock:
            for prefix, queue in self._faults:
                if prefix == path_prefix:
                    queue.extend(faults)
                    return
            self._faults.append((path_prefix, deque(faults)))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _log_request(self, method: str, target: str) -> Fault | None:
        with self._lock:
            self.requests.append((time.monotonic(), method, target))
            for prefix, queue in self._faults:
                if queue and target.startswith(prefix):
                    return queue.popleft()
        return None

    # -- request handling ----------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "scatlas-mirror/1"
            # headers and body go out in separate writes: without TCP_NODELAY, Nagle's
            # algorithm and the client's delayed ACK add ~40 ms to every keep-alive answer
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                log.debug("%s %s", self.address_string(), format % args)

            def do_GET(self) -> None:
                mirror._handle(self, "GET")

            def do_HEAD(self) -> None:
                mirror._handle(self, "HEAD")

            def do_POST(self) -> None:
                mirror._handle(self, "POST")

        return Handler

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        target = h.path
        fault = self._log_request(method, target)
        body_in = b""
        if method == "POST":
            length = int(h.headers.get("Content-Length") or 0)
            body_in = h.rfile.read(length) if length > 0 else b""
        try:
            if fault is not None and fault.delay_s > 0:
                time.sleep(fault.delay_s)
            if fault is not None and fault.status is not None:
                resp = _Response(
                    fault.status,
                    fault.body if fault.body is not None else _error_page(fault.status),
                    fault.content_type,
                )
            elif fault is not None and fault.body is not None:
                resp = _Response(200, fault.body, fault.content_type)
            else:
                resp = self._route(method, target, body_in, h.headers.get("Range"))
                if fault is not None and fault.transform is not None:
                    resp.body = fault.transform(resp.body)
            if fault is not None and fault.headers:
                resp.headers.update(fault.headers)
            cut = None
            if fault is not None:
                cut = fault.reset_at if fault.reset_at is not None else fault.truncate_at
            self._send(h, method, resp, cut, reset=fault is not None and fault.reset_at is not None)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True  # the client went away (e.g. timed out during a delay)
        except Exception:
            log.exception("mirror: error answering %s %s", method, target)
            h.close_connection = True
            with contextlib.suppress(OSError):
                self._send(h, method, _Response(500, _error_page(500), "text/html"), None)

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        method: str,
        resp: _Response,
        truncate_at: int | None,
        reset: bool = False,
    ) -> None:
        h.send_response(resp.status)
        h.send_header("Content-Type", resp.content_type)
        h.send_header("Content-Length", str(len(resp.body)))
        for k, v in resp.headers.items():
            h.send_header(k, v)
        if truncate_at is not None:
            h.send_header("Connection", "close")
        h.end_headers()
        if method == "HEAD":
            return
        if truncate_at is None:
            h.wfile.write(resp.body)
            return
        h.wfile.write(resp.body[: max(0, truncate_at)])
        h.wfile.flush()
        h.close_connection = True
        with contextlib.suppress(OSError):
            if reset:  # SO_LINGER 0: close() sends RST, the client sees "connection reset"
                h.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                h.connection.close()
            else:
                h.connection.shutdown(socket.SHUT_RDWR)

    def _route(
        self, method: str, target: str, body_in: bytes, range_header: str | None
    ) -> _Response:
        parts = urlsplit(target)
        path = unquote(parts.path)
        params = parse_qs(parts.query, keep_blank_values=True)
        if method == "POST":
            params.update(parse_qs(body_in.decode("utf-8", "replace"), keep_blank_values=True))
        q = {k: v[-1] for k, v in params.items()}
        if path == "/entrez/eutils/esearch.fcgi":
            return self._esearch(q)
        if path == "/entrez/eutils/esummary.fcgi":
            return self._esummary(q)
        if method == "POST":
            return _Response(405, _error_page(405), "text/html; charset=UTF-8")
        if path == "/ena/portal/api/filereport":
            return self._filereport(q)
        if path in ("/biostudies/api/v1/arrayexpress/search", "/biostudies/api/v1/search"):
            return self._biostudies_search(q, path)
        if path.startswith("/biostudies/api/v1/studies/"):
            rel = path[len("/biostudies/api/v1/studies/") :].strip("/")
            resp = self._static(f"/biostudies/api/v1/studies/{rel}.json", range_header)
            if resp.status == 404:
                return _json({"errorMessage": "Study not found"}, 404)
            return resp
        if path in self.index.submitted:
            return self._static(self.index.submitted[path], range_header)
        return self._static(path, range_header)

    # -- static files --------------------------------------------------------------------------
    def _resolve(self, path: str) -> Path | None:
        segments = [s for s in path.split("/") if s]
        if not segments or any(s in (".", "..") or "\\" in s or "\x00" in s for s in segments):
            return None
        if segments[0] == "_index":
            return None
        candidate = self.docroot.joinpath(*segments)
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError):
            return None
        if not resolved.is_relative_to(self.docroot) or not resolved.is_file():
            return None
        return resolved

    def _static(self, path: str, range_header: str | None) -> _Response:
        file = self._resolve(path)
        if file is None:
            return _Response(404, _error_page(404), "text/html; charset=UTF-8")
        data = file.read_bytes()
        ctype = CONTENT_TYPES.get(file.suffix, "application/octet-stream")
        headers = {
            "Accept-Ranges": "bytes",
            "Last-Modified": time.strftime(
                "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(file.stat().st_mtime)
            ),
        }
        if range_header:
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", range_header)
            if m and (m.group(1) or m.group(2)):
                size = len(data)
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:  # suffix range: the last N bytes
                    start, end = max(0, size - int(m.group(2))), size - 1
                if start >= size or end < start:
                    headers["Content-Range"] = f"bytes */{size}"
                    return _Response(416, b"", ctype, headers)
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
                return _Response(206, data[start : end + 1], ctype, headers)
        return _Response(200, data, ctype, headers)

    # -- E-utilities ---------------------------------------------------------------------------
    def _esearch(self, q: dict[str, str]) -> _Response:
        """esearch.fcgi for db=gds. The search term is not evaluated (every series of the world
        is a hit) except for GEO series accessions in it, which restrict the hits to those
        series; mindate/maxdate filter on the publication date (datetype pdat)."""
        db = q.get("db", "")
        if db != "gds":
            return _json(
                {
                    "header": {"type": "esearch", "version": "0.3"},
                    "esearchresult": {"ERROR": f"Invalid db name specified: {db}"},
                }
            )
        term = q.get("term", "")
        docs = list(self.index.gds.values())
        wanted = set(re.findall(r"GSE\d+", term, flags=re.IGNORECASE))
        if wanted:
            docs = [d for d in docs if d["accession"].upper() in {w.upper() for w in wanted}]
        lo = _parse_eutils_date(q["mindate"], end=False) if q.get("mindate") else None
        hi = _parse_eutils_date(q["maxdate"], end=True) if q.get("maxdate") else None
        translation = term
        if lo or hi:
            lo = lo or date(1800, 1, 1)
            hi = hi or date(3000, 12, 31)
            datetype = q.get("datetype", "pdat")
            # modification/Entrez dates live in the index as "_mdat"/"_edat" (esummary has no
            # such field); without one a series' publication date stands in
            docs = [
                d
                for d in docs
                if lo <= date(*map(int, d.get(f"_{datetype}", d["pdat"]).split("/"))) <= hi
            ]
            field = {"pdat": "PDAT", "mdat": "MDAT", "edat": "EDAT"}.get(datetype, "PDAT")
            translation = f"{term} AND {lo:%Y/%m/%d}[{field}] : {hi:%Y/%m/%d}[{field}]".strip()
        docs.sort(key=lambda d: (d["pdat"], int(d["uid"])), reverse=True)
        try:
            retstart = max(0, int(q.get("retstart", 0) or 0))
            retmax = max(0, int(q.get("retmax", ESEARCH_DEFAULT_RETMAX) or 0))
        except ValueError:
            return _json(
                {
                    "header": {"type": "esearch", "version": "0.3"},
                    "esearchresult": {"ERROR": "Invalid retstart or retmax"},
                },
                400,
            )
        ids = [d["uid"] for d in docs[retstart : retstart + retmax]]
        if q.get("retmode", "xml") != "json":
            xml = (
                '<?xml version="1.0" encoding="UTF-8" ?>\n'
                '<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
                '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n'
                f"<eSearchResult><Count>{len(docs)}</Count><RetMax>{len(ids)}</RetMax>"
                f"<RetStart>{retstart}</RetStart><IdList>"
                + "".join(f"<Id>{i}</Id>" for i in ids)
                + "</IdList><TranslationSet/><QueryTranslation>"
                + translation.replace("&", "&amp;").replace("<", "&lt;")
                + "</QueryTranslation></eSearchResult>\n"
            )
            return _Response(200, xml.encode(), "text/xml; charset=UTF-8")
        return _json(
            {
                "header": {"type": "esearch", "version": "0.3"},
                "esearchresult": {
                    "count": str(len(docs)),
                    "retmax": str(len(ids)),
                    "retstart": str(retstart),
                    "idlist": ids,
                    "translationset": [],
                    "querytranslation": translation,
                },
            },
            content_type="application/json; charset=UTF-8",
        )

    def _esummary(self, q: dict[str, str]) -> _Response:
        """esummary.fcgi for db=gds, JSON (retmode=json); ids by GET or POST form."""
        if q.get("db", "") != "gds":
            return _json(
                {
                    "header": {"type": "esummary", "version": "0.3"},
                    "error": f"Invalid db name specified: {q.get('db', '')}",
                }
            )
        ids = [i.strip() for i in q.get("id", "").split(",") if i.strip()]
        if not ids:
            return _json(
                {
                    "header": {"type": "esummary", "version": "0.3"},
                    "error": "Empty id list - nothing todo",
                }
            )
        result: dict = {"uids": ids}
        for uid in ids:
            doc = self.index.gds.get(uid)
            result[uid] = (
                {k: v for k, v in doc.items() if not k.startswith("_")}
                if doc
                else {"uid": uid, "error": "cannot get document summary"}
            )
        return _json(
            {"header": {"type": "esummary", "version": "0.3"}, "result": result},
            content_type="application/json; charset=UTF-8",
        )

    # -- ENA -----------------------------------------------------------------------------------
    def _filereport(self, q: dict[str, str]) -> _Response:
        """filereport?accession=X&result=read_run&fields=...: TSV (or JSON with format=json).

        Like ENA: 204 No Content when no run matches, 400 for an unknown field or result.
        """
        acc = q.get("accession", "").strip()
        if q.get("result", "") != "read_run":
            return self._ena_error(f"Invalid result: {q.get('result', '')}")
        if not acc:
            return self._ena_error("accession is required")
        requested = [f.strip() for f in q.get("fields", "").split(",") if f.strip()]
        if requested == ["all"]:
            fields = list(self.index.ena_fields)
        elif requested:
            bad = [f for f in requested if f not in self.index.ena_fields]
            if bad:
                return self._ena_error(f"Invalid fieldName(s) supplied: {','.join(bad)}")
            fields = requested
        else:
            fields = list(ENA_DEFAULT_FIELDS)
        if "run_accession" not in fields:
            fields = ["run_accession"] + fields  # ENA always leads with the run accession
        rows = self.index.runs_by.get(acc, [])
        if not rows:
            return _Response(204, b"", "text/plain")
        if q.get("format", "tsv").lower() == "json":
            return _json([{f: r[f] for f in fields} for r in rows])
        lines = ["\t".join(fields)] + ["\t".join(r[f] for f in fields) for r in rows]
        return _Response(200, ("\n".join(lines) + "\n").encode(), "text/plain")

    @staticmethod
    def _ena_error(message: str) -> _Response:
        return _json(
            {
                "message": message,
                "status": 400,
                "error": "Bad Request",
                "path": "/ena/portal/api/filereport",
            },
            400,
        )

    # -- BioStudies ----------------------------------------------------------------------------
    def _biostudies_search(self, q: dict[str, str], path: str) -> _Response:
        """arrayexpress/search (or search?collection=arrayexpress): every ArrayExpress study of
        the world is a hit (the query text is not evaluated, except ``accession:E-...``);
        release dates are filtered by ``release_date=[A TO B]`` or a
        ``release_date:[A TO B]`` clause in the query."""
        query = q.get("query", "")
        hits = list(self.index.hits)
        if path.endswith("/api/v1/search") and q.get("collection", "").lower() not in (
            "",
            "arrayexpress",
        ):
            hits = []
        accs = re.findall(r"accession:\s*\"?(E-[A-Z]{4}-\d+)", query)
        if accs:
            hits = [h for h in hits if h["accession"] in accs]
        rng = q.get("release_date") or ""
        m = re.search(r"release_date:\s*(\[[^\]]*\])", query)
        if m:
            rng = m.group(1)
        if rng:
            m2 = re.fullmatch(r"\s*\[?\s*(\S+)\s+TO\s+(\S+?)\s*\]?\s*", rng)
            if not m2:
                return _json({"errorMessage": f"Invalid release_date range: {rng}"}, 400)
            lo = "0000-00-00" if m2.group(1) == "*" else m2.group(1)
            hi = "9999-99-99" if m2.group(2) == "*" else m2.group(2)
            hits = [h for h in hits if lo <= h["release_date"] <= hi]
        ascending = q.get("sortOrder", "descending").lower().startswith("asc")
        hits.sort(key=lambda h: (h["release_date"], h["accession"]), reverse=not ascending)
        try:
            page = max(1, int(q.get("page", 1) or 1))
            size = max(1, min(1000, int(q.get("pageSize", 20) or 20)))
        except ValueError:
            return _json({"errorMessage": "Invalid page or pageSize"}, 400)
        chunk = hits[(page - 1) * size : page * size]
        return _json(
            {
                "page": page,
                "pageSize": size,
                "totalHits": len(hits),
                "isTotalHitsExact": True,
                "sortBy": "release_date",
                "sortOrder": "ascending" if ascending else "descending",
                "suggestion": [],
                "expandedEfoTerms": [],
                "expandedSynonyms": [],
                "query": query or None,
                "facets": None,
                "hits": chunk,
                "nextCursor": None,
                "tooManyExpansionTerms": False,
            }
        )
