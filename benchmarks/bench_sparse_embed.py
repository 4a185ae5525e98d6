"""The first layer of a realistic encoder on sparse input: torch CSR matmul against
densifying each batch, side by side in one run (2 threads).

    .venv/bin/python benchmarks/bench_sparse_embed.py [--cells 4096] [--genes 15000]
        [--density 0.13] [--hidden 512] [--repeats 3]

Input: a random CSR batch at the density of a 10x cell (about 2,000 of 15,000 genes
detected); layer: ``torch.nn.Linear(genes, hidden)``. Prints the best of ``--repeats``
timings of (a) ``scipy .toarray()`` + dense ``Linear`` (what ``scatlas.models.io.embed``
does) and (b) ``Linear`` on a ``torch.sparse_csr_tensor``, with cells/s and the ratio, and
checks both give the same output.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
import torch


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=4096)
    ap.add_argument("--genes", type=int, default=15000)
    ap.add_argument("--density", type=float, default=0.13)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    X = sp.random(
        args.cells, args.genes, density=args.density, format="csr", dtype=np.float32, random_state=0
    )
    layer = torch.nn.Linear(args.genes, args.hidden)
    csr = torch.sparse_csr_tensor(
        torch.from_numpy(X.indptr.astype(np.int64)),
        torch.from_numpy(X.indices.astype(np.int64)),
        torch.from_numpy(X.data),
        size=X.shape,
    )
    with torch.no_grad():
        dense_s = best_of(lambda: layer(torch.from_numpy(X.toarray())), args.repeats)
        sparse_s = best_of(lambda: layer(csr), args.repeats)
        diff = float((layer(torch.from_numpy(X.toarray())) - layer(csr)).abs().max())
    print(
        f"# first layer {args.genes} -> {args.hidden}, {args.cells} cells, density "
        f"{args.density}, {args.threads} threads, torch {torch.__version__}"
    )
    print(f"densify + dense Linear : {dense_s:.3f} s ({args.cells / dense_s:,.0f} cells/s)")
    print(f"sparse CSR Linear      : {sparse_s:.3f} s ({args.cells / sparse_s:,.0f} cells/s)")
    print(f"sparse / dense time    : {sparse_s / dense_s:.2f}x (max abs difference {diff:.1e})")


if __name__ == "__main__":
    main()
