"""The per-study expression AnnData (``studies/{study}/expression.h5ad``).

Cells × genes in the reference gene table's order (genes the study lacks are zeros):

* ``X``: raw counts, CSR int32: reads (fragments for paired runs) per gene for per-cell
  runs, molecules (unique UMIs, :mod:`scatlas.reads.umi`) for the cells of barcoded runs. For an
  author matrix holding normalised (non-integer or
  negative) values, ``X`` holds those values as float32 and ``uns["scatlas"]["normalised"]``
  is True; its ``layers["rpkm"]`` is then empty (all zero), as RPKM is undefined for them.
* ``layers["rpkm"]``: float32 CSR, :func:`scatlas.reads.quant.rpkm` with the gene table's lengths
  and N = the run's counted reads (all genes of the featureCounts table); for barcoded
  cells the same formula on molecules, N = the cell's molecules (3' tag counts carry no
  length information: use ``X`` for them).
* ``obs`` (index: sample accession for per-cell runs, several runs of a sample summed;
  ``{sample}_{barcode}`` for cells of barcoded runs; the cell id for matrices): ``study, sample, run`` (';'-joined), ``source_text``
  (title | source name | characteristics), ``organism``.
* ``var``: the gene table (``gene_symbol, biotype, chrom, strand, length``).
* ``uns["scatlas"]``: ``study, status, reason, normalised, technology, n_runs_ok,
  n_runs_skipped, n_runs_failed``.

A failed study, or one without a usable run or matrix, still gets a valid file: 0 cells,
status ``failed`` and the reason.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.errors import InputError, ScatlasError
from scatlas.fileio import atomic_path
from scatlas.reads.align import read_alignment_table, read_manifest
from scatlas.reads.barcodes import BARCODED_TECHNOLOGIES, FROM_READS
from scatlas.reads.droplets import read_droplets
from scatlas.reads.matrices import is_integer_matrix, read_matrix_named
from scatlas.reads.quant import read_featurecounts, rpkm
from scatlas.reads.reference import read_gene_table
from scatlas.sheets import SAMPLE_COLUMNS, validate_sheet

log = logging.getLogger(__name__)

OBS_COLUMNS = ["study", "sample", "run", "source_text", "organism"]
_VERSION = re.compile(r"\.\d+$")


def read_samples(path: Path) -> pd.DataFrame:
    """A study's ``samples.tsv`` (all strings; missing optional columns filled with '')."""
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame(columns=SAMPLE_COLUMNS)
    if "sample" not in df.columns:
        raise InputError("samples sheet lacks column 'sample'", path=str(path), field="sample")
    for col in SAMPLE_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    return validate_sheet(df, "samples", path=path)


def source_text(row: dict | pd.Series) -> str:
    """title | source_name | characteristics (empty parts left out)."""
    parts = (str(row.get(k, "") or "").strip() for k in ("title", "source_name", "characteristics"))
    return " | ".join(p for p in parts if p)


def _sample_meta(samples: pd.DataFrame) -> dict[str, dict]:
    """First samples.tsv row of every sample (runs of one sample share its metadata)."""
    first = samples.drop_duplicates("sample")
    return {r["sample"]: r for r in first.to_dict("records") if r["sample"]}


def gene_index(
    labels: list[str], gene_table: pd.DataFrame, names: list[str] | None = None
) -> np.ndarray:
    """Row of ``gene_table`` for every label, or -1.

    A label matches a stable id (exactly, or without a ``.N`` version suffix), else a gene
    symbol case-insensitively (a symbol shared by several ids goes to the first id). With
    ``names`` (the symbols a matrix gives beside its ids), a label that matches nothing
    falls back to its name: ids of another annotation release still find their genes.
    """
    ids = {g: i for i, g in enumerate(gene_table.index)}
    symbols: dict[str, int] = {}
    for i, sym in enumerate(gene_table["gene_symbol"].astype(str)):
        symbols.setdefault(sym.upper(), i)
    out = np.full(len(labels), -1, dtype=np.int64)
    for j, label in enumerate(labels):
        hit = ids.get(label)
        if hit is None:
            hit = ids.get(_VERSION.sub("", label))
        if hit is None:
            hit = symbols.get(label.upper())
        if hit is None and names is not None and names[j]:
            hit = symbols.get(names[j].upper())
        if hit is not None:
            out[j] = hit
    return out


