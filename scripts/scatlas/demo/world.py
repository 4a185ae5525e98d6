"""Generate the offline demo world: a small, realistic copy of GEO, SRA/ENA and ArrayExpress.

``generate_world(outdir, seed)`` writes (deterministically: same seed, same bytes)::

    OUTDIR/mirror/       the tree the mirror serves; file paths = URL paths of the services
    OUTDIR/reference/    genome.fa + genes.gtf (synthetic genome, Ensembl-style annotation)
    OUTDIR/heldout/      query.h5ad, a held-out study to query the published reference with
    OUTDIR/truth.tsv     every cell: study, sample, run, cl_id, cl_label, text
    OUTDIR/truth_molecules.tsv.gz  barcoded cells' true molecules per gene (study, cell,
                         gene_id, molecules; cell = {sample}_{barcode})
    OUTDIR/world.json    what the world holds and what the pipeline should make of it

The world is built in a temporary folder beside OUTDIR and swapped in at the end, so an
interrupted run never leaves half a world; an existing OUTDIR is replaced only when it
holds a previous world (its world.json), never when it holds anything else.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from scatlas.demo import spec
from scatlas.demo.expression import (
    Batch,
    ExpressionModel,
    build_model,
    draw_batch,
    library_sizes,
    sample_counts,
)
from scatlas.demo.genome import BASES, build_genome, write_fasta, write_gtf
from scatlas.demo.reads import (
    ReadSimulator,
    ena_fastq_dir,
    fastq_bytes,
    fastq_names,
    gzip_bytes,
    restamp_gzip,
)
from scatlas.demo.records import (
    ENA_FIELDS,
    GEO_FTP,
    SampleRecord,
    biostudies_hit,
    biostudies_study,
    ena_row,
    gds_summary,
    gse_folder,
    idf_text,
    sdrf_text,
    soft_family,
)
from scatlas.demo.spec import StudySpec
from scatlas.errors import InputError
from scatlas.logs import progress_enabled

log = logging.getLogger(__name__)

DEFAULT_READS_PER_CELL = 2500
ATAC_READS_PER_CELL = 200
CORRUPT_MTIME = 1_718_000_000  # the served GSE900009 files carry another gzip mtime than ENA hashed
_SEXES = ("female", "male")


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _well(i: int) -> str:
    plate, k = divmod(i, 96)
    return f"P{plate + 1}_{'ABCDEFGH'[k // 12]}{k % 12 + 1:02d}"


class _Counters:
    """Sequential accessions in the unused ranges (GSM99000001, SRR99000001, ERR99000001...)."""

    def __init__(self) -> None:
        self.n: dict[str, int] = {}

    def next(self, prefix: str, width: int = 8, start: int = 99000001) -> str:
        v = self.n.get(prefix, start)
        self.n[prefix] = v + 1
        return f"{prefix}{v:0{width}d}"


def _samples_for(
    study: StudySpec, counters: _Counters, rng: np.random.Generator
) -> list[SampleRecord]:
    """The study's samples (one per cell), in a shuffled plate order, with their accessions."""
    if study.kind == "not-scrna" and study.source == "arrayexpress":
        return _array_samples(study)
    # a droplet study has one sample (one run of many cells) per group
    cells = list(study.groups) if study.chemistry else [g for g in study.groups for _ in range(g.n)]
    order = rng.permutation(len(cells))
    donors = {
        1: (_SEXES[int(rng.integers(2))], int(rng.integers(25, 70))),
        2: (_SEXES[int(rng.integers(2))], int(rng.integers(25, 70))),
    }
    out = []
    for pos, ci in enumerate(order):
        group = cells[ci]
        d = 1 + pos % 2
        sex, age = donors[d]
        title = f"{study.title_prefix}_D{d}_{_well(pos)}"
        if study.source == "geo":
            chars = [
                (study.ct_key, group.text),
                ("tissue", group.tissue),
                ("donor", f"D{d}"),
                ("Sex", sex),
                ("age", str(age)),
            ]
            if study.library_strategy == "ATAC-seq":
                chars.append(("assay", "single-cell ATAC-seq"))
            rec = SampleRecord(
                study.accession,
                counters.next("GSM"),
                title,
                group.type_key,
                group.text,
                group.source_name,
                chars,
            )
            if study.kind != "matrix":
                rec.biosample = counters.next("SAMN")
                rec.secondary_sample = counters.next("SRS")
                rec.experiment = counters.next("SRX")
                rec.run = counters.next("SRR")
        else:
            chars = [
                ("organism part", group.tissue),
                ("cell type", group.text),
                ("individual", f"donor {d}"),
                ("sex", sex),
            ]
            rec = SampleRecord(
                study.accession, title, title, group.type_key, group.text, group.source_name, chars
            )
            rec.biosample = counters.next("SAMEA")
            rec.secondary_sample = counters.next("ERS")
            rec.experiment = counters.next("ERX")
            rec.run = counters.next("ERR")
        if study.chemistry:
            rec.title = f"{study.title_prefix}_D{d}_{group.source_name.split()[1]}"
        if rec.run:
            rec.files = [
                f"{ena_fastq_dir(rec.run)}/{n}" for n in fastq_names(rec.run, study.layout)
            ]
            mates = ["R1", "R2"] if study.layout == "PAIRED" else ["R1"]
            rec.submitted_names = [f"{title}_{m}.fastq.gz" for m in mates]
        out.append(rec)
    return out


