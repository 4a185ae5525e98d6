"""Gene counts with featureCounts (one call per study and layout) and RPKM."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.errors import InputError
from scatlas.fileio import atomic_path, atomic_write_text
from scatlas.reads.align import read_alignment_table, run_technologies
from scatlas.reads.barcodes import BARCODED_TECHNOLOGIES, FROM_READS, Chemistry, chemistries
from scatlas.reads.droplets import DropletRun, count_droplets
from scatlas.settings import BarcodedSettings, QuantSettings
from scatlas.tools import run_tool

log = logging.getLogger(__name__)

ANNOTATION_COLUMNS = ["Geneid", "Chr", "Start", "End", "Strand", "Length"]
LAYOUTS = ("SINGLE", "PAIRED")


def featurecounts_args(*, paired: bool, threads: int, strandedness: int) -> list[str]:
    """featureCounts (subread 2.0.3) options for one gene-level count.

    Reads are assigned to ``exon`` features and summed per ``gene_id`` (``-t exon -g
    gene_id``); multi-mapping and ambiguous reads are not counted (the defaults). Paired
    runs count fragments: ``-p --countReadPairs`` (since 2.0.2 ``-p`` alone counts reads),
    ``-B`` (both mates aligned) and ``-C`` (no mates on different chromosomes/strands).
    """
    if strandedness not in (0, 1, 2):
        raise InputError(
            f"strandedness must be 0, 1 or 2, not {strandedness!r}", field="strandedness"
        )
    args = ["-t", "exon", "-g", "gene_id", "-s", str(strandedness), "-T", str(max(1, int(threads)))]
    if paired:
        args += ["-p", "--countReadPairs", "-B", "-C"]
    return args


def _write_empty(out_tsv: Path, note: str) -> None:
    atomic_write_text(Path(f"{out_tsv}.summary"), "Status\n")
    atomic_write_text(out_tsv, f"# {note}\n" + "\t".join(ANNOTATION_COLUMNS) + "\n")


def run_featurecounts(
    bams: list[Path],
    gtf: Path,
    out_tsv: Path,
    *,
    paired: bool,
    threads: int = QuantSettings.threads,
    strandedness: int = QuantSettings.strandedness,
    read_report_dir: Path | None = None,
) -> Path:
    """Count all ``bams`` of a study in ONE featureCounts call against ``gtf``.

    Writes the featureCounts table to ``out_tsv`` and its summary to ``out_tsv.summary``,
    both under temporary names renamed into place. Options: :func:`featurecounts_args`.
    ``read_report_dir``: also write featureCounts' per-read report (``-R CORE``: read
    name, status, number of targets, gene) there, one ``{bam name}.featureCounts`` per BAM.
    An empty ``bams`` list writes a header-only table (and summary) without calling the tool.
    """
    out_tsv = Path(out_tsv)
    out_tsv.parent.mkdir(parents=True, exist_ok=True)
    bams = [Path(b) for b in bams]
    if not bams:
        _write_empty(out_tsv, "no BAM files to count")
        return out_tsv
    stems = [bam_run(b) for b in bams]
    if len(set(stems)) != len(stems):
        raise InputError(f"BAM names repeat: {sorted(stems)}", path=str(bams[0]), field="bam")
    for bam in bams:
        if not bam.is_file():
            raise InputError("BAM file not found", path=str(bam), field="bam")
    if not Path(gtf).is_file():
        raise InputError("GTF file not found", path=str(gtf))
    with tempfile.TemporaryDirectory(prefix=f".{out_tsv.name}.", dir=out_tsv.parent) as work:
        tmp_out = Path(work) / "counts.tsv"
        cmd = [
            "featureCounts",
            "-a",
            str(gtf),
            "-o",
            str(tmp_out),
            *featurecounts_args(paired=paired, threads=threads, strandedness=strandedness),
            "--tmpDir",
            work,
        ]
        if read_report_dir is not None:
            Path(read_report_dir).mkdir(parents=True, exist_ok=True)
            cmd += ["-R", "CORE", "--Rpath", str(read_report_dir)]
        cmd += [str(b) for b in bams]
        log.info(
            "featureCounts on %d BAM file(s) (paired=%s, -s %d)", len(bams), paired, strandedness
        )
        run_tool(cmd)
        os.replace(f"{tmp_out}.summary", f"{out_tsv}.summary")
        os.replace(tmp_out, out_tsv)
    return out_tsv


def bam_run(path: str | os.PathLike) -> str:
    """The run id a BAM file stands for: its name without ``.bam``."""
    name = Path(path).name
    return name[:-4] if name.endswith(".bam") else name


def read_featurecounts(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a featureCounts table and its ``.summary``.

    Returns ``(counts, summary)``: ``counts`` is genes × runs (int64, indexed by gene id,
    columns named by BAM stem, i.e. the run id) with the gene length (bp, featureCounts'
    union of exons) in ``counts.attrs["lengths"]`` as a Series; ``summary`` is statuses ×
    runs. A missing summary gives an empty summary frame.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t", comment="#", dtype={"Geneid": str, "Chr": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, FileNotFoundError) as exc:
        raise InputError(f"cannot read featureCounts table: {exc}", path=str(path)) from exc
    missing = [c for c in ANNOTATION_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"not a featureCounts table: lacks {missing}", path=str(path), field=missing[0]
        )
    table = table.set_index("Geneid")
    table.index.name = "gene_id"
    samples = [c for c in table.columns if c not in ANNOTATION_COLUMNS]
    runs = [bam_run(c) for c in samples]
    if len(set(runs)) != len(runs):
        raise InputError(f"run columns repeat: {runs}", path=str(path), field="columns")
    counts = table[samples].astype(np.int64)
    counts.columns = runs
    counts.attrs["lengths"] = table["Length"].astype(np.int64)
    summary_path = Path(f"{path}.summary")
    if summary_path.is_file():
        summary = pd.read_csv(summary_path, sep="\t", index_col=0)
        summary.columns = [bam_run(c) for c in summary.columns]
    else:
        summary = pd.DataFrame(index=pd.Index([], name="Status"))
    return counts, summary


def gene_lengths(path: Path) -> pd.Series:
    """Gene lengths (the ``Length`` column) of a featureCounts table."""
    counts, _ = read_featurecounts(path)
    return counts.attrs["lengths"]


def _layout_of(layout: str | dict, run: str, where: str) -> str:
    value = layout if isinstance(layout, str) else layout.get(run)
    if value is None:
        raise InputError(f"no library layout for run {run}", path=where, field="library_layout")
    value = str(value).strip().upper()
    if value not in LAYOUTS:
        raise InputError(
            f"library layout {value!r} of run {run} is not SINGLE or PAIRED",
            path=where,
            field="library_layout",
        )
    return value


def layouts_from_samples(samples_tsv: Path) -> dict[str, str]:
    """``run -> SINGLE|PAIRED`` from a study's ``samples.tsv`` (rows with a run)."""
    df = pd.read_csv(samples_tsv, sep="\t", dtype=str, keep_default_na=False)
    for col in ("run", "library_layout"):
        if col not in df.columns:
            raise InputError(
                f"samples sheet lacks column {col!r}", path=str(samples_tsv), field=col
            )
    df = df[df["run"] != ""]
    return {
        r: _layout_of(lay, r, str(samples_tsv))
        for r, lay in zip(df["run"], df["library_layout"], strict=True)
    }