def _project(x: sp.csr_matrix, where: np.ndarray, n_genes: int) -> sp.csr_matrix:
    """Columns of ``x`` moved to gene-table positions ``where`` (-1 dropped, repeats summed)."""
    keep = np.flatnonzero(where >= 0)
    proj = sp.csr_matrix((np.ones(len(keep)), (keep, where[keep])), shape=(x.shape[1], n_genes))
    return sp.csr_matrix(x @ proj)


def _uns(
    study: str,
    status: str,
    reason: str,
    *,
    normalised: bool = False,
    technology: str = "",
    n_ok: int = 0,
    n_skipped: int = 0,
    n_failed: int = 0,
) -> dict:
    return {
        "study": study,
        "status": status,
        "reason": reason,
        "normalised": bool(normalised),
        "technology": technology,
        "n_runs_ok": int(n_ok),
        "n_runs_skipped": int(n_skipped),
        "n_runs_failed": int(n_failed),
    }


def _var(gene_table: pd.DataFrame) -> pd.DataFrame:
    var = gene_table.copy()
    var.index = var.index.astype(str)
    var.index.name = "gene_id"
    for col in var.columns:
        if col != "length":
            var[col] = var[col].astype(str)
    var["length"] = var["length"].astype(np.int64)
    return var


def _anndata(
    x: sp.csr_matrix,
    rpkm_layer: sp.csr_matrix,
    obs: pd.DataFrame,
    gene_table: pd.DataFrame,
    uns: dict,
) -> ad.AnnData:
    obs = obs.copy()
    obs.index = obs.index.astype(str)
    obs.index.name = "cell_id"
    for col in OBS_COLUMNS:
        obs[col] = obs[col].astype(str) if col in obs else pd.Series("", index=obs.index, dtype=str)
    adata = ad.AnnData(X=x, obs=obs[OBS_COLUMNS], var=_var(gene_table))
    adata.layers["rpkm"] = rpkm_layer
    adata.uns["scatlas"] = uns
    return adata


def _empty(study: str, gene_table: pd.DataFrame, uns: dict) -> ad.AnnData:
    n = len(gene_table)
    obs = pd.DataFrame(columns=OBS_COLUMNS, index=pd.Index([], dtype=str))
    return _anndata(
        sp.csr_matrix((0, n), dtype=np.int32),
        sp.csr_matrix((0, n), dtype=np.float32),
        obs,
        gene_table,
        uns,
    )


def _to_int32(x: sp.csr_matrix, where: str) -> sp.csr_matrix:
    if x.nnz and x.data.max() > np.iinfo(np.int32).max:
        raise InputError("a count exceeds the int32 range", path=where)
    x = sp.csr_matrix(x)
    x.data = np.rint(x.data).astype(np.int32)
    x.eliminate_zeros()
    return x


