"""ArrayExpress / BioStudies: search paging, PageTab study JSON and SDRF parsing.

No real SDRF is in shared/, so the fixtures below are modelled on real ArrayExpress records:
the SDRF columns and values follow E-MTAB-10615 (10x, one row per FASTQ file, two rows per
paired run) and E-MTAB-9296 (one row per run with repeated Comment[FASTQ_URI] columns);
the PageTab JSON follows the BioStudies /api/v1/studies layout. The ENA study accession in
STUDY_JSON is illustrative.
"""

from __future__ import annotations

import json

import pytest
from _http_loopback import Loopback, send

from scatlas.errors import InputError, ServiceError
from scatlas.sources import arrayexpress as ae
from scatlas.sources.http import HttpClient

ROW_PER_FILE_HEADER = [
    "Source Name",
    "Comment[ENA_SAMPLE]",
    "Comment[BioSD_SAMPLE]",
    "Characteristics[organism]",
    "Characteristics[age]",
    "Unit[time unit]",
    "Characteristics[sex]",
    "Characteristics[organism part]",
    "Characteristics[cell type]",
    "Characteristics[cell line]",
    "Material Type",
    "Protocol REF",
    "Extract Name",
    "Comment[LIBRARY_LAYOUT]",
    "Comment[LIBRARY_SELECTION]",
    "Comment[LIBRARY_SOURCE]",
    "Comment[LIBRARY_STRATEGY]",
    "Comment[library construction]",
    "Comment[single cell isolation]",
    "Assay Name",
    "Comment[technical replicate group]",
    "Technology Type",
    "Comment[ENA_EXPERIMENT]",
    "Scan Name",
    "Comment[SUBMITTED_FILE_NAME]",
    "Comment[ENA_RUN]",
    "Comment[FASTQ_URI]",
    "Factor Value[cell line]",
]


def _row(
    sample: str,
    ers: str,
    sam: str,
    erx: str,
    err: str,
    assay: str,
    mate: int,
    construction: str = "10xV3",
) -> list[str]:
    fname = f"{assay}_R{mate}_001.fastq.gz"
    run_dir = f"ftp://ftp.sra.ebi.ac.uk/vol1/run/ERR613/{err[-1]:0>3}/{err}"
    return [
        sample, ers, sam, "Homo sapiens", "77", "year", "male", "brain", "glial brain cell", "U3065MG", "cell",
        "P-MTAB-111274", sample, "PAIRED", "PolyA", "TRANSCRIPTOMIC SINGLE CELL", "RNA-Seq", construction, "10x",
        assay, "group 1", "sequencing assay", erx, fname, fname, err, f"{run_dir}/{err}_{mate}.fastq.gz", "U3065MG",
    ]  # fmt: skip


ROW_PER_FILE = (
    "\n".join(
        "\t".join(r)
        for r in [
            ROW_PER_FILE_HEADER,
            # mate 2 first: the parser puts R1 first
            _row(
                "Sample 1",
                "ERS7007749",
                "SAMEA9273528",
                "ERX5768853",
                "ERR6131690",
                "UC-2915-Sample1_S1_L001",
                2,
            ),
            _row(
                "Sample 1",
                "ERS7007749",
                "SAMEA9273528",
                "ERX5768853",
                "ERR6131690",
                "UC-2915-Sample1_S1_L001",
                1,
            ),
            _row(
                "Sample 2",
                "ERS7007750",
                "SAMEA9273529",
                "ERX5768854",
                "ERR6131691",
                "UC-2915-Sample2_S5_L001",
                1,
                "Smart-seq2",
            ),
            _row(
                "Sample 2",
                "ERS7007750",
                "SAMEA9273529",
                "ERX5768854",
                "ERR6131691",
                "UC-2915-Sample2_S5_L001",
                2,
                "Smart-seq2",
            ),
        ]
    )
    + "\n"
)

ROW_PER_RUN = (
    "Source Name\tCharacteristics [organism]\tCharacteristics[cell line]\tComment[LIBRARY_LAYOUT]\t"
    "Comment[LIBRARY_SOURCE]\tComment[LIBRARY_STRATEGY]\tAssay Name\tComment[ENA_EXPERIMENT]\tComment[ENA_RUN]\t"
    "Comment[read1 file]\tComment[FASTQ_URI]\tComment[read2 file]\tComment[FASTQ_URI]\tFactor Value[time]\tUnit[time unit]\n"
    "Sample 1\tHomo sapiens\tU3065MG\tPAIRED\tTRANSCRIPTOMIC SINGLE CELL\tRNA-Seq\tSample 1\tERX4266589\tERR4318127\t"
    "190104_NB501473_A_L1-4_APBS-55_R1.fastq.gz\t"
    "ftp://ftp.ebi.ac.uk/pub/databases/microarray/data/experiment/MTAB/E-MTAB-9296/190104_NB501473_A_L1-4_APBS-55_R1.fastq.gz\t"
    "190104_NB501473_A_L1-4_APBS-55_R2.fastq.gz\t"
    "ftp://ftp.ebi.ac.uk/pub/databases/microarray/data/experiment/MTAB/E-MTAB-9296/190104_NB501473_A_L1-4_APBS-55_R2.fastq.gz\t"
    "7\tday\n"
)

