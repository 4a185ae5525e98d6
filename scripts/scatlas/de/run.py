"""DE for every Cell Ontology term of the atlas: per study, then meta-analysis across studies.

For term t in a study, the *in* group is the cells labelled t or a descendant of t. Two
contrasts are tested:

* ``rest``: against the study's other labelled cells, leaving out cells labelled with an
  ancestor of t (a "T cell" may well be the "CD4-positive T cell" under test) and
  unlabelled cells;
* ``siblings``: against the cells of t's ontology siblings (other children of t's parents,
  with their descendants, never t's own ancestors or descendants), when a study has them.

A study is tested when both groups have at least ``min_cells`` cells; a contrast is
meta-analysed when at least ``min_studies`` studies were tested. Terms are the labels
present in the atlas (all splits: DE describes the whole reference). Cells of studies that
published normalised values instead of counts (``obs["normalised"]``) are left out: the
tests compare counts.

Outputs in ``out_dir``: ``{CL_xxxxxxx}.tsv`` (rest) and ``{CL_xxxxxxx}.siblings.tsv`` per
meta-analysed contrast, ``{CL_xxxxxxx}.go.tsv`` with GO enrichment (optional),
``summary.tsv`` (one row per term and contrast, tested or not, with the reason, the
method, the fold-change unit and the per-study units), ``README.md`` (every file's
columns) and ``studies.tsv`` (one row per term, contrast and study
that has cells of the term). Faults stay local: R missing (fallback to Wilcoxon, named in
the output, or every contrast "not tested"), an R error in a study (that contrast "not
tested" with R's message), all-zero cells (left out), a term in one study only.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm import tqdm

from scatlas.de.meta import meta_analyse
from scatlas.de.per_study import LOGFC_UNITS, METHODS, R_METHODS, study_de
from scatlas.de.rbridge import RUnavailable, r_package
from scatlas.de.rcall import RError
from scatlas.de.readme import write_readme
from scatlas.errors import InputError
from scatlas.fileio import atomic_path
from scatlas.logs import progress_enabled
from scatlas.ontology import cached_ontology
from scatlas.settings import AtlasSettings, DESettings

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    "cl_id",
    "cl_label",
    "contrast",
    "method",
    "n_studies",
    "n_cells",
    "n_up",
    "n_down",
    "n_conservative",
    "status",
    "reason",
    "logfc_unit",
    "units",
    "file",
    "go",
]
STUDY_COLUMNS = [
    "cl_id",
    "contrast",
    "study",
    "n_in",
    "n_out",
    "method",
    "unit",
    "n_units_in",
    "n_units_out",
    "status",
    "note",
]
CONTRASTS = ("rest", "siblings")
_CL_ID = re.compile(r"^CL:\d{7}\Z", re.ASCII)


def term_file_name(cl_id: str, kind: str = "") -> str:
    """``CL:0000236`` -> ``CL_0000236.tsv``; with ``kind`` ("siblings", "go")
    ``CL_0000236.siblings.tsv`` (ids are validated before becoming paths)."""
    if not _CL_ID.match(cl_id):
        raise InputError(f"not a Cell Ontology id: {cl_id!r}", field="cl_id")
    if kind not in ("", "siblings", "go"):
        raise ValueError(f"unknown DE file kind {kind!r}")
    return cl_id.replace(":", "_") + (f".{kind}" if kind else "") + ".tsv"


def _write_tsv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path, suffix=".tsv") as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def resolve_method(method: str, fallback: bool) -> tuple[str, str]:
    """(method to run, note). An R method whose packages cannot be loaded becomes
    ``wilcoxon`` when ``fallback`` is on; otherwise RUnavailable propagates."""
    if method not in METHODS:
        raise InputError(
            f"unknown DE method {method!r}; supported: {', '.join(METHODS)}", field="de.method"
        )
    if method not in R_METHODS:
        return method, ""
    try:
        for pkg in ("edgeR", "limma") if method == "limma_voom" else ("edgeR",):
            r_package(pkg)
    except RUnavailable as exc:
        if not fallback:
            raise
        log.warning("%s unavailable, falling back to wilcoxon: %s", method, exc)
        return "wilcoxon", f"fallback from {method}: {exc}"
    return method, ""


def siblings_of(onto, term: str) -> set[str]:
    """Other children of ``term``'s parents, never ``term``'s ancestors or descendants."""
    sib = set().union(*(onto.children(p) for p in onto.parents(term)))
    related = onto.ancestors(term) | onto.descendants(term, include_self=True)
    return sib - related


@dataclass
class _Contrast:
    results: dict[str, pd.DataFrame] = field(default_factory=dict)
    n_tested: dict[str, int] = field(default_factory=dict)
    sizes: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    n_in: int = 0
    r_error: str = ""


@dataclass(frozen=True)
class _Atlas:
    """What DE reads of the atlas: counts, genes, and per cell its label and study."""

    X: sp.csr_matrix
    genes: np.ndarray
    symbols: pd.Series
    labels: np.ndarray  # "" for unlabelled cells and for author-normalised studies
    all_labels: np.ndarray  # the labels of every cell
    studies: np.ndarray
    samples: np.ndarray | None
    normalised: frozenset[str]  # studies whose values are author-normalised, not counts

    def rows_by_study(self) -> dict[str, np.ndarray]:
        return {s: np.flatnonzero(self.studies == s) for s in sorted(set(self.studies))}


@dataclass(frozen=True)
class _Plan:
    """How to test: the settings and the method resolved against what R can load."""

    method: str  # the test that runs
    label: str  # the method as the summary names it (with a fallback note)
    r_missing: str  # why nothing can be tested, when R is missing and fallback is off
    min_cells: int
    fdr: float
    min_studies: int
    gene_filter: str
    siblings: bool
    go: bool
    organism: str


def _read_atlas(atlas_h5ad: str | os.PathLike) -> _Atlas:
    try:
        adata = anndata.read_h5ad(atlas_h5ad)
    except (OSError, KeyError) as exc:
        raise InputError(f"not a readable h5ad file: {exc}", path=str(atlas_h5ad)) from exc
    obs = adata.obs
    for col in ("study", "cl_id"):
        if col not in obs:
            raise InputError("missing obs column", path=str(atlas_h5ad), field=col)
    all_labels = obs["cl_id"].astype(str).replace("nan", "").to_numpy()
    studies = obs["study"].astype(str).to_numpy()
    labels, normalised = all_labels, frozenset()
    if "normalised" in obs:  # counts-based tests: author-normalised cells take no part
        flag = obs["normalised"].astype(bool).to_numpy()
        normalised = frozenset(studies[flag])
        labels = np.where(flag, "", all_labels)
    symbols = (
        adata.var["gene_symbol"].astype(str).reindex(adata.var_names)
        if "gene_symbol" in adata.var
        else pd.Series("", index=adata.var_names)
    )
    return _Atlas(
        X=sp.csr_matrix(adata.X),
        genes=adata.var_names.astype(str).to_numpy(),
        symbols=symbols,
        labels=labels,
        all_labels=all_labels,
        studies=studies,
        samples=obs["sample"].astype(str).to_numpy() if "sample" in obs else None,
        normalised=normalised,
    )


def _resolve_plan(method: str, fallback: bool, **settings) -> _Plan:
    try:
        used, note = resolve_method(method, fallback)
        r_missing = ""
    except RUnavailable as exc:
        used, note, r_missing = method, "", f"R unavailable for {method}: {exc}"
        log.error("%s; every term is marked not tested (de.fallback is off)", r_missing)
    label = used + (f" ({note})" if note else "")
    return _Plan(method=used, label=label, r_missing=r_missing, **settings)


def _terms(atlas: _Atlas, onto, obo, atlas_h5ad, terms: list[str] | None) -> list[str]:
    """The labels present in the atlas (all in the ontology), restricted to ``terms``."""
    present = sorted({t for t in atlas.labels if t})
    unknown = [t for t in present if t not in onto]
    if unknown:
        raise InputError(
            f"terms not in the ontology {obo}: {unknown[:5]}", path=str(atlas_h5ad), field="cl_id"
        )
    return present if terms is None else [t for t in present if t in set(terms)]


def run_de(
    atlas_h5ad: str | os.PathLike,
    obo: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    settings: DESettings | None = None,
    organism: str = AtlasSettings.organism,
    terms: list[str] | None = None,
) -> pd.DataFrame:
    """Write the per-term tables, ``summary.tsv`` and ``studies.tsv`` to ``out_dir``
    (see the module docstring). Returns the summary. ``settings``: the ``de:`` section
    (default: the schema's; its ``gene_filter`` is passed to `study_de`); ``terms``
    restricts the terms; ``organism`` picks the GO annotation."""
    out_dir = Path(out_dir)
    atlas = _read_atlas(atlas_h5ad)
    de = settings or DESettings()
    plan = _resolve_plan(
        de.method,
        de.fallback,
        min_cells=de.min_cells,
        fdr=de.fdr,
        min_studies=de.min_studies,
        gene_filter=de.gene_filter,
        siblings=de.siblings,
        go=de.go,
        organism=organism,
    )
    onto = cached_ontology(obo)
    present = _terms(atlas, onto, obo, atlas_h5ad, terms)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: list[dict] = []
    study_rows: list[dict] = []
    for term in tqdm(present, desc="DE terms", disable=not progress_enabled()):
        scope = _TermScope.of(onto, term, atlas, plan.siblings)
        contrasts = _test_term(scope, atlas, plan, study_rows)
        for name, con in contrasts.items():
            summary.append(_summarise_contrast(scope, name, con, atlas, plan, out_dir))
    out = pd.DataFrame(summary, columns=SUMMARY_COLUMNS)
    _write_tsv(pd.DataFrame(study_rows, columns=STUDY_COLUMNS), out_dir / "studies.tsv")
    _write_tsv(out, out_dir / "summary.tsv")
    write_readme(out_dir, method=plan.label, fdr=plan.fdr, min_studies=plan.min_studies)
    return out


@dataclass(frozen=True)
class _TermScope:
    """A term and the labels around it: its own (with descendants), its ancestors and its
    ontology siblings' cells."""

    term: str
    label: str
    desc: list[str]
    anc: list[str]
    sib: set[str]
    sib_cells: set[str]
    n_cells: int

    @classmethod
    def of(cls, onto, term: str, atlas: _Atlas, siblings: bool) -> _TermScope:
        desc = list(onto.descendants(term, include_self=True))
        anc = list(onto.ancestors(term))
        sib = siblings_of(onto, term) if siblings else set()
        sib_cells = (
            set().union(*(onto.descendants(s, include_self=True) for s in sib))
            - set(desc)
            - set(anc)
        )
        return cls(
            term,
            onto.label(term),
            desc,
            anc,
            sib,
            sib_cells,
            int(np.isin(atlas.labels, desc).sum()),
        )


def _test_term(
    scope: _TermScope, atlas: _Atlas, plan: _Plan, study_rows: list[dict]
) -> dict[str, _Contrast]:
    """Test the term in every study, for each contrast; one studies.tsv row per attempt."""
    contrasts = {c: _Contrast() for c in (CONTRASTS if plan.siblings else ("rest",))}
    for study, rows in atlas.rows_by_study().items():
        if study in atlas.normalised and np.isin(atlas.all_labels[rows], scope.desc).any():
            study_rows.append(
                dict(
                    cl_id=scope.term,
                    contrast="rest",
                    study=study,
                    n_in=int(np.isin(atlas.all_labels[rows], scope.desc).sum()),
                    status="excluded",
                    note="author-normalised values only: no counts to test",
                )
            )
        lab = atlas.labels[rows]
        in_mask = np.isin(lab, scope.desc)
        if not in_mask.any():
            continue
        outs = {"rest": (lab != "") & ~in_mask & ~np.isin(lab, scope.anc)}
        if plan.siblings:
            outs["siblings"] = np.isin(lab, list(scope.sib_cells))
        for name, out_mask in outs.items():
            if name == "siblings" and not out_mask.any():
                continue
            row = _test_study(
                scope, study, rows, in_mask, out_mask, name, contrasts[name], atlas, plan
            )
            study_rows.append(row)
    return contrasts


def _test_study(
    scope: _TermScope,
    study: str,
    rows: np.ndarray,
    in_mask: np.ndarray,
    out_mask: np.ndarray,
    name: str,
    con: _Contrast,
    atlas: _Atlas,
    plan: _Plan,
) -> dict:
    """One study's test of one contrast, recorded in ``con``; returns its studies.tsv row."""
    n_in, n_out = int(in_mask.sum()), int(out_mask.sum())
    con.sizes.append(f"{study}: {n_in} vs {n_out}")
    row = dict(
        cl_id=scope.term, contrast=name, study=study, n_in=n_in, n_out=n_out, method=plan.method
    )
    if n_in < plan.min_cells or n_out < plan.min_cells:
        return row | dict(status="skipped", note=f"fewer than {plan.min_cells} cells in a group")
    if plan.r_missing or con.r_error:
        return row | dict(status="not tested", note=plan.r_missing or "earlier R error")
    keep = in_mask | out_mask
    try:
        res = study_de(
            atlas.X[rows[keep]],
            in_mask[keep],
            plan.method,
            genes=atlas.genes,
            samples=None if atlas.samples is None else atlas.samples[rows[keep]],
            gene_filter=plan.gene_filter,
        )
    except RError as exc:
        con.r_error = f"{study}: {exc}"
        log.error("%s (%s) vs %s, %s", scope.term, scope.label, name, con.r_error)
        return row | dict(status="failed", note=str(exc))
    except ValueError as exc:
        return row | dict(status="skipped", note=str(exc))
    con.results[study] = res.table
    con.n_tested[study] = res.n_units_in + res.n_units_out
    con.n_in += n_in
    con.units.append(f"{study}: {res.unit} {res.n_units_in} vs {res.n_units_out}")
    return row | dict(
        unit=res.unit,
        n_units_in=res.n_units_in,
        n_units_out=res.n_units_out,
        status="tested",
        note=res.note,
    )


def _not_tested_reason(scope: _TermScope, name: str, con: _Contrast, plan: _Plan) -> str:
    """Why a contrast is not meta-analysed ("" when it is)."""
    sizes = "; ".join(con.sizes)
    if plan.r_missing:
        return plan.r_missing
    if con.r_error:
        return f"R error in study {con.r_error}"
    if name == "siblings" and not con.sizes:
        return "no study has cells of an ontology sibling" if scope.sib else "no siblings"
    if not con.results:
        return (
            f"no study with >= {plan.min_cells} cells of the term and >= {plan.min_cells} "
            f"cells to compare ({sizes})"
        )
    if len(con.results) < plan.min_studies:
        return (
            f"tested in {len(con.results)} study (< min_studies {plan.min_studies}): "
            f"no meta-analysis ({sizes})"
        )
    return ""


def _summarise_contrast(
    scope: _TermScope, name: str, con: _Contrast, atlas: _Atlas, plan: _Plan, out_dir: Path
) -> dict:
    """Meta-analyse a contrast and write its table; returns its summary.tsv row."""
    base = dict(
        cl_id=scope.term,
        cl_label=scope.label,
        contrast=name,
        method=plan.label,
        n_studies=len(con.results),
        n_cells=con.n_in or scope.n_cells,
        n_up=0,
        n_down=0,
        n_conservative=0,
        logfc_unit="",
        units="; ".join(con.units),
        file="",
        go="",
    )
    reason = _not_tested_reason(scope, name, con, plan)
    if reason:
        log.info("%s (%s) vs %s: not tested: %s", scope.term, scope.label, name, reason)
        return base | dict(status="not tested", reason=reason)
    # studies are weighted by their test units (cells, or pseudobulk samples)
    table = meta_analyse(con.results, con.n_tested, fdr=plan.fdr, min_studies=plan.min_studies)
    table.insert(1, "gene_symbol", atlas.symbols.reindex(table["gene"]).to_numpy())
    table = sort_for_reading(table)
    fname = term_file_name(scope.term, "" if name == "rest" else "siblings")
    _write_tsv(table, out_dir / fname)
    sig = table["significant"].to_numpy(dtype=bool)
    n_up = int((sig & (table["direction"] == "up").to_numpy()).sum())
    go_status = (
        _go_step(table, scope.term, plan.organism, out_dir) if plan.go and name == "rest" else ""
    )
    log.info(
        "%s (%s) vs %s: %d studies, %d up, %d down",
        scope.term,
        scope.label,
        name,
        len(con.results),
        n_up,
        int(sig.sum()) - n_up,
    )
    return base | dict(
        n_up=n_up,
        n_down=int(sig.sum()) - n_up,
        n_conservative=int(table["conservative"].sum()),
        status="tested",
        reason="",
        logfc_unit=LOGFC_UNITS[plan.method],
        file=fname,
        go=go_status,
    )


def sort_for_reading(table: pd.DataFrame) -> pd.DataFrame:
    """A term's table in the order a reader takes it from the top: the significant
    (replicated) genes first, up then down, each by ``stouffer_fdr`` and then by the size of
    the combined z; then the rest in the same order."""
    return (
        table.assign(
            _sig=~table["significant"].astype(bool),
            _dir=(table["direction"] != "up"),
            _z=-table["stouffer_z"].abs(),
        )
        .sort_values(["_sig", "_dir", "stouffer_fdr", "_z", "gene"], kind="mergesort")
        .drop(columns=["_sig", "_dir", "_z"])
        .reset_index(drop=True)
    )


def _go_step(table: pd.DataFrame, term: str, organism: str, out_dir: Path) -> str:
    """GO enrichment of the term's significant up genes; returns the status text."""
    from scatlas.de.go import goana_up

    up_rows = table["significant"].astype(bool) & (table["direction"] == "up")
    key = "gene_symbol" if (table["gene_symbol"].astype(str) != "").all() else "gene"
    up = table.loc[up_rows, key].astype(str).tolist()
    if not up:
        return "not run: no significant up-regulated gene"
    try:
        res = goana_up(up, table[key].astype(str).tolist(), organism)
    except (RUnavailable, RError) as exc:
        log.error("%s: GO enrichment failed: %s", term, exc)
        return f"failed: {exc}"
    fname = term_file_name(term, "go")
    _write_tsv(res, out_dir / fname)
    return f"{fname}: {int((res['padj'] < 0.05).sum())} GO terms at BH 5%"