def _write_table(table: pd.DataFrame, summary: pd.DataFrame, out_tsv: Path, note: str) -> None:
    with atomic_path(f"{out_tsv}.summary") as tmp:
        summary.to_csv(tmp, sep="\t", index=True, index_label="Status")
    with atomic_path(out_tsv) as tmp, open(tmp, "w") as fh:
        fh.write(f"# {note}\n")
        table.to_csv(fh, sep="\t", index=False)


def count_study(
    alignment_tsv: Path,
    gtf: Path,
    counts_tsv: Path,
    *,
    quant: QuantSettings | None = None,
    layout: str | dict[str, str] | None = None,
    samples_tsv: Path | None = None,
    bam_dir: Path | None = None,
    umi_h5ad: Path | None = None,
    technologies: Mapping[str, str] | None = None,
    barcoded: BarcodedSettings | None = None,
) -> Path:
    """Count the ``ok`` runs of ``alignment_tsv`` with featureCounts into ``counts_tsv``.

    ``layout`` is the study's library layout (``SINGLE``/``PAIRED``) or a mapping run →
    layout; without it the layouts come from ``samples_tsv`` (its ``library_layout``, see
    :func:`layouts_from_samples`). Runs are counted with one featureCounts call per kind:
    per layout for per-cell runs (``quant``'s threads and ``-s strandedness``; default: the
    schema's), per chemistry for barcoded runs
    (``technologies``, from ``samples_tsv`` when not given: single-end cDNA reads, the
    chemistry's strandedness, with the per-read report); several calls are merged into one
    table (same annotation columns, run columns in alignment-table order). A run's BAM is
    the table's ``bam`` column, else ``bam_dir/{run}.bam``.

    ``umi_h5ad``: where the barcoded runs' molecule counts go (cells x genes,
    :func:`scatlas.reads.droplets.count_droplets`; 0 cells when the study has no barcoded run),
    with ``barcoded``'s chemistries and cell calling (default: the schema's).
    """
    if layout is None:
        if samples_tsv is None:
            raise InputError(
                "count_study needs a layout or a samples sheet", field="library_layout"
            )
        layout = layouts_from_samples(Path(samples_tsv))
    if technologies is None:
        technologies = run_technologies(Path(samples_tsv)) if samples_tsv is not None else {}
    quant = quant or QuantSettings()
    barcoded = barcoded or BarcodedSettings()
    chems = chemistries({"barcoded": {"chemistries": barcoded.chemistries}})
    groups, order, sample_of = _group_runs(
        Path(alignment_tsv), layout, technologies, chems, Path(bam_dir) if bam_dir else None
    )
    counts_tsv = Path(counts_tsv)
    counts_tsv.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{counts_tsv.name}.", dir=counts_tsv.parent) as work:
        parts: dict[str, Path] = {}
        for key, paths in groups.items():
            droplet = key in BARCODED_TECHNOLOGIES
            parts[key] = run_featurecounts(
                paths,
                gtf,
                Path(work) / f"{key}.tsv",
                paired=key == "PAIRED",
                threads=quant.threads,
                strandedness=chems[key].strandedness if droplet else quant.strandedness,
                read_report_dir=Path(work) / "reads" if droplet else None,
            )
        if not parts:
            _write_empty(counts_tsv, "no BAM files to count")
        elif len(parts) == 1:
            part = next(iter(parts.values()))
            os.replace(f"{part}.summary", f"{counts_tsv}.summary")
            os.replace(part, counts_tsv)
        else:
            log.info("%s holds several kinds of runs: counted separately", alignment_tsv)
            _merge_tables(list(parts.values()), order, counts_tsv, gtf, list(parts))
        if umi_h5ad is not None:
            _count_molecules(
                groups, sample_of, Path(work), chems, counts_tsv, Path(umi_h5ad), barcoded
            )
    return counts_tsv