def _per_cell_block(
    study: str,
    counts: pd.DataFrame,
    run_sample: dict[str, str],
    meta: dict[str, dict],
    gene_table: pd.DataFrame,
    where_file: str,
) -> tuple[sp.csr_matrix, sp.csr_matrix, pd.DataFrame]:
    """Per-cell runs: one cell per sample (its runs summed), RPKM with N = counted reads."""
    lib = counts.sum(axis=0)  # every counted read of the run, before gene harmonisation
    where = gene_index([str(g) for g in counts.index], gene_table)
    dropped = int((where < 0).sum())
    if dropped:
        log.warning(
            "%s: %d counted gene(s) are not in the gene table and are dropped", where_file, dropped
        )
    runs_x = _project(sp.csr_matrix(counts.to_numpy(dtype=np.float64).T), where, len(gene_table))
    cell_ids = list(dict.fromkeys(run_sample[r] for r in counts.columns))
    row_of = {c: i for i, c in enumerate(cell_ids)}
    runs = list(counts.columns)
    agg = sp.csr_matrix(
        (np.ones(len(runs)), ([row_of[run_sample[r]] for r in runs], np.arange(len(runs)))),
        shape=(len(cell_ids), len(runs)),
    )
    x = _to_int32(sp.csr_matrix(agg @ runs_x), where_file)
    lib_cells = agg @ lib.to_numpy(dtype=np.float64)
    layer = rpkm(x, gene_table["length"].to_numpy(), lib_cells, axis=1).astype(np.float32)
    obs = pd.DataFrame(index=pd.Index(cell_ids))
    obs["study"] = study
    obs["sample"] = cell_ids
    obs["run"] = [";".join(r for r in runs if run_sample[r] == c) for c in cell_ids]
    obs["source_text"] = [source_text(meta.get(c, {})) for c in cell_ids]
    obs["organism"] = [str(meta.get(c, {}).get("organism", "")) for c in cell_ids]
    missing_meta = [c for c in cell_ids if c not in meta]
    if missing_meta:
        log.warning(
            "%d sample(s) have no row in samples.tsv: %s", len(missing_meta), missing_meta[:5]
        )
    return x, sp.csr_matrix(layer), obs


def _droplet_block(
    study: str, umi_h5ad: Path, meta: dict[str, dict], gene_table: pd.DataFrame
) -> tuple[sp.csr_matrix, sp.csr_matrix, pd.DataFrame] | None:
    """Barcoded runs: the called cells of ``umi.h5ad``; RPKM with N = the cell's molecules."""
    drops = read_droplets(umi_h5ad)
    if drops.n_obs == 0:
        return None
    counts = sp.csr_matrix(drops.X, dtype=np.float64)
    lib = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    where = gene_index([str(g) for g in drops.var_names], gene_table)
    x = _to_int32(_project(counts, where, len(gene_table)), str(umi_h5ad))
    layer = rpkm(x, gene_table["length"].to_numpy(), lib, axis=1).astype(np.float32)
    samples = drops.obs["sample"].astype(str)
    obs = pd.DataFrame(index=drops.obs_names.astype(str))
    obs["study"] = study
    obs["sample"] = samples.to_numpy()
    obs["run"] = drops.obs["run"].astype(str).to_numpy()
    obs["source_text"] = [source_text(meta.get(s, {})) for s in samples]
    obs["organism"] = [str(meta.get(s, {}).get("organism", "")) for s in samples]
    return x, sp.csr_matrix(layer), obs


