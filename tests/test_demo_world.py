"""The demo world generator: layout, formats, determinism, biology and alignability."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from scatlas.demo import spec
from scatlas.demo.reads import ena_fastq_dir
from scatlas.demo.world import generate_world
from scatlas.errors import InputError

READS = 120  # reads per cell in the test worlds (the real demo uses 2,500)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "world"
    return out, generate_world(out, seed=1, reads_per_cell=READS)


@pytest.fixture(scope="module")
def root(world) -> Path:
    return world[0]


@pytest.fixture(scope="module")
def truth(root) -> list[dict[str, str]]:
    with open(root / "truth.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def ena_runs(root) -> list[dict[str, str]]:
    with open(root / "mirror" / "_index" / "ena_runs.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _soft_path(root: Path, acc: str) -> Path:
    return (
        root
        / "mirror"
        / "geo"
        / "series"
        / f"{acc[:-3]}nnn"
        / acc
        / "soft"
        / f"{acc}_family.soft.gz"
    )


# -- determinism ------------------------------------------------------------------------------


def test_seeds_determine_the_bytes(root, tmp_path):
    out = tmp_path / "w"
    generate_world(out, seed=2, reads_per_cell=READS)
    first, other = _hashes(root), _hashes(out)
    assert len(first) > 300 and set(first) == set(other)  # same layout and accessions...
    differing = [k for k in first if first[k] != other[k]]
    assert "reference/genome.fa" in differing  # ...but other sequence, expression and reads
    assert "heldout/query.h5ad" in differing
    assert len(differing) > 0.9 * len(first)
    # regenerating over a previous world replaces it; the same seed gives the same bytes
    generate_world(out, seed=1, reads_per_cell=READS)
    assert _hashes(out) == first
    assert [p.name for p in tmp_path.iterdir()] == ["w"]  # no temporary folders left behind


def test_regenerating_replaces_a_world_but_not_foreign_data(root, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a demo world"):
        generate_world(foreign, seed=1, reads_per_cell=READS)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(InputError, match="reads_per_cell"):
        generate_world(tmp_path / "x", seed=1, reads_per_cell=5)


# -- layout and summary -------------------------------------------------------------------------


def test_layout_and_summary(world):
    root, summary = world
    m = root / "mirror"
    for rel in [
        "geo/series/GSE900nnn/GSE900001/soft/GSE900001_family.soft.gz",
        "geo/series/GSE900nnn/GSE900007/suppl/GSE900007_counts.csv.gz",
        "vol1/fastq/SRR990/001/SRR99000001/SRR99000001.fastq.gz",
        "biostudies/api/v1/studies/E-MTAB-99001.json",
        "biostudies/files/E-MTAB-99001/E-MTAB-99001.sdrf.txt",
        "biostudies/files/E-MTAB-99001/E-MTAB-99001.idf.txt",
        "_index/gds.json",
        "_index/ena_runs.tsv",
        "_index/biostudies.json",
    ]:
        assert (m / rel).is_file(), rel
    for rel in [
        "reference/genome.fa",
        "reference/genes.gtf",
        "heldout/query.h5ad",
        "truth.tsv",
        "world.json",
    ]:
        assert (root / rel).is_file(), rel
    assert json.loads((root / "world.json").read_text()) == summary
    by_acc = {s["accession"]: s for s in summary["studies"]}
    assert by_acc["GSE900008"]["expected"] == "excluded"
    assert by_acc["E-MTAB-99002"]["expected"] == "excluded"
    assert by_acc["GSE900009"]["expected"] == "failed"
    assert by_acc["GSE900007"]["kind"] == "matrix"
    assert by_acc["GSE900010"]["chemistry"] == "10x_v3" and by_acc["GSE900010"]["n_runs"] == 2
    assert {a for a, s in by_acc.items() if s["expected"] == "ok"} == {
        "GSE900001",
        "GSE900002",
        "GSE900003",
        "GSE900004",
        "GSE900005",
        "GSE900006",
        "GSE900007",
        "GSE900010",
        "E-MTAB-99001",
    }
    assert summary["genome"]["synthetic"] is True
    assert {by_acc[a]["layout"] for a in ("GSE900001", "GSE900002")} == {"SINGLE", "PAIRED"}
    assert not (m / "geo" / "series" / "GSE900nnn" / spec.HELDOUT_ACCESSION).exists()


def test_ena_directory_rule():
    assert ena_fastq_dir("ERR000916") == "vol1/fastq/ERR000/ERR000916"
    assert ena_fastq_dir("SRR1016916") == "vol1/fastq/SRR101/006/SRR1016916"
    assert ena_fastq_dir("SRR99000001") == "vol1/fastq/SRR990/001/SRR99000001"
    assert ena_fastq_dir("ERR99000048") == "vol1/fastq/ERR990/048/ERR99000048"
    assert ena_fastq_dir("SRR123456789") == "vol1/fastq/SRR123/789/SRR123456789"


# -- GEO ------------------------------------------------------------------------------------------


def test_soft_family_files_load_with_geoparse(root, truth):
    import GEOparse

    # droplet cells are "{GSM}_{barcode}": their sample's text is the cells' text
    text_of = {r["sample"].split("_")[0]: r["text"] for r in truth}
    for study in spec.STUDIES:
        if study.source != "geo":
            continue
        gse = GEOparse.get_GEO(filepath=str(_soft_path(root, study.accession)), silent=True)
        assert gse.name == study.accession
        assert len(gse.gsms) == (len(study.groups) if study.chemistry else study.n_cells)
        assert gse.metadata["type"] == [study.gds_type]
        assert list(gse.gpls) == [spec.PLATFORMS[study.instrument]]
        relations = gse.metadata.get("relation", [])
        if study.kind == "matrix":
            assert not any(r.startswith("SRA:") for r in relations)
            assert gse.metadata["supplementary_file"] == [
                "ftp://ftp.ncbi.nlm.nih.gov/geo/series/GSE900nnn/GSE900007/suppl/GSE900007_counts.csv.gz"
            ]
        else:
            assert (
                f"SRA: https://www.ncbi.nlm.nih.gov/sra?term=SRP{990000 + study.number}"
                in relations
            )
        for name, gsm in gse.gsms.items():
            md = gsm.metadata
            chars = dict(c.split(": ", 1) for c in md["characteristics_ch1"])
            assert chars[study.ct_key] == text_of[name]
            assert {"tissue", "donor"} <= set(chars)
            assert md["organism_ch1"] == ["Homo sapiens"] and md["taxid_ch1"] == ["9606"]
            assert md["library_strategy"] == [study.library_strategy]
            assert md["supplementary_file_1"] == ["NONE"]
            assert md["data_row_count"] == ["0"]
            sra = [r for r in md.get("relation", []) if r.startswith("SRA: ")]
            assert len(sra) == (0 if study.kind == "matrix" else 1)
            if sra:
                assert re.fullmatch(r"SRA: https://www.ncbi.nlm.nih.gov/sra\?term=SRX\d{8}", sra[0])
                assert any(
                    r.startswith("BioSample: https://www.ncbi.nlm.nih.gov/biosample/SAMN")
                    for r in md["relation"]
                )


def test_esummary_documents(root, shared_data):
    gds = json.loads((root / "mirror" / "_index" / "gds.json").read_text())
    real = json.loads((shared_data / "geo" / "ffq" / "GSE93374_summary.txt").read_text())["result"][
        "200093374"
    ]
    assert set(gds) == {str(200900000 + i) for i in range(1, 11)}
    for uid, doc in gds.items():
        assert set(doc) == set(real), "keys differ from a real esummary document"
        assert doc["uid"] == uid and doc["accession"] == f"GSE{int(uid) - 200000000}"
        assert re.fullmatch(r"202[45]/\d\d/\d\d", doc["pdat"])
        assert doc["n_samples"] == len(doc["samples"])
    assert gds["200900007"]["extrelations"] == [] and gds["200900007"]["suppfile"] == "CSV"
    assert gds["200900001"]["extrelations"][0]["targetobject"] == "SRP990001"
    assert gds["200900008"]["gdstype"].startswith("Genome binding/occupancy")
    assert "single-cell" in gds["200900008"]["summary"].lower() + gds["200900008"]["title"].lower()


def test_matrix_study_counts(root, truth):
    path = root / "mirror/geo/series/GSE900nnn/GSE900007/suppl/GSE900007_counts.csv.gz"
    with gzip.open(path, "rt") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    assert header[0] == "gene"
    assert header[1:] == [r["sample"] for r in truth if r["study"] == "GSE900007"]
    symbols = [r[0] for r in rows[1:]]
    assert len(symbols) == len(set(symbols)) == 380 and {"CD3E", "INS", "ALB"} <= set(symbols)
    values = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    assert values.min() >= 0 and (values.sum(axis=0) > 0.5 * READS).all()


# -- ENA / FASTQ ----------------------------------------------------------------------------------


def _records(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt") as fh:
        lines = fh.read().splitlines()
    assert len(lines) % 4 == 0
    return [lines[i : i + 4] for i in range(0, len(lines), 4)]


def test_fastq_files_match_ena_except_the_corrupt_study(root, ena_runs):
    with open(root / "truth.tsv", newline="") as fh:
        corrupt_runs = {
            r["run"] for r in csv.DictReader(fh, delimiter="\t") if r["study"] == "GSE900009"
        }
    assert len(corrupt_runs) == 8
    assert len(ena_runs) == len({r["run_accession"] for r in ena_runs}) == 382
    for i, row in enumerate(ena_runs):
        urls = row["fastq_ftp"].split(";")
        md5s, sizes = row["fastq_md5"].split(";"), row["fastq_bytes"].split(";")
        assert (
            len(urls) == len(md5s) == len(sizes) == (2 if row["library_layout"] == "PAIRED" else 1)
        )
        for url, md5, size in zip(urls, md5s, sizes, strict=True):
            assert url.startswith("ftp.sra.ebi.ac.uk/" + ena_fastq_dir(row["run_accession"]) + "/")
            f = root / "mirror" / url.split("/", 1)[1]
            data = f.read_bytes()
            assert len(data) == int(size)
            if row["run_accession"] in corrupt_runs:
                assert hashlib.md5(data).hexdigest() != md5
            else:
                assert hashlib.md5(data).hexdigest() == md5
        if row["study_accession"] == "PRJNA990010":  # droplet runs: test_droplet_runs
            continue
        if i % 25 == 0 or row["run_accession"] in corrupt_runs:  # parse a sample of files fully
            mates = [_records(root / "mirror" / u.split("/", 1)[1]) for u in urls]
            assert all(len(m) == int(row["read_count"]) for m in mates)
            for k, rec in enumerate(mates[0], start=1):
                assert rec[0] == f"@{row['run_accession']}.{k} {k} length=50"
                assert rec[2] == "+" and len(rec[1]) == len(rec[3]) == 50
                assert set(rec[1]) <= set("ACGTN")
            if len(mates) == 2:
                assert [r[0] for r in mates[0]] == [r[0] for r in mates[1]]
    assert {r["library_source"] for r in ena_runs} >= {
        "TRANSCRIPTOMIC",
        "TRANSCRIPTOMIC SINGLE CELL",
    }
    assert all(r["tax_id"] == "9606" and r["scientific_name"] == "Homo sapiens" for r in ena_runs)


def test_ena_rows_link_geo_and_arrayexpress(ena_runs, truth):
    by_run = {r["run_accession"]: r for r in ena_runs}
    for t in truth:
        if not t["run"]:
            continue
        row = by_run[t["run"]]
        if t["study"].startswith("GSE"):
            # a droplet cell is "{GSM}_{barcode}"
            assert row["sample_alias"] == t["sample"].split("_")[0] and row[
                "secondary_study_accession"
            ].startswith("SRP")
        else:
            assert row["secondary_sample_accession"] == t["sample"]
            assert row["sample_alias"].startswith(f"{t['study']}:")
            assert (
                row["run_accession"].startswith("ERR")
                and row["secondary_study_accession"] == "ERP990001"
            )


def test_droplet_runs(root, ena_runs, truth):
    """The 10x v3 study: per sample one run of many cells; read 1 = 16 bp barcode + 12 bp
    UMI, read 2 = 50 bp of cDNA; called cells and their true molecules in the truth files."""
    from scatlas.reads.barcodes import DEFAULT_CHEMISTRIES, call_cells

    rows = [r for r in ena_runs if r["study_accession"] == "PRJNA990010"]
    assert len(rows) == 2 and all(r["library_layout"] == "PAIRED" for r in rows)
    cells = [t for t in truth if t["study"] == "GSE900010"]
    assert len(cells) == 120
    molecules = {}
    with gzip.open(root / "truth_molecules.tsv.gz", "rt") as fh:
        for rec in csv.DictReader(fh, delimiter="\t"):
            molecules[rec["cell"]] = molecules.get(rec["cell"], 0) + int(rec["molecules"])
    assert set(molecules) == {t["sample"] for t in cells}
    for row in rows:
        paths = [root / "mirror" / u.split("/", 1)[1] for u in row["fastq_ftp"].split(";")]
        r1, r2 = (_records(p) for p in paths)
        assert len(r1) == len(r2) == int(row["read_count"])
        assert int(row["base_count"]) == int(row["read_count"]) * (28 + 50)
        assert {len(r[1]) for r in r1} == {28} and {len(r[1]) for r in r2} == {50}
        assert [r[0].split()[0] for r in r1] == [r[0].split()[0] for r in r2]
        reads = defaultdict(int)
        for r in r1:
            reads[r[1][:16]] += 1
        import pandas as pd

        call = call_cells(pd.Series(reads), DEFAULT_CHEMISTRIES["10x_v3"], min_reads=20)
        sample = row["sample_alias"]
        truth_cells = {t["sample"].split("_")[1] for t in cells if t["sample"].startswith(sample)}
        assert set(call.cells) == truth_cells  # a clean knee between cells and empty droplets
        assert len(reads) > len(truth_cells) + 1000  # empty droplets and barcode errors
        per_cell = [molecules[f"{sample}_{b}"] for b in truth_cells]
        # 0.6 x READS reads per droplet cell, ~3 reads per molecule, ~91% genic molecules
        assert 0.12 * READS < np.median(per_cell) < 0.25 * READS


# -- ArrayExpress / BioStudies -----------------------------------------------------------------------


def test_sdrf_idf_and_biostudies_json(root, ena_runs):
    files = root / "mirror" / "biostudies" / "files" / "E-MTAB-99001"
    with open(files / "E-MTAB-99001.sdrf.txt", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    header, body = rows[0], rows[1:]
    for col in [
        "Source Name",
        "Characteristics[organism]",
        "Characteristics[organism part]",
        "Characteristics[cell type]",
        "Material Type",
        "Protocol REF",
        "Extract Name",
        "Comment[LIBRARY_LAYOUT]",
        "Comment[LIBRARY_SOURCE]",
        "Comment[LIBRARY_STRATEGY]",
        "Comment[LIBRARY_SELECTION]",
        "Assay Name",
        "Technology Type",
        "Comment[ENA_SAMPLE]",
        "Comment[ENA_EXPERIMENT]",
        "Comment[ENA_RUN]",
        "Comment[FASTQ_URI]",
        "Comment[technical replicate group]",
        "Factor Value[cell type]",
    ]:
        assert col in header, col
    run_col, uri_col = header.index("Comment[ENA_RUN]"), header.index("Comment[FASTQ_URI]")
    ae_runs = {r["run_accession"]: r for r in ena_runs if r["run_accession"].startswith("ERR")}
    assert len(body) == 2 * len(ae_runs) == 96  # paired-end: one row per FASTQ file
    for row in body:
        assert row[uri_col].startswith("ftp://ftp.sra.ebi.ac.uk/vol1/fastq/ERR990/")
        assert row[uri_col][len("ftp://") :] in ae_runs[row[run_col]]["fastq_ftp"].split(";")
    idf = (files / "E-MTAB-99001.idf.txt").read_text()
    assert "SDRF File\tE-MTAB-99001.sdrf.txt" in idf
    assert "Comment[AEExperimentType]\tRNA-seq of coding RNA from single cells" in idf

    doc = json.loads((root / "mirror/biostudies/api/v1/studies/E-MTAB-99001.json").read_text())
    assert doc["accno"] == "E-MTAB-99001" and doc["type"] == "submission"
    top = {a["name"]: a["value"] for a in doc["attributes"]}
    assert top["AttachTo"] == "ArrayExpress" and top["ReleaseDate"] == "2024-10-02"
    section = doc["section"]
    attrs = {a["name"]: a["value"] for a in section["attributes"]}
    assert section["type"] == "Study"
    assert attrs["Study type"] == "RNA-seq of coding RNA from single cells"
    assert attrs["Organism"] == "Homo sapiens" and attrs["Title"] == top["Title"]

    def walk(node):
        yield node
        for child in node.get("subsections", []):
            for c in child if isinstance(child, list) else [child]:
                yield from walk(c)

    mage = [n for n in walk(section) if n.get("type") == "MAGE-TAB Files"]
    listed = {f["path"]: f["size"] for group in mage[0]["files"] for f in group}
    assert listed == {
        name: (files / name).stat().st_size
        for name in ("E-MTAB-99001.idf.txt", "E-MTAB-99001.sdrf.txt")
    }
    hits = json.loads((root / "mirror/_index/biostudies.json").read_text())
    assert {h["accession"] for h in hits} == {"E-MTAB-99001", "E-MTAB-99002"}
    array = json.loads((root / "mirror/biostudies/api/v1/studies/E-MTAB-99002.json").read_text())
    assert {a["name"]: a["value"] for a in array["section"]["attributes"]}[
        "Study type"
    ] == "transcription profiling by array"


# -- biology ----------------------------------------------------------------------------------------


def test_cells_and_cell_types(truth, world):
    summary = world[1]
    ok = {s["accession"] for s in summary["studies"] if s["expected"] == "ok"}
    reads = {
        s["accession"]
        for s in summary["studies"]
        if s["expected"] == "ok" and s["kind"] == "reads" and s["source"] == "geo"
    }
    good = [t for t in truth if t["study"] in ok]
    assert len(good) >= 300 and summary["totals"]["good_cells"] == len(good)
    studies_of: dict[str, set[str]] = defaultdict(set)
    for t in good:
        studies_of[t["cl_id"]].add(t["study"])
    assert len(studies_of) >= 6
    for cl, studies in studies_of.items():
        assert len(studies) >= 2, cl
        assert len(studies & reads) >= 2, cl
    # every study words its types differently from at least one other study
    texts: dict[str, set[str]] = defaultdict(set)
    for t in good:
        texts[t["cl_id"]].add(t["text"])
    assert all(len(v) >= 2 for v in texts.values())


def _cl_index(shared_data: Path):
    import pronto

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onto = pronto.Ontology(str(shared_data / "ontology" / "cl-basic_2022-12-15.obo"))
    phrases: dict[str, set[str]] = defaultdict(set)
    for term in onto.terms():
        if term.obsolete or not term.id.startswith("CL:"):
            continue
        phrases[term.name.lower()].add(term.id)
        for syn in term.synonyms:
            phrases[syn.description.lower()].add(term.id)
    return onto, phrases


def _related(onto, cl_id: str) -> set[str]:
    """The term, its ancestors and its descendants (CL itself lists "monocyte" as a NARROW
    synonym of "CD14-positive monocyte"): anything else in a cell's text would be a distractor."""
    term = onto[cl_id]
    return {t.id for t in term.superclasses()} | {t.id for t in term.subclasses()}