def _count_molecules(
    groups: dict[str, list[Path]],
    sample_of: dict[str, str],
    work: Path,
    chems: Mapping[str, Chemistry],
    counts_tsv: Path,
    umi_h5ad: Path,
    barcoded: BarcodedSettings,
) -> None:
    """Molecules per cell and gene of the barcoded runs, from featureCounts' per-read reports."""
    runs = {
        key: [
            DropletRun(
                bam_run(p),
                sample_of[bam_run(p)],
                work / "reads" / f"{p.name}.featureCounts",
                p.parent / f"{bam_run(p)}.barcodes.tsv.gz",
            )
            for p in paths
        ]
        for key, paths in groups.items()
        if key in BARCODED_TECHNOLOGIES
    }
    count_droplets(
        runs,
        chems,
        _annotation_genes(counts_tsv),
        umi_h5ad,
        cell_calling=barcoded.cell_calling,
        min_reads=barcoded.min_reads_per_cell,
    )


def _group_runs(
    alignment_tsv: Path,
    layout: str | dict[str, str],
    technologies: Mapping[str, str],
    chems: Mapping[str, Chemistry],
    bam_dir: Path | None,
) -> tuple[dict[str, list[Path]], list[str], dict[str, str]]:
    """The BAMs of the ``ok`` runs by kind (layout or chemistry), the runs in table order and
    each run's sample."""
    alignment = read_alignment_table(alignment_tsv)
    where = str(alignment_tsv)
    groups: dict[str, list[Path]] = {}
    order: list[str] = []
    sample_of: dict[str, str] = {}
    for rec in alignment[alignment["status"] == "ok"].to_dict("records"):
        run, bam = rec["run"], rec.get("bam", "")
        if not bam and bam_dir is not None:
            bam = str(bam_dir / f"{run}.bam")
        if not bam:
            raise InputError(f"ok run {run} has no BAM", path=where, field="bam")
        path = Path(bam)
        tech = technologies.get(run, "")
        if tech in FROM_READS:  # the chemistry its reads showed at alignment
            tech = rec.get("chemistry", "")
            if tech not in BARCODED_TECHNOLOGIES:
                raise InputError(
                    f"run {run}: no chemistry detected from its reads",
                    path=where,
                    field="chemistry",
                )
        if tech in BARCODED_TECHNOLOGIES:
            if tech not in chems:
                raise InputError(f"no chemistry configured for {tech}", path=where)
            key = tech
        else:
            key = _layout_of(layout, run, where)
        groups.setdefault(key, []).append(path)
        order.append(bam_run(path))
        sample_of[bam_run(path)] = rec["sample"] or bam_run(path)
    return groups, order, sample_of


