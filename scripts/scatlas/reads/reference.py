"""The reference: gene table from a GTF (gene lengths as the union of exons), the HISAT2
index, and resolving configured reference files (local path or checksummed URL)."""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from scatlas.compression import decompressed_copy, is_gzipped
from scatlas.errors import InputError
from scatlas.fileio import atomic_path, sha256_file
from scatlas.reads.splice_sites import write_hisat2_annotations
from scatlas.tools import run_tool

log = logging.getLogger(__name__)

GTF_COLUMNS = ["chrom", "source", "feature", "start", "end", "score", "strand", "frame", "attrs"]
GENE_TABLE_COLUMNS = ["gene_symbol", "biotype", "chrom", "strand", "length"]
# Attribute keys in order of preference: Ensembl/GENCODE, FlyBase, RefSeq.
SYMBOL_KEYS = ("gene_name", "gene_symbol", "gene")
BIOTYPE_KEYS = ("gene_biotype", "gene_type")


def _attr(attrs: pd.Series, key: str) -> pd.Series:
    """Value of GTF attribute ``key`` (quoted or not) in every row; NaN where absent."""
    pattern = rf'(?<![\w]){key}\s+"?([^";]*)"?\s*(?:;|$)'
    return attrs.str.extract(pattern, expand=False)


def _first_attr(attrs: pd.Series, keys: tuple[str, ...]) -> pd.Series:
    out = pd.Series(None, index=attrs.index, dtype=object)
    for key in keys:
        value = _attr(attrs, key)
        out = out.mask(out.isna() & value.notna() & (value != ""), value)
    return out


def _gene_attribute(lines: pd.DataFrame, keys: tuple[str, ...]) -> pd.Series:
    """Per gene, the first of ``keys`` found on its first line that has any of them (lines
    in the order given); only those few lines go through the regular expressions."""
    has = pd.Series(False, index=lines.index)
    for key in keys:
        has |= lines["attrs"].str.contains(f"{key} ", regex=False)
    candidates = lines[has].drop_duplicates("gene_id")
    values = _first_attr(candidates["attrs"], keys)
    return pd.Series(values.to_numpy(), index=candidates["gene_id"].to_numpy(), dtype=object)


