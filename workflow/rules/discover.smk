# Discover: which single-cell studies GEO and ArrayExpress hold (a checkpoint: the
# studies are known only after it). Package: scatlas.discover.


checkpoint discover:
    output:
        studies=f"{RESULTS}/discover/studies.tsv",
    log:
        f"{LOGS}/discover/discover.log",
    localrule: True
    conda:
        "../../envs/ingest.yaml"
    params:
        # the studies known from earlier runs are read from here (never written by this rule)
        db=f"{RESULTS}/catalog.sqlite",
        # rerun trigger: a new window (scatlas refresh sets date_from/date_to) or query
        window=lambda wc: discover_fingerprint(),
    script:
        "../../scripts/discover_studies.py"
