"""GEO: E-utilities JSON and family SOFT, on real recorded records from ../shared/data/geo."""

from __future__ import annotations

import collections
import gzip
import json
import shutil

import pytest
from _http_loopback import Loopback, send

from scatlas.accessions import AccessionError
from scatlas.errors import InputError, ServiceError
from scatlas.sources import geo
from scatlas.sources.http import HttpClient

BOTH = ["Homo sapiens", "Mus musculus"]


@pytest.fixture(scope="module")
def family(shared_data, tmp_path_factory):
    """Family SOFT files assembled from the recorded series + sample parts (one gzipped)."""
    out = tmp_path_factory.mktemp("soft")
    paths = {}
    for gse in ("GSE100750", "GSE101426", "GSE101966", "GSE138657", "GSE146540", "GSE146583"):
        text = (shared_data / "geo" / f"{gse}_GSE.soft").read_bytes() + (
            shared_data / "geo" / f"{gse}_GSM.soft"
        ).read_bytes()
        path = out / f"{gse}_family.soft"
        path.write_bytes(text)
        paths[gse] = path
    gz = out / "GSE146583_family.soft.gz"
    with open(paths["GSE146583"], "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    paths["GSE146583"] = gz
    return paths


def test_series_directory_rule():
    assert geo.series_stub("GSE93374") == "GSE93nnn"
    assert geo.series_stub("GSE1234") == "GSE1nnn"
    assert geo.series_stub("GSE12") == "GSEnnn"
    assert geo.soft_family_url("GSE93374", "http://127.0.0.1:8/geo/") == (
        "http://127.0.0.1:8/geo/series/GSE93nnn/GSE93374/soft/GSE93374_family.soft.gz"
    )
    with pytest.raises(AccessionError):
        geo.soft_family_path("GSE93374/../../etc")


def test_atac_series_is_not_single_cell_rna(family):
    d = geo.parse_family_soft(family["GSE100750"], expected="GSE100750")
    series, samples = d["series"], d["samples"]
    assert series["accession"] == "GSE100750"
    assert series["types"] == ["Genome binding/occupancy profiling by high throughput sequencing"]
    assert series["sra_study"] == "SRP110993"
    assert series["submitted"] == "2017-07-03" and series["updated"] == "2021-07-25"
    assert len(samples) == 18 == len(series["sample_ids"])
    first = samples[0]
    assert first["accession"] == "GSM2692559"
    assert first["title"] == "1a: PC9_OCSA ATAC-seq"
    assert first["experiment"] == "SRX2980124"
    assert first["biosample"] == "SAMN07312233"
    assert first["characteristics"] == [("cell line", "PC9"), ("treatment", "DMSO")]
    assert (first["organism"], first["taxid"], first["molecule"]) == (
        "Homo sapiens",
        "9606",
        "genomic DNA",
    )
    assert first["series"] == ["GSE74180", "GSE100750"]
    assert first["supplementary"][1].endswith("GSM2692559_1a_PC9_OCSA_peaks.bed.gz")
    assert {s["library_strategy"] for s in samples} == {"ATAC-seq"}
    verdicts = [geo.is_single_cell_rna(s, BOTH) for s in samples]
    assert not any(ok for ok, _ in verdicts)
    assert verdicts[0][1] == "GSM2692559: library source 'genomic' is not transcriptomic (ATAC-seq)"


def test_superseries_mixed_organisms_and_assays(family):
    d = geo.parse_family_soft(family["GSE146583"])  # gzipped
    samples = d["samples"]
    assert len(samples) == 50
    counts = collections.Counter((s["organism"], s["library_strategy"]) for s in samples)
    assert counts[("Homo sapiens", "ChIP-Seq")] == 26
    assert counts[("Mus musculus", "RNA-Seq")] == 6 and counts[("Homo sapiens", "RNA-Seq")] == 6
    # the RNA-seq samples are bulk libraries of cell lines (replicates, ng of total RNA):
    # none is taken for single-cell RNA-seq, and the reason says which words decided
    verdicts = [geo.is_single_cell_rna(s, BOTH) for s in samples]
    assert not any(ok for ok, _ in verdicts)
    bulk = [
        why
        for s, (_, why) in zip(samples, verdicts, strict=True)
        if s["library_strategy"] == "RNA-Seq"
    ]
    assert len(bulk) == 12 and all("describes bulk RNA-seq" in why for why in bulk)
    assert all("bulk: " in why and ("RNeasy" in why) for why in bulk)
    assert sum("15 ng of total RNA" in why and "rep1" in why for why in bulk) == 2
    mouse = next(s for s in samples if s["organism"] == "Mus musculus")
    assert mouse["accession"] == "GSM4391902" and mouse["experiment"] == "SRX7866154"
    ok, why = geo.is_single_cell_rna(
        next(
            s
            for s in samples
            if s["library_strategy"] == "RNA-Seq" and s["organism"] == "Mus musculus"
        ),
        ["Homo sapiens"],
    )
    assert not ok and "organism 'Mus musculus'" in why
    assert d["series"]["organisms"] == BOTH


def test_bulk_rna_seq_samples_parsed_and_refused(family):
    d = geo.parse_family_soft(family["GSE146540"])
    samples = d["samples"]
    assert [s["experiment"] for s in samples][:2] == ["SRX7866186", "SRX7866187"]
    verdicts = [geo.is_single_cell_rna(s, BOTH) for s in samples]
    assert len(samples) == 6 and not any(ok for ok, _ in verdicts)  # cell-line replicates
    assert "15 ng of total RNA" in verdicts[0][1]
    kept = samples
    assert kept[0]["characteristics"] == [("cell line", "JHRCC12"), ("genotype", "SETD2-deficient")]
    assert d["series"]["supplementary"] == [
        "ftp://ftp.ncbi.nlm.nih.gov/geo/series/GSE146nnn/GSE146540/suppl/GSE146540_All_gene_counts.txt.gz"
    ]
    assert not any(geo.is_droplet(s) for s in kept)
    # two RNA-seq samples of a cell line's extracted mRNA: bulk, refused with the words
    mixed = geo.parse_family_soft(family["GSE138657"])["samples"]
    verdicts = {s["accession"]: geo.is_single_cell_rna(s, BOTH) for s in mixed}
    assert not any(ok for ok, _ in verdicts.values())
    assert "bulk: TRIzol, mRNAs were extracted" in verdicts["GSM4114982"][1]
    blank = next(
        s
        for s in geo.parse_family_soft(family["GSE101966"])["samples"]
        if not s["library_strategy"]
    )
    assert geo.is_single_cell_rna(blank, BOTH) == (
        False,
        "GSM2719741: library source 'missing' is not transcriptomic (no strategy)",
    )


def test_bulk_samples_are_excluded(family):
    sample = dict(geo.parse_family_soft(family["GSE146540"])["samples"][0])
    sample["title"] = "bulk RNA-seq of whole lung"
    ok, why = geo.is_single_cell_rna(sample, BOTH)
    assert not ok and why.startswith("GSM4391934: metadata describes bulk RNA-seq (bulk")
    assert "bulk: bulk, 15 ng of total RNA" in why


@pytest.mark.parametrize(
    "content, message",
    [
        (b"<!DOCTYPE html><html><body>Error 404</body></html>", "HTML page"),
        (
            b"^SERIES = GSE1\n!Series_title = a\n^SERIES = GSE2\n!Series_title = b\n",
            "describes 2 series",
        ),
        (b"^SAMPLE = GSM1\n!Sample_title = x\n", "no \\^SERIES entry"),
        (b"^SAMPLE = GSM1\n^SAMPLE = GSM2\n", "no \\^SERIES entry"),
        (
            b"^SERIES = GSE1\n!Series_geo_accession = GSE1\n!Series_sample_id = GSM1\n",
            "no \\^SAMPLE entries",
        ),
        (b"", "not a SOFT file"),
        (b"\x1f\x8b\x08\x00garbage", "cannot read SOFT"),
    ],
)
def test_malformed_soft_is_an_input_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "GSE1_family.soft.gz"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        geo.parse_family_soft(path, expected="GSE1")
    assert err.value.path == str(path)


def test_soft_for_another_series_is_refused(family):
    with pytest.raises(InputError, match="describes GSE146540, expected GSE93374"):
        geo.parse_family_soft(family["GSE146540"], expected="GSE93374")


def test_recorded_esearch_and_esummary(shared_data):
    ffq = shared_data / "geo" / "ffq"
    count, ids = geo.parse_esearch(json.loads((ffq / "GSE93374_search.txt").read_text()))
    assert (count, ids) == (13, ["200093374"])
    docs = geo.parse_esummary(json.loads((ffq / "GSE93374_summary.txt").read_text()))
    assert len(docs) == 1 and docs[0]["accession"] == "GSE93374"
    row = geo.summary_to_study(docs[0], BOTH)
    assert row == {
        "study": "GSE93374",
        "source": "geo",
        "title": "A Molecular Census of Arcuate Hypothalamus and Median Eminence Cell Types",
        "organism": "Mus musculus",
        "kind": "reads",
        "n_samples": 11,
        "submitted": "2017-01-31",
        "updated": "",
        "status": "ok",
        "reason": "single-cell candidate with SRA reads",
        "fingerprint": geo.fingerprint(docs[0]),
        "subseries": [],
        "superseries": False,
    }
    assert len(row["fingerprint"]) == 16
    human_only = geo.summary_to_study(docs[0], ["Homo sapiens"])
    assert human_only["status"] == "skipped" and "organism 'Mus musculus'" in human_only["reason"]
    # a Drop-seq sample (title from the summary) pools cells: its reads are not per cell
    assert geo.is_droplet({"title": docs[0]["samples"][0]["title"]})
    gsm = geo.parse_esummary(json.loads((ffq / "GSM3717978_summary.txt").read_text()))
    assert gsm[0]["extrelations"][0]["targetobject"] == "SRX5692097"
    skipped = geo.summary_to_study(gsm[0], BOTH)
    assert (
        skipped["status"] == "skipped"
        and "entry type GSM (GSM3717978) is not a GEO series" in skipped["reason"]
    )


def test_matrix_kind_and_series_type_filter(shared_data):
    doc = geo.parse_esummary(
        json.loads((shared_data / "geo" / "ffq" / "GSE93374_summary.txt").read_text())
    )[0]
    matrix = geo.summary_to_study({**doc, "extrelations": []}, BOTH)
    assert (matrix["kind"], matrix["status"]) == ("matrix", "ok")
    arrays = geo.summary_to_study({**doc, "gdstype": "Expression profiling by array"}, BOTH)
    assert (
        arrays["status"] == "skipped"
        and "is not 'Expression profiling by high throughput sequencing'" in arrays["reason"]
    )


def test_esearch_pages_and_esummary_batches(shared_data):
    doc = json.loads((shared_data / "geo" / "ffq" / "GSE93374_summary.txt").read_text())["result"][
        "200093374"
    ]
    uids = [str(200000000 + i) for i in range(1, 451)]

    def esearch(req, n):
        start, size = int(req.query["retstart"][0]), int(req.query["retmax"][0])
        body = {"esearchresult": {"count": str(len(uids)), "idlist": uids[start : start + size]}}
        send(req, 200, json.dumps(body), {"Content-Type": "application/json"})

    def esummary(req, n):
        ids = req.query["id"][0].split(",")
        result = {
            "uids": ids,
            **{i: {**doc, "uid": i, "accession": f"GSE{int(i) - 200000000}"} for i in ids},
        }
        send(
            req,
            200,
            json.dumps({"header": {"type": "esummary"}, "result": result}),
            {"Content-Type": "application/json"},
        )

    with Loopback() as server:
        server.routes["/esearch.fcgi"] = esearch
        server.routes["/esummary.fcgi"] = esummary
        client = HttpClient(server.base, retries=0, backoff=0.01)
        got = geo.esearch(client, "single cell", mindate="2017-01-01", page_size=200)
        assert got == uids
        searches = [q for m, p, q, _ in server.log if p == "/esearch.fcgi"]
        assert [q["retstart"][0] for q in searches] == ["0", "200", "400"]
        assert searches[0]["mindate"] == ["2017/01/01"] and searches[0]["datetype"] == ["pdat"]
        assert searches[0]["maxdate"] == ["2100/12/31"] and searches[0]["db"] == ["gds"]
        docs = geo.esummary(client, got)
        assert len(docs) == 450 and docs[-1]["accession"] == "GSE450"
        methods = [m for m, p, _, _ in server.log if p == "/esummary.fcgi"]
        assert methods == ["POST", "POST", "GET"]
        assert geo.esearch(client, "single cell", max_results=5, page_size=200) == uids[:5]


def test_esearch_error_is_a_service_error():
    with pytest.raises(ServiceError, match="Invalid query"):
        geo.parse_esearch({"esearchresult": {"ERROR": "Invalid query"}})
    with pytest.raises(ServiceError, match="no 'esearchresult'"):
        geo.parse_esearch({"nothing": 1})


def test_dates():
    assert geo.iso_date("2017/01/31") == "2017-01-31"
    assert geo.iso_date("Jul 03 2017") == "2017-07-03"
    assert geo.iso_date("soon") == ""
    assert geo.to_eutils_date("2020-02-29") == "2020/02/29"
    with pytest.raises(InputError):
        geo.to_eutils_date("29/02/2020")


def test_truncated_gzip_is_refused_and_plain_text_named_gz_is_read(family, tmp_path):
    whole = family["GSE146583"].read_bytes()
    cut = tmp_path / "GSE146583_family.soft.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        geo.parse_family_soft(cut)
    plain = tmp_path / "GSE146540_family.soft.gz"  # served uncompressed under the .gz name
    plain.write_bytes(family["GSE146540"].read_bytes())
    assert len(geo.parse_family_soft(plain, expected="GSE146540")["samples"]) == 6


def test_real_superseries_relations_and_update_dates(family):
    sup = geo.parse_family_soft(family["GSE146583"])["series"]
    assert sup["superseries_of"] == [
        "GSE146537",
        "GSE146538",
        "GSE146539",
        "GSE146540",
        "GSE146541",
    ]
    assert sup["subseries_of"] == [] and sup["updated"] and sup["submitted"] == "2020-03-06"
    sub = geo.parse_family_soft(family["GSE146540"])
    assert sub["series"]["subseries_of"] == ["GSE146583"] and sub["series"]["superseries_of"] == []
    assert {tuple(s["series"]) for s in sub["samples"]} == {("GSE146540", "GSE146583")}
    doc = {"summary": sup["summary"], "relations": []}
    assert geo.is_superseries(doc)  # GEO's own wording, when esummary lists no relations
    doc = {
        "summary": "x",
        "relations": [{"relationtype": "SuperSeries of", "targetobject": "GSE2"}],
    }
    assert geo.is_superseries(doc) and geo.relations(doc, "SuperSeries of") == ["GSE2"]
    row = geo.summary_to_study(
        {**doc, "accession": "GSE1", "entrytype": "GSE", "taxon": "Homo sapiens",
         "gdstype": geo.HTS_EXPRESSION, "extrelations": [{"relationtype": "SRA"}], "n_samples": 4},
        ["Homo sapiens"],
    )  # fmt: skip
    assert row["status"] == "skipped" and row["reason"].startswith("SuperSeries of GSE2")


def test_esummary_per_uid_errors_and_date_type():
    errors: dict[str, str] = {}
    docs = geo.parse_esummary(
        {"result": {"uids": ["1", "2"], "1": {"accession": "GSE1"},
                    "2": {"uid": "2", "error": "cannot get document summary"}}},
        errors=errors,
    )  # fmt: skip
    assert [d["accession"] for d in docs] == ["GSE1"] and errors == {
        "2": "cannot get document summary"
    }
    with Loopback() as server:
        server.routes["/esearch.fcgi"] = lambda req, n: send(
            req, 200, json.dumps({"esearchresult": {"count": "0", "idlist": []}}),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        client = HttpClient(server.base, retries=0)
        geo.esearch(client, "x", mindate="2024-01-01", datetype="mdat")
        q = server.log[-1][2]
        assert (q["datetype"], q["mindate"], q["maxdate"]) == (
            ["mdat"],
            ["2024/01/01"],
            ["2100/12/31"],
        )
        with pytest.raises(InputError, match="date type 'udat'"):
            geo.esearch(client, "x", mindate="2024-01-01", datetype="udat")


def test_soft_scan_refuses_what_geoparse_would_misread(tmp_path):
    head = b"^SERIES = GSE1\n!Series_geo_accession = GSE1\n"
    cases = {
        "latin1": (head + "!Series_summary = Müller\n".encode("latin-1"), "!Series_summary", "not UTF-8"),
        "twice": (head + b"!Series_title = a\n!Series_title = b\n", "!Series_title", "given twice"),
        "entity": (head + b"^SAMPLE = GSM1\n^SAMPLE = GSM1\n", "^SAMPLE", "appears twice"),
    }  # fmt: skip
    for name, (data, field, words) in cases.items():
        path = tmp_path / f"{name}.soft"
        path.write_bytes(data)
        with pytest.raises(InputError, match=words) as err:
            geo.parse_family_soft(path)
        assert (err.value.field, err.value.path) == (field, str(path))
    same = tmp_path / "same.soft"  # the same value twice is harmless
    same.write_bytes(head + b"!Series_title = a\n!Series_title = a\n")
    assert geo.parse_family_soft(same)["series"]["title"] == "a"


def test_every_real_soft_and_file_list(family, shared_data):
    """All six recorded series parse, with their real sample counts and assays; the three
    recorded supplementary-file listings parse with their real sizes."""
    expected = {  # (samples in the recorded file, samples the series lists, assays)
        "GSE100750": (18, 18, {"ATAC-seq"}),
        "GSE101426": (8, 8, {"ATAC-seq"}),
        "GSE101966": (18, 52, {"ATAC-seq", "ChIP-Seq", ""}),  # 18 of 52 recorded; some lack one
        "GSE138657": (16, 16, {"ATAC-seq", "ChIP-Seq", "Hi-C", "RNA-Seq"}),
        "GSE146540": (6, 6, {"RNA-Seq"}),
        "GSE146583": (50, 50, {"ATAC-seq", "ChIP-Seq", "RNA-Seq"}),
    }
    for gse, (n, listed, strategies) in expected.items():
        d = geo.parse_family_soft(family[gse], expected=gse)
        assert (len(d["samples"]), len(d["series"]["sample_ids"])) == (n, listed), gse
        assert {s["library_strategy"] for s in d["samples"]} == strategies, gse
    atac = geo.parse_family_soft(family["GSE101426"])
    assert atac["series"]["sra_study"] == "SRP111896"
    assert atac["samples"][0]["experiment"] == "SRX3003803"
    assert not any(geo.is_single_cell_rna(s, BOTH)[0] for s in atac["samples"])
    for gse, n_rows, archive_size in (
        ("GSE100750", 37, 1584168960),
        ("GSE101426", 17, 6092451840),
    ):
        path = shared_data / "geo" / f"{gse}_file_list.txt"
        rows = geo.parse_filelist(path.read_text(), where=str(path))
        assert len(rows) == n_rows
        assert rows[0] == {
            "kind": "Archive",
            "name": f"{gse}_RAW.tar",
            "time": rows[0]["time"],
            "size": archive_size,
            "type": "TAR",
        }
        assert all(r["kind"] == "File" and r["name"].startswith("GSM") for r in rows[1:])
    assert geo.filelist_url("GSE100750", "http://m/geo") == (
        "http://m/geo/series/GSE100nnn/GSE100750/suppl/filelist.txt"
    )
    with pytest.raises(InputError, match="not a GEO filelist"):
        geo.parse_filelist("<html>", where="x")
    with pytest.raises(InputError, match="is not a number") as err:
        geo.parse_filelist("#Archive/File\tName\tTime\tSize\tType\nFile\ta\tt\tbig\tTXT\n")
    assert err.value.field == "Size"