STUDY_JSON = {
    "accno": "E-MTAB-10615",
    "attributes": [
        {
            "name": "Title",
            "value": "Lineage tracing of patient-derived U3065MG glioblastoma cells to reconstruct plasticity",
        },
        {"name": "ReleaseDate", "value": "2021-07-07"},
        {"name": "AttachTo", "value": "ArrayExpress"},
    ],
    "section": {
        "accno": "s-E-MTAB-10615",
        "type": "Study",
        "attributes": [
            {
                "name": "Title",
                "value": "Lineage tracing of patient-derived U3065MG glioblastoma cells to reconstruct plasticity",
            },
            {"name": "Study type", "value": "RNA-seq of coding RNA from single cells"},
            {"name": "Organism", "value": "Homo sapiens"},
            {
                "name": "Description",
                "value": "A time series data set of barcoded glioblastoma cells.",
            },
        ],
        "links": [[{"url": "ERP129628", "attributes": [{"name": "Type", "value": "ENA"}]}]],
        "subsections": [
            {
                "type": "Samples",
                "attributes": [
                    {"name": "Sample count", "value": "8"},
                    {"name": "Experimental Factors", "value": "time"},
                ],
            },
            {
                "type": "Assays and Data",
                "files": [
                    [
                        {"path": "E-MTAB-10615.idf.txt", "size": 5800, "type": "file"},
                        {"path": "E-MTAB-10615.sdrf.txt", "size": 52530, "type": "file"},
                    ]
                ],
                "subsections": [
                    {
                        "type": "Processed Data",
                        "files": [
                            {"path": "filtered_feature_bc_matrix.h5", "size": 9, "type": "file"}
                        ],
                    }
                ],
            },
        ],
    },
}


def test_parse_study():
    info = ae.parse_study(STUDY_JSON)
    assert info["accession"] == "E-MTAB-10615"
    assert info["title"].startswith("Lineage tracing of patient-derived U3065MG")
    assert info["organisms"] == ["Homo sapiens"]
    assert info["release_date"] == "2021-07-07"
    assert info["study_type"] == "RNA-seq of coding RNA from single cells"
    assert info["sdrf"] == "E-MTAB-10615.sdrf.txt"
    assert info["files"] == [
        "E-MTAB-10615.idf.txt",
        "E-MTAB-10615.sdrf.txt",
        "filtered_feature_bc_matrix.h5",
    ]
    assert info["ena_study"] == "ERP129628" and info["n_samples"] == 8


def test_sdrf_url():
    assert ae.sdrf_url("E-MTAB-10615", "http://127.0.0.1:9/biostudies/") == (
        "http://127.0.0.1:9/biostudies/files/E-MTAB-10615/E-MTAB-10615.sdrf.txt"
    )
    with pytest.raises(InputError):
        ae.sdrf_url("E-MTAB-10615", name="../../etc/passwd.sdrf.txt")


def test_sdrf_one_row_per_file():
    recs = ae.parse_sdrf(ROW_PER_FILE, where="E-MTAB-10615.sdrf.txt")
    assert [r["run"] for r in recs] == ["ERR6131690", "ERR6131691"]
    first = recs[0]
    assert first["fastq_uris"] == [
        "ftp://ftp.sra.ebi.ac.uk/vol1/run/ERR613/000/ERR6131690/ERR6131690_1.fastq.gz",
        "ftp://ftp.sra.ebi.ac.uk/vol1/run/ERR613/000/ERR6131690/ERR6131690_2.fastq.gz",
    ]
    assert first["source_name"] == "Sample 1" and first["organism"] == "Homo sapiens"
    assert first["characteristics"] == [
        ("organism", "Homo sapiens"),
        ("age", "77 year"),
        ("sex", "male"),
        ("organism part", "brain"),
        ("cell type", "glial brain cell"),
        ("cell line", "U3065MG"),
    ]  # the Factor Value repeating cell line is not duplicated
    assert (first["library_layout"], first["library_source"], first["library_strategy"]) == (
        "PAIRED",
        "TRANSCRIPTOMIC SINGLE CELL",
        "RNA-Seq",
    )
    assert (first["experiment"], first["ena_sample"], first["biosample"]) == (
        "ERX5768853",
        "ERS7007749",
        "SAMEA9273528",
    )
    assert (
        first["technical_replicate_group"] == "group 1" and first["library_construction"] == "10xV3"
    )
    assert recs[1]["library_construction"] == "Smart-seq2"


