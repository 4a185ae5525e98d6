# The run's report: one self-contained page of the whole run, and a MultiQC export.


rule report:
    input:
        catalog=f"{RESULTS}/catalog/update.json",
        metrics=f"{RESULTS}/evaluation/metrics.tsv",
        de=f"{RESULTS}/de",
        release=f"{RESULTS}/publish/release.json",
    output:
        report=report(
            f"{RESULTS}/report/report.html",
            caption="../report/run_report.rst",
            category="Run",
        ),
        multiqc=directory(f"{RESULTS}/report/multiqc"),
    log:
        f"{LOGS}/report/report.log",
    localrule: True
    conda:
        "../../envs/train.yaml"
    params:
        publish_dir=config["publish_dir"],
    script:
        "../../scripts/build_report.py"
