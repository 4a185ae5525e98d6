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
from scatlas.cli_build import add_build_command
from scatlas.cli_serve import add_serve_command
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


def _trust_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--expect-sha256",
        help="refuse the release unless its manifest.json has this sha256 (pin a release)",
    )
    p.add_argument(
        "--public-key",
        help="refuse the release unless its manifest is signed by this Ed25519 key (PEM)",
    )


def _cmd_release_keygen(args: argparse.Namespace) -> int:
    from scatlas.release.signing import generate_keypair

    generate_keypair(Path(args.private_key), Path(args.public_key))
    print(f"private key: {args.private_key} (keep it secret)\npublic key: {args.public_key}")
    return 0


def _cmd_release_sign(args: argparse.Namespace) -> int:
    from scatlas.release.format import read_manifest, verify_files
    from scatlas.release.signing import manifest_sha256, sign_release

    root = Path(args.release).resolve()
    verify_files(root, read_manifest(root))  # never sign a damaged release
    out = sign_release(root, Path(args.key))
    print(f"signed {root.name}: {out}\nmanifest sha256 {manifest_sha256(root)}")
    return 0


def _cmd_release_verify(args: argparse.Namespace) -> int:
    from scatlas.annotate.reference import Reference
    from scatlas.release.signing import manifest_sha256

    ref = Reference.load(
        Path(args.release), expect_sha256=args.expect_sha256, public_key=args.public_key
    )
    checks = ["every file", *(["the pin"] if args.expect_sha256 else [])]
    checks += ["the signature"] if args.public_key else []
    print(
        f"release {ref.version} verified ({', '.join(checks)}); "
        f"manifest sha256 {manifest_sha256(ref.root)}"
    )
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


def _margin(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], not {text!r}")
    return value


def _cmd_query(args: argparse.Namespace) -> int:
    from scatlas.annotate.reference import QueryOptions, Reference, query_file

    clustering = _cluster_options(args) if args.cluster_cells else None
    options = QueryOptions(  # checked before the reference is loaded
        k=args.k,
        batch_size=args.batch_size,
        layer=args.layer,
        min_overlap=args.min_overlap,
        min_margin=args.min_margin,
        majority_voting=args.majority_voting,
        orthologs=not args.no_orthologs,
        search_breadth=args.search_breadth,
    )
    reference = Reference.load(
        Path(args.reference),
        expect_sha256=args.expect_sha256,
        public_key=args.public_key,
        mmap=args.mmap,
    )
    adata = query_file(
        reference,
        Path(args.input),
        Path(args.output),
        options,
        csv=Path(args.csv) if args.csv else None,
        overwrite=args.overwrite,
        clustering=clustering,
        cluster_model=Path(args.cluster_model) if args.cluster_model else None,
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
        f"input: {info.get('input_matrix', '?')}, {info.get('input_normalisation', '?')}; "
        f"genes matched "
        f"{overlap.get('n_matched', '?')}/{overlap.get('n_reference_genes', '?')} by "
        f"{overlap.get('key', '?')} ({overlap.get('matched_by', '?')}, translation "
        f"{overlap.get('translation', 'none')}); novel cells: {info.get('n_novel', '?')}; "
        f"cells without a call: {info.get('n_no_call', 0)}; "
        f"answered at a common ancestor: {_count(adata, 'scatlas_answer_level', 'ancestor')}; "
        f"most similar studies: {top}"
    )
    _print_clusters(adata)
    return 0


def _cluster_options(args: argparse.Namespace):
    from scatlas.annotate.cluster_cells import ClusterOptions

    return ClusterOptions(
        cells=args.cluster_cells,
        n_clusters=args.n_clusters,
        max_cells=args.max_cluster_cells,
        layer=args.layer,
    )


def _print_clusters(adata) -> None:
    info = adata.uns.get("scatlas_clusters", {})
    table = info.get("table")
    if table is None:
        return
    how = "estimated" if info.get("estimated") else "given"
    print(
        f"clusters: {info.get('n_clusters')} ({how}) over {info.get('n_cells')} "
        f"{info.get('cells')} cells, representation: {info.get('model')}; obs['scatlas_cluster']"
    )
    for row in table.itertuples():
        flag = "  candidate new type" if row.candidate_new_type else ""
        print(
            f"  cluster {row.cluster}: {row.n_cells} cells, {row.novel_share:.0%} novel, "
            f"markers {row.markers or '-'}{flag}"
        )


def _cmd_cluster(args: argparse.Namespace) -> int:
    from scatlas.annotate.cluster_cells import cluster_file

    options = _cluster_options(args)
    adata, _ = cluster_file(
        Path(args.model),
        Path(args.input),
        Path(args.output),
        options,
        csv=Path(args.csv) if args.csv else None,
    )
    print(f"clustered {adata.n_obs} cells: {args.output}")
    _print_clusters(adata)
    return 0


