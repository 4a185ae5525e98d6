"""Training and inference throughput of the four embedding models, with CellTypist as peer.

Every model is trained with its published architecture (METHODS.md defaults) on the same
synthetic atlas (``tests/synthetic_atlas.py``: Poisson counts, 4 types x 4 studies) through
the shared trainer, each in its own process so that its peak memory (max RSS, and CUDA peak
allocation on a GPU) is its own. Training throughput = training cells / seconds of the
training pass of an epoch (median over epochs, validation excluded); inference throughput =
cells embedded per second (batches of 4,096, normalised input). CellTypist (logistic
regression) is timed on the same training cells (fit) and query cells (predict), and each
model's figures are printed as ratios to it.

    .venv/bin/python benchmarks/bench_models.py [--cells-per-type 500] [--genes 2000]
        [--epochs 2] [--threads 2] [--device auto]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
sys.path.insert(0, str(HERE.parent / "tests"))

MODELS = ("dense", "siamese", "triplet", "deephash")


def _model_worker(args: tuple, queue: mp.Queue) -> None:
    model, atlas, out, epochs, threads, device = args
    sys.path.insert(0, str(HERE.parent / "scripts"))
    import anndata as ad
    import torch

    from scatlas.models.inputs import normalise_input
    from scatlas.models.io import embed, load_model
    from scatlas.models.trainer import train_model

    torch.set_num_threads(threads)
    info = train_model(
        Path(atlas),
        model,
        Path(out),
        params={"epochs": epochs, "patience": epochs},
        device=device,
        threads=threads,
    )
    net, mj = load_model(Path(out), device=info["device"])
    adata = ad.read_h5ad(atlas)
    X = normalise_input(adata.X, mj["normalisation"])
    embed(net, X[:256])  # warm-up
    t0 = time.perf_counter()
    emb = embed(net, X, 4096)
    if info["device"] == "cuda":
        torch.cuda.synchronize()
    infer = X.shape[0] / (time.perf_counter() - t0)
    queue.put(
        {
            "model": model,
            "device": info["device"],
            "amp": info["amp"],
            "n_train": info["n_train_cells"],
            "train_cells_s": info["train_cells_per_second"],
            "infer_cells_s": infer,
            "embedding_dim": int(emb.shape[1]),
            "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "gpu_peak_mib": (info["peak_gpu_memory_bytes"] or 0) / 2**20 or None,
            "n_params": int(sum(p.numel() for p in net.parameters())),
            "cells": int(X.shape[0]),
        }
    )


def _celltypist_worker(args: tuple, queue: mp.Queue) -> None:
    atlas, threads = args
    sys.path.insert(0, str(HERE.parent / "scripts"))
    import anndata as ad
    import numpy as np

    from scatlas.evaluate.celltypist import run_celltypist
    from scatlas.models.data import selections
    from scatlas.models.normalize import log1p_cp10k

    adata = ad.read_h5ad(atlas)
    sel = selections(adata)
    X = log1p_cp10k(adata.X)
    ref, qry = np.flatnonzero(sel.train), np.flatnonzero(sel.held_out("query"))
    res = run_celltypist(X[ref], sel.cl_id[ref], X[qry], list(adata.var_names))
    if not res["available"]:
        queue.put({"model": "celltypist", "reason": res["reason"]})
        return
    queue.put(
        {
            "model": "celltypist",
            "solver": res["solver"],
            "n_train": len(ref),
            "train_cells_s": len(ref) / res["fit_seconds"],
            "infer_cells_s": len(qry) / res["predict_seconds"],
            "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def _run(target, args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells-per-type", type=int, default=500)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()

    import torch
    from synthetic_atlas import write_atlas

    with tempfile.TemporaryDirectory() as tmp:
        atlas = write_atlas(
            Path(tmp) / "atlas.h5ad", cells_per_type=args.cells_per_type, n_genes=args.genes
        )
        print(
            f"# model throughput: synthetic atlas {args.cells_per_type} cells/type/study, "
            f"{args.genes} genes; torch {torch.__version__}, "
            f"cuda {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}"
            f", {args.threads} CPU threads, {args.epochs} epochs, published architectures"
        )
        peer = _run(_celltypist_worker, (str(atlas), args.threads))
        rows = [
            _run(
                _model_worker,
                (m, str(atlas), str(Path(tmp) / m), args.epochs, args.threads, args.device),
            )
            for m in args.models.split(",")
        ]
    print(
        "\n| method | device | params | train cells/s | infer cells/s | max RSS MiB "
        "| GPU peak MiB | train / CellTypist fit | infer / CellTypist predict |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio_t = ratio_i = "-"
        if "train_cells_s" in peer:
            ratio_t = f"{r['train_cells_s'] / peer['train_cells_s']:.2f}"
            ratio_i = f"{r['infer_cells_s'] / peer['infer_cells_s']:.2f}"
        gpu = f"{r['gpu_peak_mib']:.0f}" if r["gpu_peak_mib"] else "-"
        print(
            f"| {r['model']} | {r['device']}{' (AMP)' if r['amp'] else ''} | {r['n_params']:,} "
            f"| {r['train_cells_s']:.0f} | {r['infer_cells_s']:.0f} | {r['max_rss_mib']:.0f} "
            f"| {gpu} | {ratio_t} | {ratio_i} |"
        )
    if "train_cells_s" in peer:
        print(
            f"| celltypist ({peer['solver']}) | cpu | - | {peer['train_cells_s']:.0f} "
            f"| {peer['infer_cells_s']:.0f} | {peer['max_rss_mib']:.0f} | - | 1 | 1 |"
        )
    else:
        print(f"| celltypist | unavailable: {peer['reason']} |")


if __name__ == "__main__":
    main()
