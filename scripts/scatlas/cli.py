"""The ``scatlas`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

from scatlas import __version__
from scatlas.errors import ScatlasError
from scatlas.logs import setup_logging

log = logging.getLogger("scatlas")


def _cmd_demo_world(args: argparse.Namespace) -> int:
    from scatlas.demo.world import generate_world

    summary = generate_world(Path(args.outdir), seed=args.seed, reads_per_cell=args.reads_per_cell)
    print(json.dumps(summary.get("totals", summary), indent=2, default=str))
    return 0


def _cmd_mirror_serve(args: argparse.Namespace) -> int:
    from scatlas.demo.mirror import MirrorServer

    server = MirrorServer(Path(args.dir), host=args.host, port=args.port)
    print(f"serving {args.dir} at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], not {text!r}")
    return value


def _cmd_query(args: argparse.Namespace) -> int:
    from scatlas.annotate.reference import query_file

    adata = query_file(
        Path(args.reference),
        Path(args.input),
        Path(args.output),
        k=args.k,
        batch_size=args.batch_size,
        csv=Path(args.csv) if args.csv else None,
        min_overlap=args.min_overlap,
        orthologs=not args.no_orthologs,
        overwrite=args.overwrite,
    )
    info = adata.uns.get("scatlas", {})
    overlap = info.get("gene_overlap", {})
    studies = info.get("similar_studies")
    top = (
        ", ".join(
            f"{s} ({sh:.0%})"
            for s, sh in zip(studies["study"][:3], studies["share"][:3], strict=True)
        )
        if studies is not None and len(studies)
        else "-"
    )
    print(
        f"annotated {adata.n_obs} cells with reference {info.get('reference_version', '?')}: "
        f"{args.output}\n"
        f"input: {info.get('input_normalisation', '?')}; genes matched "
        f"{overlap.get('n_matched', '?')}/{overlap.get('n_reference_genes', '?')} by "
        f"{overlap.get('key', '?')} ({overlap.get('matched_by', '?')}, translation "
        f"{overlap.get('translation', 'none')}); novel cells: {info.get('n_novel', '?')}; "
        f"cells without a call: {info.get('n_no_call', 0)}; "
        f"most similar studies: {top}"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from scatlas.demo.run import run_demo

    started = time.monotonic()
    result = run_demo(seed=args.seed, port=args.port, cores=args.cores, regenerate=args.regenerate)
    minutes = (time.monotonic() - started) / 60
    print(result.report(minutes))
    return 0 if result.ok else 1


def _cmd_refresh(args: argparse.Namespace) -> int:
    from scatlas.discover.refresh import refresh

    result = refresh(
        Path(args.workdir),
        configfiles=args.configfile or (),
        since=args.since,
        until=args.until,
        cores=args.cores,
        targets=args.target or (),
        dryrun=args.dry_run,
    )
    print(result.message)
    if result.jobs:
        counts = Counter(j.rule for j in result.jobs)
        print(f"jobs: {len(result.jobs)} ({', '.join(f'{r} {n}' for r, n in counts.items())})")
    elif result.status != "locked":
        print("jobs: none (everything was up to date)")
    return 1 if result.status == "failed" else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scatlas",
        description="Build a searchable single-cell RNA-seq reference atlas and query it.",
    )
    parser.add_argument("--version", action="version", version=f"scatlas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="generate the demo world, serve it, run the whole workflow")
    p.add_argument("--seed", type=int, default=1, help="demo world seed (default 1)")
    p.add_argument("--port", type=int, default=0, help="mirror port (default: a free one)")
    p.add_argument("--cores", type=int, default=2, help="cores for Snakemake (default 2)")
    p.add_argument("--regenerate", action="store_true", help="regenerate the demo world")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("demo-world", help="generate the deterministic demo world")
    p.add_argument("outdir")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--reads-per-cell", type=int, default=2500, help="simulated reads per cell (default 2500)"
    )
    p.set_defaults(func=_cmd_demo_world)

    p = sub.add_parser("mirror", help="loopback mirror of the public services")
    msub = p.add_subparsers(dest="mirror_command", required=True)
    s = msub.add_parser("serve", help="serve a demo world at the real services' URL paths")
    s.add_argument("dir", help="the demo world folder (scatlas demo-world OUTDIR)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8765)
    s.set_defaults(func=_cmd_mirror_serve)

    p = sub.add_parser(
        "refresh",
        help="incremental refresh for cron: discover the new date window, re-run what changed",
        description="Take the folder's workflow lock (a refresh overlapping another scatlas "
        "run exits 0), search GEO and "
        "ArrayExpress from the last successful refresh (or --since) to today (or --until), "
        "run the workflow re-running only new or changed studies, record the refresh in "
        "results/catalog.sqlite. Exit status 1 when the workflow failed.",
    )
    p.add_argument("--since", help="window start YYYY-MM-DD (default: the last successful refresh)")
    p.add_argument("--until", help="window end YYYY-MM-DD (default: today, UTC)")
    p.add_argument(
        "--configfile",
        action="append",
        help="config file(s), as for snakemake (default: config/config.yaml)",
    )
    p.add_argument("--cores", type=int, default=2, help="cores for Snakemake (default 2)")
    p.add_argument(
        "--target",
        action="append",
        help="workflow target(s) (default: the whole workflow; 'ingest' stops after downloads)",
    )
    p.add_argument("--workdir", default=".", help="the repository checkout (default: .)")
    p.add_argument("--dry-run", action="store_true", help="plan and show the jobs; record nothing")
    p.set_defaults(func=_cmd_refresh)

    p = sub.add_parser("query", help="annotate cells with a published reference")
    p.add_argument("--reference", required=True, help="a release folder or published/current")
    p.add_argument("--input", required=True, help="query cells (.h5ad)")
    p.add_argument("--output", required=True, help="annotated cells (.h5ad)")
    p.add_argument("--csv", help="also write the per-cell annotation as CSV")
    p.add_argument("--k", type=_positive_int, default=10, help="neighbours per cell (default 10)")
    p.add_argument(
        "--batch-size", type=_positive_int, default=4096, help="cells per batch (default 4096)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a scatlas annotation the input already holds (default: refuse)",
    )
    p.add_argument(
        "--min-overlap",
        type=_fraction,
        default=0.5,
        help="least share of the reference's genes the input must have (default 0.5)",
    )
    p.add_argument(
        "--no-orthologs",
        action="store_true",
        help="do not translate mouse <-> human gene symbols (or human ids to symbols)",
    )
    p.set_defaults(func=_cmd_query)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(level=logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.func(args)
    except ScatlasError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
