# Ingest: per-study sample sheets, verified downloads (FASTQ or author matrices) and the
# catalog. Package: scatlas.ingest.


rule sample_sheet:
    input:
        # ancient: a new query does not re-run every study; the record fingerprint
        # in params does, for the studies whose upstream record changed
        studies=ancient(f"{RESULTS}/discover/studies.tsv"),
    output:
        samples=f"{RESULTS}/studies/{{study}}/samples.tsv",
        meta=f"{RESULTS}/studies/{{study}}/study.json",
    log:
        f"{LOGS}/sample_sheet/{{study}}.log",
    localrule: True
    conda:
        "../../envs/ingest.yaml"
    params:
        # re-ingest a study whose upstream record changed (rerun trigger: params); the
        # fingerprint digests its esummary / BioStudies record (scatlas.discover.studies)
        record=lambda wc: study_fingerprint(wc.study),
    script:
        "../../scripts/sample_sheet.py"


rule ingest:
    # the catalog after the ingestion stages (query, sample sheets, downloads); also the
    # target of `scatlas refresh --target ingest` (metadata and reads only)
    input:
        studies=f"{RESULTS}/discover/studies.tsv",
        metas=lambda wc: expand(
            f"{RESULTS}/studies/{{study}}/study.json", study=all_studies()
        ),
        manifests=lambda wc: expand(
            f"{RESULTS}/fastq/{{study}}/manifest.tsv", study=all_studies()
        ),
    output:
        f"{RESULTS}/catalog/ingest.json",
    log:
        f"{LOGS}/catalog/ingest.log",
    localrule: True
    conda:
        "../../envs/ingest.yaml"
    params:
        db=f"{RESULTS}/catalog.sqlite",
        alignments=[],
    script:
        "../../scripts/update_catalog.py"


rule catalog:
    input:
        ingest=f"{RESULTS}/catalog/ingest.json",
        studies=f"{RESULTS}/discover/studies.tsv",
        metas=lambda wc: expand(
            f"{RESULTS}/studies/{{study}}/study.json", study=all_studies()
        ),
        manifests=lambda wc: expand(
            f"{RESULTS}/fastq/{{study}}/manifest.tsv", study=all_studies()
        ),
        expression=lambda wc: expand(
            f"{RESULTS}/studies/{{study}}/expression.h5ad", study=all_studies()
        ),
    output:
        f"{RESULTS}/catalog/update.json",
    log:
        f"{LOGS}/catalog/update.log",
    localrule: True
    conda:
        "../../envs/ingest.yaml"
    params:
        db=f"{RESULTS}/catalog.sqlite",
        alignments=lambda wc: [
            f"{RESULTS}/align/{s}/alignment.tsv"
            for s in all_studies()
            if study_row(s)["kind"] == "reads"
        ],
    script:
        "../../scripts/update_catalog.py"


rule download:
    input:
        samples=f"{RESULTS}/studies/{{study}}/samples.tsv",
    output:
        manifest=f"{RESULTS}/fastq/{{study}}/manifest.tsv",
    log:
        f"{LOGS}/download/{{study}}.log",
    # network-bound: on the submit host unless download.on_submit_host is false
    localrule: config["download"]["on_submit_host"]
    conda:
        "../../envs/ingest.yaml"
    resources:
        downloads=1,
    params:
        fastq_dir=lambda wc: f"{RESULTS}/fastq/{wc.study}",
    script:
        "../../scripts/download_study.py"
