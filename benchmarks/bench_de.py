"""Benchmark: the DE stage with edgeR (quasi-likelihood, through rpy2) against the
pure-Python Wilcoxon fallback, on the same synthetic atlas, in one run.

The atlas: ``--terms`` Cell Ontology leaf terms (pairwise unrelated) x ``--studies``
studies x ``--genes`` genes; every study holds ``--cells`` cells of every term, spread
over ``--samples`` barcoded samples (so edgeR tests pseudobulk samples; ``--samples 0``
gives one cell per sample, i.e. cells). Counts are negative binomial with a study effect
per gene and a library size per cell; each term has 20 planted up genes (4-fold) of its
own. Both methods run through `scatlas.de.run_de` (per study, then the meta-analysis and
the files), "rest" contrast only unless ``--siblings``.

Printed side by side: wall time, time per study test, the ratio edgeR / Wilcoxon, and
precision/recall of the significant calls against the planted genes.

    .venv/bin/python benchmarks/bench_de.py [--terms 50 --studies 10 --genes 5000
                                             --cells 8 --samples 4] [--scale 0.2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from scatlas.de import run_de, term_file_name  # noqa: E402
from scatlas.ontology import cached_ontology  # noqa: E402
from scatlas.package_data import snapshot_obo  # noqa: E402
from scatlas.settings import DESettings  # noqa: E402

OBO = snapshot_obo()
N_PLANTED = 20


def leaf_terms(n: int) -> list[str]:
    """``n`` leaf terms below "cell" (leaves are never each other's ancestors)."""
    onto = cached_ontology(OBO)
    below = onto.descendants("CL:0000000")
    leaves = sorted(t for t in below if t.startswith("CL:") and not onto.children(t))
    step = max(1, len(leaves) // n)
    return leaves[::step][:n]


def make_atlas(
    path: Path,
    terms: list[str],
    n_studies: int,
    n_genes: int,
    cells: int,
    samples: int,
    seed: int = 0,
) -> dict[str, set[str]]:
    rng = np.random.default_rng(seed)
    genes = [f"ENSG{i:011d}" for i in range(n_genes)]
    base = rng.lognormal(mean=0.0, sigma=1.2, size=n_genes)
    planted = {}
    for k, t in enumerate(terms):
        idx = (np.arange(N_PLANTED) + k * N_PLANTED) % n_genes
        planted[t] = {genes[i] for i in idx}
    blocks, obs = [], []
    for s in range(n_studies):
        study = f"GSE{900000 + s}"
        labels = np.repeat(terms, cells)
        mu = np.tile(base * rng.lognormal(0.0, 0.3, size=n_genes), (len(labels), 1))
        for k, t in enumerate(terms):
            idx = (np.arange(N_PLANTED) + k * N_PLANTED) % n_genes
            mu[np.ix_(labels == t, idx)] *= 4.0
        mu *= rng.uniform(0.5, 2.0, size=(len(labels), 1))
        counts = rng.poisson(rng.gamma(shape=2.0, scale=mu / 2.0))
        blocks.append(sp.csr_matrix(counts.astype(np.float32)))
        n = len(labels)
        sample = (
            [f"{study}_s{i % samples}" for i in range(n)]
            if samples
            else [f"{study}_c{i}" for i in range(n)]
        )
        obs.append(
            pd.DataFrame(
                {"study": study, "sample": sample, "cl_id": labels},
                index=[f"{study}:c{i}" for i in range(n)],
            )
        )
    var = pd.DataFrame({"gene_symbol": [f"G{i}" for i in range(n_genes)]}, index=genes)
    anndata.AnnData(X=sp.vstack(blocks, format="csr"), obs=pd.concat(obs), var=var).write_h5ad(path)
    return planted


def score(out: Path, planted: dict[str, set[str]]) -> tuple[float, float]:
    tp = fp = fn = 0
    for t, genes in planted.items():
        f = out / term_file_name(t)
        if not f.exists():
            fn += len(genes)
            continue
        table = pd.read_csv(f, sep="\t")
        called = set(table.loc[table["significant"].astype(bool), "gene"])
        tp += len(called & genes)
        fp += len(called - genes)
        fn += len(genes - called)
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--terms", type=int, default=50)
    ap.add_argument("--studies", type=int, default=10)
    ap.add_argument("--genes", type=int, default=5000)
    ap.add_argument("--cells", type=int, default=8, help="cells per term and study")
    ap.add_argument("--samples", type=int, default=4, help="samples per study (0: a cell each)")
    ap.add_argument("--scale", type=float, default=1.0, help="scale terms, studies and genes")
    ap.add_argument("--siblings", action="store_true")
    args = ap.parse_args()
    n_terms = max(2, round(args.terms * args.scale))
    n_studies = max(2, round(args.studies * args.scale))
    n_genes = max(100, round(args.genes * args.scale))
    terms = leaf_terms(n_terms)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        atlas = tmp / "atlas.h5ad"
        planted = make_atlas(atlas, terms, n_studies, n_genes, args.cells, args.samples)
        n_cells = n_terms * n_studies * args.cells
        print(
            f"atlas: {len(terms)} terms x {n_studies} studies x {n_genes} genes, "
            f"{n_cells} cells ({args.cells} per term and study, "
            f"{args.samples or 'one cell per'} samples per study)"
        )
        rows = {}
        for method in ("edger", "wilcoxon"):
            t0 = time.perf_counter()
            s = run_de(
                atlas,
                OBO,
                tmp / method,
                settings=DESettings(
                    min_cells=min(5, args.cells), method=method, siblings=args.siblings
                ),
            )
            wall = time.perf_counter() - t0
            st = pd.read_csv(tmp / method / "studies.tsv", sep="\t")
            n_tests = int((st["status"] == "tested").sum())
            units = ", ".join(sorted(set(st["unit"].dropna())))
            prec, rec = score(tmp / method, planted)
            rows[method] = (wall, n_tests, units, prec, rec, int((s["status"] == "tested").sum()))
        print(
            f"{'method':<10}{'wall s':>10}{'tests':>8}{'s/test':>9}{'units':>12}"
            f"{'precision':>11}{'recall':>8}{'terms':>7}"
        )
        for m, (wall, n, units, p, r, nt) in rows.items():
            print(
                f"{m:<10}{wall:>10.1f}{n:>8}{wall / max(n, 1):>9.3f}{units:>12}"
                f"{p:>11.3f}{r:>8.3f}{nt:>7}"
            )
        ratio = rows["edger"][0] / rows["wilcoxon"][0]
        print(f"edgeR / Wilcoxon wall time: {ratio:.2f}x")


if __name__ == "__main__":
    main()
