# Download FASTQ (reads studies) or author-processed matrices (matrix studies), verified.


rule download:
    input:
        samples=f"{RESULTS}/studies/{{study}}/samples.tsv",
    output:
        manifest=f"{RESULTS}/fastq/{{study}}/manifest.tsv",
    params:
        fastq_dir=lambda wc: f"{RESULTS}/fastq/{wc.study}",
    log:
        f"{LOGS}/download/{{study}}.log",
    resources:
        downloads=1,
    # network-bound: on the submit host unless download.on_submit_host is false
    localrule: config["download"]["on_submit_host"]
    conda:
        "../../envs/ingest.yaml"
    script:
        "../../scripts/download_study.py"