def read_gtf(gtf: Path) -> pd.DataFrame:
    """The GTF's gene/transcript/exon-level lines as a table (1-based inclusive coordinates).

    Gzip is detected from the content. Comment lines (``#``) are skipped.
    """
    gtf = Path(gtf)
    if not gtf.is_file():
        raise InputError("GTF file not found", path=str(gtf))
    try:
        df = pd.read_csv(
            gtf,
            sep="\t",
            header=None,
            names=GTF_COLUMNS,
            dtype=str,
            quoting=csv.QUOTE_NONE,
            compression="gzip" if is_gzipped(gtf) else None,
            keep_default_na=False,
            on_bad_lines="error",
            engine="c",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise InputError(f"cannot parse GTF: {exc}", path=str(gtf)) from exc
    df = df[~df["chrom"].str.startswith("#")]
    df = df[df["attrs"].notna() & (df["attrs"] != "")]
    if df.empty:
        raise InputError("GTF has no feature lines", path=str(gtf))
    for col in ("start", "end"):
        values = pd.to_numeric(df[col], errors="coerce")
        if values.isna().any():
            line = values.index[values.isna()][0] + 1
            raise InputError(f"non-integer {col} on line {line}", path=str(gtf), field=col)
        df[col] = values.astype(np.int64)
    df["gene_id"] = _attr(df["attrs"], "gene_id").replace("", np.nan)
    missing = df["gene_id"].isna() & (df["feature"] == "exon")
    if missing.any():
        line = missing.index[missing][0] + 1
        raise InputError(f"exon on line {line} has no gene_id", path=str(gtf), field="gene_id")
    return df.dropna(subset=["gene_id"])


def _union_lengths(exons: pd.DataFrame) -> pd.Series:
    """Bases covered by the union of each gene's exons (summed over its chromosomes/strands)."""
    ex = exons[["gene_id", "chrom", "strand", "start", "end"]].sort_values(
        ["gene_id", "chrom", "strand", "start", "end"], kind="stable"
    )
    start0 = ex["start"].to_numpy() - 1  # half-open [start0, end)
    end = ex["end"].to_numpy()
    keys = ex["gene_id"] + "\t" + ex["chrom"] + "\t" + ex["strand"]
    # Furthest end reached by the earlier exons of the same (gene, chrom, strand).
    reach = pd.Series(end, index=ex.index).groupby(keys.to_numpy()).cummax()
    prev = reach.groupby(keys.to_numpy()).shift(1).to_numpy(dtype=float)
    begin = np.where(np.isnan(prev), start0, np.maximum(start0, prev))
    covered = np.clip(end - begin, 0, None).astype(np.int64)
    return pd.Series(covered, index=ex["gene_id"].to_numpy()).groupby(level=0).sum()


def load_gene_table(
    gtf: Path, *, on_missing_exons: Literal["error", "drop"] = "drop"
) -> pd.DataFrame:
    """One row per gene of ``gtf``, indexed by the stable ``gene_id``, sorted by it.

    Columns: ``gene_symbol`` (gene_name / gene_symbol / gene attribute, else the id),
    ``biotype`` (gene_biotype / gene_type, else empty), ``chrom`` and ``strand`` (';'-joined
    when a gene lies on several), ``length`` = the number of bases in the union of the
    gene's exons over all its transcripts (isoforms consolidated, overlaps counted once).
    A gene with no exon line has no length: ``on_missing_exons="error"`` raises InputError
    naming the file and the genes, ``"drop"`` drops them with a logged warning.
    """
    if on_missing_exons not in ("error", "drop"):
        raise ValueError(f"on_missing_exons must be 'error' or 'drop', not {on_missing_exons!r}")
    gtf = Path(gtf)
    df = read_gtf(gtf)
    is_exon = df["feature"] == "exon"
    all_genes = pd.unique(df["gene_id"])
    exon_genes = set(df.loc[is_exon, "gene_id"])
    no_exons = sorted(g for g in all_genes if g not in exon_genes)
    if no_exons:
        shown = ", ".join(no_exons[:20]) + (
            f" and {len(no_exons) - 20} more" if len(no_exons) > 20 else ""
        )
        if on_missing_exons == "error":
            raise InputError(
                f"{len(no_exons)} gene(s) without exon lines: {shown}", path=str(gtf), field="exon"
            )
        log.warning("%s: dropped %d gene(s) without exon lines: %s", gtf, len(no_exons), shown)
    if not exon_genes:
        raise InputError("GTF has no exon lines", path=str(gtf), field="exon")

    keep = df[(is_exon | (df["feature"] == "gene")) & df["gene_id"].isin(exon_genes)]
    # Gene lines first so that their attributes win over the exons'.
    keep = keep.assign(_order=(keep["feature"] != "gene").astype(int)).sort_values(
        "_order", kind="stable"
    )
    first = pd.DataFrame(
        {
            "gene_symbol": _gene_attribute(keep, SYMBOL_KEYS),
            "biotype": _gene_attribute(keep, BIOTYPE_KEYS),
        },
        index=pd.Index(sorted(exon_genes), name="gene_id"),
    )
    exons = df[is_exon]
    where = pd.DataFrame(
        {
            col: exons.drop_duplicates(["gene_id", col]).groupby("gene_id")[col].agg(";".join)
            for col in ("chrom", "strand")
        }
    )
    table = first.join(where)
    table["length"] = _union_lengths(exons).reindex(table.index).astype(np.int64)
    table["gene_symbol"] = table["gene_symbol"].fillna(pd.Series(table.index, index=table.index))
    table["biotype"] = table["biotype"].fillna("")
    table.index.name = "gene_id"
    return table[GENE_TABLE_COLUMNS].sort_index()


def write_gene_table(table: pd.DataFrame, path: Path) -> Path:
    """Write a gene table as TSV atomically (``read_gene_table`` reads it back)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=True, index_label="gene_id")
    return Path(path)


def read_gene_table(path: Path) -> pd.DataFrame:
    """Read ``genes.tsv`` written by :func:`write_gene_table`."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, index_col="gene_id")
    missing = [c for c in GENE_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"gene table lacks columns {missing}", path=str(path), field=missing[0])
    table["length"] = table["length"].astype(np.int64)
    return table


@contextlib.contextmanager
def _temp_dir_beside(target: Path):
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(src: Path, dest: Path) -> None:
    """Move directory ``src`` to ``dest``, replacing an existing ``dest`` only at the end."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old.{os.getpid()}")
        os.replace(dest, old)
    os.replace(src, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_hisat2_index(
    fasta: Path,
    gtf: Path,
    out_dir: Path,
    *,
    threads: int = 1,
    splice_sites: bool = True,
) -> Path:
    """Build a HISAT2 index of ``fasta`` with the splice sites and exons of ``gtf``.

    Writes the splice sites and exons of ``gtf`` (:mod:`scatlas.reads.splice_sites`, as HISAT2's
    helper scripts would) and runs ``hisat2-build -p threads --ss --exon`` in a temporary folder beside ``out_dir`` that is
    renamed into place when complete; ``out_dir/genes.tsv`` holds the gene table. Returns
    the index prefix ``out_dir/index``. ``splice_sites=False`` builds a plain index (a
    splice-aware index of a mammalian genome needs ~160 GB of memory).
    """
    # absolute: hisat2-build runs inside the temporary build folder
    fasta, gtf, out_dir = Path(fasta).resolve(), Path(gtf).resolve(), Path(out_dir).resolve()
    for path, what in ((fasta, "FASTA"), (gtf, "GTF")):
        if not path.is_file():
            raise InputError(f"{what} file not found", path=str(path))
        if path.stat().st_size == 0:
            raise InputError(f"{what} file is empty", path=str(path))
    genes = load_gene_table(gtf)
    with _temp_dir_beside(out_dir) as work:
        build = work / "build"
        build.mkdir()
        if is_gzipped(fasta):
            fasta = decompressed_copy(fasta, work / "genome.fa")
        if is_gzipped(gtf):
            gtf = decompressed_copy(gtf, work / "genes.gtf")
        cmd: list[str | os.PathLike] = ["hisat2-build", "-p", str(max(1, threads))]
        if splice_sites:
            ss, exons = work / "splice_sites.txt", work / "exons.txt"
            write_hisat2_annotations(gtf, ss, exons)
            cmd += ["--ss", ss, "--exon", exons]
        log.info(
            "building HISAT2 index of %s (%d genes) with %d thread(s)", fasta, len(genes), threads
        )
        run_tool([*cmd, fasta, build / "index"], cwd=work)
        write_gene_table(genes, build / "genes.tsv")
        _replace_dir(build, out_dir)
    log.info("HISAT2 index written to %s", out_dir)
    return out_dir / "index"


def resolve_reference_file(
    spec: dict,
    dest: Path,
    downloader: Callable[[str, Path], object] | None = None,
) -> Path:
    """Where a configured reference file is: ``{"path": ...}`` (local) or ``{"url": ...,
    "sha256": ...}``.

    A local path is returned as is (checked against ``sha256`` when one is given). A URL is
    fetched with ``downloader(url, tmp_path)`` to a temporary name beside ``dest``, its
    sha256 verified, and renamed to ``dest``; an existing ``dest`` with the right checksum
    is reused. A mismatch raises InputError and leaves ``dest`` untouched. Without a
    ``sha256`` the download is accepted and its checksum logged so it can be pinned.
    """
    if not isinstance(spec, dict) or ("path" in spec) == ("url" in spec):
        raise InputError(
            f"reference spec needs exactly one of 'path' or 'url': {spec!r}", field="path"
        )
    expected = (spec.get("sha256") or "").strip().lower() or None
    if "path" in spec:
        path = Path(spec["path"])
        if not path.is_file():
            raise InputError("reference file not found", path=str(path), field="path")
        if expected and sha256_file(path) != expected:
            raise InputError(
                "reference file does not match its sha256", path=str(path), field="sha256"
            )
        return path
    url, dest = str(spec["url"]), Path(dest)
    if downloader is None:
        raise InputError(f"no downloader given for reference URL {url}", field="url")
    if expected and dest.is_file() and sha256_file(dest) == expected:
        log.info("reference %s already present with the expected sha256", dest)
        return dest
    with atomic_path(dest) as tmp:
        downloader(url, tmp)
        got = sha256_file(tmp)
        if expected and got != expected:
            raise InputError(
                f"download of {url} has sha256 {got}, expected {expected}",
                path=str(dest),
                field="sha256",
            )
    if not expected:
        log.warning("reference %s has no sha256 in the config; downloaded sha256 is %s", url, got)
    return dest
