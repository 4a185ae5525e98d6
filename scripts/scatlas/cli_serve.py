"""``scatlas serve``: the web page of a release (``scatlas.web``)."""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("scatlas")

DEMO_QUERY = Path("resources/demo-world/heldout/query.h5ad")


def _cmd_serve(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from scatlas.annotate.reference import Reference
    from scatlas.web.app import create_app

    reference = Reference.load(
        Path(args.reference), expect_sha256=args.expect_sha256, public_key=args.public_key
    )
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="scatlas-serve-")) if temporary else Path(args.workdir)
    demo = (
        Path(args.demo_query) if args.demo_query else (DEMO_QUERY if DEMO_QUERY.is_file() else None)
    )
    app = create_app(reference, workdir, max_upload_mb=args.max_upload_mb, demo_query=demo)
    if not args.verbose:  # one line per request (the page polls) only with -v
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(args.host, args.port, app, threaded=True)
    url = f"http://{args.host}:{server.server_port}/"
    print(
        f"serving release {reference.version} at {url} (work folder {workdir}; Ctrl-C to stop)",
        flush=True,
    )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: anyone who can reach this machine can upload", args.host)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.extensions["scatlas_jobs"].close()
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def add_serve_command(sub, positive_int, trust_arguments) -> None:
    p = sub.add_parser(
        "serve",
        help="a local web page to explore a release and annotate uploaded cells",
        description="Start a local web app (Flask; every asset ships with scatlas): upload "
        "an h5ad (or pick the demo's query), annotation runs in the background with "
        "progress, then a clustered cells x types heatmap with its dendrogram; a cluster "
        "of query cells shows a 2-D plot among reference cells of the retrieved types, "
        "the ontology DAG of those types, the matched studies and their DE genes; the "
        "type distribution, downloads, and the release's manifest, metrics and "
        "quality gate. Binds to 127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument("--reference", required=True, help="a release folder or published/current")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--workdir",
        help="where uploads and results go (default: a temporary folder removed on exit)",
    )
    p.add_argument(
        "--max-upload-mb", type=positive_int, default=500, help="largest upload (default 500 MB)"
    )
    p.add_argument(
        "--demo-query",
        help=f"an h5ad the page offers as the demo query (default: {DEMO_QUERY} when present)",
    )
    trust_arguments(p)
    p.set_defaults(func=_cmd_serve)
