"""What each sample is, against a hand-labelled gold, beside the naive rules of before.

Gold: ``benchmarks/data/sample_gold.tsv``, real records each labelled by reading it (single
cell, bulk or spatial; library kind; chemistry; a note), dev and test splits by study:
GEO family SOFT files of ``../shared/data/geo`` (parsed by ``scatlas.sources.geo``),
ArrayExpress SDRFs of ``benchmarks/data/arrayexpress`` (parsed by
``scatlas.sources.arrayexpress`` with the study's curated experiment type, as the sample
sheet reads them), GEO MINiML sample records of ``benchmarks/data/geo`` and the sample titles of an E-utilities esummary in
``../shared/data/geo/ffq``. Prints, per split, the accuracy of each field (chemistry over
the samples whose record states one), the confusion tables, and how many samples that are
not single-cell RNA-seq each method accepts, for ``scatlas.sources.sample_kind`` and for
the naive rules scatlas used before (library source transcriptomic, strategy RNA-Seq or
OTHER, "bulk" not written; every transcriptomic library taken for gene expression; no
chemistry but the 10x v2/v3 and Drop-seq words of ``barcodes.chemistry_from_text``).

    .venv/bin/python benchmarks/bench_samples.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))

import pandas as pd  # noqa: E402

from scatlas.reads.barcodes import chemistry_from_text  # noqa: E402
from scatlas.sources import arrayexpress as ae  # noqa: E402
from scatlas.sources.geo import is_single_cell_rna, parse_family_soft  # noqa: E402
from scatlas.sources.miniml import parse_miniml_samples  # noqa: E402
from scatlas.sources.sample_kind import classify, record_text  # noqa: E402

GOLD = HERE / "data" / "sample_gold.tsv"
AE_DIR = HERE / "data" / "arrayexpress"
GEO_DIR = HERE / "data" / "geo"
#: the naive rules' chemistry names, as the gold spells them
_NAIVE_CHEMISTRY = {"10x_v2": "10x_3p_v2", "10x_v3": "10x_3p_v3", "dropseq": "dropseq"}
ORGANISMS = ["Homo sapiens", "Mus musculus"]


def naive(sample: dict) -> dict[str, str]:
    """The rules before the classifier: no chemistry, bulk only when the text says so."""
    source = sample.get("library_source", "").lower()
    strategy = sample.get("library_strategy", "").lower()
    rna = source.startswith("transcriptomic") and strategy in ("rna-seq", "other")
    text = " ".join([sample.get("title", ""), sample.get("source_name", "")])
    bulk = bool(re.search(r"\bbulk\b", text, re.I))
    chemistry = chemistry_from_text(record_text(sample)) or ""
    return {
        "cells": "bulk" if bulk else ("single_cell" if rna else "unknown"),
        "library": "gene_expression" if rna else ("atac" if strategy == "atac-seq" else "other"),
        "chemistry": _NAIVE_CHEMISTRY.get(chemistry, ""),
        "accepted": str(rna and not bulk),
    }


def ours(sample: dict) -> dict[str, str]:
    kind = classify(sample)
    return {
        "cells": kind.cells,
        "library": kind.library,
        "chemistry": kind.chemistry,
        "accepted": str(is_single_cell_rna(sample, ORGANISMS)[0]),
    }


def records(data: Path, gold: pd.DataFrame) -> dict[str, dict]:
    """The parsed sample record of every gold row, by the gold's accession."""
    kinds = dict(zip(gold["series"], gold["record"], strict=False))
    out: dict[str, dict] = {}
    for study, record in sorted(kinds.items()):
        if record == "geo-soft":
            out.update(_soft_samples(data, study))
        elif record == "arrayexpress-sdrf":
            out.update(_sdrf_samples(study))
        elif record == "geo-miniml":
            out.update({s["accession"]: s for s in parse_miniml_samples(GEO_DIR / f"{study}.xml")})
        else:
            out.update(_esummary_samples(data, study))
    return out


