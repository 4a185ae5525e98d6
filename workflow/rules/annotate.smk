# Annotate: the demo annotates its held-out study with the published release and scores
# it against the demo world's truth. Package: scatlas.annotate (scatlas query).


rule demo_query:
    input:
        release=f"{RESULTS}/publish/release.json",
        query=config["demo"]["query_input"] or [],
    output:
        h5ad=f"{RESULTS}/demo/query_annotated.h5ad",
        csv=f"{RESULTS}/demo/query_annotated.csv",
        accuracy=f"{RESULTS}/demo/query_accuracy.json",
    log:
        f"{LOGS}/demo/query.log",
    conda:
        "../../envs/train.yaml"
    params:
        truth=config["demo"]["truth_column"],
        k=config["evaluate"]["k"],
    script:
        "../../scripts/demo_query.py"
