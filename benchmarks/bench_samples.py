"""What each sample is, against a hand-labelled gold, beside the naive rules of before.

Gold: ``benchmarks/data/sample_gold.tsv`` (real GEO records of ``../shared/data/geo``, each
sample labelled by reading its record: single cell or bulk, library kind, chemistry, a
note; dev and test splits by series). Prints, per split, the accuracy of each field, the
confusion tables, and how many bulk or non-RNA samples each method accepts as single-cell
RNA-seq, for ``scatlas.sources.sample_kind`` and for the naive rules scatlas used before
(library source transcriptomic, strategy RNA-Seq or OTHER, "bulk" not written; every
transcriptomic library taken for gene expression).

    .venv/bin/python benchmarks/bench_samples.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))

import pandas as pd  # noqa: E402

from scatlas.sources.geo import is_single_cell_rna, parse_family_soft  # noqa: E402
from scatlas.sources.sample_kind import classify  # noqa: E402

GOLD = HERE / "data" / "sample_gold.tsv"
ORGANISMS = ["Homo sapiens", "Mus musculus"]


def naive(sample: dict) -> dict[str, str]:
    """The rules before the classifier: no chemistry, bulk only when the text says so."""
    source = sample.get("library_source", "").lower()
    strategy = sample.get("library_strategy", "").lower()
    rna = source.startswith("transcriptomic") and strategy in ("rna-seq", "other")
    text = " ".join([sample.get("title", ""), sample.get("source_name", "")])
    bulk = bool(re.search(r"\bbulk\b", text, re.I))
    return {
        "cells": "bulk" if bulk else ("single_cell" if rna else "unknown"),
        "library": "gene_expression" if rna else ("atac" if strategy == "atac-seq" else "other"),
        "accepted": str(rna and not bulk),
    }


def ours(sample: dict) -> dict[str, str]:
    kind = classify(sample)
    return {
        "cells": kind.cells,
        "library": kind.library,
        "accepted": str(is_single_cell_rna(sample, ORGANISMS)[0]),
    }


def records(data: Path, series: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for gse in series:
            path = Path(tmp) / f"{gse}_family.soft"
            path.write_bytes(
                (data / "geo" / f"{gse}_GSE.soft").read_bytes()
                + (data / "geo" / f"{gse}_GSM.soft").read_bytes()
            )
            for s in parse_family_soft(path)["samples"]:
                out.setdefault(s["accession"], s)
    return out


def report(gold: pd.DataFrame, calls: dict[str, pd.DataFrame]) -> None:
    for split, rows in gold.groupby("split", sort=False):
        print(f"\n## {split}: {len(rows)} samples ({rows['series'].nunique()} series)")
        print(
            "| method | cells accuracy | library accuracy | bulk or non-RNA accepted as scRNA-seq |"
        )
        print("|---|---|---|---|")
        for name, frame in calls.items():
            c = frame.loc[rows["accession"]]
            cells = (c["cells"].to_numpy() == rows["cells"].to_numpy()).mean()
            library = (c["library"].to_numpy() == rows["library"].to_numpy()).mean()
            wrong = (
                (c["accepted"] == "True").to_numpy() & (rows["cells"] != "single_cell").to_numpy()
            ).sum()
            print(f"| {name} | {cells:.1%} | {library:.1%} | {wrong} of {len(rows)} |")
        for name, frame in calls.items():
            c = frame.loc[rows["accession"]]
            pairs = Counter(zip(rows["library"], c["library"], strict=True))
            print(
                f"- {name} library (gold -> called): "
                + ", ".join(f"{g} -> {p}: {n}" for (g, p), n in sorted(pairs.items()))
            )
            pairs = Counter(zip(rows["cells"], c["cells"], strict=True))
            print(
                f"- {name} cells (gold -> called): "
                + ", ".join(f"{g} -> {p}: {n}" for (g, p), n in sorted(pairs.items()))
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    args = ap.parse_args()
    gold = pd.read_csv(GOLD, sep="\t", dtype=str, keep_default_na=False)
    samples = records(args.data, sorted(gold["series"].unique()))
    calls = {
        name: pd.DataFrame({acc: fn(samples[acc]) for acc in gold["accession"]}).T
        for name, fn in (("scatlas", ours), ("naive (before)", naive))
    }
    print(f"# sample classification: {len(gold)} hand-labelled GEO samples ({GOLD.name})")
    print("the gold holds no single-cell sample yet (see benchmarks/data/README.md): it measures")
    print("what is refused, not what is kept; chemistry is not scored (no sample states one)")
    report(gold, calls)


if __name__ == "__main__":
    main()