def _array_samples(study: StudySpec) -> list[SampleRecord]:
    out = []
    for d in range(1, 4):
        for stim in ("LPS", "none"):
            name = f"donor{d}_{'LPS' if stim == 'LPS' else 'ctrl'}"
            chars = [("cell type", "monocyte"), ("individual", f"donor {d}"), ("stimulus", stim)]
            out.append(
                SampleRecord(study.accession, name, name, "Mono", "monocyte", "blood", chars)
            )
    return out


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_fastq(path: Path, raw: bytes, corrupt: bool) -> tuple[str, int]:
    """Compress and write one FASTQ; return the (md5, bytes) that ENA publishes for it."""
    gz = gzip_bytes(raw)
    _write(path, restamp_gzip(gz, CORRUPT_MTIME) if corrupt else gz)
    return _md5(gz), len(gz)


class _WorldBuilder:
    def __init__(self, root: Path, seed: int, reads_per_cell: int):
        self.root = root
        self.mirror = root / "mirror"
        self.seed = seed
        self.reads_per_cell = reads_per_cell
        self.counters = _Counters()
        self.samples: dict[str, list[SampleRecord]] = {}
        self.ena_rows: list[dict[str, str]] = []
        self.gds: dict[str, dict] = {}
        self.hits: list[dict] = []
        self.study_info: list[dict] = []
        # barcoded studies: (sample, run, barcode, type key, text) per cell, and the cells'
        # true molecules per gene
        self.droplet_cells: dict[str, list[tuple[str, str, str, str, str]]] = {}
        self.droplet_molecules: list[tuple[str, list[str], np.ndarray]] = []

    def build(self) -> dict:
        t0 = time.monotonic()
        genome = build_genome(_rng(self.seed, 1))
        write_fasta(genome, self.root / "reference" / "genome.fa")
        write_gtf(genome, self.root / "reference" / "genes.gtf")
        model = build_model(genome, _rng(self.seed, 2))
        self.gene_ids = model.gene_ids
        sim = ReadSimulator(genome, model)
        log.info(
            "genome: %d bp, %d genes (%.1f s)",
            genome.size,
            len(genome.genes),
            time.monotonic() - t0,
        )

        with ThreadPoolExecutor(max_workers=2) as pool:
            studies = tqdm(
                spec.STUDIES, desc="demo world", unit="study", disable=not progress_enabled()
            )
            for k, study in enumerate(studies, start=1):
                samples = _samples_for(study, self.counters, _rng(self.seed, 3, k))
                self.samples[study.accession] = samples
                self._simulate(study, k, samples, model, sim, pool)
                self._records(study, samples)
                log.info(
                    "%s: %d samples (%.1f s)", study.accession, len(samples), time.monotonic() - t0
                )

        self._write_heldout(model)
        self._write_indexes()
        self._write_truth()
        world = self._summary(genome)
        (self.root / "world.json").write_text(json.dumps(world, indent=2) + "\n")
        return world

    # -- data --------------------------------------------------------------------------------
    def _simulate(
        self,
        study: StudySpec,
        k: int,
        samples: list[SampleRecord],
        model: ExpressionModel,
        sim: ReadSimulator,
        pool: ThreadPoolExecutor,
    ) -> None:
        if not study.groups:
            return
        rng = _rng(self.seed, 4, k)
        batch = draw_batch(model, rng)
        types = [s.type_key for s in samples]
        if study.kind == "matrix":
            totals = library_sizes(
                len(samples), self.reads_per_cell * spec.ASSIGNED_FRACTION, batch, rng
            )
            counts = sample_counts(model, types, batch, totals, rng)
            self._write_matrix(study, samples, model, counts)
            return
        if study.chemistry:
            self._simulate_droplets(study, k, samples, model, sim, batch, pool)
            return
        paired = study.layout == "PAIRED"
        futures: list[list[Future]] = []
        if study.library_strategy == "ATAC-seq":
            for s in samples:
                lib = sim.genomic_library(ATAC_READS_PER_CELL, paired, rng)
                futures.append(self._submit(pool, s, lib, study.corrupt_fastq))
        else:
            totals = library_sizes(len(samples), self.reads_per_cell, batch, rng)
            n_intr = np.rint(totals * spec.INTRONIC_FRACTION).astype(int)
            n_inter = np.rint(totals * spec.INTERGENIC_FRACTION).astype(int)
            n_cont = np.rint(totals * spec.CONTAMINANT_FRACTION).astype(int)
            genic = totals - n_intr - n_inter - n_cont
            counts = sample_counts(model, types, batch, genic, rng)
            for i, s in enumerate(samples):
                lib = sim.library(
                    counts[i], int(n_intr[i]), int(n_inter[i]), int(n_cont[i]), paired, rng
                )
                futures.append(self._submit(pool, s, lib, study.corrupt_fastq))
        for s, futs in zip(samples, futures, strict=True):
            for f in futs:
                md5, size = f.result()
                s.md5.append(md5)
                s.sizes.append(size)

    def _simulate_droplets(
        self,
        study: StudySpec,
        k: int,
        samples: list[SampleRecord],
        model: ExpressionModel,
        sim: ReadSimulator,
        batch: Batch,
        pool: ThreadPoolExecutor,
    ) -> None:
        """One barcoded run per sample: its cells' molecules (3' tags, not length-weighted),
        non-genic molecules, and empty droplets holding a few ambient molecules."""
        cb_len, umi_len = spec.DROPLET_LAYOUT[study.chemistry]
        soup = np.mean([model.profiles[g.type_key] for g in study.groups], axis=0)
        futures = []
        for j, (s, group) in enumerate(zip(samples, study.groups, strict=True)):
            rng = _rng(self.seed, 6, k, j)
            n = group.n
            reads = library_sizes(n, self.reads_per_cell * spec.DROPLET_READS_FACTOR, batch, rng)
            molecules = np.maximum(np.rint(reads / spec.READS_PER_MOLECULE), 10).astype(int)
            fractions = (
                spec.INTRONIC_FRACTION,
                spec.INTERGENIC_FRACTION,
                spec.CONTAMINANT_FRACTION,
            )
            other = [np.rint(molecules * f).astype(int) for f in fractions]
            genic = molecules - sum(other)
            counts = sample_counts(
                model, [group.type_key] * n, batch, genic, rng, length_weighted=False
            )
            n_bc = n + spec.AMBIENT_BARCODES
            barcodes = rng.integers(0, 4, size=(n_bc, cb_len))
            while len(np.unique(barcodes, axis=0)) < n_bc:  # distinct barcodes
                barcodes = rng.integers(0, 4, size=(n_bc, cb_len))
            ambient = 1 + rng.poisson(spec.AMBIENT_MOLECULES_MEAN - 1.0, size=spec.AMBIENT_BARCODES)
            ambient_genes = rng.choice(model.n_genes, size=int(ambient.sum()), p=soup)
            cell_idx = np.arange(n)
            mol_barcode = np.concatenate(
                [np.repeat(cell_idx, counts.sum(axis=1))]
                + [np.repeat(cell_idx, o) for o in other]
                + [np.repeat(np.arange(n, n_bc), ambient)]
            )
            mol_gene = np.concatenate(
                [np.concatenate([np.repeat(np.arange(model.n_genes), row) for row in counts])]
                + [np.full(int(o.sum()), code) for o, code in zip(other, (-1, -2, -3), strict=True)]
                + [ambient_genes]
            )
            lib = sim.droplet_library(
                BASES[barcodes].astype(np.uint8), mol_barcode, mol_gene, umi_len, rng
            )
            futures.append(self._submit(pool, s, lib, study.corrupt_fastq))
            names = [BASES[b].tobytes().decode() for b in barcodes[:n]]
            self.droplet_cells.setdefault(study.accession, []).extend(
                (s.sample, s.run, cb, group.type_key, group.text) for cb in names
            )
            self.droplet_molecules.append(
                (study.accession, [f"{s.sample}_{cb}" for cb in names], counts)
            )
        for s, futs in zip(samples, futures, strict=True):
            for f in futs:
                md5, size = f.result()
                s.md5.append(md5)
                s.sizes.append(size)

    def _submit(
        self, pool: ThreadPoolExecutor, s: SampleRecord, lib, corrupt: bool
    ) -> list[Future]:
        s.read_count = int(lib.mates[0].shape[0])
        return [
            pool.submit(_write_fastq, self.mirror / path, fastq_bytes(s.run, reads, quals), corrupt)
            for path, reads, quals in zip(s.files, lib.mates, lib.quals, strict=True)
        ]

    def _write_matrix(
        self,
        study: StudySpec,
        samples: list[SampleRecord],
        model: ExpressionModel,
        counts: np.ndarray,
    ) -> None:
        """Author-processed counts: genes x cells, gene symbols in the first column, sorted by symbol."""
        order = sorted(range(model.n_genes), key=lambda i: model.symbols[i])
        buf = io.StringIO()
        buf.write(",".join(["gene"] + [s.sample for s in samples]) + "\n")
        for gi in order:
            buf.write(model.symbols[gi] + "," + ",".join(str(int(v)) for v in counts[:, gi]) + "\n")
        path = (
            self.mirror
            / "geo"
            / gse_folder(study.accession)
            / "suppl"
            / f"{study.accession}_counts.csv.gz"
        )
        _write(path, gzip_bytes(buf.getvalue().encode()))

    # -- records -----------------------------------------------------------------------------
    def _records(self, study: StudySpec, samples: list[SampleRecord]) -> None:
        has_reads = any(s.run for s in samples)
        if study.source == "geo":
            sra = f"SRP{990000 + study.number}" if has_reads else ""
            bioproject = f"PRJNA{990000 + study.number}"
            supp, suppfile = [], ""
            if study.kind == "matrix":
                supp = [
                    f"{GEO_FTP}/{gse_folder(study.accession)}/suppl/{study.accession}_counts.csv.gz"
                ]
                suppfile = "CSV"
            soft = soft_family(study, samples, supp, sra, bioproject)
            path = (
                self.mirror
                / "geo"
                / gse_folder(study.accession)
                / "soft"
                / f"{study.accession}_family.soft.gz"
            )
            _write(path, gzip_bytes(soft.encode()))
            doc = gds_summary(study, samples, suppfile, sra, bioproject)
            self.gds[doc["uid"]] = doc
            self.ena_rows += [ena_row(study, s, bioproject, sra) for s in samples if s.run]
        else:
            acc = study.accession
            erp = f"ERP{990000 + study.number}" if has_reads else ""
            prj = f"PRJEB{990000 + study.number}" if has_reads else ""
            files = {
                f"{acc}.idf.txt": idf_text(study, erp),
                f"{acc}.sdrf.txt": sdrf_text(study, samples),
            }
            for name, text in files.items():
                _write(self.mirror / "biostudies" / "files" / acc / name, text.encode())
            sizes = {name: len(text.encode()) for name, text in files.items()}
            doc = biostudies_study(study, samples, erp, sizes)
            _write(
                self.mirror / "biostudies" / "api" / "v1" / "studies" / f"{acc}.json",
                (json.dumps(doc, indent=2) + "\n").encode(),
            )
            self.hits.append(biostudies_hit(study, n_files=len(files), n_links=1 if erp else 0))
            self.ena_rows += [ena_row(study, s, prj, erp) for s in samples if s.run]

    def _write_indexes(self) -> None:
        idx = self.mirror / "_index"
        _write(idx / "gds.json", (json.dumps(self.gds, indent=2) + "\n").encode())
        _write(idx / "biostudies.json", (json.dumps(self.hits, indent=2) + "\n").encode())
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(ENA_FIELDS), delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(self.ena_rows)
        _write(idx / "ena_runs.tsv", buf.getvalue().encode())

    def _write_heldout(self, model: ExpressionModel) -> None:
        import anndata as ad
        import pandas as pd
        import scipy.sparse as sp

        rng = _rng(self.seed, 5)
        batch = draw_batch(model, rng)
        types = [k for k, n in spec.HELDOUT_GROUPS for _ in range(n)]
        types = [types[i] for i in rng.permutation(len(types))]
        totals = library_sizes(len(types), self.reads_per_cell * spec.ASSIGNED_FRACTION, batch, rng)
        counts = sample_counts(model, types, batch, totals, rng)
        cells = [f"{spec.HELDOUT_ACCESSION}_c{i + 1:03d}" for i in range(len(types))]
        obs = pd.DataFrame(
            {
                "study": spec.HELDOUT_ACCESSION,
                "truth_cl_id": [spec.CELL_TYPES[t].cl_id for t in types],
                "truth_cl_label": [spec.CELL_TYPES[t].cl_label for t in types],
                "truth_novel": [t not in spec.REFERENCE_TYPES for t in types],
            },
            index=pd.Index(cells, name="cell"),
        )
        var = pd.DataFrame(
            {"gene_symbol": model.symbols}, index=pd.Index(model.gene_ids, name="gene_id")
        )
        adata = ad.AnnData(X=sp.csr_matrix(counts.astype(np.int32)), obs=obs, var=var)
        adata.uns["scatlas"] = {
            "study": spec.HELDOUT_ACCESSION,
            "technology": "smartseq",
            "generator": spec.GENERATOR_VERSION,
            "seed": self.seed,
        }
        path = self.root / "heldout" / "query.h5ad"
        path.parent.mkdir(parents=True, exist_ok=True)
        adata.write_h5ad(path)
        self.heldout_types = types
        self.heldout_cells = cells

    def _write_truth(self) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, delimiter="\t", lineterminator="\n")
        w.writerow(["study", "sample", "run", "cl_id", "cl_label", "text"])
        for study in spec.STUDIES:
            if not study.groups:
                continue
            if study.chemistry:  # cells are {sample}_{barcode}, as the pipeline names them
                for sample, run, cb, key, text in self.droplet_cells[study.accession]:
                    ct = spec.CELL_TYPES[key]
                    w.writerow(
                        [study.accession, f"{sample}_{cb}", run, ct.cl_id, ct.cl_label, text]
                    )
                continue
            for s in self.samples[study.accession]:
                ct = spec.CELL_TYPES[s.type_key]
                # the sample id the pipeline gives a cell: GSM for GEO, the ENA sample (ERS) for
                # ArrayExpress (its SDRF source name is only a label)
                sample = s.sample if study.source == "geo" else s.secondary_sample
                w.writerow([study.accession, sample, s.run, ct.cl_id, ct.cl_label, s.text])
        for cell, t in zip(self.heldout_cells, self.heldout_types, strict=True):
            ct = spec.CELL_TYPES[t]
            w.writerow([spec.HELDOUT_ACCESSION, cell, "", ct.cl_id, ct.cl_label, ""])
        (self.root / "truth.tsv").write_text(buf.getvalue())
        rows = io.StringIO()
        rows.write("study\tcell\tgene_id\tmolecules\n")
        for acc, cells, counts in self.droplet_molecules:
            for cell, row in zip(cells, counts, strict=True):
                for gi in np.flatnonzero(row):
                    rows.write(f"{acc}\t{cell}\t{self.gene_ids[gi]}\t{int(row[gi])}\n")
        (self.root / "truth_molecules.tsv.gz").write_bytes(gzip_bytes(rows.getvalue().encode()))

    def _summary(self, genome) -> dict:
        studies = []
        for study in spec.STUDIES:
            samples = self.samples[study.accession]
            types: dict[str, dict] = {}
            for g in study.groups:
                ct = spec.CELL_TYPES[g.type_key]
                types.setdefault(ct.cl_id, {"cl_label": ct.cl_label, "n_cells": 0, "texts": []})
                types[ct.cl_id]["n_cells"] += g.n
                types[ct.cl_id]["texts"].append(g.text)
            studies.append(
                {
                    "accession": study.accession,
                    "source": study.source,
                    "kind": study.kind,
                    "title": study.title,
                    "released": study.released.isoformat(),
                    "n_samples": len(samples),
                    "n_cells": study.n_cells,
                    "n_runs": sum(1 for s in samples if s.run),
                    "layout": study.layout,
                    "chemistry": study.chemistry,
                    "read_length": spec.READ_LENGTH if any(s.run for s in samples) else 0,
                    "instrument": study.instrument if study.library_strategy else "",
                    "library_strategy": study.library_strategy,
                    "cell_type_key": study.ct_key if study.groups else "",
                    "expected": study.expected,
                    "reason": study.reason,
                    "cell_types": types,
                }
            )
        good = [s for s in studies if s["expected"] == "ok"]
        ho_counts: dict[str, int] = {}
        for t in self.heldout_types:
            ho_counts[spec.CELL_TYPES[t].cl_id] = ho_counts.get(spec.CELL_TYPES[t].cl_id, 0) + 1
        return {
            "generator": spec.GENERATOR_VERSION,
            "seed": self.seed,
            "reads_per_cell": self.reads_per_cell,
            "organism": spec.ORGANISM,
            "genome": {
                "synthetic": True,
                "note": "random sequence standing in for the human genome; gene symbols are real, sequences are not",
                "build": "DEMO1",
                "chromosomes": {c: int(len(s)) for c, s in genome.chroms.items()},
                "n_genes": len(genome.genes),
                "fasta": "reference/genome.fa",
                "gtf": "reference/genes.gtf",
            },
            "reads": {
                "read_length": spec.READ_LENGTH,
                "fragment_length": [spec.FRAGMENT_MIN, spec.FRAGMENT_MAX],
                "intronic_fraction": spec.INTRONIC_FRACTION,
                "intergenic_fraction": spec.INTERGENIC_FRACTION,
                "unalignable_fraction": spec.CONTAMINANT_FRACTION,
                "substitution_rate": spec.SUBSTITUTION_RATE,
                "stranded": False,
            },
            "studies": studies,
            "heldout": {
                "accession": spec.HELDOUT_ACCESSION,
                "path": "heldout/query.h5ad",
                "n_cells": len(self.heldout_types),
                "cell_types": ho_counts,
                "novel_cl_ids": sorted(
                    {
                        spec.CELL_TYPES[t].cl_id
                        for t in self.heldout_types
                        if t not in spec.REFERENCE_TYPES
                    }
                ),
            },
            "totals": {
                "studies": len(studies),
                "good_studies": len(good),
                "good_cells": sum(s["n_cells"] for s in good),
                "runs": sum(s["n_runs"] for s in studies),
                "reference_cell_types": sorted({c for s in good for c in s["cell_types"]}),
            },
        }


def generate_world(
    outdir: Path, seed: int = 1, *, reads_per_cell: int = DEFAULT_READS_PER_CELL
) -> dict:
    """Write the demo world into ``outdir`` and return its summary (the content of world.json).

    ``reads_per_cell`` is the mean number of read fragments per cell (tests use fewer).
    Raises InputError when ``outdir`` exists, is not empty and is not a previous world.
    """
    outdir = Path(outdir)
    if reads_per_cell < 20:
        raise InputError("reads_per_cell must be at least 20", field="reads_per_cell")
    if outdir.exists():
        if not outdir.is_dir():
            raise InputError("demo world output is not a folder", path=str(outdir))
        if any(outdir.iterdir()) and not (outdir / "world.json").is_file():
            raise InputError(
                "refusing to overwrite a folder that is not a demo world (no world.json)",
                path=str(outdir),
            )
    outdir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=outdir.parent))
    try:
        world = _WorldBuilder(tmp, seed, reads_per_cell).build()
        old = None
        if outdir.exists():
            old = outdir.parent / f"{tmp.name}.old"
            os.replace(outdir, old)
        os.replace(tmp, outdir)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
        raise
    log.info("demo world written to %s in %.1f s", outdir, time.monotonic() - t0)
    return world