def test_sdrf_one_row_per_run_with_repeated_uri_columns():
    [rec] = ae.parse_sdrf(ROW_PER_RUN)
    assert rec["run"] == "ERR4318127" and rec["experiment"] == "ERX4266589"
    assert [u.rsplit("/", 1)[1] for u in rec["fastq_uris"]] == [
        "190104_NB501473_A_L1-4_APBS-55_R1.fastq.gz",
        "190104_NB501473_A_L1-4_APBS-55_R2.fastq.gz",
    ]
    assert rec["characteristics"] == [
        ("organism", "Homo sapiens"),
        ("cell line", "U3065MG"),
        ("time", "7 day"),
    ]


def test_malformed_sdrf():
    with pytest.raises(InputError, match="Source Name"):
        ae.parse_sdrf("Sample\tComment[ENA_RUN]\nx\tERR1\n")
    bad = ROW_PER_FILE.replace("ERR6131691", "ERR61;31691")
    with pytest.raises(InputError) as err:
        ae.parse_sdrf(bad, where="x.sdrf.txt")
    assert err.value.field == "Comment[ENA_RUN]" and "line 4" in str(err.value)
    with pytest.raises(InputError, match="empty"):
        ae.parse_sdrf("\n\n")


def test_search_pages_and_filters_dates():
    hits = [
        {
            "accession": "E-MTAB-17244",
            "type": "study",
            "title": "Single-nucleus RNA sequencing of human fetal lung",
            "release_date": "2026-07-12",
        },
        {
            "accession": "E-MTAB-10615",
            "type": "study",
            "title": "Lineage tracing of U3065MG",
            "release_date": "2021-07-07",
        },
        {
            "accession": "S-BSST1",
            "type": "study",
            "title": "not ArrayExpress",
            "release_date": "2021-01-01",
        },
        {
            "accession": "E-MTAB-9296",
            "type": "study",
            "title": "CRISPR screen in U3065MG",
            "release_date": "2020-08-01",
        },
        {
            "accession": "E-GEOD-93374",
            "type": "study",
            "title": "Arcuate hypothalamus",
            "release_date": "2017-02-01",
        },
    ]

    def route(req, n):
        page, size = int(req.query["page"][0]), int(req.query["pageSize"][0])
        body = {
            "page": page,
            "pageSize": size,
            "totalHits": len(hits),
            "isTotalHitsExact": True,
            "hits": hits[(page - 1) * size : page * size],
        }
        send(req, 200, json.dumps(body), {"Content-Type": "application/json"})

    with Loopback() as server:
        server.routes["/biostudies/api/v1/arrayexpress/search"] = route
        client = HttpClient(server.url("/biostudies"), retries=0)
        got = ae.search(
            client, "single cell RNA-seq", date_from="2018-01-01", date_to="2022-12-31", page_size=2
        )
        assert [h["accession"] for h in got] == ["E-MTAB-10615", "E-MTAB-9296"]
        assert got[0]["release_date"] == "2021-07-07"
        queries = [q for _, p, q, _ in server.log]
        assert [q["page"][0] for q in queries] == ["1", "2", "3"]
        assert queries[0]["query"] == ["single cell RNA-seq"] and queries[0]["pageSize"] == ["2"]
        assert [h["accession"] for h in ae.search(client, "x", page_size=100)] == [
            "E-GEOD-93374",
            "E-MTAB-10615",
            "E-MTAB-17244",
            "E-MTAB-9296",
        ]


def test_study_json_checks():
    with Loopback() as server:
        server.routes["/biostudies/api/v1/studies/E-MTAB-10615"] = lambda req, n: send(
            req, 200, json.dumps(STUDY_JSON), {"Content-Type": "application/json"}
        )
        server.routes["/biostudies/api/v1/studies/E-MTAB-1"] = lambda req, n: send(
            req, 200, json.dumps(STUDY_JSON), {"Content-Type": "application/json"}
        )
        server.routes["/biostudies/api/v1/studies/E-MTAB-2"] = lambda req, n: send(
            req, 200, "<html><body>Not found</body></html>", {"Content-Type": "text/html"}
        )
        client = HttpClient(server.url("/biostudies"), retries=0)
        assert ae.study_json(client, "E-MTAB-10615")["accno"] == "E-MTAB-10615"
        with pytest.raises(ServiceError, match="expected E-MTAB-1"):
            ae.study_json(client, "E-MTAB-1")
        with pytest.raises(ServiceError, match="HTML"):
            ae.study_json(client, "E-MTAB-2")
