"""What every source's sample sheet shares: the study's context (organism, kept studies),
the sample filter, the technology of a sample, and the sheet's row fields."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scatlas.reads.barcodes import COUNTED
from scatlas.reads.chemistry import tenx_end
from scatlas.settings import Settings, as_settings
from scatlas.sources import geo
from scatlas.sources.http import Services
from scatlas.sources.sample_kind import classify
from scatlas.stage_io import join, read_rows


def characteristics_text(chars: Iterable[tuple[str, str]]) -> str:
    return "; ".join(f"{k}: {v}" if k else v for k, v in chars)


def run_fields(svc: Services, rec: Mapping[str, Any]) -> dict[str, str]:
    urls = [svc.map_url(u) for u in rec.get("fastq_ftp") or []]
    layout = (
        "PAIRED"
        if len(urls) == 2
        else "SINGLE"
        if len(urls) == 1
        else (rec.get("library_layout") or "SINGLE")
    )
    return {
        "run": rec["run_accession"],
        "experiment": rec.get("experiment_accession", ""),
        "library_layout": layout,
        "fastq_urls": join(urls),
        "fastq_md5": join(rec.get("fastq_md5") or []),
        "fastq_bytes": join(rec.get("fastq_bytes") or []),
    }


def sample_row(
    study: str, sample: Mapping[str, Any], technology: str, supplementary: Sequence[str]
) -> dict[str, Any]:
    tech, reason = technology_and_reason(sample)
    if technology == "matrix" and tech:  # its runs could be read, but it links none
        reason = "author matrix: the record links no SRA experiment"
    return {
        "study": study,
        "sample": sample["accession"],
        "title": sample.get("title", ""),
        "organism": sample.get("organism", ""),
        "source_name": sample.get("source_name", ""),
        "characteristics": characteristics_text(sample.get("characteristics", [])),
        "library_strategy": sample.get("library_strategy", ""),
        "library_source": sample.get("library_source", ""),
        "library_layout": "",
        "technology": technology,
        "run": "",
        "experiment": sample.get("experiment", ""),
        "fastq_urls": "",
        "fastq_md5": "",
        "fastq_bytes": "",
        "supplementary": join(dict.fromkeys(supplementary)),
        **kind_fields(sample),
        "technology_reason": reason,
    }


def kind_fields(sample: Mapping[str, Any]) -> dict[str, str]:
    """The sheet's ``SAMPLE_KIND_COLUMNS``: what the sample's record says it is."""
    kind = classify(sample)
    return {
        "cells": kind.cells,
        "library": kind.library,
        "chemistry": kind.chemistry,
        "kind_confidence": f"{min(kind.cells_confidence, kind.library_confidence):.2f}",
    }


@dataclass
class StudyContext:
    """What the query decided about the study being sheeted, and about the others.

    ``organism``: the one organism the study is ingested for (its studies.tsv row; empty:
    decided from the samples, first of ``organisms`` present). ``kept``: the studies the
    query kept (status ok), to tell which series owns a sample listed by several series.
    """

    organisms: list[str]
    organism: str = ""
    fingerprint: str = ""
    kept: set[str] = field(default_factory=set)


def study_context(
    cfg: Settings | Mapping[str, Any], study: str, studies_tsv: str | os.PathLike | None
) -> StudyContext:
    ctx = StudyContext(organisms=list(as_settings(cfg).discover.organisms))
    if studies_tsv is None or not Path(studies_tsv).is_file():
        return ctx
    st = os.stat(studies_tsv)
    kept, rows = _studies_table(str(studies_tsv), st.st_mtime_ns, st.st_size)
    ctx.kept = set(kept)
    if study in rows:
        ctx.organism, ctx.fingerprint = rows[study]
    return ctx


@functools.lru_cache(maxsize=2)
def _studies_table(
    path: str, mtime_ns: int, size: int
) -> tuple[frozenset[str], dict[str, tuple[str, str]]]:
    """The kept studies and each study's (organism, fingerprint), read once per version of
    the file (a process that sheets many studies would otherwise read it for each)."""
    rows = read_rows(path, ["study", "organism", "status"])
    kept = frozenset(r["study"] for r in rows if r["status"] == "ok")
    return kept, {r["study"]: (r["organism"], r.get("fingerprint", "")) for r in rows}


def study_organism(ctx: StudyContext, sample_organisms: Iterable[str]) -> str:
    """The organism the study is ingested for: discovery's choice, else the first configured
    organism among its samples."""
    if ctx.organism and ctx.organism.lower() in {o.lower() for o in ctx.organisms}:
        return ctx.organism
    present = {o.lower() for o in sample_organisms}
    return next((o for o in ctx.organisms if o.lower() in present), "")


def keep_sample(sample: Mapping[str, Any], ctx: StudyContext, organism: str) -> tuple[bool, str]:
    """Single-cell RNA-seq of the study's organism (samples of another configured organism
    in a mixed series are left out: one organism per study)."""
    ok, why = geo.is_single_cell_rna(sample, ctx.organisms)
    if ok and organism and str(sample.get("organism", "")).lower() != organism.lower():
        return False, (
            f"{sample['accession']}: organism {sample.get('organism')!r}; this study is "
            f"ingested for {organism} (one organism per study, discover.organisms order)"
        )
    return ok, why


def technology_of(sample: Mapping[str, Any]) -> str:
    """The sheet's ``technology`` of a sample (:func:`technology_and_reason`)."""
    return technology_and_reason(sample)[0]


def technology_and_reason(sample: Mapping[str, Any]) -> tuple[str, str]:
    """How a sample's runs are read, and why.

    ``smartseq`` (one cell per run: no droplet or pooled protocol named); a counted barcoded
    chemistry (``10x_v2``, ``10x_v3``, ``10x_5p_v2``, ``10x_5p_v3``, ``dropseq``: see
    scatlas.reads.barcodes) that the record names; ``10x`` / ``10x_5p`` when it names a 10x
    3′ / 5′ kit but not (or not one) version: the reads decide (scatlas.reads.detect); or ""
    with the reason ("author matrix only": other droplet and pooled protocols, both 3′ and
    5′ kits named, 10x Flex): such samples use the authors' matrices.
    """
    if not geo.is_droplet(sample):
        return "smartseq", "one cell per run: no droplet or pooled protocol named"
    chem = classify(sample).chemistry
    if chem in COUNTED:
        return COUNTED[chem], f"the record names {chem}"
    text = f"{geo.sample_text(sample)} {sample.get('protocol', '')}"
    ends = tenx_end(text)
    if chem in ("10x", "") and ends in ("3p", "5p"):
        tech = "10x" if ends == "3p" else "10x_5p"
        return tech, f"a 10x {ends[0]}′ kit of unstated version: the reads decide"
    why = {
        "": "no single counted chemistry named" if ends != "both" else "both 3′ and 5′ kits named",
        "10x": "both 3′ and 5′ kits named",
    }.get(chem, f"{chem} is not counted by scatlas")
    return "", f"author matrix only: {why} (scatlas counts 10x 3′/5′ v2-v3 and Drop-seq runs)"
