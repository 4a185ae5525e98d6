"""ENA filereports and SRA XML/run tables, on real records recorded by pysradb and ffq."""

from __future__ import annotations

import collections
import csv
import io

import pytest
from _http_loopback import Loopback, send

from scatlas.accessions import validate
from scatlas.errors import InputError, ServiceError
from scatlas.sources import sra as sra_mod
from scatlas.sources.http import HttpClient


@pytest.fixture(scope="module")
def sra(shared_data):
    return shared_data / "sra"


@pytest.fixture(scope="module")
def report(sra):
    return sra_mod.parse_filereport(
        (sra / "ena_test_verbosity_3.csv").read_text(), where="ena_test_verbosity_3.csv"
    )


def test_recorded_csv_filereport(report):
    assert len(report) == 1000
    first = report[0]
    assert first["run_accession"] == "ERR1190989"
    assert first["fastq_ftp"] == [
        "ftp.sra.ebi.ac.uk/vol1/fastq/ERR119/009/ERR1190989/ERR1190989.fastq.gz"
    ]
    assert first["fastq_md5"] == ["9d44144fc8af59f5e1329bb3948df3d3"]
    assert first["fastq_bytes"] == [1213693766]
    assert (first["library_layout"], first["tax_id"], first["scientific_name"]) == (
        "SINGLE",
        "10090",
        "Mus musculus",
    )
    assert first["read_count"] == 38883498 and first["experiment_accession"] == "ERX1264364"
    assert collections.Counter(r["library_layout"] for r in report) == {"SINGLE": 983, "PAIRED": 17}
    assert collections.Counter(len(r["fastq_ftp"]) for r in report) == {1: 884, 0: 105, 2: 11}


def test_paired_runs_in_mate_order(report):
    pair = next(r for r in report if r["run_accession"] == "SRR2047225")
    assert [u.rsplit("/", 1)[1] for u in pair["fastq_ftp"]] == [
        "SRR2047225_1.fastq.gz",
        "SRR2047225_2.fastq.gz",
    ]
    assert pair["fastq_md5"] == [
        "d675a5ff56f35ae12c314d373fdb5e28",
        "e299e5e14018e5dd9bfff177ff29b3c5",
    ]
    assert pair["fastq_bytes"] == [2717968568, 2752431632]
    # ENA lists some PAIRED runs with one unsplit file: the record keeps what ENA says
    odd = next(r for r in report if r["run_accession"] == "SRR6286686")
    assert odd["library_layout"] == "PAIRED" and len(odd["fastq_ftp"]) == 1


def test_tsv_with_mates_reversed_and_an_orphan_file(report):
    pair = next(r for r in report if r["run_accession"] == "SRR2047225")
    orphan = "ftp.sra.ebi.ac.uk/vol1/fastq/SRR204/005/SRR2047225/SRR2047225.fastq.gz"
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(sra_mod.FILEREPORT_FIELDS)
    row = {
        "run_accession": "SRR2047225",
        "experiment_accession": pair["experiment_accession"],
        "library_layout": "PAIRED",
        "fastq_ftp": ";".join([pair["fastq_ftp"][1], orphan, pair["fastq_ftp"][0]]),
        "fastq_md5": ";".join([pair["fastq_md5"][1], "0" * 32, pair["fastq_md5"][0]]),
        "fastq_bytes": ";".join(["2752431632", "12", "2717968568"]),
    }
    w.writerow([row.get(f, "") for f in sra_mod.FILEREPORT_FIELDS])
    [rec] = sra_mod.parse_filereport(buf.getvalue())
    assert rec["fastq_ftp"] == pair["fastq_ftp"]
    assert rec["fastq_md5"] == pair["fastq_md5"] and rec["fastq_bytes"] == pair["fastq_bytes"]


def test_recorded_json_filereport(sra):
    recs = sra_mod.parse_filereport((sra / "ena_test_verbosity_0.json").read_text())
    assert len(recs) == 1000
    assert recs[0]["run_accession"] == "ERR1190989" and recs[0]["fastq_ftp"] == []
    assert recs[0]["sample_accession"] == "SAMEA3708907" and recs[0]["base_count"] == 1161289538


@pytest.mark.parametrize(
    "body, field",
    [
        ("run_accession\tfastq_ftp\nSRR12\tx.fastq.gz\n", "run_accession"),
        (
            "run_accession\tfastq_ftp\tfastq_md5\nSRR1234567\ta_1.fastq.gz;a_2.fastq.gz\t"
            + "a" * 32
            + "\n",
            "fastq_ftp/fastq_md5/fastq_bytes",
        ),
        ("run_accession\tfastq_ftp\tfastq_md5\nSRR1234567\ta.fastq.gz\tnot-an-md5\n", "fastq_md5"),
        ("study_accession\nPRJNA1\n", "run_accession"),
    ],
)
def test_malformed_filereport(body, field):
    with pytest.raises(InputError) as err:
        sra_mod.parse_filereport(body, where="report.tsv")
    assert err.value.field == field and err.value.path == "report.tsv"