def _reads_study(
    study: str,
    samples: pd.DataFrame,
    gene_table: pd.DataFrame,
    counts_tsv: Path,
    alignment_tsv: Path | None,
    technology: str,
    umi_h5ad: Path | None = None,
) -> ad.AnnData:
    counts, _ = read_featurecounts(counts_tsv)
    run_sample = dict(zip(samples["run"], samples["sample"], strict=True))
    barcoded = {
        r
        for r, t in zip(samples["run"], samples["technology"], strict=True)
        if r and (t in BARCODED_TECHNOLOGIES or t in FROM_READS)
    }
    n_ok = n_skipped = n_failed = 0
    reasons: list[str] = []
    if alignment_tsv is not None:
        alignment = read_alignment_table(alignment_tsv)
        run_sample.update(
            {r: s for r, s in zip(alignment["run"], alignment["sample"], strict=True) if s}
        )
        n_ok = int((alignment["status"] == "ok").sum())
        n_skipped = int((alignment["status"] == "skipped").sum())
        n_failed = int((alignment["status"] == "failed").sum())
        reasons = [
            f"{r}: {why}"
            for r, why in zip(alignment["run"], alignment["reason"], strict=True)
            if why
        ]
    else:
        n_ok = counts.shape[1]
    unknown = [r for r in counts.columns if r not in run_sample]
    if unknown:
        raise InputError(
            f"runs {unknown[:5]} are in no samples/alignment table",
            path=str(counts_tsv),
            field="run",
        )
    meta = _sample_meta(samples)
    blocks = []
    per_cell = counts[[r for r in counts.columns if r not in barcoded]]
    if per_cell.shape[1]:
        blocks.append(
            _per_cell_block(study, per_cell, run_sample, meta, gene_table, str(counts_tsv))
        )
    if umi_h5ad is not None and Path(umi_h5ad).is_file():
        block = _droplet_block(study, Path(umi_h5ad), meta, gene_table)
        if block is not None:
            blocks.append(block)
    if not blocks:
        detail = "; ".join(reasons[:5]) + (
            f"; and {len(reasons) - 5} more" if len(reasons) > 5 else ""
        )
        what = "no run aligned" if counts.shape[1] == 0 else "no cell called"
        reason = f"{what} ({n_skipped} skipped, {n_failed} failed)" + (
            f": {detail}" if detail else ""
        )
        return _empty(
            study,
            gene_table,
            _uns(
                study,
                "failed",
                reason,
                technology=technology,
                n_ok=0,
                n_skipped=n_skipped,
                n_failed=n_failed,
            ),
        )
    x = sp.vstack([b[0] for b in blocks], format="csr")
    layer = sp.vstack([b[1] for b in blocks], format="csr")
    obs = pd.concat([b[2] for b in blocks])
    uns = _uns(
        study, "ok", "", technology=technology, n_ok=n_ok, n_skipped=n_skipped, n_failed=n_failed
    )
    return _anndata(x, layer, obs, gene_table, uns)


def _matrix_cells_meta(cells: list[str], row_sample: str, samples: pd.DataFrame) -> list[dict]:
    """Sample metadata for every matrix cell: the cell id is a sample accession, else a
    unique sample title, else the manifest row's sample, else the study's only sample."""
    meta = _sample_meta(samples)
    titles = samples.drop_duplicates("sample")["title"]
    by_title = {
        t: meta[s]
        for t, s in zip(titles, samples.drop_duplicates("sample")["sample"], strict=True)
        if t and s and (titles == t).sum() == 1
    }
    fallback = meta.get(row_sample) or (next(iter(meta.values())) if len(meta) == 1 else None)
    return [meta.get(c) or by_title.get(c) or fallback or {} for c in cells]


def _matrix_study(
    study: str,
    samples: pd.DataFrame,
    gene_table: pd.DataFrame,
    manifest_path: Path,
    technology: str,
    base_dir: Path | None,
    fallback_text: str,
) -> ad.AnnData:
    manifest = read_manifest(manifest_path)
    ok = manifest[manifest["status"] == "ok"]
    n_failed = len(manifest) - len(ok)
    if ok.empty:
        reasons = "; ".join(r for r in manifest["reason"] if r) or "no matrix downloaded"
        return _empty(
            study,
            gene_table,
            _uns(study, "failed", reasons, technology=technology, n_failed=n_failed),
        )
    known = list(gene_table.index.astype(str)) + list(gene_table["gene_symbol"].astype(str))
    blocks, obs_parts, normalised = [], [], False
    seen: set[str] = set()
    for k, rec in enumerate(ok.to_dict("records")):
        path = _matrix_file(rec, manifest_path, base_dir)
        x, cells, labels, names = read_matrix_named(path, known_genes=known)
        where = _matched_genes(path, labels, names, gene_table)
        normalised = normalised or not is_integer_matrix(x)
        blocks.append(_project(sp.csr_matrix(x, dtype=np.float64), where, len(gene_table)))
        prefix = rec["sample"] or str(k)
        ids = [f"{prefix}_{c}" if c in seen else c for c in cells]
        seen.update(ids)
        obs_parts.append(_matrix_obs(study, rec, cells, ids, samples, fallback_text, path))
    x = sp.vstack(blocks, format="csr")
    obs = pd.concat(obs_parts)
    uns = _uns(
        study,
        "ok",
        "",
        normalised=normalised,
        technology=technology,
        n_ok=len(ok),
        n_failed=n_failed,
    )
    if normalised:
        log.warning("%s holds normalised values: X keeps them as float32, no RPKM", manifest_path)
        x32 = sp.csr_matrix(x, dtype=np.float32)
        return _anndata(x32, sp.csr_matrix(x.shape, dtype=np.float32), obs, gene_table, uns)
    x_int = _to_int32(x, str(manifest_path))
    layer = rpkm(x_int, gene_table["length"].to_numpy(), axis=1).astype(np.float32)
    return _anndata(x_int, sp.csr_matrix(layer), obs, gene_table, uns)