def _sdrf_samples(acc: str) -> dict[str, dict]:
    studies = pd.read_csv(AE_DIR / "studies.tsv", sep="\t", dtype=str, index_col=0)
    path = AE_DIR / f"{acc}.sdrf.txt"
    return {
        f"{acc}/{rec['source_name']}": ae.sdrf_sample(
            rec, rec["ena_sample"], studies.loc[acc, "experiment_type"]
        )
        for rec in ae.parse_sdrf(path.read_text(), where=str(path))
    }


def _esummary_samples(data: Path, gse: str) -> dict[str, dict]:
    """Sample titles of an E-utilities esummary (title only: no library fields)."""
    doc = json.loads((data / "geo" / "ffq" / f"{gse}_summary.txt").read_text())
    result = doc["result"]
    series = result[result["uids"][0]]
    return {
        s["accession"]: {"accession": s["accession"], "title": s["title"]}
        for s in series["samples"]
    }


def _soft_samples(data: Path, gse: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{gse}_family.soft"
        path.write_bytes(
            (data / "geo" / f"{gse}_GSE.soft").read_bytes()
            + (data / "geo" / f"{gse}_GSM.soft").read_bytes()
        )
        for s in parse_family_soft(path)["samples"]:
            out.setdefault(s["accession"], s)
    return out


def _pairs(gold: pd.Series, called: pd.Series) -> str:
    pairs = Counter(zip(gold, called, strict=True))
    return ", ".join(f"{g or '-'} -> {p or '-'}: {n}" for (g, p), n in sorted(pairs.items()))


def report(gold: pd.DataFrame, calls: dict[str, pd.DataFrame]) -> None:
    for split, rows in gold.groupby("split", sort=False):
        stated = rows[rows["chemistry"] != ""]
        print(f"\n## {split}: {len(rows)} samples ({rows['series'].nunique()} studies)")
        print(
            "| method | cells accuracy | library accuracy | chemistry accuracy (where stated) "
            "| not scRNA-seq yet accepted | scRNA-seq accepted |"
        )
        print("|---|---|---|---|---|---|")
        for name, frame in calls.items():
            c = frame.loc[rows["accession"]]
            cells = (c["cells"].to_numpy() == rows["cells"].to_numpy()).mean()
            library = (c["library"].to_numpy() == rows["library"].to_numpy()).mean()
            chem = frame.loc[stated["accession"], "chemistry"].to_numpy() == stated["chemistry"]
            target = (
                (rows["cells"] == "single_cell") & (rows["library"] == "gene_expression")
            ).to_numpy()
            taken = (c["accepted"] == "True").to_numpy()
            # title-only records (esummary) have no library fields to accept or refuse
            scored = (rows["record"] != "geo-esummary").to_numpy()
            print(
                f"| {name} | {cells:.1%} | {library:.1%} | {chem.mean():.1%} of {len(stated)} "
                f"| {(taken & ~target & scored).sum()} of {(~target & scored).sum()} "
                f"| {(taken & target & scored).sum()} of {(target & scored).sum()} |"
            )
        for name, frame in calls.items():
            c = frame.loc[rows["accession"]]
            print(f"- {name} cells (gold -> called): {_pairs(rows['cells'], c['cells'])}")
            print(f"- {name} library (gold -> called): {_pairs(rows['library'], c['library'])}")
            print(
                f"- {name} chemistry where stated (gold -> called): "
                f"{_pairs(stated['chemistry'], frame.loc[stated['accession'], 'chemistry'])}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    args = ap.parse_args()
    gold = pd.read_csv(GOLD, sep="\t", dtype=str, keep_default_na=False)
    samples = records(args.data, gold)
    calls = {
        name: pd.DataFrame({acc: fn(samples[acc]) for acc in gold["accession"]}).T
        for name, fn in (("scatlas", ours), ("naive (before)", naive))
    }
    kinds = Counter(gold["record"])
    print(
        f"# sample classification: {len(gold)} hand-labelled samples ({GOLD.name}): "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    )
    report(gold, calls)


if __name__ == "__main__":
    main()