def test_experiment_package_xml(sra):
    recs = sra_mod.parse_sra_xml((sra / "sra_test.xml").read_bytes())
    assert len(recs) == 92
    first = recs[0]
    assert (first["run_accession"], first["experiment_accession"], first["gsm"]) == (
        "SRR11217925",
        "SRX7830165",
        "GSM4369051",
    )
    assert (
        first["secondary_sample_accession"] == "SRS6240844"
        and first["sample_accession"] == "SAMN14262094"
    )
    assert first["study_accession"] == "SRP251352" and first["library_layout"] == "SINGLE"
    assert (first["library_strategy"], first["library_source"]) == ("RNA-Seq", "TRANSCRIPTOMIC")
    assert (first["read_count"], first["base_count"]) == (29156586, 1472955019)
    assert first["fastq_ftp"] == []  # SRA's files are not FASTQ
    by_exp = sra_mod.runs_by_experiment(recs)
    assert len(by_exp) == 87
    assert sorted(k for k, v in by_exp.items() if len(v) == 2) == [
        "SRX878008",
        "SRX878009",
        "SRX878011",
        "SRX878013",
        "SRX878014",
    ]
    assert collections.Counter(r["library_layout"] for r in recs) == {"SINGLE": 80, "PAIRED": 12}
    [ecoli] = sra_mod.parse_sra_xml((sra / "sra_test_ERS3331676.xml").read_text())
    assert (ecoli["run_accession"], ecoli["library_layout"], ecoli["tax_id"], ecoli["gsm"]) == (
        "ERR4229796",
        "PAIRED",
        "562",
        "",
    )


def test_ena_browser_xml_resolves_gsm_to_runs(shared_data):
    ffq = shared_data / "geo" / "ffq"
    [exp] = sra_mod.parse_sra_xml((ffq / "SRX3517583.txt").read_text())
    assert (
        exp["run_accession"],
        exp["experiment_accession"],
        exp["gsm"],
        exp["library_layout"],
    ) == (
        "SRR6425163",
        "SRX3517583",
        "GSM2905292",
        "PAIRED",
    )
    [run] = sra_mod.parse_sra_xml((ffq / "SRR8426358.txt").read_text())
    assert (run["experiment_accession"], run["gsm"], run["study_accession"]) == (
        "SRX5234128",
        "GSM3557675",
        "SRP178136",
    )
    [sample] = sra_mod.parse_sra_xml((ffq / "SRS4237519.txt").read_text())
    assert (
        sample["run_accession"],
        sample["experiment_accession"],
        sample["sample_accession"],
        sample["tax_id"],
    ) == (
        "SRR8426358",
        "SRX5234128",
        "SAMN10719598",
        "10090",
    )
    study = sra_mod.parse_sra_xml((ffq / "SRP096361_with_runlist.txt").read_text())
    assert [r["run_accession"] for r in study] == [f"SRR{n}" for n in range(5164436, 5164447)]
    with pytest.raises(InputError, match="invalid SRA XML"):
        sra_mod.parse_sra_xml("<EXPERIMENT_PACKAGE_SET><unclosed>")


def test_run_tables_match_the_xml(sra):
    xml_runs = {
        r["run_accession"] for r in sra_mod.parse_sra_xml((sra / "sra_test.xml").read_bytes())
    }
    full = sra_mod.parse_sra_runtable((sra / "sra_test_verbosity_3.csv").read_text())
    assert {r["run_accession"] for r in full} == xml_runs
    first = full[0]
    assert (
        first["experiment_accession"],
        first["gsm"],
        first["library_layout"],
        first["sample_accession"],
    ) == (
        "SRX7830165",
        "GSM4369051",
        "SINGLE",
        "SAMN14262094",
    )
    assert len(sra_mod.parse_sra_runtable((sra / "sra_test_verbosity_0.csv").read_text())) == 92
    assert (
        len(sra_mod.parse_sra_runtable((sra / "sra_test_verbosity_2.csv").read_text())) == 87
    )  # run_1 only
    [wgs] = sra_mod.parse_sra_runtable((sra / "sra_test_2_verbosity_3.csv").read_text())
    assert (wgs["run_accession"], wgs["library_layout"]) == ("ERR4229796", "PAIRED")


