"""The metadata-only demo world, and the mirror's faults that mangle real answers."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import json

import pytest
import requests

from scatlas.demo.metadata_world import Series, write_metadata_world
from scatlas.demo.mirror import Fault, MirrorServer
from scatlas.sources import geo

D = dt.date


@pytest.fixture
def world(tmp_path):
    root = tmp_path / "world"
    write_metadata_world(
        root,
        [
            Series("GSE960001", D(2024, 1, 1), n_samples=2, paired=True),
            Series("GSE960002", D(2024, 1, 2), n_samples=3, organisms=("Homo sapiens", "Mus musculus")),
            Series("GSE960003", D(2024, 1, 3), superseries_of=("GSE960001", "GSE960002"),
                   updated=D(2024, 3, 1)),
        ],
    )  # fmt: skip
    return root


def test_records_are_consistent(world, tmp_path):
    mirror = world / "mirror"
    gds = json.loads((mirror / "_index/gds.json").read_text())
    sup = gds[geo.gse_uid("GSE960003")]
    assert [r["targetobject"] for r in sup["relations"]] == ["GSE960001", "GSE960002"]
    assert sup["n_samples"] == 5 and geo.is_superseries(sup)
    assert gds[geo.gse_uid("GSE960002")]["taxon"] == "Homo sapiens; Mus musculus"
    soft = mirror / "geo/series/GSE960nnn/GSE960003/soft/GSE960003_family.soft.gz"
    parsed = geo.parse_family_soft(soft, expected="GSE960003")
    assert parsed["series"]["superseries_of"] == ["GSE960001", "GSE960002"]
    assert parsed["series"]["updated"] == "2024-03-01"
    assert {tuple(s["series"]) for s in parsed["samples"]} == {
        ("GSE960001", "GSE960003"),
        ("GSE960002", "GSE960003"),
    }
    sub = geo.parse_family_soft(
        mirror / "geo/series/GSE960nnn/GSE960002/soft/GSE960002_family.soft.gz"
    )
    assert sub["series"]["subseries_of"] == ["GSE960003"]
    assert [s["organism"] for s in sub["samples"]] == [
        "Homo sapiens",
        "Mus musculus",
        "Homo sapiens",
    ]
    with open(mirror / "_index/ena_runs.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert len(rows) == 5  # the SuperSeries has no runs of its own
    paired = next(r for r in rows if r["run_accession"] == "SRR96000101")
    files = [mirror / u.split("/", 1)[1] for u in paired["fastq_ftp"].split(";")]
    assert [f.name for f in files] == ["SRR96000101_1.fastq.gz", "SRR96000101_2.fastq.gz"]
    assert paired["fastq_md5"].split(";") == [
        hashlib.md5(f.read_bytes()).hexdigest() for f in files
    ]
    with gzip.open(files[1], "rt") as fh:
        assert fh.readline().startswith("@SRR96000101.1 1/2")
    meta = tmp_path / "meta"
    summary = write_metadata_world(meta, [Series("GSE960009", D(2024, 1, 1))], with_fastq=False)
    assert summary == {"series": 1, "runs": 4, "fastq_files": 0}
    assert not (meta / "mirror/vol1").exists()


def test_mirror_reload_mdat_and_mangling_faults(world):
    with MirrorServer(world) as m:

        def esearch(**p):
            r = requests.get(
                m.url + "/entrez/eutils/esearch.fcgi",
                params={"db": "gds", "retmode": "json", "term": "x", **p},
                timeout=5,
            )
            return r.json()["esearchresult"]["idlist"]  # fmt: skip

        window = {"mindate": "2024/02/01", "maxdate": "2024/03/31"}
        assert esearch(**window) == []  # nothing published then
        assert esearch(datetype="mdat", **window) == [geo.gse_uid("GSE960003")]
        doc = requests.get(m.url + "/entrez/eutils/esummary.fcgi",
                           params={"db": "gds", "retmode": "json", "id": geo.gse_uid("GSE960003")},
                           timeout=5).json()["result"][geo.gse_uid("GSE960003")]  # fmt: skip
        assert "_mdat" not in doc  # the index's private field is not served
        # upstream changes, then reload
        write_metadata_world(world, [Series("GSE960004", D(2024, 2, 10))])
        m.reload()
        assert esearch(**window) == [geo.gse_uid("GSE960004")]
        soft = "/geo/series/GSE960nnn/GSE960004/soft/GSE960004_family.soft.gz"
        full = requests.get(m.url + soft, timeout=5).content
        m.inject(soft, Fault(transform=lambda b: b[:10]))
        cut = requests.get(m.url + soft, timeout=5)
        assert cut.content == full[:10] and cut.headers["Content-Length"] == "10"
        m.inject(soft, Fault(body=b'{"a": 1}', content_type="application/json"))
        assert requests.get(m.url + soft, timeout=5).json() == {"a": 1}
        m.inject(soft, Fault(reset_at=5))
        with pytest.raises(requests.exceptions.ChunkedEncodingError, match="reset by peer"):
            requests.get(m.url + soft, timeout=5).content  # noqa: B018  (a TCP RST mid-body)
        assert requests.get(m.url + soft, timeout=5).content == full