def test_texts_match_cell_ontology(truth, root, shared_data):
    onto, phrases = _cl_index(shared_data)
    cells = [t for t in truth if t["text"]]
    exact = 0
    for t in cells:
        text = t["text"].lower()
        hits = phrases.get(text, set()) | (
            phrases.get(text[:-1], set()) if text.endswith("s") else set()
        )
        exact += t["cl_id"] in hits
        assert hits <= _related(onto, t["cl_id"]), t
    assert exact / len(cells) >= 0.85
    assert exact < len(cells)  # some realistic shorthand remains for matchers to miss

    # the whole free text of a GEO cell names no cell type other than its own (or an ancestor)
    import GEOparse

    pattern = re.compile(
        r"(?<![\w-])("
        + "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
        + r")s?(?![\w-])",
        re.IGNORECASE,
    )
    truth_of = {t["sample"]: t["cl_id"] for t in truth}
    for acc in ("GSE900001", "GSE900003", "GSE900005"):
        gse = GEOparse.get_GEO(filepath=str(_soft_path(root, acc)), silent=True)
        for name, gsm in gse.gsms.items():
            md = gsm.metadata
            text = " | ".join(md["title"] + md["source_name_ch1"] + md["characteristics_ch1"])
            found = {cl for m in pattern.finditer(text) for cl in phrases[m.group(1).lower()]}
            allowed = _related(onto, truth_of[name])
            assert found <= allowed, (name, text, found - allowed)


