"""What the report shows, read from a run's ``results/`` and ``logs/`` (every part
optional: a run stopped early still gets a report of what it made)."""

from __future__ import annotations

import base64
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scatlas.reads.align import read_alignment_table
from scatlas.reads.quant import read_featurecounts


@dataclass
class RunFacts:
    """Everything the page shows; empty frames where the run made nothing."""

    studies: pd.DataFrame = field(default_factory=pd.DataFrame)
    catalog: pd.DataFrame = field(default_factory=pd.DataFrame)
    reads: pd.DataFrame = field(default_factory=pd.DataFrame)
    cells: pd.DataFrame = field(default_factory=pd.DataFrame)  # obs: study, cl_label, split
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_type: pd.DataFrame = field(default_factory=pd.DataFrame)
    confusion: pd.DataFrame = field(default_factory=pd.DataFrame)
    embeddings: dict[str, str] = field(default_factory=dict)  # method -> base64 PNG
    training: pd.DataFrame = field(default_factory=pd.DataFrame)
    de_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    de_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    release: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)


def _tsv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame()
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])


def read_catalog(path: Path) -> pd.DataFrame:
    """The catalog's studies (status and reason after ingestion)."""
    if not path.is_file():
        return pd.DataFrame()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return pd.read_sql_query("SELECT study, status, reason FROM studies", db)


def read_reads(results: Path) -> pd.DataFrame:
    """Per study: runs aligned ok / skipped / failed, the median alignment rate, and the
    share of aligned reads featureCounts assigned to a gene."""
    rows = []
    for table in sorted(results.glob("align/*/alignment.tsv")):
        study = table.parent.name
        align = read_alignment_table(table)
        rate = pd.to_numeric(align.get("alignment_rate"), errors="coerce")
        row = {
            "study": study,
            "runs": len(align),
            "ok": int((align["status"] == "ok").sum()),
            "skipped": int((align["status"] == "skipped").sum()),
            "failed": int((align["status"] == "failed").sum()),
            "median alignment rate": float(np.nanmedian(rate)) if rate.notna().any() else np.nan,
            "assigned": np.nan,
        }
        counts = results / "counts" / study / "counts.tsv"
        if counts.with_name("counts.tsv.summary").is_file():
            _, summary = read_featurecounts(counts)
            total = summary.sum(axis=0).sum()
            row["assigned"] = float(summary.loc["Assigned"].sum() / total) if total else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def read_cells(atlas: Path) -> pd.DataFrame:
    """The atlas' cells (study, cell type name, split), read from its obs only."""
    if not atlas.is_file():
        return pd.DataFrame()
    import anndata

    obs = anndata.read_h5ad(atlas, backed="r").obs
    label = "cl_label" if "cl_label" in obs else "cl_id"
    return pd.DataFrame(
        {
            "study": obs["study"].astype(str).to_numpy(),
            "cell type": obs[label]
            .astype(str)
            .replace({"": "(unmapped)", "nan": "(unmapped)"})
            .to_numpy(),
            "split": obs["split"].astype(str).to_numpy() if "split" in obs else "",
        }
    )


def read_training(results: Path) -> pd.DataFrame:
    """Per model: epochs run, training seconds and training cells per second."""
    rows = []
    for history in sorted(results.glob("models/*/history.tsv")):
        model = history.parent.name
        if model == "release":
            continue
        h = _tsv(history)
        if h.empty:
            continue
        rows.append(
            {
                "model": model,
                "epochs": len(h),
                "training seconds": float(h["seconds"].sum()) if "seconds" in h else np.nan,
                "training cells/s": float(h["train_cells_per_second"].median())
                if "train_cells_per_second" in h
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def read_de(de_dir: Path, max_terms: int) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The DE summary and the tables of its ``max_terms`` tested terms with most
    significant genes."""
    summary = _tsv(de_dir / "summary.tsv")
    if summary.empty:
        return summary, {}
    tested = summary[(summary["status"] == "tested") & (summary["contrast"] == "rest")]
    tested = tested.assign(_n=tested["n_up"] + tested["n_down"]).sort_values("_n", ascending=False)
    tables = {}
    for row in tested.head(max_terms).itertuples():
        table = _tsv(de_dir / str(row.file))
        if not table.empty:
            # the term's GO enrichment, when DE ran it (de.go), rides along in attrs
            go = _tsv(de_dir / str(row.file).replace(".tsv", ".go.tsv"))
            table.attrs["go"] = go
            tables[f"{row.cl_label} ({row.cl_id})"] = table
    return summary, tables


def collect(results: Path, publish_dir: Path | None = None, max_de_terms: int = 6) -> RunFacts:
    """Every part of the report that ``results`` holds."""
    results = Path(results)
    facts = RunFacts(
        studies=_tsv(results / "discover" / "studies.tsv"),
        catalog=read_catalog(results / "catalog.sqlite"),
        reads=read_reads(results),
        cells=read_cells(results / "atlas" / "atlas.h5ad"),
        metrics=_tsv(results / "evaluation" / "metrics.tsv"),
        per_type=_tsv(results / "evaluation" / "per_type_f1.tsv"),
        confusion=_tsv(results / "evaluation" / "confusion.tsv"),
        embeddings={
            png.stem.removeprefix("embedding_"): base64.b64encode(png.read_bytes()).decode("ascii")
            for png in sorted((results / "evaluation").glob("embedding_*.png"))
        },
        training=read_training(results),
    )
    facts.de_summary, facts.de_tables = read_de(results / "de", max_de_terms)
    record = results / "publish" / "release.json"
    if record.is_file():
        facts.release = json.loads(record.read_text())
        path = Path(str(facts.release.get("path") or ""))
        # the record's path is relative to the run's working directory (results/..)
        candidates = [path if path.is_absolute() else results.parent / path]
        if publish_dir is not None:
            candidates.append(Path(publish_dir) / path.name)
        found = [c / "manifest.json" for c in candidates if (c / "manifest.json").is_file()]
        if found:
            facts.manifest = json.loads(found[0].read_text())
    return facts
