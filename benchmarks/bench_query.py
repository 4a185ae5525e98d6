"""``scatlas query`` at scale: a 1,000,000-cell reference, 100,000 query cells, 2 CPU threads.

    .venv/bin/python benchmarks/bench_query.py [--n-ref 1000000] [--n-query 100000] [--k 10]
        [--index auto|flat|hnsw|ivf] [--flat-max N] [--no-exact] [--no-hnswlib]

Data (real demo output, resampled): the demo's trained dense encoder and its atlas
(``results/models/dense`` + ``results/atlas/atlas.h5ad``; ``--model``/``--atlas`` to change;
without a demo run the encoder is trained on the test suite's synthetic atlas, and the
script says so). Reference: the atlas cells' embeddings resampled to ``--n-ref`` cells with
Gaussian noise (``--noise`` x the per-dimension standard deviation), each copy keeping its
cell type and assigned to one of 8 replicate studies of its source study: a new cell is a
random point on the segment from a real cell to one of its 15 nearest real cells, plus
Gaussian noise (so the reference is a continuous population, not 404 tight copies). Query: the demo's
held-out study (``resources/demo-world/heldout/query.h5ad``, raw counts) resampled to
``--n-query`` cells with Poisson noise on the counts (library sizes jittered).

Measured, in one run, on the same embeddings:

* scatlas end to end — ``Reference.annotate`` on the in-memory AnnData: input checks,
  normalisation detection, gene mapping, per batch log1p-CP10k + gene alignment + encoder +
  faiss search + scQuery vote + novelty flags (h5ad reading/writing excluded);
* search alone (the query embeddings against the same index), and its recall@k against
  exact search (``IndexFlatL2``);
* exact faiss (``IndexFlatL2``) and hnswlib (SCimilarity's index; M=32, ef_construction=80,
  ef=128 — the settings of scatlas' faiss HNSW), build and search, as ratios;
* index build time, the publish-side novelty calibration, and peak resident memory
  (``getrusage`` max RSS) after each phase.

faiss, torch and hnswlib are limited to 2 threads. Timings on a shared machine are noisy.
hnswlib is optional (``pip install '.[bench]'``); without it the script says so.
"""

from __future__ import annotations

import argparse
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

from scatlas.annotate.reference import Reference  # noqa: E402
from scatlas.models.io import embed, load_model  # noqa: E402
from scatlas.models.normalize import align_to_genes, log1p_cp10k  # noqa: E402
from scatlas.release.format import Manifest  # noqa: E402
from scatlas.release.index import build_index, index_kind, search  # noqa: E402
from scatlas.release.novelty import calibrate_novelty  # noqa: E402

THREADS = 2
NEIGHBOURS = 15


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact k nearest found by the approximate search."""
    k = exact.shape[1]
    hits = sum(
        len(np.intersect1d(a, e, assume_unique=False)) for a, e in zip(approx, exact, strict=True)
    )
    return hits / (len(exact) * k)


def demo_inputs(model: Path | None, atlas: Path | None) -> tuple[Path, Path, str]:
    """The demo's encoder and atlas, or a synthetic atlas + tiny encoder when there is none."""
    candidates = [model] if model else [REPO / "results/models/dense", REPO / "published/current"]
    atlas = atlas or REPO / "results/atlas/atlas.h5ad"
    for cand in candidates:
        ready = cand and (cand / "model.json").is_file() and (cand / "encoder.pt").is_file()
        if ready and atlas.is_file():
            return cand, atlas, f"demo encoder {cand.relative_to(REPO)} + {atlas.name}"
    sys.path.insert(0, str(REPO / "tests"))
    from synthetic_atlas import train_tiny, write_atlas

    tmp = Path(tempfile.mkdtemp(prefix="bench_query_"))
    atlas = write_atlas(tmp / "atlas.h5ad", cells_per_type=100, n_genes=500)
    train_tiny(atlas, tmp / "dense")
    return tmp / "dense", atlas, "NO demo results found: synthetic atlas + tiny dense encoder"