# -- reference --------------------------------------------------------------------------------------


def _fasta(path: Path) -> dict[str, str]:
    seqs: dict[str, list[str]] = {}
    name = ""
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:]
            seqs[name] = []
        else:
            assert len(line) <= 60
            seqs[name].append(line)
    return {k: "".join(v) for k, v in seqs.items()}


def test_genome_and_gtf(root):
    genome = _fasta(root / "reference" / "genome.fa")
    assert list(genome) == ["chr1", "chr2", "chr3"]
    total = sum(len(s) for s in genome.values())
    assert 2_000_000 <= total <= 3_000_000
    gc = sum(s.count("G") + s.count("C") for s in genome.values()) / total
    assert 0.40 < gc < 0.44

    genes: dict[str, dict] = {}
    tx_exons: dict[str, list[tuple[int, int]]] = defaultdict(list)
    tx_gene: dict[str, str] = {}
    for line in (root / "reference" / "genes.gtf").read_text().splitlines():
        if line.startswith("#"):
            continue
        chrom, _, feature, start, end, _, strand, _, attrs = line.split("\t")
        a = dict(re.findall(r'(\S+) "([^"]*)";', attrs))
        start_i, end_i = int(start), int(end)
        assert 1 <= start_i <= end_i <= len(genome[chrom])
        if feature == "gene":
            assert re.fullmatch(r"DEMOG\d{11}", a["gene_id"])
            genes[a["gene_id"]] = {
                "chrom": chrom,
                "strand": strand,
                "start": start_i,
                "end": end_i,
                "name": a["gene_name"],
                "biotype": a["gene_biotype"],
                "exons": set(),
            }
        elif feature == "exon":
            genes[a["gene_id"]]["exons"].add((start_i, end_i))
            tx_exons[a["transcript_id"]].append((start_i, end_i))
            tx_gene[a["transcript_id"]] = a["gene_id"]
            assert 100 <= end_i - start_i + 1 <= 400
    assert 300 <= len(genes) <= 500
    names = {g["name"] for g in genes.values()}
    assert len(names) == len(genes)
    assert {
        "CD19",
        "MS4A1",
        "CD3E",
        "NKG7",
        "CD14",
        "INS",
        "ALB",
        "COL1A1",
        "PECAM1",
        "PTPRC",
        "ACTB",
        "GAPDH",
    } <= names
    assert {"lncRNA", "protein_coding"} == {g["biotype"] for g in genes.values()}
    assert {g["strand"] for g in genes.values()} == {"+", "-"}
    multi = 0
    for tid, exons in tx_exons.items():
        g = genes[tx_gene[tid]]
        assert len(g["exons"]) >= 2
        if sum(1 for t in tx_gene.values() if t == tx_gene[tid]) > 1:
            multi += 1
            union = sum(e - s + 1 for s, e in g["exons"])
            assert sum(e - s + 1 for s, e in exons) < union
    assert multi >= 20
    # canonical splice sites on the gene's strand
    for g in list(genes.values())[:50]:
        ex = sorted(g["exons"])
        seq = genome[g["chrom"]]
        for (_, e1), (s2, _) in zip(ex[:-1], ex[1:], strict=True):
            donor, acceptor = seq[e1 : e1 + 2], seq[s2 - 3 : s2 - 1]
            assert (donor, acceptor) == (("GT", "AG") if g["strand"] == "+" else ("CT", "AC"))


