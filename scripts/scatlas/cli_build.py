"""``scatlas build-reference``: a reference from one's own labelled cells (the CLI part)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scatlas.atlas import LABEL_KINDS


def _cmd_build(args: argparse.Namespace) -> int:
    from scatlas.atlas.labelled import LabelledInput
    from scatlas.release.build import BuildSettings, build_reference

    inputs = [
        LabelledInput(Path(p), args.labels, study_column=args.study, layer=args.layer)
        for p in args.input
    ]
    settings = BuildSettings(
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
        label_kind=args.label_kind,
        normalised=args.normalised,
        min_cells_per_type=args.min_cells,
        version=args.release_version,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        celltypist=not args.no_celltypist,
    )
    release = build_reference(
        inputs,
        Path(args.output),
        workdir=Path(args.workdir) if args.workdir else None,
        ontology_obo=args.ontology or None,
        settings=settings,
    )
    manifest = json.loads((release / "manifest.json").read_text(encoding="utf-8"))
    metrics = json.loads((release / "metrics.json").read_text(encoding="utf-8"))
    chosen = metrics.get("methods", {}).get(manifest["model"], {})
    figures = ", ".join(
        f"{k} {chosen[k]:.3f}"
        for k in ("accuracy", "macro_f1", "mafp_at_k")
        if chosen.get(k) is not None  # mafp_at_k: none for plain labels (no ontology)
    )
    print(
        f"published {release} ({manifest['n_cells']} cells, {manifest['n_genes']} genes, "
        f"model {manifest['model']}: {figures})\n"
        f"evaluation report: {release.parent.parent / (release.parent.name + '-build')}"
        f"/evaluation/report.html\n"
        f"annotate cells with: scatlas query --reference {release.parent / 'current'} "
        "--input cells.h5ad --output annotated.h5ad"
        if not args.workdir
        else f"published {release} (model {manifest['model']}: {figures})"
    )
    return 0


def add_build_command(sub) -> None:
    p = sub.add_parser(
        "build-reference",
        help="build and publish a reference from your own labelled cells",
        description="Labelled cells (h5ad, 10x h5 or 10x mtx folders) -> atlas -> models -> "
        "evaluation (study-held-out with two or more studies, else a stated cell split) -> "
        "a published release that `scatlas query` uses.",
    )
    p.add_argument(
        "--input",
        action="append",
        required=True,
        help="labelled cells: .h5ad, 10x .h5 or a 10x mtx folder (repeat for several files)",
    )
    p.add_argument("--labels", required=True, help="the obs column holding each cell's label")
    p.add_argument("--study", help="obs column of the study/batch (default: one study per file)")
    p.add_argument(
        "--label-kind",
        choices=LABEL_KINDS,
        default="auto",
        help="cl_id, cl_name, free_text (mapped to the Cell Ontology), plain (no ontology); "
        "auto (default) picks the first that maps every label, else plain",
    )
    p.add_argument("--layer", default="auto", help="expression to read (as scatlas query)")
    p.add_argument(
        "--normalised",
        action="store_true",
        help="the expression is log-normalised, not raw counts (used as it is)",
    )
    p.add_argument("--models", default="dense", help="comma-separated models (default dense)")
    p.add_argument(
        "--min-cells", type=int, default=10, help="least training cells of a type (default 10)"
    )
    p.add_argument("--output", required=True, help="the publish folder (releases + current)")
    p.add_argument("--workdir", help="intermediate results (default: OUTPUT-build beside it)")
    p.add_argument("--release-version", help="release name (default: the UTC date)")
    p.add_argument(
        "--ontology",
        help="the Cell Ontology: an OBO or cellxgene-ontology-guide JSON file, or "
        "cellxgene-ontology-guide[:vYYYY-MM-DD] (default: the pinned 2022 snapshot)",
    )
    p.add_argument("--no-celltypist", action="store_true", help="skip the CellTypist peer")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0, help="random seed of training (default 0)")
    p.set_defaults(func=_cmd_build)