def _count(adata, column: str, value: str) -> int:
    return int((adata.obs[column] == value).sum()) if column in adata.obs else 0


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
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, the libraries' own included"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    _add_run_commands(sub)
    _add_query_command(sub)
    _add_cluster_command(sub)
    add_build_command(sub)
    add_serve_command(sub, _positive_int, _trust_arguments)
    _add_release_commands(sub)
    return parser


def _add_run_commands(sub) -> None:
    """demo, demo-world, mirror serve, refresh."""
    p = sub.add_parser(
        "demo",
        help="generate the demo world, serve it, run the whole workflow",
        description="Generate the deterministic demo world (GEO/ENA/BioStudies records, reads "
        "and matrices of simulated studies), serve it on a loopback mirror at the real "
        "services' URL paths, and run the whole workflow on it (config/demo.yaml): "
        "discovery to the published reference and a demo query, in a few minutes.",
    )
    p.add_argument("--seed", type=int, default=1, help="demo world seed (default 1)")
    p.add_argument("--port", type=int, default=0, help="mirror port (default: a free one)")
    p.add_argument("--cores", type=int, default=2, help="cores for Snakemake (default 2)")
    p.add_argument("--regenerate", action="store_true", help="regenerate the demo world")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "demo-world",
        help="generate the deterministic demo world",
        description="Write the demo world to OUTDIR: the recorded-service files a loopback "
        "mirror serves (E-utilities, GEO SOFT, ENA, BioStudies), FASTQ reads simulated from "
        "a small genome, author matrices, and the truth of every cell. The same seed gives "
        "the same bytes.",
    )
    p.add_argument("outdir", help="the folder to write (created)")
    p.add_argument("--seed", type=int, default=1, help="the world's random seed (default 1)")
    p.add_argument(
        "--reads-per-cell", type=int, default=2500, help="simulated reads per cell (default 2500)"
    )
    p.set_defaults(func=_cmd_demo_world)

    p = sub.add_parser(
        "mirror",
        help="loopback mirror of the public services",
        description="A local HTTP server answering at the URL paths of NCBI E-utilities, "
        "GEO, ENA and BioStudies from recorded files, so the workflow runs offline.",
    )
    msub = p.add_subparsers(dest="mirror_command", required=True)
    s = msub.add_parser(
        "serve",
        help="serve a demo world at the real services' URL paths",
        description="Serve a demo world folder until interrupted; point the config's "
        "services at the printed base URL.",
    )
    s.add_argument("dir", help="the demo world folder (scatlas demo-world OUTDIR)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: a free one)")
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


def _add_query_command(sub) -> None:
    p = sub.add_parser(
        "query",
        help="annotate cells with a published reference",
        description="Annotate query cells with a published reference: per cell the winning "
        "type, its score and margin, an answer that backs off to the common ancestor of "
        "competing types, a confidence, the per-type scores and the k nearest reference "
        "cells (obsm), a novelty flag; optionally majority voting over clusters.",
    )
    p.add_argument("--reference", required=True, help="a release folder or published/current")
    p.add_argument(
        "--input",
        required=True,
        help="query cells: .h5ad, a 10x HDF5 file (.h5) or a 10x Matrix Market folder",
    )
    p.add_argument("--output", required=True, help="annotated cells (.h5ad)")
    p.add_argument("--csv", help="also write the per-cell annotation as CSV")
    p.add_argument("--k", type=_positive_int, default=10, help="neighbours per cell (default 10)")
    p.add_argument(
        "--batch-size", type=_positive_int, default=4096, help="cells per batch (default 4096)"
    )
    p.add_argument(
        "--layer",
        default="auto",
        help="the expression to read: auto (default: layers['counts'], else .raw, else .X; "
        "the first that is not scaled), X, raw, or a layer's name",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a scatlas annotation the input already holds (default: refuse)",
    )
    p.add_argument(
        "--min-overlap",
        type=_fraction,
        default=0.1,
        help="refuse an input with less than this share of the reference's genes (default "
        "0.1; below 0.5 it is warned about and the confidence falls)",
    )
    p.add_argument(
        "--min-margin",
        type=_margin,
        default=0.2,
        help="a winner leading the runner-up by less than this backs off to their common "
        "ancestor (default 0.2; 0: never)",
    )
    p.add_argument(
        "--majority-voting",
        action="store_true",
        help="also over-cluster the cells and give each cluster its majority type",
    )
    p.add_argument(
        "--no-orthologs",
        action="store_true",
        help="do not translate mouse <-> human gene symbols (or human ids to symbols)",
    )
    p.add_argument(
        "--search-breadth",
        type=_positive_int,
        help="approximate index: IVF nprobe / HNSW efSearch for this query (default: the "
        "release's, tuned when it was published: the manifest's index_search)",
    )
    p.add_argument(
        "--mmap",
        action="store_true",
        help="memory-map the index's vectors instead of reading them (less memory, shared "
        "between processes; the first searches read pages from disk)",
    )
    _cluster_arguments(p, in_query=True)
    _trust_arguments(p)
    p.set_defaults(func=_cmd_query)


