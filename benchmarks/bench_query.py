"""``scatlas query`` at scale: a 1,000,000-cell reference, 100,000 query cells, 2 CPU threads.

    .venv/bin/python benchmarks/bench_query.py [--n-ref 1000000] [--n-query 100000] [--k 10]
        [--genes 20000] [--hidden 512,512,512] [--epochs 6] [--indexes ivf,hnsw,hnsw_sq8]
        [--target-recall 0.95] [--publish-recall 0.99] [--no-exact] [--no-hnswlib]
        [--data ../shared/data]

Data: real PBMC (``../shared/data/expression/pbmc-zheng-sorted``).

* Encoder: scatlas' triplet model (SCimilarity's layers: Linear → BatchNorm → PReLU blocks,
  128-d L2-normalised output), ``--hidden`` wide (default: what ``scatlas build-reference``
  gives a triplet model on this many genes: 3 x 512), over ``--genes`` input genes: the 13,957
  genes of the Zheng sorted reference and donor A, made up to the number with GENCODE v44
  gene names (a whole-transcriptome reference, of which a filtered 10x query holds about
  70%). Trained ``--epochs`` epochs on the 2,140 Zheng sorted cells (plain labels: the 9
  sorted populations), as ``scatlas build-reference`` would with those sizes.
* Reference: the Zheng cells' embeddings resampled to ``--n-ref`` cells: each new cell a
  random point on the segment from a real cell to one of its 15 nearest real cells, plus
  Gaussian noise (``--noise`` x the per-dimension standard deviation), keeping the cell's
  type, in one of 8 replicate studies.
* Query: donor A's 2,896 frozen PBMC (raw UMI counts, 13,939 genes, ~750 detected per cell)
  resampled to ``--n-query`` cells (a real cell's counts, Poisson-resampled at a jittered
  library size), written as a sparse h5ad.

Measured, in one run:

* each index kind of ``--indexes`` over the same reference: build time; the search breadth
  publishing gives it (``tune_search``: the smallest efSearch/nprobe whose leave-one-out
  recall@k on reference cells reaches ``--publish-recall``, the config's
  ``publish.target_recall``); on the real query embeddings, at that breadth: recall@k
  against exact search and search speed; the breadth the queries need for
  ``--target-recall``; file size; load time, read and memory-mapped;
* exact faiss (``IndexFlatL2``) and hnswlib (SCimilarity's index; M=32, ef_construction=80,
  ef=128 and its own ef tuned as ours) on the same reference and queries, as ratios;
* scatlas end to end with the first kind of ``--indexes`` (the config's
  ``publish.large_index``), at the breadth the queries need and at the published one:
  ``query_file`` — read the h5ad, choose the matrix, detect the normalisation, map genes,
  log1p-CP10k, align, embed (sparse), search, scores, backoff, novelty, majority voting,
  write the h5ad — and the embedding alone, sparse (``embedding_bag``) against densify +
  dense, and SCimilarity's full widths (1024 x 3) for reference.

faiss, torch and hnswlib are limited to 2 threads. Timings on a shared machine are noisy.
hnswlib is optional (``pip install '.[bench]'``); without it the script says so.
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import anndata as ad  # noqa: E402
import faiss  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from realdata import write_donor_a_h5ad, write_zheng_h5ad  # noqa: E402

from scatlas.annotate.reference import QueryOptions, Reference, query_file  # noqa: E402
from scatlas.atlas.labelled import LabelledInput, labelled_atlas  # noqa: E402
from scatlas.models import build_model  # noqa: E402
from scatlas.models.io import embed, load_model  # noqa: E402
from scatlas.models.normalize import align_to_genes, log1p_cp10k  # noqa: E402
from scatlas.models.trainer import train_model  # noqa: E402
from scatlas.release.build import suited_params  # noqa: E402
from scatlas.release.format import Manifest  # noqa: E402
from scatlas.release.index import (  # noqa: E402
    build_index,
    load_index,
    recall_at_k,
    save_index,
    search,
    search_breadth,
    set_search_breadth,
    tune_search,
    unit_rows,
)
from scatlas.release.novelty import calibrate_novelty  # noqa: E402

THREADS = 2
NEIGHBOURS = 15
PBMC = "expression/pbmc-zheng-sorted"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def reference_genes(data: Path, n_genes: int) -> list[str]:
    """The Zheng and donor A genes, then GENCODE v44 names up to ``n_genes``."""
    names: dict[str, None] = {}
    for stem in ("zheng_sorted_reference", "frozen_pbmc_donor_a"):
        with gzip.open(data / PBMC / f"{stem}.genes_x_cells.genes.txt.gz", "rt") as fh:
            names.update((line.split()[0], None) for line in fh if line.strip())
    gencode = pd.read_csv(data / "orthologs/GENCODEv44_Gene_id2name.csv", header=None)
    for name in gencode[1].astype(str):
        if len(names) >= n_genes:
            break
        names.setdefault(name, None)
    return list(names)[:n_genes]


def train_encoder(data: Path, genes: list[str], args, work: Path) -> tuple[Path, ad.AnnData]:
    """The Zheng sorted cells as an atlas over ``genes``; the triplet encoder trained on it."""
    zheng = write_zheng_h5ad(data, work / "zheng.h5ad")
    atlas = labelled_atlas(
        [LabelledInput(zheng, "cell_type")], work / "atlas0.h5ad", label_kind="plain"
    )
    X = sp.csr_matrix(atlas.X)
    col = {g: i for i, g in enumerate(genes)}
    keep = np.array([g in col for g in atlas.var_names])
    X = X[:, np.flatnonzero(keep)].tocoo()
    cols = np.array([col[g] for g in atlas.var_names[keep]])[X.col]
    full = sp.csr_matrix((X.data, (X.row, cols)), shape=(atlas.n_obs, len(genes)))
    wide = ad.AnnData(full, obs=atlas.obs, var=pd.DataFrame(index=genes), uns=atlas.uns)
    wide.write_h5ad(work / "atlas.h5ad")
    n_train = int(((wide.obs["split"] == "train") & wide.obs["trainable"]).sum())
    params = suited_params("triplet", n_train, len(genes), False)
    params.update(hidden=args.hidden, embedding_dim=128, epochs=args.epochs, patience=args.epochs)
    train_model(work / "atlas.h5ad", "triplet", work / "triplet", params=params, threads=THREADS)
    return work / "triplet", wide


def reference_embeddings(
    net, info, atlas: ad.AnnData, n_ref: int, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, pd.DataFrame]:
    X, _ = align_to_genes(log1p_cp10k(atlas.X), list(map(str, atlas.var_names)), info["genes"])
    base = unit_rows(embed(net, X))
    src = rng.integers(0, len(base), n_ref)
    # a continuous population, not n_atlas tight balls: each new cell lies on the segment
    # from a real cell to one of its NEIGHBOURS nearest real cells, plus Gaussian noise
    _, near = faiss.knn(base, base, min(NEIGHBOURS + 1, len(base)))
    partner = near[src, rng.integers(1, near.shape[1], n_ref)]
    u = rng.random((n_ref, 1), dtype=np.float32)
    sd = base.std(axis=0, keepdims=True)
    emb = base[src] + u * (base[partner] - base[src])
    emb += rng.normal(size=(n_ref, base.shape[1])).astype(np.float32) * (noise * sd)
    obs = atlas.obs
    cells = pd.DataFrame(
        {
            "cell_id": [f"ref{i}" for i in range(n_ref)],
            "study": (
                obs["study"].astype(str).to_numpy()[src].astype(object)
                + "-r"
                + rng.integers(0, 8, n_ref).astype(str).astype(object)
            ),
            "cl_id": obs["cl_id"].astype(str).to_numpy()[src],
            "cl_label": obs["cl_label"].astype(str).to_numpy()[src],
        }
    )
    return unit_rows(emb), cells


def query_h5ad(data: Path, n_query: int, rng: np.random.Generator, work: Path) -> Path:
    """Donor A resampled to ``n_query`` cells, sparse throughout."""
    held = ad.read_h5ad(write_donor_a_h5ad(data, work / "donor_a.h5ad"))
    X = sp.csr_matrix(held.X, dtype=np.float32)[rng.integers(0, held.n_obs, n_query)]
    scale = rng.lognormal(0.0, 0.2, n_query)
    X.data = rng.poisson(X.data * np.repeat(scale, np.diff(X.indptr))).astype(np.float32)
    X.eliminate_zeros()
    out = ad.AnnData(X=X, var=held.var.copy())
    out.obs_names = [f"q{i}" for i in range(n_query)]
    out.write_h5ad(work / "query.h5ad")
    return work / "query.h5ad"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n-ref", type=int, default=1_000_000)
    p.add_argument("--n-query", type=int, default=100_000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--genes", type=int, default=20_000)
    p.add_argument(
        "--hidden", type=lambda s: [int(x) for x in s.split(",")], default=[512, 512, 512]
    )
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--indexes", default="ivf,hnsw,hnsw_sq8", help="the first is end to end")
    p.add_argument("--target-recall", type=float, default=0.95, help="on the real queries")
    p.add_argument(
        "--publish-recall",
        type=float,
        default=None,
        help="leave-one-out target of the publish-time tuning (default: publish.target_recall)",
    )
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--noise", type=float, default=0.05)
    p.add_argument(
        "--n-recall",
        type=int,
        default=10_000,
        help="queries searched exhaustively for recall and the peers' speed (0: all)",
    )
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--no-exact", action="store_true", help="skip exact faiss (recall then unknown)")
    p.add_argument("--no-hnswlib", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p


def query_breadth(index, emb: np.ndarray, sample: np.ndarray, exact, args) -> tuple:
    """The smallest breadth whose recall on the real queries reaches the target:
    (breadth, recall, search seconds); the widest tried when none does."""
    param, steps = search_breadth(index)
    for value in steps:
        set_search_breadth(index, param, value)
        (_, approx), search_s = timed(search, index, sample, args.k)
        recall = None if exact is None else recall_at_k(sample, emb, approx, exact)
        if recall is None or recall >= args.target_recall:
            break
    return value, recall, search_s


def index_candidates(emb: np.ndarray, sample: np.ndarray, exact, args, work: Path) -> list[dict]:
    """Each kind built, tuned, saved, loaded (read and mmap) and searched on ``sample``."""
    rows = []
    for kind in args.indexes.split(","):
        index, build_s = timed(build_index, emb, kind=kind, flat_max=1, use_gpu=False)
        tuning, tune_s = timed(tune_search, index, emb, k=args.k, target=args.publish_recall)
        path = save_index(index, work / f"{kind}.faiss")
        del index
        loaded, load_s = timed(load_index, path)
        mapped, mmap_s = timed(load_index, path, mmap=True)
        (_, approx), tuned_s = timed(search, loaded, sample, args.k)
        tuned_recall = None if exact is None else recall_at_k(sample, emb, approx, exact)
        value, recall, search_s = query_breadth(loaded, emb, sample, exact, args)
        common = {"kind": kind, "param": tuning.param, "build": build_s + tune_s}
        common.update(mib=path.stat().st_size / 2**20, load=load_s, mmap=mmap_s, index=loaded)
        rows.append(
            {
                **common,
                "name": f"scatlas faiss {kind} ({tuning.param} {value})",
                "value": value,
                "search": search_s,
                "recall": recall,
                "published": tuning.value,
                "published_search": tuned_s,
                "published_recall": tuned_recall,
            }
        )
        del mapped
        print(
            f"  {kind}: build {build_s:.1f}s + tuning {tune_s:.1f}s -> {tuning.param} "
            f"{tuning.value} (leave-one-out recall@{args.k} {tuning.recall:.3f}; the queries "
            f"{_fmt(tuned_recall)} at {len(sample) / tuned_s:,.0f} q/s, {_fmt(recall)} at "
            f"{tuning.param} {value}); file {rows[-1]['mib']:,.0f} MiB, load {load_s:.2f}s, "
            f"mmap {mmap_s:.3f}s",
            flush=True,
        )
    return rows


def _fmt(recall: float | None) -> str:
    return "-" if recall is None else f"{recall:.3f}"


def peer_rows(emb: np.ndarray, sample: np.ndarray, args) -> tuple[list[dict], np.ndarray | None]:
    """Exact faiss and hnswlib on the same reference and queries."""
    rows, exact = [], None
    if not args.no_exact:
        flat, build_s = timed(build_index, emb, kind="flat", use_gpu=False)
        (_, exact), search_s = timed(search, flat, sample, args.k)
        rows.append({"name": "exact faiss IndexFlatL2", "build": build_s, "search": search_s})
        rows[-1].update(recall=1.0, mib=emb.nbytes / 2**20)
        del flat
    try:
        import hnswlib
    except ImportError:
        print("hnswlib: NOT INSTALLED (pip install '.[bench]' or pip install hnswlib); skipped")
        return rows, exact
    if args.no_hnswlib:
        return rows, exact
    t = time.perf_counter()
    h = hnswlib.Index(space="l2", dim=emb.shape[1])
    h.init_index(max_elements=len(emb), M=32, ef_construction=80, random_seed=args.seed)
    h.add_items(emb, num_threads=THREADS)
    build_s = time.perf_counter() - t
    for ef in (128, 32):
        h.set_ef(ef)
        (idx, _), search_s = timed(h.knn_query, sample, k=args.k, num_threads=THREADS)
        recall = None if exact is None else recall_at_k(sample, emb, idx.astype(np.int64), exact)
        rows.append({"name": f"hnswlib (M=32, ef={ef})", "build": build_s, "search": search_s})
        rows[-1].update(recall=recall, mib=None)
    return rows, exact


def print_table(rows: list[dict], mine: dict, n: int, args) -> None:
    print(f"\nsearch over {n:,} real query embeddings, k={args.k}; ratios against {mine['name']}")
    head = f"{'method':38s} {'build s':>8s} {'q/s':>9s} {'recall@k':>9s} {'MiB':>7s}"
    print(f"{head} {'build ratio':>12s} {'speed ratio':>12s}")
    for r in rows:
        rec = "-" if r.get("recall") is None else f"{r['recall']:.4f}"
        mib = "-" if r.get("mib") is None else f"{r['mib']:,.0f}"
        print(
            f"{r['name']:38s} {r['build']:8.1f} {n / r['search']:9,.0f} {rec:>9s} {mib:>7s} "
            f"{r['build'] / mine['build']:12.2f} {mine['search'] / r['search']:12.2f}"
        )
    print("(build ratio: its build time / ours; speed ratio: its search speed / ours)")


def embedding_speed(net, X: sp.csr_matrix, genes: int, args) -> None:
    """The embedding alone: sparse against densify + dense; and SCimilarity's widths."""
    X = X[: min(X.shape[0], 20_000)]
    _, sparse_s = timed(embed, net, X, args.batch_size)
    _, dense_s = timed(embed, net, X.toarray(), args.batch_size)
    wide = build_model({**net.architecture, "hidden": [1024, 1024, 1024]}).eval()
    _, wide_s = timed(embed, wide, X, args.batch_size)
    n = X.shape[0]
    print(
        f"\nembedding alone ({genes:,} genes in, {n:,} cells): sparse {n / sparse_s:,.0f} "
        f"cells/s, densify + dense {n / dense_s:,.0f} cells/s (sparse {dense_s / sparse_s:.2f}x "
        f"faster); SCimilarity's widths 1024 x 3 (sparse) {n / wide_s:,.0f} cells/s"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    faiss.omp_set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(args.seed)
    if args.publish_recall is None:
        import yaml

        cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
        args.publish_recall = float(cfg["publish"]["target_recall"])
    with tempfile.TemporaryDirectory(prefix="bench_query_") as tmp:
        return run(args, rng, Path(tmp))


def run(args, rng: np.random.Generator, work: Path) -> int:
    genes = reference_genes(args.data, args.genes)
    (model_dir, atlas), train_s = timed(train_encoder, args.data, genes, args, work)
    net, info = load_model(model_dir)
    print(
        f"encoder: triplet {len(info['genes']):,} genes -> {args.hidden} -> "
        f"{info['embedding_dim']}-d, trained {args.epochs} epochs on {atlas.n_obs:,} Zheng "
        f"sorted cells in {train_s:.0f}s; threads faiss {faiss.omp_get_max_threads()}, "
        f"torch {torch.get_num_threads()}"
    )
    (emb, cells), ref_s = timed(reference_embeddings, net, info, atlas, args.n_ref, args.noise, rng)
    query_path = query_h5ad(args.data, args.n_query, rng, work)
    print(
        f"reference: {args.n_ref:,} cells resampled ({ref_s:.0f}s); query: {args.n_query:,} "
        f"donor A cells, {query_path.stat().st_size / 2**20:,.0f} MiB h5ad; peak RSS "
        f"{peak_rss_mib():,.0f} MiB",
        flush=True,
    )
    query = ad.read_h5ad(query_path)
    probe = Reference(None, Manifest(version="bench"), net, info, cells, None, _genes(info, atlas))
    mapping = probe._map_genes(query.var, QueryOptions(), None)
    print(f"gene overlap: {mapping.describe()}")
    n_rec = args.n_query if args.n_recall <= 0 else min(args.n_recall, args.n_query)
    sample, _ = probe.embed_expression(query.X[:n_rec], mapping, "raw_counts", args.batch_size)
    embedding_speed(net, _aligned(query.X, mapping, info), len(info["genes"]), args)

    peers, exact = peer_rows(emb, sample, args)
    print(
        f"\nindex kinds (publish-time tuning to leave-one-out recall@{args.k} "
        f"{args.publish_recall}; target on the queries {args.target_recall}):"
    )
    mine = index_candidates(emb, sample, exact, args, work)
    chosen = mine[0]
    print_table(mine + peers, chosen, n_rec, args)
    print(
        f"(scatlas rows at the breadth the queries need for recall@{args.k} "
        f">= {args.target_recall}; as published: {chosen['kind']} {chosen['param']} "
        f"{chosen['published']}, {n_rec / chosen['published_search']:,.0f} q/s, recall "
        f"{_fmt(chosen['published_recall'])})"
    )
    (thresholds, _), calib_s = timed(
        calibrate_novelty,
        chosen["index"],
        emb,
        cells["cl_id"].to_numpy(),
        cells["study"].to_numpy(),
        metric="cosine",
    )
    ref = Reference(
        None, Manifest(version="bench"), net, info, cells, chosen["index"], probe.genes, thresholds
    )
    print(
        f"\nindex {chosen['kind']}: {chosen['mib']:,.0f} MiB, load {chosen['load']:.2f}s "
        f"(memory-mapped {chosen['mmap']:.3f}s); novelty calibration {calib_s:.1f}s"
    )
    for value, recall in (
        (chosen["value"], chosen["recall"]),
        (chosen["published"], chosen["published_recall"]),
    ):
        set_search_breadth(chosen["index"], chosen["param"], value)
        end_to_end(ref, query_path, work, args, f"{chosen['param']} {value}", recall)
    return 0


def end_to_end(ref: Reference, query_path: Path, work: Path, args, label: str, recall) -> None:
    """``query_file`` on the query h5ad: read, annotate, majority voting, write."""
    out = work / "annotated.h5ad"
    opts = QueryOptions(k=args.k, batch_size=args.batch_size, majority_voting=True)
    _, e2e_s = timed(query_file, ref, query_path, out, opts, overwrite=True)
    print(
        f"scatlas end to end ({label}; read -> annotate -> majority voting -> write "
        f"{out.stat().st_size / 2**20:,.0f} MiB): {args.n_query:,} cells in {e2e_s:.1f}s = "
        f"{args.n_query / e2e_s:,.0f} cells/s (target >= 10,000), recall@{args.k} "
        f"{_fmt(recall)} (target >= {args.target_recall}); peak RSS {peak_rss_mib():,.0f} MiB",
        flush=True,
    )


def _genes(info: dict, atlas: ad.AnnData) -> pd.DataFrame:
    X, _ = align_to_genes(log1p_cp10k(atlas.X), list(map(str, atlas.var_names)), info["genes"])
    means = np.asarray(X.mean(axis=0)).ravel()
    return pd.DataFrame(
        {"gene_id": info["genes"], "gene_symbol": info["genes"], "mean_expression": means}
    )


def _aligned(X, mapping, info) -> sp.csr_matrix:
    aligned, _ = align_to_genes(log1p_cp10k(X), mapping.names, info["genes"])
    return sp.csr_matrix(aligned, dtype=np.float32)


if __name__ == "__main__":
    sys.exit(main())
