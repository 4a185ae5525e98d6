"""Real-data evaluation: every model against the baselines and CellTypist, in one run.

For each public labelled set (``scatlas.realdata``: PBMC sorted, pancreas Wang -> Xin,
CEL-seq2 cell lines plates 1+2 -> 3) the four models are trained on the set's training
cells (one type held out), then all methods are scored on the same query cells with the same
exact kNN search: MAP@k, MAFP@k, kNN accuracy, median per-type F1, novelty AUROC of the
held-out type; CellTypist (trained on the same cells) for annotation, with its time. Each
model's figures are also printed as ratios to the better baseline (PCA or lognorm).

    .venv/bin/python benchmarks/eval_real.py [--sets pbmc,pancreas,celllines] [--epochs 30]
    (also celllines-plate: plate 1 trains, the whole of plate 2 validates and calibrates)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
sys.path.insert(0, str(HERE.parent / "tests"))  # realdata: the real labelled sets

import torch  # noqa: E402
from realdata import SETS, eval_set, load_set, release_novelty, training_data  # noqa: E402

from scatlas.evaluate.metrics import compare_methods  # noqa: E402
from scatlas.models.io import load_model  # noqa: E402
from scatlas.models.trainer import fit  # noqa: E402
from scatlas.ontology import load_ontology  # noqa: E402

#: per-model parameters for these small sets (CPU-sized); the rest are the models' defaults
PARAMS: dict[str, dict] = {
    "dense": {"hidden": [1136, 100], "dropout": 0.1, "batch_size": 64, "lr": 1e-3},
    "siamese": {"batch_size": 64, "lr": 1e-3},
    "triplet": {"hidden": [512, 512, 512], "triplet_weight": 0.5, "margin": 0.2, "batch_size": 256},
    "deephash": {"hidden": [512, 256, 128, 128], "bits": 32, "lr": 1e-3, "batch_size": 64},
}
COLUMNS = ["map_at_k", "mafp_at_k", "accuracy", "median_f1", "novelty_auroc", "own_accuracy"]


def fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def run_set(
    name: str,
    data: Path,
    cl,
    epochs: int,
    patience: int,
    k: int,
    workdir: Path,
    defaults: bool = False,
) -> dict:
    rs = load_set(name, data, cl)
    ontology = None if name.startswith("celllines") else cl
    print(
        f"\n## {name}: {rs.train_X.shape[0]} train, {rs.val_X.shape[0]} validation, "
        f"{rs.query_X.shape[0]} query, {rs.novel_X.shape[0]} novel cells, "
        f"{len(rs.genes)} genes, input {rs.input_kind}"
    )
    for note in rs.notes:
        print(f"- {note}")
    models, train_info = {}, {}
    for model, params in PARAMS.items():
        # --defaults: the models' published defaults (METHODS.md), as the workflow trains them
        p = {**({} if defaults else params), "epochs": epochs, "patience": patience}
        defaults_norm = {"siamese": "max_scaled"}.get(model, "log1p_cp10k")
        td = training_data(rs, defaults_norm, ontology)
        out = workdir / name / model
        t0 = time.perf_counter()
        info = fit(model, td, out, params=p, seed=0, device="auto")
        train_info[model] = {
            "seconds": time.perf_counter() - t0,
            "best_epoch": info["best_epoch"],
            "epochs_run": info["epochs_run"],
            "train_cells_per_second": info["train_cells_per_second"],
        }
        models[model] = load_model(out)
        flags = release_novelty(rs, out, ontology=ontology)
        flags["backoff"] = backoff_figures(flags.pop("annotated"), rs.query_labels, ontology)
        train_info[model]["release_novelty"] = flags
    results, _ = compare_methods(eval_set(rs), models, k=k, ontology=ontology)
    print(
        f"\n| method | MAP@{k} | MAFP@{k} | kNN accuracy | median F1 | novelty AUROC "
        "| own-head accuracy | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for method, r in results.items():
        if r.get("available") is False:
            print(f"| {method} | unavailable: {r['reason']} |")
            continue
        secs = (
            train_info[method]["seconds"]
            if method in train_info
            else (r.get("fit_seconds") or 0) + (r.get("predict_seconds") or 0)
        )
        print(
            f"| {method} ({r['kind']}) | "
            + " | ".join(fmt(r.get(c)) for c in COLUMNS)
            + f" | {secs:.1f} |"
        )
    _print_release_novelty(name, train_info)
    print(f"\nratios model / best baseline (per figure; > 1: the model wins) on {name}:")
    for model in PARAMS:
        parts = []
        for c in COLUMNS[:5]:
            base = [results[b].get(c) for b in ("pca", "lognorm") if results[b].get(c) is not None]
            v = results[model].get(c)
            if v is None or not base or max(base) == 0:
                continue
            parts.append(f"{c} {v / max(base):.2f}")
        peer = results.get("celltypist", {})
        if peer.get("available"):
            parts.append(f"accuracy/CellTypist {results[model]['accuracy'] / peer['accuracy']:.2f}")
        print(f"- {model}: " + ", ".join(parts))
    return {"results": results, "training": train_info, "notes": rs.notes}


def backoff_figures(annotated, truth, ontology) -> dict:
    """Of the known query cells answered at a common ancestor: how many, the share whose
    answer is on the true type's lineage (the type or an ancestor), the share whose winner
    was right."""
    n = len(truth)
    level = annotated.obs["scatlas_answer_level"].to_numpy()[:n]
    answer = annotated.obs["scatlas_answer_id"].to_numpy()[:n]
    winner = annotated.obs["scatlas_cell_type_id"].to_numpy()[:n]
    backed = level == "ancestor"
    if not backed.any() or ontology is None:
        return {"n": int(backed.sum()), "on_lineage": None, "winner_right": None}
    on = [
        a == t or ontology.is_ancestor(a, t)
        for a, t in zip(answer[backed], truth[backed], strict=True)
    ]
    return {
        "n": int(backed.sum()),
        "on_lineage": float(sum(on) / len(on)),
        "winner_right": float((winner[backed] == truth[backed]).mean()),
    }


def _print_release_novelty(name: str, train_info: dict) -> None:
    """The novelty flag as a release sets it (threshold from held-out reference cells)."""
    print(
        f"\nnovelty as a release flags it on {name} (threshold: quantile 0.99 of held-out "
        "reference cells' nearest distances; targets AUROC >= 0.9, known flagged <= 5%):\n"
    )
    print(
        "| model | AUROC (nearest distance) | known flagged | novel flagged | calibration "
        "| backed off to an ancestor | on the true lineage | their winner right |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for model, t in train_info.items():
        f = t["release_novelty"]
        cal = f["calibration"]
        b = f["backoff"]
        print(
            f"| {model} | {fmt(f['novelty_auroc'])} | {f['known_flagged']:.1%} | "
            f"{f['novel_flagged']:.1%} | {cal['cells']} cells, nearest {cal['neighbours']} "
            f"(n={cal['n_cells']}) | {b['n']} | {fmt(b['on_lineage'])} | "
            f"{fmt(b['winner_right'])} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="write all figures here")
    ap.add_argument(
        "--defaults",
        action="store_true",
        help="train with the models' published defaults instead of PARAMS (small-set sizes)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    cl = load_ontology(args.data / "ontology" / "cl-basic_2022-12-15.obo")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"# real-data evaluation (torch {torch.__version__}, device {device}, "
        f"{args.threads} threads, epochs <= {args.epochs}, patience {args.patience})"
    )
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            out[name] = run_set(
                name,
                args.data,
                cl,
                args.epochs,
                args.patience,
                args.k,
                Path(tmp),
                args.defaults,
            )
    if args.json:

        def clean(o):
            if isinstance(o, dict):
                return {k: clean(v) for k, v in o.items()}
            if isinstance(o, list | tuple):
                return [clean(v) for v in o]
            return o.item() if hasattr(o, "item") else o

        args.json.write_text(json.dumps(clean(out), indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