def reference_embeddings(
    net, info, atlas: Path, n_ref: int, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, pd.DataFrame]:
    adata = ad.read_h5ad(atlas)
    X, _ = align_to_genes(log1p_cp10k(adata.X), list(map(str, adata.var_names)), info["genes"])
    base = embed(net, X)
    src = rng.integers(0, len(base), n_ref)
    # a continuous population, not n_atlas tight balls: each new cell lies on the segment
    # from a real cell to one of its NEIGHBOURS nearest real cells, plus Gaussian noise
    nn = faiss.IndexFlatL2(base.shape[1])
    nn.add(base)
    _, near = nn.search(base, min(NEIGHBOURS + 1, len(base)))
    partner = near[src, rng.integers(1, near.shape[1], n_ref)]
    u = rng.random((n_ref, 1), dtype=np.float32)
    sd = base.std(axis=0, keepdims=True)
    emb = base[src] + u * (base[partner] - base[src])
    emb += rng.normal(size=(n_ref, base.shape[1])).astype(np.float32) * (noise * sd)
    obs = adata.obs
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
    return np.ascontiguousarray(emb, dtype=np.float32), cells


def query_cells(path: Path, n_query: int, rng: np.random.Generator) -> ad.AnnData:
    held = ad.read_h5ad(path)
    counts = sp.csr_matrix(held.X).toarray().astype(np.float64)
    src = rng.integers(0, held.n_obs, n_query)
    scale = rng.lognormal(0.0, 0.2, n_query)[:, None]
    out = ad.AnnData(
        X=sp.csr_matrix(rng.poisson(counts[src] * scale).astype(np.float32)),
        var=held.var.copy(),
    )
    out.obs_names = [f"q{i}" for i in range(n_query)]
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n-ref", type=int, default=1_000_000)
    p.add_argument("--n-query", type=int, default=100_000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--index", default="auto", choices=["auto", "flat", "hnsw", "ivf"])
    p.add_argument(
        "--flat-max", type=int, default=None, help="default: the config's publish.flat_max"
    )
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--noise", type=float, default=0.05)
    p.add_argument(
        "--n-recall",
        type=int,
        default=10_000,
        help="queries searched exhaustively for recall and exact faiss/hnswlib speed (0: all)",
    )
    p.add_argument("--model", type=Path)
    p.add_argument("--atlas", type=Path)
    p.add_argument("--query", type=Path, default=REPO / "resources/demo-world/heldout/query.h5ad")
    p.add_argument("--no-exact", action="store_true", help="skip exact faiss (recall then unknown)")
    p.add_argument("--no-hnswlib", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p


def _peer_rows(emb: np.ndarray, sample: np.ndarray, approx: np.ndarray, args, mine: list) -> list:
    """Exact faiss and hnswlib on the same reference and queries: [name, build s, search s,
    recall]; fills in scatlas' recall (``mine``) against the exact search."""
    rows = []
    exact = None
    if not args.no_exact:
        t = time.perf_counter()
        flat = faiss.IndexFlatL2(emb.shape[1])
        flat.add(emb)
        flat_build = time.perf_counter() - t
        t = time.perf_counter()
        _, exact = flat.search(sample, args.k)
        rows.append(["exact faiss IndexFlatL2", flat_build, time.perf_counter() - t, 1.0])
        mine[3] = recall_at_k(approx, exact)
        del flat
    try:
        import hnswlib
    except ImportError:
        hnswlib = None
        print("hnswlib: NOT INSTALLED (pip install '.[bench]' or pip install hnswlib); skipped")
    if hnswlib is not None and not args.no_hnswlib:
        t = time.perf_counter()
        h = hnswlib.Index(space="l2", dim=emb.shape[1])
        h.init_index(max_elements=len(emb), M=32, ef_construction=80, random_seed=args.seed)
        h.add_items(emb, num_threads=THREADS)
        h_build = time.perf_counter() - t
        h.set_ef(128)
        t = time.perf_counter()
        h_idx, _ = h.knn_query(sample, k=args.k, num_threads=THREADS)
        h_search = time.perf_counter() - t
        recall = recall_at_k(h_idx.astype(np.int64), exact) if exact is not None else None
        rows.append(["hnswlib 0.8 (M=32, ef=128)", h_build, h_search, recall])
        del h
    return rows


def _print_table(rows: list, n_rec: int, dims: int, args) -> None:
    mine = rows[0]
    print()
    print(
        f"{args.n_ref:,} reference cells x {dims} dims; search figures over "
        f"{n_rec:,} queries, k={args.k}"
    )
    print(
        f"{'method':28s} {'build s':>9s} {'search s':>9s} {'q/s':>10s} {'recall@k':>9s} "
        f"{'build ratio':>12s} {'speed ratio':>12s}"
    )
    for name, b, s, r in rows:
        print(
            f"{name:28s} {b:9.1f} {s:9.2f} {n_rec / s:10,.0f} "
            f"{'-' if r is None else f'{r:.4f}':>9s} {b / mine[1]:12.2f} {mine[2] / s:12.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    faiss.omp_set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(args.seed)
    if args.flat_max is None:
        import yaml

        cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
        args.flat_max = int((cfg.get("publish") or {}).get("flat_max", 1_000_000))

    model_dir, atlas, source = demo_inputs(args.model, args.atlas)
    net, info = load_model(model_dir)
    print(f"data: {source}; {len(info['genes'])} genes, {info['embedding_dim']}-d embedding")
    print(f"threads: faiss {faiss.omp_get_max_threads()}, torch {torch.get_num_threads()}")
    t = time.perf_counter()
    emb, cells = reference_embeddings(net, info, atlas, args.n_ref, args.noise, rng)
    print(f"reference: {args.n_ref:,} cells resampled ({time.perf_counter() - t:.1f}s)")
    queries = query_cells(args.query, args.n_query, rng)
    print(f"query: {args.n_query:,} cells x {queries.n_vars} genes (raw counts, Poisson resampled)")
    print(f"peak RSS after data: {peak_rss_mib():,.0f} MiB")

    t = time.perf_counter()
    index = build_index(emb, flat_max=args.flat_max, kind=args.index, use_gpu=False)
    build_s = time.perf_counter() - t
    kind = index_kind(index)
    print(f"scatlas index: {kind} (flat_max {args.flat_max:,}), built in {build_s:.1f}s")
    t = time.perf_counter()
    thresholds, _ = calibrate_novelty(
        index, emb, cells["cl_id"].to_numpy(), cells["study"].to_numpy()
    )
    calib_s = time.perf_counter() - t
    print(f"novelty calibration: {calib_s:.1f}s; peak RSS {peak_rss_mib():,.0f} MiB")

    genes = pd.DataFrame(
        {
            "gene_id": info["genes"],
            "gene_symbol": queries.var["gene_symbol"].reindex(info["genes"]).fillna("").to_numpy(),
        }
    )
    ref = Reference(None, Manifest(version="bench"), net, info, cells, index, genes, thresholds)
    t = time.perf_counter()
    out = ref.annotate(queries, k=args.k, batch_size=args.batch_size)
    e2e_s = time.perf_counter() - t
    e2e_rate = args.n_query / e2e_s
    rss_query = peak_rss_mib()
    q_emb = out.obsm["X_scatlas"]
    t = time.perf_counter()
    search(index, q_emb, args.k)
    search_all_s = time.perf_counter() - t
    print(
        f"scatlas end to end: {e2e_s:.1f}s = {e2e_rate:,.0f} cells/s; search alone "
        f"{args.n_query / search_all_s:,.0f} q/s; peak RSS {rss_query:,.0f} MiB; "
        f"{int(out.obs['scatlas_novel'].sum()):,} flagged novel",
        flush=True,
    )
    n_rec = args.n_query if args.n_recall <= 0 else min(args.n_recall, args.n_query)
    sample = np.ascontiguousarray(q_emb[:n_rec])
    t = time.perf_counter()
    _, approx = search(index, sample, args.k)
    rows = [[f"scatlas (faiss {kind})", build_s, time.perf_counter() - t, None]]
    rows += _peer_rows(emb, sample, approx, args, rows[0])
    mine = rows[0]
    _print_table(rows, n_rec, emb.shape[1], args)
    print("(build ratio: its build time / scatlas'; speed ratio: its search speed / scatlas')")
    print(
        f"\nscatlas end-to-end {e2e_rate:,.0f} cells/s over {args.n_query:,} cells (target "
        f">= 2,000), recall@{args.k} {'-' if mine[3] is None else f'{mine[3]:.4f}'} (target "
        f">= 0.95); index build {build_s:.1f}s + novelty calibration {calib_s:.1f}s; peak RSS "
        f"through the query {rss_query:,.0f} MiB, at the end {peak_rss_mib():,.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