def _matrix_file(rec: dict, manifest_path: Path, base_dir: Path | None) -> Path:
    """The matrix file of a manifest row: a 10x HDF5 or Matrix Market file first (other
    files of the row are its companions, or alternatives such as a dense table)."""
    files = [f.strip() for f in rec["files"].split(";") if f.strip()]
    if not files:
        raise InputError("manifest row has no files", path=str(manifest_path), field="files")
    preferred = [f for f in files if re.search(r"\.h5$", f)] or [
        f for f in files if re.search(r"\.mtx(\.gz)?$", f)
    ]
    path = Path(preferred[0] if preferred else files[0])
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return path


def _matched_genes(path: Path, labels, names, gene_table: pd.DataFrame) -> np.ndarray:
    """Each matrix gene's row in the gene table (-1: none); InputError when none match."""
    where = gene_index(labels, gene_table, names)
    matched = int((where >= 0).sum())
    log.info(
        "%s: %d of %d genes match the gene table (%d dropped)",
        path,
        matched,
        len(labels),
        len(labels) - matched,
    )
    if matched == 0:
        raise InputError(
            "no gene of the matrix matches the reference gene table", path=str(path), field="genes"
        )
    return where


def _matrix_obs(
    study: str,
    rec: dict,
    cells: list[str],
    ids: list[str],
    samples: pd.DataFrame,
    fallback_text: str,
    path: Path,
) -> pd.DataFrame:
    """The cells of one matrix: sample, run, source text and organism from samples.tsv."""
    metas = _matrix_cells_meta(cells, rec["sample"], samples)
    n_meta = sum(bool(m) for m in metas)
    if n_meta < len(cells):
        log.warning(
            "%s: %d of %d cells matched no sample of samples.tsv",
            path,
            len(cells) - n_meta,
            len(cells),
        )
    return pd.DataFrame(
        {
            "study": study,
            "sample": [m.get("sample", "") for m in metas],
            "run": rec["run"],
            "source_text": [source_text(m) or fallback_text for m in metas],
            "organism": [m.get("organism", "") for m in metas],
        },
        index=pd.Index(ids),
    )


def _has_matrix_rows(manifest: Path | None) -> bool:
    """True when a download manifest lists an ok author-matrix row (no run)."""
    if manifest is None or not Path(manifest).is_file():
        return False
    rows = read_manifest(Path(manifest))
    return bool(((rows["run"] == "") & (rows["status"] == "ok")).any())


