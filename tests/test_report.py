"""The run report: numbers printed as people read them, every section present even when a
run stopped early, the MultiQC export, and the demo run's report in headless Chromium
(a screenshot of each section is kept in test-artifacts/)."""

from __future__ import annotations

import pytest

from scatlas.report import multiqc
from scatlas.report.build import SECTIONS, build_report
from scatlas.report.page import number

HISAT2 = """$ /usr/bin/hisat2-align-s --wrapper basic-0 -p 2 -x index -U reads_1.fq
--- reads fed: 1601 from SRR1.fastq.gz
1601 reads; of these:
  1601 (100.00%) were unpaired; of these:
    40 (2.50%) aligned 0 times
    1561 (97.50%) aligned exactly 1 time
    0 (0.00%) aligned >1 times
97.50% overall alignment rate
--- samtools (exit 0)
"""


@pytest.mark.parametrize(
    "value, shown",
    [
        (10.0, "10"),
        (0.97123, "0.971"),
        (130768.21, "130,768"),
        (1e-5, "1.00e-05"),
        (True, "yes"),
        (float("nan"), ""),
        ("edgeR", "edgeR"),
        (48, "48"),
    ],
)
def test_numbers_as_people_read_them(value, shown):
    assert number(value) == shown


def test_a_run_that_stopped_early_still_gets_every_section(tmp_path):
    page = build_report(
        tmp_path / "results", tmp_path / "logs", tmp_path / "r.html", tmp_path / "mq"
    )
    text = page.read_text()
    for key in SECTIONS:
        assert f'<section id="{key}">' in text
    assert "no atlas" in text and "no release record" in text
    assert (tmp_path / "mq" / "hisat2").is_dir()


def test_multiqc_export_keeps_hisat2_summaries_and_featurecounts_tables(tmp_path):
    log = tmp_path / "logs" / "align" / "GSE1" / "SRR1.log"
    log.parent.mkdir(parents=True)
    log.write_text(HISAT2)
    (tmp_path / "logs" / "align" / "GSE1" / "SRR2.log").write_text("hisat2 failed: no reads\n")
    summary = tmp_path / "results" / "counts" / "GSE1" / "counts.tsv.summary"
    summary.parent.mkdir(parents=True)
    summary.write_text("Status\tSRR1.bam\nAssigned\t1400\nUnassigned_NoFeatures\t161\n")
    assert multiqc.export(tmp_path / "results", tmp_path / "logs", tmp_path / "mq") == 2
    block = (tmp_path / "mq" / "hisat2" / "GSE1_SRR1.txt").read_text()
    assert block.startswith("1601 reads; of these:") and block.rstrip().endswith(
        "overall alignment rate"
    )
    assert (
        tmp_path / "mq" / "featurecounts" / "GSE1.counts.tsv.summary"
    ).read_text() == summary.read_text()


@pytest.mark.slow
def test_the_demo_runs_report_in_chromium(demo_run):
    from browser import ARTIFACTS, chromium
    from selenium.webdriver.common.by import By

    results = demo_run["work"] / "results"
    page = results / "report" / "report.html"
    assert page.is_file(), "the workflow's report rule did not run"
    assert len(list((results / "report" / "multiqc" / "hisat2").glob("*.txt"))) > 100
    artifacts = ARTIFACTS
    artifacts.mkdir(parents=True, exist_ok=True)
    driver = chromium(1280, 1000)
    try:
        driver.get(page.as_uri())
        width, inner = driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert width <= inner, "the page is wider than a 1280-px window"
        for key in SECTIONS:
            element = driver.find_element(By.ID, key)
            assert element.find_element(By.TAG_NAME, "h2").text
            driver.execute_script("arguments[0].scrollIntoView()", element)
            element.screenshot(str(artifacts / f"report-{key}.png"))
        metrics = driver.find_element(By.CSS_SELECTOR, "#evaluation table")
        headers = [th.text for th in metrics.find_elements(By.TAG_NAME, "th")]
        first = [td.text for td in metrics.find_elements(By.CSS_SELECTOR, "tr:nth-child(2) td")]
        assert dict(zip(headers, first, strict=False))["k"] == "10"  # not 10.0000
        assert "GSE900009" in driver.find_element(By.ID, "run").text  # the failed study, named
        assert driver.find_elements(By.CSS_SELECTOR, "#de img")  # volcano plots
        shown = [
            i.get_attribute("alt") for i in driver.find_elements(By.CSS_SELECTOR, "#evaluation img")
        ]
        assert "dense: confusion matrix" in shown and "dense" in shown  # and its embedding
        assert "hisat2" in driver.find_element(By.ID, "release").text  # software versions
    finally:
        driver.quit()


def test_de_section_shows_volcano_top_genes_and_go(tmp_path):
    import pandas as pd

    de = tmp_path / "results" / "de"
    de.mkdir(parents=True)
    summary = pd.DataFrame(
        {
            "cl_id": ["CL:0000084"],
            "cl_label": ["T cell"],
            "contrast": ["rest"],
            "n_studies": [3],
            "n_up": [2],
            "n_down": [1],
            "status": ["tested"],
            "reason": [""],
            "file": ["CL_0000084.tsv"],
        }
    )
    summary.to_csv(de / "summary.tsv", sep="\t", index=False)
    pd.DataFrame(
        {
            "gene": ["g1", "g2", "g3", "g4"],
            "gene_symbol": ["CD3E", "CD2", "LYZ", "ACTB"],
            "logfc__A": [5.0, 4.0, -3.0, 0.1],
            "logfc__B": [4.0, 3.5, -2.5, 0.0],
            "stouffer_z": [9.0, 8.0, -7.0, 0.2],
            "stouffer_fdr": [1e-20, 1e-15, 1e-10, 0.8],
            "direction": ["up", "up", "down", "up"],
            "n_replicated": [2, 2, 2, 0],
            "significant": [True, True, True, False],
        }
    ).to_csv(de / "CL_0000084.tsv", sep="\t", index=False)
    pd.DataFrame(
        {"go_id": ["GO:0002250"], "term": ["adaptive immune response"], "n_up": [2], "padj": [1e-4]}
    ).to_csv(de / "CL_0000084.go.tsv", sep="\t", index=False)
    text = build_report(
        tmp_path / "results", tmp_path / "logs", tmp_path / "r.html", tmp_path / "mq"
    ).read_text()
    de_part = text[text.index('<section id="de">') : text.index('<section id="release">')]
    assert "T cell (CL:0000084)" in de_part and "<img" in de_part
    assert "CD3E" in de_part and "ACTB" not in de_part  # the significant genes only
    assert "adaptive immune response" in de_part


@pytest.mark.slow
def test_snakemake_report_holds_the_captioned_results(demo_run, repo_root, tmp_path):
    """`snakemake --report` on the demo run: the workflow description and every result
    registered with a caption (run report, evaluation report and tables, release record)."""
    import subprocess
    import sys
    import zipfile

    out = tmp_path / "report.zip"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(repo_root / "Snakefile"),
            "--configfile",
            str(repo_root / "config" / "demo.yaml"),
            "--report",
            str(out),
            "--cores",
            "1",
        ],
        cwd=demo_run["work"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        # the zip's top folder is named after the zip file ("report/report.html")
        page = z.read(
            next(n for n in names if n.count("/") == 1 and n.endswith("/report.html"))
        ).decode()
    assert len([n for n in names if "/data/raw/" in n]) >= 6  # six results registered
    assert "searchable reference atlas" in page  # the workflow description
