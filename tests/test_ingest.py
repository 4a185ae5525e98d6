"""The ingestion stage end to end against a loopback mirror serving files at real URL paths.

GEO records are real (the GSE146540 family SOFT assembled from ../shared/data/geo, the
GSE93374 / GSM3717978 E-utilities JSON); the ENA filereport rows, run accessions and FASTQ
contents served here are small fixtures, since the real FASTQs are gigabytes. The GSE146540
and GSE146583 samples are bulk RNA-seq of cell lines, which discovery rightly refuses:
``as_single_cell`` gives them a single-cell protocol (library source and extract
protocol) so that these tests exercise the sheets, downloads and catalog on real records.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re

import pandas as pd
import pytest
from _http_loopback import Loopback, send

from scatlas import sheets as sheet_columns
from scatlas import stage_io
from scatlas.discover.studies import discover_studies
from scatlas.errors import InputError
from scatlas.ingest import sheets as ingest
from scatlas.ingest.ae_sheet import _ae_sample_ids
from scatlas.ingest.catalog import Catalog
from scatlas.ingest.catalog_update import update_catalog
from scatlas.ingest.download import download_study
from scatlas.sources import sra
from scatlas.sources.http import Services

SOFT_PATH = "/geo/series/GSE146nnn/GSE146540/soft/GSE146540_family.soft.gz"
SUPPL_PATH = "/geo/series/GSE146nnn/GSE146540/suppl/GSE146540_All_gene_counts.txt.gz"
FILEREPORT = "/ena/portal/api/filereport"
ORGANISMS = ["Homo sapiens", "Mus musculus"]


def fastq(seed: int, n: int = 50) -> bytes:
    reads = b"".join(
        b"@r%d\n%s\n+\n%s\n" % (i, b"ACGT"[seed % 4 :] * 5, b"I" * (20 - seed % 4))
        for i in range(n)
    )
    return gzip.compress(reads, mtime=0)


# experiment -> (run, number of files, serve a wrong md5?)
RUNS = {
    "SRX7866186": ("SRR11250001", 1, False),
    "SRX7866187": ("SRR11250002", 1, False),
    "SRX7866188": ("SRR11250003", 2, False),
    "SRX7866189": ("SRR11250004", 1, True),
    "SRX7866190": ("SRR11250005", 1, False),
    # SRX7866191: neither ENA nor SRA knows it
}


class Mirror:
    """Routes for GEO, ENA and SRA at the real URL paths under one loopback server."""

    def __init__(self, server: Loopback, soft: bytes):
        self.server = server
        self.files: dict[str, bytes] = {}
        server.routes[SOFT_PATH] = gzip.compress(soft, mtime=0)
        rows = []
        for i, (exp, (run, nfiles, wrong)) in enumerate(RUNS.items()):
            names = (
                [f"{run}.fastq.gz"] if nfiles == 1 else [f"{run}_1.fastq.gz", f"{run}_2.fastq.gz"]
            )
            paths = [f"/vol1/fastq/{run[:6]}/00{run[-1]}/{run}/{n}" for n in names]
            datas = [fastq(i * 2 + k) for k in range(nfiles)]
            for p, d in zip(paths, datas, strict=True):
                server.routes[p] = d
                self.files[p] = d
            md5s = [("0" * 32 if wrong else hashlib.md5(d).hexdigest()) for d in datas]
            rows.append(
                {
                    "run_accession": run,
                    "experiment_accession": exp,
                    "study_accession": "SRP251919",
                    "library_layout": "PAIRED" if nfiles == 2 else "SINGLE",
                    "library_strategy": "RNA-Seq",
                    "library_source": "TRANSCRIPTOMIC",
                    "tax_id": "9606",
                    "scientific_name": "Homo sapiens",
                    "fastq_ftp": ";".join(f"ftp.sra.ebi.ac.uk{p}" for p in paths),
                    "fastq_md5": ";".join(md5s),
                    "fastq_bytes": ";".join(str(len(d)) for d in datas),
                }
            )
        self.report = rows
        server.routes[FILEREPORT] = self.filereport
        server.routes["/entrez/eutils/efetch.fcgi"] = self.efetch

    def tsv(self, rows):
        lines = ["\t".join(sra.FILEREPORT_FIELDS)] + [
            "\t".join(r.get(f, "") for f in sra.FILEREPORT_FIELDS) for r in rows
        ]
        return "\n".join(lines) + "\n"

    def filereport(self, req, n):
        acc = req.query["accession"][0]
        rows = [
            r
            for r in self.report
            if acc in (r["study_accession"], r["experiment_accession"], r["run_accession"])
        ]
        if acc == "SRP251919":
            rows = rows[:3]  # the study-level report misses some: per-experiment look-ups fill in
        send(req, 200, self.tsv(rows) if rows else "", {"Content-Type": "text/plain"})

    def efetch(self, req, n):
        xml = (
            '<?xml version="1.0" ?><EXPERIMENT_PACKAGE_SET></EXPERIMENT_PACKAGE_SET>'
            if req.query["id"][0] == "SRX7866191"
            else "<html><body>unexpected</body></html>"
        )
        send(req, 200, xml, {"Content-Type": "text/xml"})


def as_single_cell(soft: bytes) -> bytes:
    """A real bulk record made to describe single-cell Smart-seq2 samples (see above)."""
    text = soft.decode("utf-8")
    text = text.replace(
        "!Sample_library_source = transcriptomic\n",
        "!Sample_library_source = transcriptomic single cell\n",
    )
    text = re.sub(
        r"^!Sample_extract_protocol_ch1 = .*$",
        "!Sample_extract_protocol_ch1 = Single cells were sorted into 384-well plates, one "
        "cell per well; Smart-seq2 libraries",
        text,
        flags=re.M,
    )
    return text.encode("utf-8")


@pytest.fixture
def soft_text(shared_data) -> bytes:
    geo_dir = shared_data / "geo"
    return as_single_cell(
        (geo_dir / "GSE146540_GSE.soft").read_bytes()
        + (geo_dir / "GSE146540_GSM.soft").read_bytes()
    )


@pytest.fixture
def server():
    with Loopback() as s:
        yield s


def make_cfg(server: Loopback, **query) -> dict:
    return {
        "services": {
            "eutils": server.url("/entrez/eutils"),
            "geo": server.url("/geo"),
            "ena_portal": server.url("/ena/portal/api"),
            "ena_files": server.base,
            "biostudies": server.url("/biostudies"),
            "timeout_s": 5,
            "retries": 1,
            "backoff_s": 0.01,
            "ncbi_requests_per_s": None,
            "other_requests_per_s": 50,
        },
        "discover": {
            "sources": ["geo", "arrayexpress"],
            "term": "single cell",
            "arrayexpress_query": "single cell RNA-seq",
            "organisms": ORGANISMS,
            "date_from": None,
            "date_to": None,
            "max_studies": None,
            "page_size": 500,
            "studies": [],
            "exclude": [],
            **query,
        },
        "download": {"method": "http", "parallel": 3},
    }


def services(cfg) -> Services:
    return Services(cfg["services"], env={})


def _check_sheet(summary, out, server, mirror):
    assert summary["status"] == "ok", summary["reason"]
    assert (summary["n_samples"], summary["n_runs"], summary["kind"]) == (5, 5, "reads")
    assert summary["excluded"] == [
        {"sample": "GSM4391939", "reason": "GSM4391939: no runs found for SRX7866191 in ENA or SRA"}
    ]
    assert json.loads((out / "study.json").read_text()) == summary
    assert (out / "raw" / "GSE146540_family.soft.gz").is_file()
    sheet = pd.read_csv(out / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert list(sheet.columns) == sheet_columns.SAMPLE_COLUMNS + sheet_columns.SAMPLE_KIND_COLUMNS
    # what each record says the sample is: the single-cell protocol the tests give them
    assert set(sheet["cells"]) == {"single_cell"} and set(sheet["library"]) == {"gene_expression"}
    assert set(sheet["chemistry"]) == {"smartseq2"}
    assert list(sheet["run"]) == [
        "SRR11250001",
        "SRR11250002",
        "SRR11250003",
        "SRR11250004",
        "SRR11250005",
    ]
    first = sheet.iloc[0]
    assert (first["sample"], first["title"], first["experiment"]) == (
        "GSM4391934",
        "RNA-Seq JHRCC12_SETD2_mut_rep1",
        "SRX7866186",
    )
    assert first["characteristics"] == "cell line: JHRCC12; genotype: SETD2-deficient"
    assert first["source_name"] == "Clear cell renal cell carcinoma cells"
    assert (first["library_strategy"], first["library_source"], first["technology"]) == (
        "RNA-Seq",
        "transcriptomic single cell",
        "smartseq",
    )
    assert first["fastq_urls"] == server.url(
        "/vol1/fastq/SRR112/001/SRR11250001/SRR11250001.fastq.gz"
    )
    assert first["supplementary"] == server.url(SUPPL_PATH)
    paired = sheet[sheet["run"] == "SRR11250003"].iloc[0]
    assert paired["library_layout"] == "PAIRED" and len(paired["fastq_urls"].split(";")) == 2
    assert (
        paired["fastq_md5"].split(";")[0]
        == hashlib.md5(
            mirror.files["/vol1/fastq/SRR112/003/SRR11250003/SRR11250003_1.fastq.gz"]
        ).hexdigest()
    )
    # the study-level report, then per experiment for the rest, then SRA for the unknown one
    asked = [q["accession"][0] for _, p, q, _ in server.log if p == FILEREPORT]
    assert asked == ["SRP251919", "SRX7866189", "SRX7866190", "SRX7866191"]


def _check_downloads(cfg, out, tmp_path, server, mirror, svc):
    fastq_dir = tmp_path / "results" / "fastq" / "GSE146540"
    manifest = download_study(
        cfg, out / "samples.tsv", fastq_dir, fastq_dir / "manifest.tsv", services=svc
    )
    assert list(manifest.columns) == sheet_columns.MANIFEST_COLUMNS
    status = dict(zip(manifest["run"], manifest["status"], strict=True))
    assert status == {
        "SRR11250001": "ok",
        "SRR11250002": "ok",
        "SRR11250003": "ok",
        "SRR11250004": "failed",
        "SRR11250005": "ok",
    }
    bad = manifest[manifest["run"] == "SRR11250004"].iloc[0]
    bad_url = server.url("/vol1/fastq/SRR112/004/SRR11250004/SRR11250004.fastq.gz")
    good_md5 = hashlib.md5(
        mirror.files["/vol1/fastq/SRR112/004/SRR11250004/SRR11250004.fastq.gz"]
    ).hexdigest()
    assert bad["reason"] == f"md5 mismatch for {bad_url}: expected {'0' * 32}, got {good_md5}"
    pair = manifest[manifest["run"] == "SRR11250003"].iloc[0]
    assert (
        pair["files"]
        == "results/fastq/GSE146540/SRR11250003_1.fastq.gz;results/fastq/GSE146540/SRR11250003_2.fastq.gz"
    )
    assert (fastq_dir / "SRR11250003_2.fastq.gz").read_bytes() == mirror.files[
        "/vol1/fastq/SRR112/003/SRR11250003/SRR11250003_2.fastq.gz"
    ]
    assert not (fastq_dir / "SRR11250004.fastq.gz").exists()
    on_disk = pd.read_csv(fastq_dir / "manifest.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert list(on_disk["run"]) == sorted(on_disk["run"])

    # a second pass keeps verified files instead of fetching them again
    fetched = sum(1 for _, p, _, _ in server.log if p.startswith("/vol1/"))
    again = download_study(
        cfg, out / "samples.tsv", fastq_dir, fastq_dir / "manifest.tsv", services=svc
    )
    # the same record whether a file was fetched now or kept: a resumed run matches a clean one
    assert again.equals(manifest)
    assert again[again["run"] == "SRR11250001"].iloc[0]["reason"] == (
        "ENA FASTQ, size and md5 verified"
    )
    assert (bad["error_file"], bad["error_field"]) == (bad_url, "fastq_md5")
    assert (
        sum(1 for _, p, _, _ in server.log if p.startswith("/vol1/")) == fetched + 2
    )  # only the bad run, retried

    return fastq_dir, bad_url


def _write_catalog_inputs(tmp_path):
    # the catalog
    studies_tsv = tmp_path / "results" / "discover" / "studies.tsv"
    stage_io.write_tsv(
        [
            {
                "study": "GSE146540",
                "source": "geo",
                "title": "t",
                "organism": "Homo sapiens",
                "kind": "reads",
                "n_samples": 6,
                "status": "ok",
                "reason": "r",
            },
            {
                "study": "GSE100750",
                "source": "geo",
                "title": "ATAC",
                "kind": "reads",
                "n_samples": 18,
                "status": "skipped",
                "reason": "series type",
            },
            {
                "study": "GSE93374",
                "source": "geo",
                "title": "Arc-ME",
                "kind": "reads",
                "n_samples": 11,
                "status": "ok",
                "reason": "r",
            },
        ],
        studies_tsv,
        sheet_columns.STUDY_COLUMNS,
    )
    align = tmp_path / "results" / "align" / "GSE146540" / "alignment.tsv"
    stage_io.write_tsv(
        [
            {
                "run": "SRR11250001",
                "sample": "GSM4391934",
                "total_reads": 50,
                "aligned_reads": 45,
                "alignment_rate": 0.9,
                "status": "ok",
                "reason": "90% aligned",
            }
        ],
        align,
        sheet_columns.ALIGNMENT_COLUMNS,
    )
    return studies_tsv, align


def test_reads_study_sheet_download_and_catalog(server, soft_text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mirror = Mirror(server, soft_text)
    cfg = make_cfg(server)
    svc = services(cfg)
    out = tmp_path / "results" / "studies" / "GSE146540"
    summary = ingest.build_sample_sheet(cfg, "GSE146540", out, services=svc)

    _check_sheet(summary, out, server, mirror)
    fastq_dir, bad_url = _check_downloads(cfg, out, tmp_path, server, mirror, svc)
    studies_tsv, align = _write_catalog_inputs(tmp_path)
    db = tmp_path / "results" / "catalog.sqlite"
    s = update_catalog(cfg, db, studies_tsv, [out], [fastq_dir / "manifest.tsv"], [align])
    assert s["studies"]["ok"] == 1 and s["studies"]["skipped"] == 1 and s["studies"]["new"] == 1
    # the sample whose only run failed its md5 check is failed too, with that reason
    assert s["samples"] == {"total": 6, "new": 0, "ok": 4, "skipped": 1, "failed": 1}
    assert s["runs"] == {"total": 5, "new": 0, "ok": 4, "skipped": 0, "failed": 1}
    assert s["refreshes"] == 0  # refreshes are recorded by `scatlas refresh`, not here
    with Catalog(db) as cat:
        run = cat.rows("runs", run="SRR11250001")[0]
        assert run["alignment_rate"] == pytest.approx(0.9) and run["reason"] == "90% aligned"
        failed_run = cat.rows("runs", run="SRR11250004")[0]
        assert failed_run["reason"].startswith("md5 mismatch for")
        assert (failed_run["study"], failed_run["error_file"], failed_run["error_field"]) == (
            "GSE146540",
            bad_url,
            "fastq_md5",
        )
        # the discover row is kept, so that a later refresh still lists this study
        known = {r["study"]: r for r in cat.known_studies()}
        assert known["GSE100750"]["status"] == "skipped"
        assert known["GSE100750"]["reason"] == "series type"
        assert known["GSE146540"]["n_samples"] == 6
        failed_sample = cat.rows("samples", sample=failed_run["sample"])[0]
        assert failed_sample["status"] == "failed"
        assert failed_sample["reason"] == failed_run["reason"]
        assert (
            cat.rows("studies", study="GSE93374")[0]["reason"]
            == "found by discovery; sample sheet not built yet"
        )
        assert cat.rows("samples", sample="GSM4391939")[0]["status"] == "skipped"
    # a second refresh with nothing new changes no rows and adds no history
    with Catalog(db) as cat:
        n_hist = len(cat.history())
    s2 = update_catalog(cfg, db, studies_tsv, [out], [fastq_dir / "manifest.tsv"], [align])
    assert s2["studies"] == s["studies"] and s2["runs"] == s["runs"]
    with Catalog(db) as cat:
        assert len(cat.history()) == n_hist


def test_matrix_study_downloads_supplementary_matrix(server, soft_text, tmp_path):
    no_sra = b"\n".join(
        line for line in soft_text.split(b"\n") if not line.startswith(b"!Sample_relation = SRA")
    )
    Mirror(server, no_sra)
    counts = gzip.compress(b"gene\tGSM4391934\tGSM4391935\nENSG00000141510\t12\t7\n", mtime=0)
    server.routes[SUPPL_PATH] = counts
    cfg = make_cfg(server)
    svc = services(cfg)
    out = tmp_path / "GSE146540"
    summary = ingest.build_sample_sheet(cfg, "GSE146540", out, services=svc)
    assert (summary["status"], summary["kind"], summary["n_samples"], summary["n_runs"]) == (
        "ok",
        "matrix",
        6,
        0,
    )
    sheet = pd.read_csv(out / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert set(sheet["technology"]) == {"matrix"} and set(sheet["run"]) == {""}
    manifest = download_study(
        cfg, out / "samples.tsv", tmp_path / "fq", tmp_path / "fq" / "manifest.tsv", services=svc
    )
    [row] = manifest.to_dict("records")
    assert row["run"] == "" and row["status"] == "ok"
    assert row["sample"].split(";")[0] == "GSM4391934"
    assert row["md5"] == hashlib.md5(counts).hexdigest()
    assert (tmp_path / "fq" / "GSE146540_All_gene_counts.txt.gz").read_bytes() == counts
    # a corrupt matrix is a failed row, not an exception
    (tmp_path / "fq" / "GSE146540_All_gene_counts.txt.gz").unlink()
    server.routes[SUPPL_PATH] = counts[: len(counts) // 2]
    [row] = download_study(
        cfg, out / "samples.tsv", tmp_path / "fq", tmp_path / "fq" / "manifest.tsv", services=svc
    ).to_dict("records")
    assert row["status"] == "failed" and "corrupt gzip" in row["reason"]
    assert (row["error_file"], row["error_field"]) == (server.url(SUPPL_PATH), "(whole file)")
    assert row["reason"].startswith("http://") and not list((tmp_path / "fq").glob("*.txt.gz"))
    # GEO's filelist.txt gives sizes: checked (a real listing's format, this file's size)
    listing = "/geo/series/GSE146nnn/GSE146540/suppl/filelist.txt"
    header = "#Archive/File\tName\tTime\tSize\tType\n"
    server.routes[SUPPL_PATH] = counts
    server.routes[listing] = (
        header
        + f"File\tGSE146540_All_gene_counts.txt.gz\t03/06/2020 11:00:00\t{len(counts)}\tTXT\n"
    )
    [row] = download_study(
        cfg, out / "samples.tsv", tmp_path / "fq", tmp_path / "fq" / "manifest.tsv", services=svc
    ).to_dict("records")
    assert row["status"] == "ok" and row["reason"].startswith("1 matrix file(s); size and gzip")
    (tmp_path / "fq" / "GSE146540_All_gene_counts.txt.gz").unlink()
    server.routes[listing] = header + "File\tGSE146540_All_gene_counts.txt.gz\tx\t999\tTXT\n"
    [row] = download_study(
        cfg, out / "samples.tsv", tmp_path / "fq", tmp_path / "fq" / "manifest.tsv", services=svc
    ).to_dict("records")
    assert row["status"] == "failed" and "size mismatch" in row["reason"]
    assert row["error_field"] == "supplementary"


@pytest.mark.parametrize(
    "soft, reason",
    [
        (b"<!DOCTYPE html><html><body>Temporarily unavailable</body></html>", "HTML page"),
        (
            b"^SERIES = GSE146540\n!Series_geo_accession = GSE146540\n!Series_sample_id = GSM4391934\n",
            "no ^SAMPLE entries",
        ),
    ],
)
def test_malformed_soft_gives_failed_study(server, tmp_path, soft, reason):
    server.routes[SOFT_PATH] = soft
    cfg = make_cfg(server)
    out = tmp_path / "GSE146540"
    summary = ingest.build_sample_sheet(cfg, "GSE146540", out, services=services(cfg))
    assert summary["status"] == "failed"
    assert reason in summary["reason"] and "GSE146540_family.soft.gz" in summary["reason"]
    columns = sheet_columns.SAMPLE_COLUMNS + sheet_columns.SAMPLE_KIND_COLUMNS
    assert (out / "samples.tsv").read_text() == "\t".join(columns) + "\n"
    assert json.loads((out / "study.json").read_text())["status"] == "failed"
    manifest = download_study(
        cfg, out / "samples.tsv", tmp_path / "fq", tmp_path / "fq" / "manifest.tsv"
    )
    header = "\t".join(sheet_columns.MANIFEST_COLUMNS) + "\n"
    assert len(manifest) == 0 and (tmp_path / "fq" / "manifest.tsv").read_text() == header


def test_network_failure_and_bad_accession_give_failed_study(server, tmp_path):
    server.routes[SOFT_PATH] = lambda req, n: send(req, 503, "busy")
    cfg = make_cfg(server)
    summary = ingest.build_sample_sheet(cfg, "GSE146540", tmp_path / "a", services=services(cfg))
    assert (
        summary["status"] == "failed"
        and "HTTP 503" in summary["reason"]
        and SOFT_PATH in summary["reason"]
    )
    assert server.hits[SOFT_PATH] == 2  # retried once
    n = len(server.log)
    bad = ingest.build_sample_sheet(cfg, "GSE1; rm -rf ~", tmp_path / "b", services=services(cfg))
    assert bad["status"] == "failed" and "neither a GEO series nor an ArrayExpress" in bad["reason"]
    assert len(server.log) == n
    server.routes["/biostudies/api/v1/studies/E-MTAB-10615"] = lambda req, n: send(
        req, 200, "<html>login</html>", {"Content-Type": "text/html"}
    )
    html = ingest.build_sample_sheet(cfg, "E-MTAB-10615", tmp_path / "c", services=services(cfg))
    assert (
        html["status"] == "failed"
        and "HTML" in html["reason"]
        and "/biostudies/api/v1/studies/E-MTAB-10615" in html["reason"]
    )


AE_JSON = {
    "accno": "E-MTAB-10615",
    "attributes": [
        {"name": "Title", "value": "Lineage tracing of U3065MG glioblastoma cells"},
        {"name": "ReleaseDate", "value": "2021-07-07"},
    ],
    "section": {
        "type": "Study",
        "attributes": [
            {"name": "Organism", "value": "Homo sapiens"},
            {"name": "Study type", "value": "RNA-seq of coding RNA from single cells"},
        ],
        "links": [{"url": "ERP129628", "attributes": [{"name": "Type", "value": "ENA"}]}],
        "files": [{"path": "E-MTAB-10615.sdrf.txt"}, {"path": "filtered_feature_bc_matrix.h5"}],
        "subsections": [
            {"type": "Samples", "attributes": [{"name": "Sample count", "value": "2"}]}
        ],
    },
}
AE_SDRF = (
    "Source Name\tComment[ENA_SAMPLE]\tCharacteristics[organism]\tCharacteristics[cell type]\tComment[LIBRARY_LAYOUT]\t"
    "Comment[LIBRARY_SOURCE]\tComment[LIBRARY_STRATEGY]\tComment[library construction]\tAssay Name\t"
    "Comment[ENA_EXPERIMENT]\tComment[ENA_RUN]\tComment[FASTQ_URI]\n"
    "Sample 1\tERS7007749\tHomo sapiens\tglial brain cell\tPAIRED\tTRANSCRIPTOMIC SINGLE CELL\tRNA-Seq\t10xV3\tS1\t"
    "ERX5768853\tERR6131690\tftp://ftp.sra.ebi.ac.uk/vol1/run/ERR613/000/ERR6131690/ERR6131690_1.fastq.gz\n"
    "Cell 2\tERS7007750\tHomo sapiens\tglial brain cell\tSINGLE\tTRANSCRIPTOMIC SINGLE CELL\tRNA-Seq\tSmart-seq2\tS2\t"
    "ERX5768854\tERR6131691\tftp://ftp.sra.ebi.ac.uk/vol1/run/ERR613/001/ERR6131691/ERR6131691.fastq.gz\n"
    "Cell 3\tERS7007751\tMus musculus\tneuron\tSINGLE\tGENOMIC\tWGS\t\tS3\tERX5768855\tERR6131692\t\n"
)


def test_arrayexpress_query_and_sample_sheet(server, shared_data, tmp_path):
    data = fastq(7)
    run_path = "/vol1/fastq/ERR613/001/ERR6131691/ERR6131691.fastq.gz"
    server.routes[run_path] = data
    server.routes["/biostudies/api/v1/studies/E-MTAB-10615"] = json.dumps(AE_JSON)
    server.routes["/biostudies/files/E-MTAB-10615/E-MTAB-10615.sdrf.txt"] = AE_SDRF
    report = "\t".join(sra.FILEREPORT_FIELDS) + "\n" + "\t".join(
        {"run_accession": "ERR6131691", "experiment_accession": "ERX5768854", "library_layout": "SINGLE",
         "fastq_ftp": "ftp.sra.ebi.ac.uk" + run_path, "fastq_md5": hashlib.md5(data).hexdigest(), "fastq_bytes": str(len(data))}.get(f, "")
        for f in sra.FILEREPORT_FIELDS
    ) + "\n"  # fmt: skip
    server.routes[FILEREPORT] = lambda req, n: send(
        req, 200, report if req.query["accession"][0] == "ERP129628" else ""
    )
    ffq = shared_data / "geo" / "ffq"
    server.routes["/entrez/eutils/esearch.fcgi"] = (ffq / "GSE93374_search.txt").read_bytes()
    summary = json.loads((ffq / "GSE93374_summary.txt").read_text())
    gsm = json.loads((ffq / "GSM3717978_summary.txt").read_text())  # a sample entry: not a study
    summary["result"]["uids"].append("303717978")
    summary["result"].update(gsm)
    server.routes["/entrez/eutils/esummary.fcgi"] = json.dumps(summary)
    hits = [
        {"accession": "E-MTAB-10615", "title": "Lineage tracing", "release_date": "2021-07-07"},
        {
            "accession": "E-GEOD-93374",
            "title": "Arcuate hypothalamus",
            "release_date": "2017-02-01",
        },
        {"accession": "E-MTAB-9296", "title": "CRISPR screen", "release_date": "2020-08-01"},
    ]
    server.routes["/biostudies/api/v1/arrayexpress/search"] = json.dumps(
        {"page": 1, "pageSize": 100, "totalHits": 3, "hits": hits}
    )
    server.routes["/biostudies/api/v1/studies/E-MTAB-9296"] = lambda req, n: send(req, 500, "oops")

    cfg = make_cfg(server)
    svc = services(cfg)
    df = discover_studies(cfg, tmp_path / "discover" / "studies.tsv", services=svc)
    assert list(df.columns) == sheet_columns.STUDY_COLUMNS
    assert list(df["study"]) == ["E-GEOD-93374", "E-MTAB-10615", "E-MTAB-9296", "GSE93374"]
    rows = {r["study"]: r for r in df.to_dict("records")}
    assert rows["GSE93374"]["status"] == "ok" and rows["GSE93374"]["n_samples"] == "11"  # text
    assert rows["E-GEOD-93374"]["reason"] == "imported from GEO; taken from GEO as GSE93374"
    assert (
        rows["E-MTAB-10615"]["status"],
        rows["E-MTAB-10615"]["organism"],
        rows["E-MTAB-10615"]["n_samples"],
    ) == ("ok", "Homo sapiens", "2")
    assert rows["E-MTAB-9296"]["status"] == "failed" and "HTTP 500" in rows["E-MTAB-9296"]["reason"]
    on_disk = pd.read_csv(
        tmp_path / "discover" / "studies.tsv", sep="\t", dtype=str, keep_default_na=False
    )
    assert list(on_disk["study"]) == list(df["study"])

    limited = discover_studies(
        make_cfg(server, max_studies=1, exclude=["E-MTAB-9296"]), tmp_path / "q2.tsv", services=svc
    ).set_index("study")
    assert limited.loc["E-MTAB-9296", "reason"] == "excluded by discover.exclude"
    assert limited.loc["E-MTAB-10615", "status"] == "ok"  # the most recent
    assert limited.loc["GSE93374", "reason"] == "beyond discover.max_studies (1, most recent first)"

    explicit = discover_studies(
        make_cfg(server, studies=["GSE93374"]), tmp_path / "q3.tsv", services=svc
    )
    assert list(explicit["study"]) == ["GSE93374"]
    assert server.log[-2][2]["term"] == ["GSE93374[GEO Accession]"]

    out = tmp_path / "E-MTAB-10615"
    summary = ingest.build_sample_sheet(cfg, "E-MTAB-10615", out, services=svc)
    assert summary["status"] == "ok", summary["reason"]
    sheet = pd.read_csv(out / "samples.tsv", sep="\t", dtype=str, keep_default_na=False).set_index(
        "sample"
    )
    assert sheet.loc["ERS7007749", "technology"] == "matrix"  # 10x: the processed matrix
    assert sheet.loc["ERS7007749", "supplementary"] == server.url(
        "/biostudies/files/E-MTAB-10615/filtered_feature_bc_matrix.h5"
    )
    cell = sheet.loc["ERS7007750"]
    assert (cell["technology"], cell["run"], cell["fastq_md5"]) == (
        "smartseq",
        "ERR6131691",
        hashlib.md5(data).hexdigest(),
    )
    assert (
        cell["fastq_urls"] == server.url(run_path)
        and cell["characteristics"] == "organism: Homo sapiens; cell type: glial brain cell"
    )
    assert summary["excluded"] == [
        {
            "sample": "ERS7007751",
            "reason": "ERS7007751: library source 'GENOMIC' is not transcriptomic (WGS)",
        }
    ]
    assert (out / "raw" / "E-MTAB-10615.sdrf.txt").read_text() == AE_SDRF


def test_unknown_download_method_is_rejected(tmp_path):
    cfg = {"download": {"method": "rsync"}}
    with pytest.raises(InputError, match="not one of http, fasterq-dump, auto") as err:
        download_study(cfg, tmp_path / "samples.tsv", tmp_path, tmp_path / "m.tsv")
    assert err.value.field == "download.method"


def test_sra_lookup_failure_excludes_only_that_sample(server, soft_text, tmp_path):
    Mirror(server, soft_text)
    server.routes["/entrez/eutils/efetch.fcgi"] = lambda req, n: send(req, 404, "no such route")
    cfg = make_cfg(server)
    summary = ingest.build_sample_sheet(cfg, "GSE146540", tmp_path / "s", services=services(cfg))
    assert (summary["status"], summary["n_runs"]) == ("ok", 5)
    assert (
        summary["excluded"][0]["reason"] == "GSM4391939: no runs found for SRX7866191 in ENA or SRA"
    )


def _superseries_soft(shared_data) -> bytes:
    geo_dir = shared_data / "geo"
    return gzip.compress(
        as_single_cell(
            (geo_dir / "GSE146583_GSE.soft").read_bytes()
            + (geo_dir / "GSE146583_GSM.soft").read_bytes()
        ),
        mtime=0,
    )


@pytest.mark.parametrize("organism", ["Homo sapiens", "Mus musculus"])
def test_real_superseries_counts_each_sample_once_and_one_organism(
    server, shared_data, tmp_path, organism
):
    """GSE146583 (real SOFT) is a SuperSeries of GSE146537-41, with human and mouse RNA-seq
    and human ChIP/ATAC-seq. Its human RNA-seq samples belong to GSE146540, which the query
    kept: they are left to it. The study is ingested for one organism only."""
    server.routes["/geo/series/GSE146nnn/GSE146583/soft/GSE146583_family.soft.gz"] = (
        _superseries_soft(shared_data)
    )
    server.routes[FILEREPORT] = lambda req, n: send(req, 200, "", {"Content-Type": "text/plain"})
    server.routes["/entrez/eutils/efetch.fcgi"] = lambda req, n: send(
        req, 200, "<EXPERIMENT_PACKAGE_SET></EXPERIMENT_PACKAGE_SET>", {"Content-Type": "text/xml"}
    )
    studies = tmp_path / "studies.tsv"
    stage_io.write_tsv(
        [
            {"study": "GSE146583", "source": "geo", "organism": organism, "kind": "reads",
             "n_samples": 50, "status": "ok", "reason": "explicit"},
            {"study": "GSE146540", "source": "geo", "organism": "Homo sapiens", "kind": "reads",
             "n_samples": 6, "status": "ok", "reason": "sub-series"},
        ],
        studies,
        sheet_columns.STUDY_COLUMNS,
    )  # fmt: skip
    cfg = make_cfg(server)
    summary = ingest.build_sample_sheet(
        cfg, "GSE146583", tmp_path / "s", services=services(cfg), studies_tsv=studies
    )
    assert summary["superseries_of"] == [
        "GSE146537", "GSE146538", "GSE146539", "GSE146540", "GSE146541"
    ]  # fmt: skip
    assert summary["organism"] == organism and summary["status"] == "skipped"
    reasons = {e["sample"]: e["reason"] for e in summary["excluded"]}
    assert len(reasons) == 50
    owned = [s for s, r in reasons.items() if "also in GSE146540" in r]
    other_organism = [s for s, r in reasons.items() if "(one organism per study" in r]
    if organism == "Homo sapiens":
        assert len(owned) == 6 and reasons[owned[0]].endswith("ingested there (counted once)")
        assert len(other_organism) == 6 and "organism 'Mus musculus'" in reasons[other_organism[0]]
    else:  # the mouse samples are this study's: their runs were looked up
        assert owned == [] and len(other_organism) == 6  # the human RNA-seq ones
        assert sum("no runs found for SRX" in r for r in reasons.values()) == 6
    assert sum("not transcriptomic" in r for r in reasons.values()) == 38


def test_technical_replicates_share_their_sample():
    """Comment[technical replicate group]: runs of one library, one sample (the group's first)."""
    recs = [
        {"ena_sample": "ERS7007749", "biosample": "", "run": "ERR6131690",
         "technical_replicate_group": "group 1"},
        {"ena_sample": "ERS7007750", "biosample": "", "run": "ERR6131691",
         "technical_replicate_group": "group 1"},
        {"ena_sample": "", "biosample": "SAMEA8917001", "run": "ERR6131692",
         "technical_replicate_group": ""},
        {"ena_sample": "", "biosample": "", "run": "ERR6131693", "technical_replicate_group": ""},
        {"ena_sample": "not-an-accession", "biosample": "", "run": "",
         "technical_replicate_group": "group 2"},
    ]  # fmt: skip
    assert _ae_sample_ids(recs) == [
        "ERS7007749", "ERS7007749", "SAMEA8917001", "ERR6131693", ""
    ]  # fmt: skip