def build_expression(
    study: str,
    samples_tsv: Path,
    gene_table: pd.DataFrame,
    out_h5ad: Path,
    *,
    counts_tsv: Path | None = None,
    alignment_tsv: Path | None = None,
    umi_h5ad: Path | None = None,
    matrix_manifest: Path | None = None,
    status: dict | None = None,
    base_dir: Path | None = None,
) -> ad.AnnData:
    """Build and write (atomically) a study's expression AnnData; return it.

    Reads studies give ``counts_tsv`` (featureCounts), ``alignment_tsv`` and, with
    barcoded runs, ``umi_h5ad`` (:func:`scatlas.reads.droplets.count_droplets`); when their runs
    give no cell and ``matrix_manifest`` lists author matrices, those are used; matrix studies
    give ``matrix_manifest`` (its ``ok`` rows name the matrix files, read with
    :func:`scatlas.reads.matrices.read_matrix`). ``status`` is the study's record (``status``,
    ``reason``, optionally ``title``): a study not ``ok`` gets an empty file with that
    status. Errors in the inputs are recorded as a failed study, never raised, so one bad
    study does not stop the atlas; the log says why.
    """
    samples = read_samples(Path(samples_tsv))
    techs = [t for t in samples["technology"] if t]
    technology = techs[0] if techs else ("matrix" if matrix_manifest else "")
    status = status or {}
    state = str(status.get("status", "ok") or "ok")
    if state not in ("ok", "new"):
        reason = str(status.get("reason", "") or f"study status {state}")
        adata = _empty(study, gene_table, _uns(study, state, reason, technology=technology))
    elif counts_tsv is None and matrix_manifest is None:
        adata = _empty(
            study,
            gene_table,
            _uns(study, "failed", "no counts and no matrix for the study", technology=technology),
        )
    else:
        try:
            if counts_tsv is not None:
                adata = _reads_study(
                    study,
                    samples,
                    gene_table,
                    Path(counts_tsv),
                    Path(alignment_tsv) if alignment_tsv else None,
                    technology,
                    Path(umi_h5ad) if umi_h5ad else None,
                )
                if adata.n_obs == 0 and _has_matrix_rows(matrix_manifest):
                    # a series with SRA runs whose samples came as author matrices (a
                    # droplet protocol scatlas does not count itself): take the matrices
                    log.info("%s: no cells from reads; using the author matrices", study)
                    adata = _matrix_study(
                        study,
                        samples,
                        gene_table,
                        Path(matrix_manifest),
                        "matrix",
                        base_dir,
                        str(status.get("title", "") or ""),
                    )
            else:
                adata = _matrix_study(
                    study,
                    samples,
                    gene_table,
                    Path(matrix_manifest),
                    technology,
                    base_dir,
                    str(status.get("title", "") or ""),
                )
        except ScatlasError as exc:
            log.error("%s: %s", study, exc)
            adata = _empty(
                study, gene_table, _uns(study, "failed", str(exc), technology=technology)
            )
    with atomic_path(out_h5ad, suffix=".h5ad") as tmp:
        adata.write_h5ad(tmp)
    info = adata.uns["scatlas"]
    log.info(
        "%s: %d cells x %d genes, status %s %s",
        out_h5ad,
        adata.n_obs,
        adata.n_vars,
        info["status"],
        info["reason"],
    )
    return adata


def build_study_expression(study: str, inputs: dict[str, Path], out_h5ad: Path) -> ad.AnnData:
    """:func:`build_expression` from a rule's named inputs: ``samples`` (samples.tsv),
    ``meta`` (study.json: status, reason, title), ``genes`` (the gene table TSV), and
    ``counts`` + ``alignment`` + ``umi`` (reads studies) or ``manifest`` (matrix studies)."""
    meta = json.loads(Path(inputs["meta"]).read_text()) if inputs.get("meta") else {}
    return build_expression(
        study,
        Path(inputs["samples"]),
        read_gene_table(Path(inputs["genes"])),
        Path(out_h5ad),
        counts_tsv=inputs.get("counts"),
        umi_h5ad=inputs.get("umi"),
        alignment_tsv=inputs.get("alignment"),
        matrix_manifest=inputs.get("manifest"),
        status=meta,
    )