def _cluster_arguments(p: argparse.ArgumentParser, *, in_query: bool) -> None:
    p.add_argument(
        "--n-clusters",
        type=_positive_int,
        help="the number of clusters (default: estimated; by ScLSTM's pair head, or by "
        "silhouette for another model)",
    )
    p.add_argument(
        "--max-cluster-cells",
        type=_positive_int,
        default=10_000,
        help="cluster at most this many cells (a random sample; the rest join the nearest "
        "cluster): Ward's tree needs 8 bytes x n^2 / 2 (default 10000: 400 MB)",
    )
    if not in_query:
        p.add_argument(
            "--layer", default="auto", help="the expression to read (as for scatlas query)"
        )
        return
    p.add_argument(
        "--cluster",
        dest="cluster_cells",
        choices=("all", "novel"),
        help="also cluster the cells (all, or those flagged novel): obs['scatlas_cluster'], "
        "mostly-novel clusters reported as candidate new types with marker genes",
    )
    p.add_argument(
        "--cluster-model",
        help="the model whose representation is clustered (a ScLSTM model folder; default: "
        "the release's model)",
    )


def _add_cluster_command(sub) -> None:
    p = sub.add_parser(
        "cluster",
        help="cluster cells with a trained ScLSTM model (cell-type detection)",
        description="Embed the cells with a trained model (ScLSTM, results/models/sclstm, "
        "or a release whose model it is), cluster the representation with Ward's "
        "agglomerative method (the number given or estimated) and write "
        "obs['scatlas_cluster']; with --cells novel only the cells a scatlas query "
        "flagged novel. Clusters that are mostly novel are reported as candidate new types "
        "with their marker genes (uns['scatlas_clusters']).",
    )
    p.add_argument("--model", required=True, help="a model folder (model.json) or a release")
    p.add_argument("--input", required=True, help="cells: .h5ad, 10x .h5 or a 10x mtx folder")
    p.add_argument("--output", required=True, help="the clustered cells (.h5ad)")
    p.add_argument("--csv", help="also write the cluster of each cell as CSV")
    p.add_argument(
        "--cells",
        dest="cluster_cells",
        choices=("all", "novel"),
        default="all",
        help="cluster all cells (default) or those obs['scatlas_novel'] flags",
    )
    _cluster_arguments(p, in_query=False)
    p.set_defaults(func=_cmd_cluster)


def _add_release_commands(sub) -> None:
    p = sub.add_parser(
        "release",
        help="sign and verify published releases",
        description="Ed25519 signatures of a release's manifest, and the checks a user runs "
        "before trusting a downloaded release (every file's sha256, a pinned manifest "
        "hash, the signature).",
    )
    rsub = p.add_subparsers(dest="release_command", required=True)
    r = rsub.add_parser(
        "keygen",
        help="a new Ed25519 key pair (PEM) for signing releases",
        description="Write a new Ed25519 private key (mode 600) and its public key, as PEM.",
    )
    r.add_argument("private_key", help="where the private key goes (kept secret, mode 600)")
    r.add_argument("public_key", help="where the public key goes (give it to your users)")
    r.set_defaults(func=_cmd_release_keygen)
    r = rsub.add_parser(
        "sign",
        help="sign a release's manifest (writes manifest.json.sig)",
        description="Sign a release's manifest.json with an Ed25519 private key; the "
        "signature goes next to it as manifest.json.sig.",
    )
    r.add_argument("release", help="a release folder")
    r.add_argument("--key", required=True, help="the Ed25519 private key (PEM)")
    r.set_defaults(func=_cmd_release_sign)
    r = rsub.add_parser(
        "verify",
        help="verify a release: every file, and the pin and signature when given",
        description="Check every file of a release against its manifest's sha256 and, when "
        "given, the manifest against a pinned hash and its signature against a public key; "
        "exits non-zero naming the first file that fails.",
    )
    r.add_argument("release", help="a release folder or published/current")
    _trust_arguments(r)
    r.set_defaults(func=_cmd_release_verify)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(
        level=logging.DEBUG if args.verbose else logging.INFO,
        libraries=None if args.verbose else logging.WARNING,
    )
    try:
        return args.func(args)
    except ScatlasError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
