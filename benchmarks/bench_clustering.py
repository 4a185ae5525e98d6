"""ScLSTM cell-type detection against the usual clustering of the same cells, in one run.

For each public labelled set (``tests/realdata.py``: PBMC sorted, pancreas Wang -> Xin,
CEL-seq2 cell lines plates 1+2 -> 3) ScLSTM is trained on the set's training cells (one
type held out, as a new type would be), then the query cells *and* the held-out type's cells
are clustered: agglomerative (Ward) on ScLSTM's representation, agglomerative on the cells'
own PCA and scanpy's Leiden on the PCA neighbour graph; each with the true number of
clusters and estimated (ScLSTM: its pair head splits the tree; PCA: silhouette), Leiden at resolution 1. Prints ARI, NMI, ACC
(Hungarian), balanced accuracy, clusters found vs true, seconds, and ScLSTM's ratio to the
better PCA method per figure. Then how the clustering scales: time and peak memory of Ward
up to 10,000 cells, and the sample + assign path beyond.

    .venv/bin/python benchmarks/bench_clustering.py [--sets pbmc,pancreas,celllines]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
sys.path.insert(0, str(HERE.parent / "tests"))  # realdata: the real labelled sets

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402
from realdata import SETS, load_set, training_data  # noqa: E402

from scatlas.evaluate.clustering import compare_clusterings  # noqa: E402
from scatlas.evaluate.metrics import model_input  # noqa: E402
from scatlas.models.io import embed, load_model  # noqa: E402
from scatlas.models.sclstm import pair_head  # noqa: E402
from scatlas.models.trainer import fit  # noqa: E402
from scatlas.ontology import load_ontology  # noqa: E402

FIGURES = ["ari", "nmi", "acc", "balanced_accuracy"]


def run_set(name: str, data: Path, cl, epochs: int, workdir: Path) -> None:
    rs = load_set(name, data, cl)
    X = sp.vstack([rs.query_X, rs.novel_X]).tocsr()
    true = np.concatenate([rs.query_labels, rs.novel_labels]).astype(object)
    print(
        f"\n## {name}: ScLSTM trained on {rs.train_X.shape[0]} cells "
        f"({len(set(rs.train_labels))} types; {rs.holdout} held out); clustering "
        f"{X.shape[0]} cells ({rs.query_X.shape[0]} of training types + "
        f"{rs.novel_X.shape[0]} held-out), {len(set(true))} true types, input {rs.input_kind}"
    )
    out = workdir / name
    t0 = time.perf_counter()
    info = fit("sclstm", training_data(rs, "log1p"), out, params={"epochs": epochs}, seed=0)
    train_seconds = time.perf_counter() - t0
    net, _ = load_model(out)
    t0 = time.perf_counter()
    emb = embed(net, model_input(X, rs.input_kind, "log1p"))
    embed_seconds = time.perf_counter() - t0
    print(
        f"training {train_seconds:.1f} s ({info['epochs_run']} epochs, best "
        f"{info['best_epoch']}), embedding {embed_seconds:.2f} s"
    )
    table = compare_clusterings(
        {"sclstm": emb},
        model_input(X, rs.input_kind, "log1p_cp10k"),
        true,
        pair_heads={"sclstm": pair_head(net)},
    )
    table.loc[table["method"] == "sclstm", "seconds"] += embed_seconds
    print("\n| method | algorithm | clusters (true) | ARI | NMI | ACC | balanced acc. | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table.itertuples():
        print(
            f"| {r.method} | {r.algorithm} | {r.n_clusters} ({r.n_true}) | {r.ari:.3f} | "
            f"{r.nmi:.3f} | {r.acc:.3f} | {r.balanced_accuracy:.3f} | {r.seconds:.1f} |"
        )
    ours = table[table["method"] == "sclstm"]
    peers = table[table["method"] == "pca"]
    for algorithm in ours["algorithm"]:
        mine = ours[ours["algorithm"] == algorithm].iloc[0]
        ratios = ", ".join(
            f"{f} {mine[f] / peers[f].max():.2f}" for f in FIGURES if peers[f].max() > 0
        )
        print(f"- sclstm {algorithm} / best PCA method: {ratios}")


def scaling(sizes: list[int], max_cells: int) -> None:
    """Ward on a 32-d representation of n cells (10 groups): time and peak memory traced
    (the condensed distance matrix dominates), and beyond ``max_cells`` the sample + assign
    path."""
    import tracemalloc

    from scatlas.annotate.clusters import cluster_points

    print(f"\n## scaling of the clustering (32-d representation, --max-cluster-cells {max_cells})")
    print("| cells | clustered | seconds (k given) | seconds (k estimated) | peak traced memory |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in sizes:
        points = np.vstack([rng.standard_normal((n // 10, 32)) + 3 * i for i in range(10)])
        tracemalloc.start()
        t0 = time.perf_counter()
        given = cluster_points(points, 10, max_cells=max_cells)
        t1 = time.perf_counter()
        cluster_points(points, None, max_cells=max_cells)
        t2 = time.perf_counter()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(
            f"| {n:,} | {given.n_clustered:,} | {t1 - t0:.1f} | {t2 - t1:.1f} | {peak / 2**20:,.0f} MiB |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--scale",
        default="2500,5000,10000,100000",
        help="cell counts of the scaling table ('' skips)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    cl = load_ontology(args.data / "ontology" / "cl-basic_2022-12-15.obo")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"# clustering evaluation (torch {torch.__version__}, device {device}, {args.threads} threads)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            run_set(name, args.data, cl, args.epochs, Path(tmp))
    if args.scale:
        scaling([int(n) for n in args.scale.split(",")], 10_000)


if __name__ == "__main__":
    main()