def test_heldout_query(root):
    import anndata as ad
    import scipy.sparse as sp

    a = ad.read_h5ad(root / "heldout" / "query.h5ad")
    assert sp.issparse(a.X) and a.X.format == "csr" and a.X.dtype == np.int32
    assert 60 <= a.n_obs <= 70 and a.n_vars == 380
    assert set(a.obs["study"]) == {spec.HELDOUT_ACCESSION}
    assert {"truth_cl_id", "truth_cl_label", "gene_symbol"} <= set(a.obs) | set(a.var)
    assert all(re.fullmatch(r"DEMOG\d{11}", g) for g in a.var_names)
    assert set(a.obs.loc[~a.obs["truth_novel"], "truth_cl_id"]) == {
        spec.CELL_TYPES[k].cl_id for k in spec.REFERENCE_TYPES
    }
    depth = np.asarray(a.X.sum(axis=1)).ravel()
    assert 0.4 * READS < np.median(depth) < 1.5 * READS


# -- alignability -------------------------------------------------------------------------------------


@pytest.mark.tools
@pytest.mark.skipif(
    not (shutil.which("hisat2") and shutil.which("hisat2-build")), reason="hisat2 not on PATH"
)
def test_hisat2_aligns_a_run(root, tmp_path, ena_runs):
    idx = tmp_path / "idx"
    subprocess.run(
        ["hisat2-build", "-q", "-p", "2", str(root / "reference" / "genome.fa"), str(idx)],
        check=True,
        capture_output=True,
    )
    row = next(
        r
        for r in ena_runs
        if r["library_layout"] == "PAIRED" and r["library_strategy"] == "RNA-Seq"
    )
    files = [str(root / "mirror" / u.split("/", 1)[1]) for u in row["fastq_ftp"].split(";")]
    res = subprocess.run(
        [
            "hisat2",
            "-p",
            "2",
            "-x",
            str(idx),
            "-1",
            files[0],
            "-2",
            files[1],
            "-S",
            str(tmp_path / "out.sam"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    rate = float(re.search(r"([\d.]+)% overall alignment rate", res.stderr).group(1))
    assert 80.0 < rate < 100.0  # contaminant reads keep it below 100%
    concordant = re.search(r"\(([\d.]+)%\) aligned concordantly exactly 1 time", res.stderr)
    assert float(concordant.group(1)) > 80.0  # mates come from one fragment, facing each other
    spliced = r1_reverse = r1_total = 0
    for line in (tmp_path / "out.sam").read_text().splitlines():
        if line.startswith("@"):
            continue
        fields = line.split("\t")
        flag, cigar = int(fields[1]), fields[5]
        if flag & 0x4 or flag & 0x100:
            continue
        spliced += "N" in cigar
        if flag & 0x40:
            r1_total += 1
            r1_reverse += bool(flag & 0x10)
    assert spliced > 0  # reads come from spliced transcripts
    assert 0.25 < r1_reverse / r1_total < 0.75  # unstranded library