def _annotation_genes(counts_tsv: Path) -> list[str]:
    table = pd.read_csv(counts_tsv, sep="\t", comment="#", usecols=["Geneid"], dtype=str)
    return table["Geneid"].tolist()


def _merge_tables(
    parts: list[Path], order: list[str], counts_tsv: Path, gtf: Path, kinds: list[str]
) -> None:
    """One featureCounts table from several calls on the same annotation."""
    tables, summaries = [], []
    for part in parts:
        tables.append(pd.read_csv(part, sep="\t", comment="#", dtype=str))
        summaries.append(pd.read_csv(f"{part}.summary", sep="\t", index_col=0))
    annotation = tables[0][ANNOTATION_COLUMNS]
    for other in tables[1:]:
        if not other[ANNOTATION_COLUMNS].equals(annotation):
            raise InputError("featureCounts annotation differs between calls", path=str(gtf))
    by_run = {}
    for table in tables:
        for col in table.columns[len(ANNOTATION_COLUMNS) :]:
            by_run[bam_run(col)] = table[col]
    merged = pd.concat([annotation, pd.DataFrame({r: by_run[r] for r in order})], axis=1)
    summary = pd.concat(summaries, axis=1)
    summary.columns = [bam_run(c) for c in summary.columns]
    with contextlib.suppress(KeyError):
        summary = summary[order]
    _write_table(merged, summary, counts_tsv, f"featureCounts, {' + '.join(kinds)} merged")


def rpkm(
    counts: np.ndarray | sp.spmatrix | sp.sparray,
    lengths: np.ndarray | pd.Series,
    lib_sizes: np.ndarray | pd.Series | None = None,
    *,
    axis: int = 0,
):
    """Reads per kilobase of gene per million counted reads.

    RPKM_g = reads_g × 10⁹ / (N × length_g), with ``length_g`` in bp (the union of the
    gene's exons) and N the run's counted reads: the sum of its counts over all genes
    unless ``lib_sizes`` gives them. This is ``edgeR::rpkm(y, gene.length=len)``.

    ``axis`` is the axis along which genes run: ``0`` for genes × samples (featureCounts,
    edgeR), ``1`` for cells × genes (AnnData). Dense input gives a float64 ndarray; scipy
    sparse input a float64 CSR matrix of the same orientation. A sample with N = 0 gets 0.
    """
    if axis not in (0, 1):
        raise ValueError("axis must be 0 (genes x samples) or 1 (samples x genes)")
    lengths = np.asarray(lengths, dtype=np.float64).ravel()
    n_genes = counts.shape[axis]
    if lengths.shape[0] != n_genes:
        raise ValueError(f"{lengths.shape[0]} lengths for {n_genes} genes")
    if np.any(~np.isfinite(lengths)) or np.any(lengths <= 0):
        raise ValueError("gene lengths must be positive")
    if lib_sizes is None:
        lib = np.asarray(counts.sum(axis=axis), dtype=np.float64).ravel()
    else:
        lib = np.asarray(lib_sizes, dtype=np.float64).ravel()
        if lib.shape[0] != counts.shape[1 - axis]:
            raise ValueError(f"{lib.shape[0]} library sizes for {counts.shape[1 - axis]} samples")
    with np.errstate(divide="ignore"):
        per_sample = np.where(lib > 0, 1e9 / lib, 0.0)
    per_gene = 1.0 / lengths
    if sp.issparse(counts):
        rows, cols = (per_gene, per_sample) if axis == 0 else (per_sample, per_gene)
        return sp.csr_matrix(
            sp.diags(rows) @ sp.csr_matrix(counts, dtype=np.float64) @ sp.diags(cols)
        )
    dense = np.asarray(counts, dtype=np.float64)
    if axis == 0:
        return dense * per_gene[:, None] * per_sample[None, :]
    return dense * per_sample[:, None] * per_gene[None, :]