def test_filereport_request(report):
    pair = next(r for r in report if r["run_accession"] == "SRR2047225")
    tsv = (
        "\t".join(sra_mod.FILEREPORT_FIELDS)
        + "\n"
        + "\t".join(
            {
                "run_accession": "SRR2047225",
                "fastq_ftp": ";".join(pair["fastq_ftp"]),
                "fastq_md5": ";".join(pair["fastq_md5"]),
            }.get(f, "")
            for f in sra_mod.FILEREPORT_FIELDS
        )
        + "\n"
    )

    def route(req, n):
        acc = req.query["accession"][0]
        if acc == "SRX9999999":
            send(req, 200, "", {"Content-Type": "text/plain"})
        elif acc == "SRX8888888":
            send(req, 200, "<html><body>down</body></html>", {"Content-Type": "text/html"})
        else:
            send(req, 200, tsv, {"Content-Type": "text/plain"})

    with Loopback() as server:
        server.routes["/ena/portal/api/filereport"] = route
        client = HttpClient(server.url("/ena/portal/api"), retries=0)
        [rec] = sra_mod.filereport(client, "SRX1035297")
        assert rec["fastq_md5"] == pair["fastq_md5"] and rec["fastq_bytes"] == []
        q = server.log[-1][2]
        assert (
            q["result"] == ["read_run"]
            and q["format"] == ["tsv"]
            and q["fields"] == [",".join(sra_mod.FILEREPORT_FIELDS)]
        )
        assert sra_mod.filereport(client, "SRX9999999") == []
        with pytest.raises(ServiceError, match="HTML"):
            sra_mod.filereport(client, "SRX8888888")
        n = len(server.log)
        with pytest.raises(InputError):
            sra_mod.filereport(client, "SRX1; rm -rf /")
        assert len(server.log) == n  # refused before any request


def test_mate_of():
    assert (
        sra_mod.mate_of("ftp.sra.ebi.ac.uk/vol1/fastq/SRR204/005/SRR2047225/SRR2047225_2.fastq.gz")
        == 2
    )
    assert sra_mod.mate_of("UC-2915-Sample1_S1_L001_R1_001.fastq.gz") == 1
    assert sra_mod.mate_of("ERR1190989.fastq.gz") is None


def test_every_recorded_sra_and_ena_record_is_read(shared_data):
    """Each file of ../shared/data/sra and the SRA XML of geo/ffq goes through the parser for
    its format; counts and first runs are the recorded ones."""
    sra = shared_data / "sra"
    read: dict[str, list] = {}
    for path in sorted(sra.iterdir()):
        name = path.name
        if name.startswith("ena_test") or name == "ena_search_test1.txt":
            read[name] = sra_mod.parse_filereport(path.read_text(), where=name)
        elif name.startswith("sra_test") and name.endswith(".csv"):
            read[name] = sra_mod.parse_sra_runtable(path.read_text(), where=name)
        elif name.endswith(".xml"):
            read[name] = sra_mod.parse_sra_xml(path.read_bytes(), where=name)
        elif name in ("geo_search_test1.txt", "sra_search_test1.txt"):  # bare SRX lists
            read[name] = [validate(a, "experiment") for a in path.read_text().split()]
        elif name == "sra_uids.txt":
            read[name] = [int(u) for u in path.read_text().split()]
    assert set(read) == {p.name for p in sra.iterdir() if p.name != "LICENSE"}
    counts = {k: len(v) for k, v in read.items()}
    assert counts["ena_search_test1.txt"] == 77 and counts["geo_search_test1.txt"] == 78
    for v in range(4):
        assert counts[f"ena_test_verbosity_{v}.csv"] == 1000
        assert counts[f"sra_test_2_verbosity_{v}.csv"] == 1
    for v in range(3):
        assert counts[f"ena_test_verbosity_{v}.json"] == 1000
    assert [counts[f"sra_test_verbosity_{v}.csv"] for v in range(4)] == [92, 92, 87, 92]
    assert read["ena_test_verbosity_0.csv"][0]["run_accession"] == "ERR1190989"
    assert read["ena_test_verbosity_2.csv"][0]["experiment_accession"] == "ERX1264364"
    assert read["sra_uids.txt"] == [155791, 155790]
    assert read["sra_search_test1.txt"][:2] == ["SRX137370", "SRX137371"]
    ffq = shared_data / "geo" / "ffq"
    study = sra_mod.parse_sra_xml((ffq / "SRP178136.txt").read_text())  # a STUDY_SET
    assert [r["run_accession"] for r in study] == [f"SRR{n}" for n in range(8426358, 8426399)]
    assert {r["study_accession"] for r in study} == {"SRP178136"}
