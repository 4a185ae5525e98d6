"""Build the report page from a run's results (``scatlas.report.collect``)."""

from __future__ import annotations

import html
import logging
from pathlib import Path

import pandas as pd

from scatlas.fileio import atomic_write_text
from scatlas.report import multiqc, plots
from scatlas.report.collect import RunFacts, collect
from scatlas.report.page import figure, page, section, table

log = logging.getLogger(__name__)

SECTIONS = ("run", "atlas", "evaluation", "de", "release")


def run_section(facts: RunFacts) -> str:
    parts = []
    if not facts.studies.empty:
        counts = facts.studies["status"].value_counts()
        parts.append(
            f"<p>{len(facts.studies)} studies found: "
            + ", ".join(f"{n} {html.escape(str(s))}" for s, n in counts.items())
            + ".</p>"
        )
        left_out = facts.studies[facts.studies["status"] != "ok"]
        parts.append("<h3>Studies left out at discovery, and why</h3>")
        parts.append(table(left_out[["study", "status", "reason", "title"]]))
    if not facts.catalog.empty:
        failed = facts.catalog[facts.catalog["status"] != "ok"]
        parts.append("<h3>Studies the catalog holds as not ok (skipped or failed), and why</h3>")
        parts.append(table(failed))
    if not facts.reads.empty:
        parts.append("<h3>Alignment (HISAT2) and assignment to genes (featureCounts)</h3>")
        parts.append(table(facts.reads))
        parts.append(
            '<p class="muted">HISAT2 and featureCounts summaries for MultiQC: '
            "<code>multiqc results/report/multiqc</code>.</p>"
        )
    if not facts.cells.empty:
        per_study = pd.crosstab(facts.cells["study"], facts.cells["split"])
        parts.append(
            figure(
                plots.stacked_bars(per_study, "cells per study", "cells"),
                "cells per study, by split",
            )
        )
    return section("run", "Run summary", parts)


def atlas_section(facts: RunFacts) -> str:
    if facts.cells.empty:
        return section("atlas", "Atlas", ['<p class="muted">no atlas</p>'])
    by = pd.crosstab(facts.cells["cell type"], facts.cells["study"])
    by = by.loc[by.sum(axis=1).sort_values(ascending=False).index]
    parts = [
        f"<p>{len(facts.cells):,} cells of {by.shape[0]} cell types from {by.shape[1]} studies.</p>",
        figure(
            plots.stacked_bars(by.head(40), "cells per cell type, by study", "cells"),
            "cells per cell type, by study",
        ),
        table(by, index=True),
    ]
    return section("atlas", "Atlas", parts)


def evaluation_section(facts: RunFacts) -> str:
    parts = [
        '<p>Study-held-out evaluation (details and embedding plots: <a href="../evaluation/report.html">evaluation report</a>).</p>'
    ]
    if not facts.metrics.empty:
        parts.append(table(facts.metrics))
    if not facts.training.empty:
        parts.append("<h3>Training</h3>" + table(facts.training))
    if not facts.per_type.empty:
        f1 = facts.per_type.set_index("cell type").drop(
            columns=["cl_id", "n_query"], errors="ignore"
        )
        parts.append(
            figure(
                plots.heatmap(f1, "kNN annotation F1 per cell type"), "F1 per cell type and method"
            )
        )
    parts.extend(_confusion_figures(facts.confusion))
    if facts.embeddings:
        parts.append("<h3>Embeddings of the held-out cells, by cell type and by study</h3>")
        parts.extend(figure(png, name) for name, png in facts.embeddings.items())
    return section("evaluation", "Evaluation", parts)


def _confusion_figures(confusion: pd.DataFrame) -> list[str]:
    """Per method: true types (rows) against predicted types, as shares of the row."""
    if confusion.empty:
        return []
    out = ["<h3>Confusion matrices (rows: true type; share of its query cells)</h3>"]
    for method, rows in confusion.groupby("method", sort=False):
        matrix = rows.pivot_table(
            index="true_label",
            columns="predicted_label",
            values="cells",
            aggfunc="sum",
            fill_value=0,
        )
        share = matrix.div(matrix.sum(axis=1), axis=0)
        out.append(figure(plots.heatmap(share, str(method)), f"{method}: confusion matrix"))
    return out


def de_section(facts: RunFacts) -> str:
    if facts.de_summary.empty:
        return section("de", "Differential expression", ['<p class="muted">no DE</p>'])
    tested = facts.de_summary[facts.de_summary["status"] == "tested"]
    parts = [
        f"<p>{len(tested)} of {len(facts.de_summary)} contrasts tested across studies.</p>",
        table(
            facts.de_summary[
                ["cl_id", "cl_label", "contrast", "n_studies", "n_up", "n_down", "status", "reason"]
            ]
        ),
    ]
    for name, t in facts.de_tables.items():
        top = t[t["significant"].astype(bool)].head(10)
        cols = [
            c
            for c in ("gene_symbol", "gene", "direction", "stouffer_fdr", "n_replicated")
            if c in t
        ]
        go = t.attrs.get("go")
        go_part = (
            "<p>GO enrichment of the up genes (limma goana):</p>"
            + table(go.head(5)[[c for c in ("go_id", "term", "n_up", "padj") if c in go]])
            if go is not None and not go.empty
            else ""
        )
        parts.append(
            f"<h3>{html.escape(name)}</h3>"
            + figure(plots.volcano(t, name), f"{name}: volcano")
            + table(top[cols])
            + go_part
        )
    return section("de", "Differential expression", parts)


def release_section(facts: RunFacts) -> str:
    if not facts.release:
        return section("release", "Release", ['<p class="muted">no release record</p>'])
    r, m = facts.release, facts.manifest
    rows = {
        "version": r.get("version") or r.get("candidate_version"),
        "published": r.get("published"),
        "gate": r.get("reason"),
        "model": m.get("model"),
        "cells": m.get("n_cells"),
        "genes": m.get("n_genes"),
        "index": m.get("index_kind"),
        "size (MB)": round(sum(f.get("bytes", 0) for f in m.get("files", {}).values()) / 1e6, 2)
        if m
        else None,
    }
    parts = [
        table(pd.DataFrame({"": list(rows), "value": pd.Series(list(rows.values()), dtype=object)}))
    ]
    if m.get("software"):
        soft = pd.DataFrame(
            {"software": list(m["software"]), "version": list(m["software"].values())}
        )
        parts.append("<h3>Built with</h3>" + table(soft))
    return section("release", "Release", parts)


def build_report(
    results: Path, logs: Path, out_html: Path, multiqc_dir: Path, publish_dir: Path | None = None
) -> Path:
    """Write the report page and the MultiQC folder; returns the page's path."""
    facts = collect(Path(results), publish_dir)
    n = multiqc.export(Path(results), Path(logs), Path(multiqc_dir))
    log.info("%d HISAT2/featureCounts summaries exported for MultiQC to %s", n, multiqc_dir)
    builders = (run_section, atlas_section, evaluation_section, de_section, release_section)
    titles = ("Run", "Atlas", "Evaluation", "DE", "Release")
    sections = [(k, t, b(facts)) for k, t, b in zip(SECTIONS, titles, builders, strict=True)]
    text = page(
        "scatlas run report",
        "What this run found, kept and left out (with the reasons), how the reads aligned, "
        "the atlas it assembled, how the models did on held-out studies, the genes each "
        "cell type expresses apart, and the release it published.",
        sections,
    )
    atomic_write_text(Path(out_html), text)
    log.info("report: %s", out_html)
    return Path(out_html)
