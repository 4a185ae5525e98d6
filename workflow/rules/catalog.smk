# Query GEO / ArrayExpress, write per-study sample sheets, keep the catalog.


checkpoint discover:
    output:
        studies=f"{RESULTS}/discover/studies.tsv",
    params:
        # the studies known from earlier runs are read from here (never written by this rule)
        db=f"{RESULTS}/catalog.sqlite",
        # rerun trigger: a new window (scatlas refresh sets date_from/date_to) or query
        window=lambda wc: discover_fingerprint(),
    log:
        f"{LOGS}/discover/discover.log",
    localrule: True
    conda:
        "../../envs/ingest.yaml"
    script:
        "../../scripts/discover_studies.py"


rule sample_sheet:
    input:
        # ancient: a new query does not re-run every study; the record fingerprint
        # in params does, for the studies whose upstream record changed
        studies=ancient(f"{RESULTS}/discover/studies.tsv"),
    output:
        samples=f"{RESULTS}/studies/{{study}}/samples.tsv",
        meta=f"{RESULTS}/studies/{{study}}/study.json",
    params:
        # re-ingest a study whose upstream record changed (rerun trigger: params); the
        # fingerprint digests its esummary / BioStudies record (scatlas.discover.studies)
        record=lambda wc: study_fingerprint(wc.study),
    log:
        f"{LOGS}/sample_sheet/{{study}}.log",
    localrule: True
    conda:
        "../../envs/ingest.yaml"
    script:
        "../../scripts/sample_sheet.py"


rule ingest:
    # the catalog after the ingestion stages (query, sample sheets, downloads); also the
    # target of `scatlas refresh --target ingest` (metadata and reads only)
    input:
        studies=f"{RESULTS}/discover/studies.tsv",
        metas=lambda wc: expand(f"{RESULTS}/studies/{{study}}/study.json", study=all_studies()),
        manifests=lambda wc: expand(f"{RESULTS}/fastq/{{study}}/manifest.tsv", study=all_studies()),
    output:
        f"{RESULTS}/catalog/ingest.json",
    params:
        db=f"{RESULTS}/catalog.sqlite",
        alignments=[],
    log:
        f"{LOGS}/catalog/ingest.log",
    localrule: True
    conda:
        "../../envs/ingest.yaml"
    script:
        "../../scripts/update_catalog.py"


rule catalog:
    input:
        ingest=f"{RESULTS}/catalog/ingest.json",
        studies=f"{RESULTS}/discover/studies.tsv",
        metas=lambda wc: expand(f"{RESULTS}/studies/{{study}}/study.json", study=all_studies()),
        manifests=lambda wc: expand(f"{RESULTS}/fastq/{{study}}/manifest.tsv", study=all_studies()),
        expression=lambda wc: expand(
            f"{RESULTS}/studies/{{study}}/expression.h5ad", study=all_studies()
        ),
    output:
        f"{RESULTS}/catalog/update.json",
    params:
        db=f"{RESULTS}/catalog.sqlite",
        alignments=lambda wc: [
            f"{RESULTS}/align/{s}/alignment.tsv"
            for s in all_studies()
            if study_row(s)["kind"] == "reads"
        ],
    log:
        f"{LOGS}/catalog/update.log",
    localrule: True
    conda:
        "../../envs/ingest.yaml"
    script:
        "../../scripts/update_catalog.py"
